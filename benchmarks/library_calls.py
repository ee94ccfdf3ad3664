"""What a library caller and a `--help` reader wait for.

1. `vidscale.upscale_image` on a small picture: a call that loads the model
   against one that reuses it (the kept Upscaler), interleaved: each round
   clears the cache, then makes one loading call and one reusing call.
2. `vidscale --help` and `--version` in a fresh interpreter, against a fresh
   interpreter that only imports torch (what they cost before the lazy imports).

    python benchmarks/library_calls.py [--rounds 5]

Prints a Markdown table; run alone on a quiet machine for stable ratios.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import vidscale  # noqa: E402
from vidscale import api  # noqa: E402


def _timed(fn) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _process(args: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return _timed(lambda: subprocess.run([sys.executable, *args], env=env, check=True, capture_output=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--model", default="span-x2")
    args = parser.parse_args()
    picture = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    loading, reusing = [], []
    help_s, version_s, torch_s = [], [], []
    for _ in range(args.rounds):
        api._cached = None  # the next call loads the model
        loading.append(_timed(lambda: vidscale.upscale_image(picture, scale=2, model=args.model, device="cpu")))
        reusing.append(_timed(lambda: vidscale.upscale_image(picture, scale=2, model=args.model, device="cpu")))
        help_s.append(_process(["-m", "vidscale", "--help"]))
        version_s.append(_process(["-m", "vidscale", "--version"]))
        torch_s.append(_process(["-c", "import torch"]))
    med = statistics.median
    print(f"{time.strftime('%Y-%m-%d')}, {platform.node()}, {os.cpu_count()} CPUs, {args.rounds} rounds, medians\n")
    print("| what | seconds | ratio |\n|---|---|---|")
    print(f"| upscale_image 64x64 {args.model}, loading the model | {med(loading):.3f} | "
          f"{med(loading) / med(reusing):.1f}x the reusing call |")
    print(f"| upscale_image 64x64 {args.model}, model kept | {med(reusing):.3f} | 1 |")
    print(f"| `vidscale --help` (fresh process) | {med(help_s):.3f} | {med(help_s) / med(torch_s):.2f}x `import torch` |")
    print(f"| `vidscale --version` (fresh process) | {med(version_s):.3f} | "
          f"{med(version_s) / med(torch_s):.2f}x `import torch` |")
    print(f"| `python -c 'import torch'` | {med(torch_s):.3f} | 1 |")


if __name__ == "__main__":
    main()
