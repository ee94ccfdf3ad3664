"""What skipping repeated frames saves: repeats counted, then the CLI with and without skipping.

For each clip: how many of the first N frames repeat the previous one (exactly, and within a
few 8-bit levels of the last frame kept in 16x16 block means, as --repeat-threshold counts
them); then `vidscale CLIP out.mp4 --frames N -m MODEL --crf 0` with and without
--no-skip-repeats, each in its own process, the rounds interleaved so that a shared machine's
load falls on both alike.
Each run's wall time and its process's CPU time (user + system: on a machine shared with other
jobs it moves far less than the wall time). The two outputs are decoded and compared frame by
frame (CRF 0 is lossless).

    python benchmarks/bench_repeats.py CLIP [CLIP...] --frames 48 --model span-x2 --rounds 2
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

from vidscale.media.source import VideoSource  # noqa: E402
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
        return [f.to_ndarray(format="yuv420p") for f in c.decode(video=0)]


def bench(clip: Path, args: argparse.Namespace, tmp: Path) -> str:
    counts = count_repeats(clip, args.frames)
    common = ["--frames", str(args.frames), "-m", args.model, "--crf", "0", "--overwrite"]
    cases = {"skip": [], "no-skip": ["--no-skip-repeats"]}
    times: dict[str, list[float]] = {c: [] for c in cases}
    cpu: dict[str, list[float]] = {c: [] for c in cases}
    lines: dict[str, str] = {}
    for r in range(args.rounds):
        for case, extra in (cases.items() if r % 2 == 0 else reversed(cases.items())):
            seconds, used, lines[case] = run([str(clip), str(tmp / f"{case}.mp4"), *common, *extra])
            times[case].append(seconds)
            cpu[case].append(used)
            print(f"{clip.name} {case}: {seconds:.1f} s, CPU {used:.1f} s, load {os.getloadavg()[0]:.1f} "
                  f"({lines[case]})", file=sys.stderr, flush=True)
    a, b = decoded(tmp / "skip.mp4"), decoded(tmp / "no-skip.mp4")
    same = len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))
    skip, plain = statistics.median(times["skip"]), statistics.median(times["no-skip"])
    cpu_skip, cpu_plain = statistics.median(cpu["skip"]), statistics.median(cpu["no-skip"])
    near = ", ".join(f"{counts[t]} within {t}" for t in THRESHOLDS[1:])
    return (f"| {clip.name} | {args.frames} | {counts[0]} ({near}) | {plain:.1f} / {cpu_plain:.1f} | "
            f"{skip:.1f} / {cpu_skip:.1f} | {skip / plain:.2f} / {cpu_skip / cpu_plain:.2f} | "
            f"{'identical' if same else 'DIFFERENT'} ({len(a)} frames) |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clips", nargs="+", type=Path)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--model", default="span-x2")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for clip in args.clips:
            rows.append(bench(clip, args, Path(tmp)))
            print(rows[-1], flush=True)
    print(f"\nMachine: {platform.machine()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} "
          f"at the end; model {args.model}, {args.rounds} rounds (median)")
    print("| clip | frames | exact repeats (near: within N levels) | --no-skip-repeats s (wall / CPU) | "
          "skipping s (wall / CPU) | ratio (wall / CPU) | output |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
