"""Speed of every built-in network at one fixed input size, as a dated Markdown file.

    python benchmarks/bench_models.py                      # CPU, 128x128 input
    python benchmarks/bench_models.py --device cuda --size 1920x1080 --precision fp16

Each network runs on the same crop of a real photo: one warm-up, then the
median of `--repeat` timed runs, in one process, so the ratios between rows
hold even on a shared machine. Variants of one family that differ only in
their weights (Real-CUGAN's denoise levels) cost the same; one of each
architecture and scale is timed and the row names the others.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_pipeline import machine  # noqa: E402
from vidscale.engine.backend import backend_device, make_engine, pick_backend  # noqa: E402
from vidscale.media.image import read_image  # noqa: E402
from vidscale.models import zoo  # noqa: E402
from vidscale.upscaler import to_tensor  # noqa: E402

PHOTO = ROOT.parent / "shared" / "media" / "realesrgan_inputs" / "OST_009.png"
FALLBACK = ROOT / "samples" / "bunny.png"


def timed_groups() -> dict[str, list[zoo.ModelInfo]]:
    """One representative per (family or name, scale): same architecture, same cost."""
    groups: dict[str, list[zoo.ModelInfo]] = {}
    for info in zoo.builtins().values():
        key = f"{info.family}-x{info.scale}" if info.family else info.name
        groups.setdefault(key, []).append(info)
    return groups


def photo_input(height: int, width: int) -> torch.Tensor:
    rgb = read_image(PHOTO if PHOTO.is_file() else FALLBACK)
    reps = (-(-height // rgb.shape[0]), -(-width // rgb.shape[1]), 1)
    return to_tensor(np.ascontiguousarray(np.tile(rgb, reps)[:height, :width, :3]))


def time_model(info: zoo.ModelInfo, x: torch.Tensor, backend: str, device: torch.device,
               precision: str | None, repeat: int) -> tuple[float, float]:
    """(load seconds, median seconds per frame)."""
    start = time.perf_counter()
    engine = make_engine(info, backend, device, precision=precision)
    load_s = time.perf_counter() - start
    x = x.to(device)

    def once() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t = time.perf_counter()
        engine(x)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - t

    once()  # warm-up: allocations, kernels, autotuning
    return load_s, statistics.median(once() for _ in range(repeat))


def report(rows: list[tuple[str, zoo.ModelInfo, list[str], float, float]], args: argparse.Namespace,
           size: tuple[int, int]) -> str:
    base = next((r[4] for r in rows if r[1].name == "span-x2"), rows[0][4])
    lines = [
        f"# Built-in network speed, {args.device} ({datetime.date.today().isoformat()})",
        "",
        f"Machine: {machine()}; torch {torch.__version__}, {torch.get_num_threads()} threads.",
        f"Command: `python benchmarks/bench_models.py {' '.join(sys.argv[1:])}`".rstrip(),
        f"Input: {size[1]}x{size[0]} RGB crop of a real photo, one frame per run, median of "
        f"{args.repeat} after one warm-up; precision {args.precision or 'auto'}.",
        "",
        "| model | arch | scale | params | s / frame | input Mpx/s | time vs span-x2 | same cost |",
        "|---|---|---|---|---|---|---|---|",
    ]
    mpx = size[0] * size[1] / 1e6
    for _key, info, others, _load, sec in rows:
        lines.append(f"| {info.name} | {info.arch} | x{info.scale} | {info.params:,} | {sec:.3f} | "
                     f"{mpx / sec:.4f} | {sec / base:.1f}x | {', '.join(others) or '-'} |")
    lines += ["", "An x4 network asked for x2 computes x4 and resizes down: its x2 cost is its x4 cost.", ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", default="128x128", help="input WIDTHxHEIGHT")
    parser.add_argument("--precision", default=None)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", help="comma-separated group names (default: all)")
    parser.add_argument("--out", type=Path, help="write the Markdown here (default: print)")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    backend = pick_backend("torch", args.device)
    device = backend_device(backend, args.device)
    x = photo_input(height, width)
    rows = []
    for key, members in timed_groups().items():
        if args.only and key not in args.only.split(","):
            continue
        info = members[0]
        load_s, sec = time_model(info, x, backend, device, args.precision, args.repeat)
        print(f"{key}: {sec:.3f} s/frame (load {load_s:.2f} s)", file=sys.stderr)
        rows.append((key, info, [m.name for m in members[1:]], load_s, sec))
    text = report(rows, args, (height, width))
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
