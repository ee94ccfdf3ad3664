"""CPU runtimes for every built-in at one fixed size, as a dated Markdown table.

    python benchmarks/cpu_runtimes.py [--size 64x64] [--repeat 3] [--threads 2]
        [--only GROUP,...] [--runtimes torch,openvino,...]

For one member of each architecture and scale: PyTorch eager in plain NCHW
(TorchEngine with channels_last=False: the reference), PyTorch with
channels_last (TorchEngine as vidscale runs it), bf16 where the CPU has native
bf16 (AVX512-BF16 or AMX), onnxruntime and OpenVINO on our ONNX export, and
ncnn on the network's original .param/.bin (from the packages the built-ins
were converted from; VIDSCALE_ENGINE_SOURCES for the RealSR sdist). Each
figure is the median of `--repeat` runs, each in a fresh process after a
warm-up there, the runtimes taking turns run by run, so the ratios hold on a
shared machine. The largest difference from PyTorch eager is given in 1/255 steps.
"""

from __future__ import annotations

import argparse
import datetime
import json
import multiprocessing as mp
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_models import photo_input, timed_groups  # noqa: E402
from bench_pipeline import machine  # noqa: E402
from vidscale.engine.onnx_export import export_onnx  # noqa: E402
from vidscale.engine.torch_engine import TorchEngine  # noqa: E402
from vidscale.errors import ModelError  # noqa: E402
from vidscale.models import zoo  # noqa: E402
from vidscale.models.loading import load_descriptor  # noqa: E402

Run = Callable[[], np.ndarray]
RUNTIMES = ("torch", "torch channels_last", "torch bf16", "onnxruntime", "openvino", "ncnn")


def cpu_has_bf16() -> bool:
    flags = Path("/proc/cpuinfo").read_text().split()
    return "avx512_bf16" in flags or "amx_bf16" in flags


def torch_runner(info: zoo.ModelInfo, x: torch.Tensor, layout: str) -> Run | str:
    desc = load_descriptor(info.path)  # type: ignore[arg-type]
    if layout == "bf16" and not cpu_has_bf16():
        return "no native bf16 on this CPU"
    # "torch" is the NCHW reference whatever TorchEngine would pick for this network
    engine = TorchEngine(desc, torch.device("cpu"), channels_last=layout == "channels_last")
    tile = engine.auto_tile(x.shape[0], *x.shape[2:])
    if tile < max(x.shape[2:]):  # the other runtimes take the whole frame: say so beside the figure
        print(f"{info.name} {layout}: TorchEngine tiles at {tile} px", file=sys.stderr)
    if layout == "bf16":
        engine.model, engine.dtype = engine.model.to(torch.bfloat16), torch.bfloat16
    return lambda: engine(x).numpy()


def onnx_runner(path: Path, x: np.ndarray, kind: str, threads: int) -> Run | str:
    if kind == "onnxruntime":
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        return lambda: session.run(None, {"input": x})[0]
    try:
        import openvino as ov
    except ImportError:
        return "openvino not installed"
    core = ov.Core()
    compiled = core.compile_model(str(path), "CPU", {"INFERENCE_NUM_THREADS": threads,
                                                     "INFERENCE_PRECISION_HINT": "f32"})
    return lambda: compiled(x)[0]


def ncnn_runner(info: zoo.ModelInfo, x: np.ndarray, threads: int) -> Run | str:
    """The original ncnn net; Real-CUGAN's reflect padding and skip are left out (they cost little)."""
    import ncnn
    from tests import test_builtin_models as built  # the tests know where each built-in's originals are

    model = next(m for m in built.MODELS if m["name"] == info.name)
    try:
        folder = built.model_source_dir(model)
    except BaseException as exc:  # pytest.skip: the originals are not installed
        return f"originals not found ({exc})"
    param, weights = (folder / f for f in model["source"]["files"])
    net = ncnn.Net()
    net.opt.num_threads = threads
    net.opt.use_vulkan_compute = False
    net.opt.use_fp16_storage = net.opt.use_fp16_arithmetic = net.opt.use_fp16_packed = False
    assert net.load_param(str(param)) == 0 and net.load_model(str(weights)) == 0
    blob_in, blob_out = built.io_blobs(built.parse_param(param))
    data = np.ascontiguousarray(x[0])

    def run() -> np.ndarray:
        ex = net.create_extractor()
        ex.input(blob_in, ncnn.Mat(data))
        ret, out = ex.extract(blob_out)
        assert ret == 0
        return np.array(out)[None]

    return run


def make_runner(runtime: str, info: zoo.ModelInfo, x: torch.Tensor, onnx: Path | str,
                threads: int) -> Run | str:
    """One runtime's callable for one model and input, or why it cannot run here."""
    torch.set_num_threads(threads)
    if runtime.startswith("torch"):
        return torch_runner(info, x, runtime.partition(" ")[2] or "eager")
    if runtime in ("onnxruntime", "openvino"):
        return onnx if isinstance(onnx, str) else onnx_runner(onnx, x.numpy(), runtime, threads)
    if info.arch == "RealCUGAN":
        return "Real-CUGAN's ncnn net needs the padding of its Python wrapper"
    return ncnn_runner(info, x.numpy(), threads)


