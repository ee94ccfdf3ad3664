"""The CLI on a real photo, `--precision auto` against `--precision fp32`, taking turns (issue 22).

    python benchmarks/cli_precision.py [--photo PATH] [--scale 4] [--rounds 2] [--model NAME]

Each run is a fresh `vidscale` process (start-up, model load, decode, encode included), the two
precisions alternating so that the ratio holds on a shared machine; the ONNX export that auto's first
run makes is done before timing (a warm cache, as every run after a user's first). Prints each run's
wall time and the ratio of medians, with the load average before and after.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PHOTO = ROOT.parent / "shared" / "media" / "realesrgan_inputs" / "OST_009.png"


def run(photo: Path, scale: int, precision: str, model: str | None, out: Path) -> float:
    cmd = [sys.executable, "-m", "vidscale", str(photo), str(out), "--scale", str(scale),
           "--precision", precision, "--overwrite", "--quiet"] + (["-m", model] if model else [])
    t = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--photo", type=Path, default=PHOTO)
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--model")
    args = ap.parse_args()
    times: dict[str, list[float]] = {"fp32": [], "auto": []}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.png"
        run(args.photo, args.scale, "auto", args.model, out)  # the export, once (cached after)
        print(f"load before: {os.getloadavg()}")
        for _ in range(args.rounds):
            for precision in times:
                times[precision].append(run(args.photo, args.scale, precision, args.model, out))
                print(f"{precision}: {times[precision][-1]:.1f} s", flush=True)
    print(f"load after: {os.getloadavg()}")
    fp32, auto = (statistics.median(times[k]) for k in ("fp32", "auto"))
    print(f"median fp32 {fp32:.1f} s, auto {auto:.1f} s: auto is {fp32 / auto:.2f}x as fast")


if __name__ == "__main__":
    main()
