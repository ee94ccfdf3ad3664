"""What skipping repeated frames saves: repeats counted, then the CLI with and without skipping.

For each clip: how many of the first N frames repeat the previous one (exactly, and within a
few 8-bit levels of the last frame kept in 16x16 block means, as --repeat-threshold counts
them); then `vidscale CLIP out.mkv --frames N -m MODEL --crf 0` (or `--preset NAME`, its own
encoder) with --no-skip-repeats, with skipping (exact repeats), and with `--repeat-threshold T`
when given, each in its own process, the rounds interleaved so that a shared machine's load
falls on all alike.
Each run's wall time and its process's CPU time (user + system: on a machine shared with other
jobs it moves far less than the wall time). The outputs are decoded and compared frame by frame
with the run that skipped nothing: exact skipping must match it (the encoder sees the same
frames); a threshold's output gets its lowest per-frame PSNR.

    python benchmarks/bench_repeats.py CLIP [CLIP...] --frames 48 --model span-x2 --rounds 2
    python benchmarks/bench_repeats.py onepiece_demo.mp4 --frames 181 --preset anime --threshold 4
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vidscale.media.color import bit_depth  # noqa: E402
from vidscale.media.source import VideoSource  # noqa: E402
from vidscale.metrics import psnr  # noqa: E402
from vidscale.repeats import Repeats  # noqa: E402

THRESHOLDS = (0, 2, 4, 6)


def count_repeats(clip: Path, frames: int) -> dict[float, int]:
    """Repeats among the first `frames` frames, as the job decodes them, per threshold."""
    source = VideoSource(clip, limit=frames)
    finders = {t: Repeats(t) for t in THRESHOLDS}
    counts = dict.fromkeys(THRESHOLDS, 0)
    try:
        for item in source.items():
            if hasattr(item, "pixels"):
                for t, finder in finders.items():
                    counts[t] += finder.check(item.pixels, item.color)
    finally:
        source.close()
    return counts


def run(args: list[str]) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds, the summary line) of one CLI run in its own process."""
    before, start = _children_cpu(), time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "vidscale", *args], capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"vidscale {' '.join(args)} failed:\n{result.stderr}")
    wall, cpu = time.perf_counter() - start, _children_cpu() - before
    return wall, cpu, result.stderr.strip().splitlines()[-1]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def decoded(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        deep = stream.codec_context.format is not None and bit_depth(stream.codec_context.format) > 8
        return [f.to_ndarray(format="yuv420p10le" if deep else "yuv420p") for f in c.decode(stream)]


def bench(clip: Path, args: argparse.Namespace, tmp: Path) -> str:
    counts = count_repeats(clip, args.frames)
    how = ["--preset", args.preset] if args.preset else ["-m", args.model, "--crf", "0"]
    common = ["--frames", str(args.frames), *how, "--overwrite"]
    cases = {"no-skip": ["--no-skip-repeats"], "skip": []}
    if args.threshold:
        cases["near"] = ["--repeat-threshold", str(args.threshold)]
    times: dict[str, list[float]] = {c: [] for c in cases}
    cpu: dict[str, list[float]] = {c: [] for c in cases}
    for r in range(args.rounds):
        for case, extra in (cases.items() if r % 2 == 0 else reversed(cases.items())):
            seconds, used, line = run([str(clip), str(tmp / f"{case}.mkv"), *common, *extra])
            times[case].append(seconds)
            cpu[case].append(used)
            print(f"{clip.name} {case}: {seconds:.1f} s, CPU {used:.1f} s, load {os.getloadavg()[0]:.1f} "
                  f"({line})", file=sys.stderr, flush=True)
    plain = decoded(tmp / "no-skip.mkv")
    wall, used = statistics.median(times["no-skip"]), statistics.median(cpu["no-skip"])
    near = ", ".join(f"{counts[t]} within {t}" for t in THRESHOLDS[1:])
    cells = [f"| {clip.name} | {args.frames} | {counts[0]} ({near}) | {wall:.1f} / {used:.1f} |"]
    for case in cases:
        if case != "no-skip":
            out = decoded(tmp / f"{case}.mkv")
            t, c = statistics.median(times[case]), statistics.median(cpu[case])
            cells.append(f" {t:.1f} / {c:.1f} | {t / wall:.2f} / {c / used:.2f} | {agreement(out, plain)} |")
    return "".join(cells)


def agreement(out: list[np.ndarray], plain: list[np.ndarray]) -> str:
    """'identical', or the lowest per-frame PSNR against the run that skipped nothing."""
    if len(out) != len(plain):
        return f"{len(out)} frames, not {len(plain)}"
    if all(np.array_equal(a, b) for a, b in zip(out, plain)):
        return f"identical ({len(out)} frames)"
    peak = 1023.0 if out[0].dtype == np.uint16 else 255.0
    worst = min(psnr(a, b, peak) for a, b in zip(out, plain))
    return f"lowest PSNR {worst:.1f} dB ({len(out)} frames)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clips", nargs="+", type=Path)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--model", default="span-x2")
    parser.add_argument("--preset", help="run with this preset (its model and encoder) instead of --model")
    parser.add_argument("--threshold", type=float, help="also time --repeat-threshold THRESHOLD")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for clip in args.clips:
            rows.append(bench(clip, args, Path(tmp)))
            print(rows[-1], flush=True)
    print(f"\nMachine: {platform.machine()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} "
          f"at the end; {f'preset {args.preset}' if args.preset else f'model {args.model}'}, {args.rounds} rounds (median)")
    near = f" | --repeat-threshold {args.threshold:g} s (wall / CPU) | ratio | output" if args.threshold else ""
    print("| clip | frames | exact repeats (near: within N levels) | --no-skip-repeats s (wall / CPU) | "
          f"skipping s (wall / CPU) | ratio (wall / CPU) | output{near} |")
    print("|---" * (7 + 3 * bool(args.threshold)) + "|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
