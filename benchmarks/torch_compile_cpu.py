"""torch.compile (inductor) against eager PyTorch on the CPU, per built-in (issue 22, point 4).

    python benchmarks/torch_compile_cpu.py [--models a,b] [--size 180x320] [--reps 3] [--threads 2]
                                           [--live-hooks] [--out results.json]

For each model, two fresh processes share one new inductor cache folder: the first compiles cold
(empty cache), the second warm (inductor's on-disk cache filled by the first). Each process builds
the network as `TorchEngine` does (folded, channels_last, fp32; without its per-layer watch hooks,
which a compiled graph keeps only as a graph break per convolution), takes
samples/bunny.png as the picture (repeated to the size), times the
first compiled call (the compile plus one run), then runs eager and compiled in turns, `--reps`
times each, so their ratio holds on a shared machine. Reported: the best time of each, the ratio,
the compile time (first call less one compiled run) and the largest output difference in 1/255.
`--freezing` turns on inductor's freezing (weights as constants, convolutions on oneDNN's packed
weights, fused with what follows them); `--no-prepack` with it leaves the weights unpacked.
`--live-hooks` keeps a cancel check after every convolution inside the compiled region (each one
a graph break) instead of leaving the hooks out of it. The load average is read around each run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
MODELS = ["span-x2", "animevideo-x4", "realcugan-x2-no-denoise", "realesrgan-x4plus-anime"]


def child(model: str, height: int, width: int, reps: int, threads: int, live_hooks: bool,
          freezing: bool, prepack: bool) -> dict:
    import torch
    import torch._inductor.config

    from vidscale.engine import watch
    from vidscale.engine.torch_engine import TorchEngine, _pad_to_requirements
    from vidscale.models import zoo
    from vidscale.models.loading import load_descriptor

    torch.set_num_threads(threads)
    torch._inductor.config.freezing = freezing  # weights as constants: oneDNN's packed, fused convolutions
    torch._inductor.config.cpp.weight_prepack = prepack
    engine = TorchEngine(load_descriptor(zoo.resolve(model).path), torch.device("cpu"), precision="fp32")
    net = engine.model
    x = picture(height, width)
    x = _pad_to_requirements(x, engine.requirements).contiguous(memory_format=torch.channels_last)
    for conv in engine.layers.convs:  # the engine's per-layer checks: out of the graph, or live
        conv._forward_hooks.clear()
        if live_hooks:  # a cancel check inside the compiled region: a graph break per convolution
            conv.register_forward_hook(lambda *_: watch.reached(0.0))
    compiled = torch.compile(net, dynamic=False)
    with torch.inference_mode(), watch.between_tiles(lambda: None):
        t = time.perf_counter()
        compiled(x)
        first = time.perf_counter() - t
        net(x)  # eager warm-up
        eager, comp = [], []
        for _ in range(reps):
            t = time.perf_counter()
            a = net(x)
            eager.append(time.perf_counter() - t)
            t = time.perf_counter()
            b = compiled(x)
            comp.append(time.perf_counter() - t)
    return {"eager_s": min(eager), "compiled_s": min(comp), "first_call_s": first,
            "compile_s": first - min(comp), "ratio": min(eager) / min(comp),
            "pair_ratio_median": statistics.median(e / c for e, c in zip(eager, comp)),
            "max_diff_255": float((a - b).abs().max()) * 255, "torch": torch.__version__}


def picture(height: int, width: int) -> "torch.Tensor":
    """samples/bunny.png (320x180), repeated and cropped to the size. Not random noise: SPAN
    magnifies float rounding on noise to tens of /255 (2026-12-07-bf16-span-cpu.md)."""
    import torch

    from vidscale.media.image import read_image
    from vidscale.upscaler import to_tensor

    x = to_tensor(read_image(ROOT / "samples" / "bunny.png"))[:, :3]
    x = x.repeat(1, 1, -(-height // x.shape[2]), -(-width // x.shape[3]))
    return x[:, :, :height, :width].contiguous()


def run_child(model: str, args: argparse.Namespace, cache: str) -> dict:
    env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=cache, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, __file__, "--child", model, "--size", args.size, "--reps", str(args.reps),
           "--threads", str(args.threads)] + (["--live-hooks"] if args.live_hooks else []) \
        + (["--freezing"] if args.freezing else []) + (["--no-prepack"] if args.no_prepack else [])
    load = os.getloadavg()[0]
    t = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result.update(process_s=time.perf_counter() - t, load_before=load, load_after=os.getloadavg()[0])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--size", default="180x320", help="network input, HEIGHTxWIDTH")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--live-hooks", action="store_true")
    ap.add_argument("--freezing", action="store_true", help="inductor's freezing (weights as constants)")
    ap.add_argument("--no-prepack", action="store_true", help="with --freezing: no oneDNN weight packing")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    height, width = (int(v) for v in args.size.split("x"))
    if args.child:
        print(json.dumps(child(args.child, height, width, args.reps, args.threads, args.live_hooks,
                               args.freezing, not args.no_prepack)))
        return
    results = {}
    print("| model | run | eager s | compiled s | ratio (best) | ratio (median pair) | compile s "
          "| max diff /255 | load |")
    print("|---|---|---|---|---|---|---|---|---|")
    for model in args.models.split(","):
        with tempfile.TemporaryDirectory(prefix="inductor-") as cache:
            for run in ("cold", "warm"):
                r = run_child(model, args, cache)
                results[f"{model} {run}"] = r
                if "error" in r:
                    print(f"| {model} | {run} | error: {r['error']} ||||||")
                    continue
                print(f"| {model} | {run} | {r['eager_s']:.3f} | {r['compiled_s']:.3f} | {r['ratio']:.2f} "
                      f"| {r['pair_ratio_median']:.2f} | {r['compile_s']:.1f} | {r['max_diff_255']:.4f} "
                      f"| {r['load_before']:.1f}-{r['load_after']:.1f} |", flush=True)
    if args.out:
        args.out.write_text(json.dumps({"size": args.size, "threads": args.threads,
                                        "live_hooks": args.live_hooks, "freezing": args.freezing,
                                        "prepack": not args.no_prepack, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
