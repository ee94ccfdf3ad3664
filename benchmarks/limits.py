"""Where this CPU's limit is: matmul peaks per precision, and each built-in's throughput against them.

    python benchmarks/limits.py [--size 640x480] [--threads 2] [--models a,b] [--out limits.json]

Peaks: the best of several large square GEMMs (torch.matmul in float32 and bf16, torch._int_mm for
int8 with int32 sums) with the threads vidscale uses. Each built-in's work is counted from its layers
(torch's FLOP counter on a meta-device copy at the frame size: 2 per multiply-add, convolutions and
matmuls only) and divided by the time of one frame through vidscale's engine, warmed up first, in
float32 (`--precision fp32`, PyTorch) and in what `--precision auto` runs on this CPU. The fraction
of the matching peak says how much is left. Tiled frames also compute the tiles' overlaps, which
the count leaves out, so a tiled model's fraction is a lower bound.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_pipeline import machine  # noqa: E402
from vidscale.engine.cpu_features import cpu_precision  # noqa: E402
from vidscale.models import zoo  # noqa: E402
from vidscale.models.loading import load_descriptor  # noqa: E402
from vidscale.upscaler import Upscaler  # noqa: E402

MODELS = ("span-x2", "span-x4", "animevideo-x4", "realcugan-x2-no-denoise", "realcugan-x4-no-denoise",
          "realesrgan-x4plus-anime", "realesrgan-x4plus", "realsr-df2k-jpeg-x4")


def gemm_peak(kind: str, n: int = 3072, rounds: int = 5) -> float:
    """Best GFLOP/s (GOP/s for int8) of an n x n x n product."""
    if kind == "int8":
        a, b = (torch.randint(-128, 127, (n, n), dtype=torch.int8) for _ in range(2))
        run = lambda: torch._int_mm(a, b)  # noqa: E731
    else:
        dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[kind]
        a, b = (torch.randn(n, n).to(dtype) for _ in range(2))
        run = lambda: a @ b  # noqa: E731
    run()
    best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def frame_flops(name: str, height: int, width: int) -> float:
    """Multiply-adds x 2 of one frame through the network, counted on the meta device."""
    model = load_descriptor(zoo.resolve(name).path).model.to("meta").eval()  # type: ignore[arg-type]
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.empty(1, 3, height, width, device="meta"))
    return float(counter.get_total_flops())


def frame_seconds(name: str, precision: str, height: int, width: int) -> float:
    up = Upscaler(name, "cpu", precision=precision)
    scale = up.chain[0].scale or 1
    up.upscale(torch.rand(1, 3, 64, 64), (64 * scale, 64 * scale))  # builds and warms the engine
    x = torch.rand(1, 3, height, width)
    t = time.perf_counter()
    up.upscale(x, (height * scale, width * scale))
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="640x480")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    torch.set_num_threads(args.threads)
    peaks = {k: gemm_peak(k) for k in ("fp32", "bf16", "int8")}
    print(f"# CPU limits ({datetime.date.today()})\n\n{machine()}, {args.threads} threads\n")
    print("| GEMM 3072^3 | " + " | ".join(peaks) + " |\n|---|---|---|---|")
    print("| GFLOP/s (GOP/s) | " + " | ".join(f"{v:.0f}" for v in peaks.values()) + " |\n")
    print(f"| model ({args.size}) | GFLOP/frame | fp32 s | fp32 GFLOP/s | of fp32 peak | auto | auto s "
          "| auto GFLOP/s | of its peak | auto speed-up |\n|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for name in args.models.split(","):
        flops = frame_flops(name, height, width)
        auto = cpu_precision("auto", zoo.resolve(name).cpu_precision)
        fp32 = frame_seconds(name, "fp32", height, width)
        fast = frame_seconds(name, "auto", height, width) if auto != "fp32" else fp32
        row = dict(model=name, gflop=flops / 1e9, fp32_s=fp32, auto=auto, auto_s=fast)
        rows.append(row)
        print(f"| {name} | {flops / 1e9:.0f} | {fp32:.2f} | {flops / fp32 / 1e9:.0f} | "
              f"{flops / fp32 / 1e9 / peaks['fp32']:.0%} | {auto} | {fast:.2f} | {flops / fast / 1e9:.0f} | "
              f"{flops / fast / 1e9 / peaks[auto]:.0%} | {fp32 / fast:.2f}x |", flush=True)
    if args.out:
        args.out.write_text(json.dumps({"peaks": peaks, "size": args.size, "threads": args.threads,
                                        "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