def time_once(conn: Connection, runtime: str, info: zoo.ModelInfo, x: torch.Tensor, onnx: Path | str,
              threads: int) -> None:
    """A worker process: build one runtime, warm it up, time one run; send (seconds, output,
    the process's peak resident MiB)."""
    run = make_runner(runtime, info, x, onnx, threads)
    if isinstance(run, str):
        conn.send(run)
        return
    run()  # warm-up: first-call allocations and kernel choices
    t = time.perf_counter()
    output = run()
    seconds = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    conn.send((seconds, np.asarray(output), peak))


def run_in_process(runtime: str, info: zoo.ModelInfo, x: torch.Tensor, onnx: Path | str,
                   threads: int) -> tuple[float, np.ndarray, float] | str:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=time_once, args=(child, runtime, info, x, onnx, threads), daemon=True)
    proc.start()
    child.close()  # ours: so a worker that dies (out of memory...) reads as EOF, not a hang
    try:
        reply = parent.recv()
    except EOFError:
        reply = None
    proc.join()
    return reply if reply is not None else f"failed (exit code {proc.exitcode})"


def bench_model(info: zoo.ModelInfo, x: torch.Tensor, tmp: Path, args: argparse.Namespace) -> dict:
    """Each run in a fresh process of its own (load, warm-up, one timed run), the runtimes
    taking turns round by round. In one process the thread pools of one runtime (OpenMP,
    TBB) kept spinning into the next one's turn and made PyTorch look up to 6x slower;
    workers kept alive side by side ran out of memory on the large networks."""
    try:
        onnx: Path | str = export_onnx(info, tmp / f"{info.name}.onnx")
    except ModelError as exc:  # Real-CUGAN: its code depends on the input size
        onnx = f"no ONNX export ({exc})"
    row: dict[str, object] = {}
    times: dict[str, list[float]] = {}
    peaks: dict[str, list[float]] = {}
    outputs: dict[str, np.ndarray] = {}
    for _ in range(args.repeat):  # round-robin: a burst of load hits every runtime alike
        for runtime in args.runtimes:
            if runtime in row:
                continue  # cannot run here (said why in the first round)
            reply = run_in_process(runtime, info, x, onnx, args.threads)
            if isinstance(reply, str):
                row[runtime] = reply
                continue
            times.setdefault(runtime, []).append(reply[0])
            peaks.setdefault(runtime, []).append(reply[2])
            outputs[runtime] = reply[1]
    reference = np.clip(outputs["torch"], 0, 1)
    for name in times:
        if name in row:
            continue
        # the mean too: where the network itself is unstable (span-x2 on OST_009's branches, see
        # precision_probe.py) the largest difference is a few pixels' and says little of the rest
        errors = np.abs(np.clip(outputs[name], 0, 1) - reference) * 255
        diff, mean = float(errors.max()), float(errors.mean())
        row[name] = {"s": statistics.median(times[name]), "diff255": diff, "mean255": mean,
                     "peak_mib": max(peaks[name])}
        print(f"{info.name} {name}: {row[name]['s']:.3f} s, max diff {diff:.4f}/255 (mean {mean:.4f}), "
              f"peak {row[name]['peak_mib']:.0f} MiB", file=sys.stderr)
    return row


def report(rows: dict[str, dict], args: argparse.Namespace) -> str:
    today = datetime.date.today().isoformat()
    lines = [
        f"# CPU runtimes for the built-ins ({today})", "",
        f"Machine: {machine()}; torch {torch.__version__}, {args.threads} threads in every runtime;",
        "shared with other jobs: compare within a row.",
        f"Command: `python benchmarks/cpu_runtimes.py {' '.join(sys.argv[1:])}`".rstrip(),
        f"Input: {args.size} RGB crop of a real photo; median of {args.repeat} runs, each in a fresh process "
        "after a warm-up there. "
        "Cells: seconds per frame, speed-up over PyTorch eager (NCHW), largest / mean difference from it in /255, "
        "peak resident memory of the worker process (model, input and output included).", "",
        "| model | " + " | ".join(args.runtimes) + " |", "|---" * (len(args.runtimes) + 1) + "|",
    ]
    for model, row in rows.items():
        base = row["torch"]["s"]
        cells = []
        for name in args.runtimes:
            r = row[name]
            cells.append(r if isinstance(r, str) else
                         f"{r['s']:.3f} ({base / r['s']:.2f}x, {r['diff255']:.4f} / {r['mean255']:.4f}, "
                         f"{r['peak_mib']:.0f} MiB)")
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="64x64", help="input WIDTHxHEIGHT")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", help="comma-separated group names (default: all)")
    parser.add_argument("--runtimes", default=",".join(RUNTIMES),
                        help=f"comma-separated, from: {', '.join(RUNTIMES)} (torch always runs: the reference)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    args.runtimes = ["torch"] + [r for r in args.runtimes.split(",") if r in RUNTIMES and r != "torch"]
    torch.set_num_threads(args.threads)
    width, height = (int(v) for v in args.size.lower().split("x"))
    x = photo_input(height, width)
    out = args.out or ROOT / "benchmarks" / "results" / f"{datetime.date.today().isoformat()}-cpu-runtimes.md"
    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for key, members in timed_groups().items():
            if args.only and key not in args.only.split(","):
                continue
            rows[members[0].name] = bench_model(members[0], x, Path(tmp), args)
            out.write_text(report(rows, args), encoding="utf-8")  # row by row: a stopped run keeps its rows
            out.with_suffix(".json").write_text(json.dumps(rows, indent=1), encoding="utf-8")
    print(out.read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
