"""What segmenting costs, what resuming saves, and what a second worker gives.

Each case is a real `vidscale` command in its own process (as a user runs
it), on one clip, with the rounds interleaved so that a shared machine's load
falls on every case alike; the results are ratios within one run.

  - straight vs segmented: `--segment 0` (one segment) against `--segment S`,
    one worker: the cost of cutting (encoder restarts, seeks, the join).
  - resumed: a run cancelled after about half its segments, then the same
    command; its time against the straight run's times the fraction left.
  - workers: `--workers 1` against `--workers 2` (threads split between them).

    python benchmarks/bench_segments.py --clip samples/bunny.webm --segment 1s --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(args: list[str]) -> float:
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "vidscale", *args, "-q"], capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"vidscale {' '.join(args)} failed:\n{result.stderr}")
    return time.perf_counter() - start


def resumed(clip: Path, out: Path, common: list[str], segment: str) -> tuple[float, float]:
    """Cancel a run halfway (through the library, in a child process), then time the resume.
    Returns (seconds of the resumed run, fraction of the frames it had left)."""
    code = f"""
import threading, sys
from vidscale import JobSettings, run_job
from vidscale.errors import Cancelled
from vidscale.media.source import VideoSource
total = VideoSource(__import__('pathlib').Path({str(clip)!r})).info.frames or 0
cancel = threading.Event()
def seen(done, expected):
    if expected and done >= expected // 2: cancel.set()
try:
    run_job({str(clip)!r}, {str(out)!r}, JobSettings(model={common[1]!r}, scale=float({common[3]!r}),
            segment={segment!r}, quiet=True, on_progress=seen, cancel=cancel))
except Cancelled:
    pass
"""
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    state = out.with_name(f".{out.name}.vidscale-job")
    records = [p for p in state.glob("*.json") if p.name != "job.json"]
    done = sum(json.loads(p.read_text())["frames"] for p in records)
    plan = json.loads((state / "job.json").read_text())["plan"]
    seconds = run([str(clip), str(out), *common, "--segment", segment])
    return seconds, 1 - done / plan["frames"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip", type=Path, default=ROOT / "samples" / "bunny.webm")
    ap.add_argument("--model", default="span-x2")
    ap.add_argument("--scale", default="2")
    ap.add_argument("--segment", default="1s", help="segment length of the segmented cases")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", type=Path, help="write the raw times here")
    args = ap.parse_args()
    common = ["-m", args.model, "--scale", args.scale]
    times: dict[str, list[float]] = {"straight": [], "segmented": [], "workers2": [], "resumed": []}
    left: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for r in range(args.rounds):
            cases = ["straight", "segmented", "workers2", "resumed"]
            for case in cases if r % 2 == 0 else reversed(cases):
                out = folder / f"{case}-{r}.mkv"
                if case == "straight":
                    times[case].append(run([str(args.clip), str(out), *common, "--segment", "0"]))
                elif case == "segmented":
                    times[case].append(run([str(args.clip), str(out), *common, "--segment", args.segment]))
                elif case == "workers2":
                    times[case].append(run([str(args.clip), str(out), *common, "--segment", args.segment,
                                            "--workers", "2"]))
                else:
                    seconds, fraction = resumed(args.clip, out, common, args.segment)
                    times[case].append(seconds)
                    left.append(fraction)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"clip {args.clip.name}, -m {args.model} --scale {args.scale}, --segment {args.segment}, "
          f"{args.rounds} interleaved rounds (median seconds)")
    print(f"straight (--segment 0)      {med['straight']:.2f} s")
    print(f"segmented, one worker       {med['segmented']:.2f} s   ratio {med['segmented'] / med['straight']:.3f}")
    print(f"segmented, --workers 2      {med['workers2']:.2f} s   throughput x{med['segmented'] / med['workers2']:.2f}"
          " against one worker")
    expected = med["straight"] * statistics.median(left)
    print(f"resumed with {statistics.median(left):.0%} left  {med['resumed']:.2f} s   "
          f"ratio {med['resumed'] / expected:.3f} to the straight run's time for that part")
    if args.json:
        args.json.write_text(json.dumps({"times": times, "left": left}, indent=1))


if __name__ == "__main__":
    main()
