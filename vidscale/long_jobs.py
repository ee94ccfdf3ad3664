"""A long CPU job says what it will cost, and what would be faster, before its first frame.

Every CPU job that could be long pays for the estimate, so it must be cheap next to
the job: a centre crop of synthetic pixels (a network's speed on a CPU does not
depend on content; denormals are flushed) is timed through the job's networks, after
a warm-up on a quarter of it, and the frame's tiles are counted (frame_cost.py). The
crop's side is chosen so that it holds at most 1% of the job's pixels (1.25% with its
warm-up), and at most the dry run's 256: a larger crop is closer to the per-pixel
cost of the real run's tiles (a small one pays each layer's fixed cost on few
pixels). A job under 100 of the smallest crops (64x64) is not sampled at all: the
default model needs about 40 s for it on a quiet 2-core CPU (97 us a pixel,
benchmarks/results/2026-12-02-cpu-runtimes-640-quiet.md), so it is not long.
Nothing is timed on a GPU, where no shipped model is that slow.
"""

from __future__ import annotations

import math

import numpy as np

from vidscale.core.units import duration
from vidscale.frame_cost import SIDE, cost_from_crop, warm_up
from vidscale.upscaler import Upscaler

LONG = 300.0  # seconds: "more than a few minutes"
SHARE = 0.01  # the most of the job's pixels the sample may hold
SMALLEST = 64  # crop side below which a job is too small to be long


def notice(upscaler: Upscaler, shape: tuple[int, int], size: tuple[int, int], frames: int | None,
           unit: str = "frame") -> str | None:
    """The line to print before a job of `frames` frames of `shape` (height, width) upscaled to
    `size`, when it is expected to take more than LONG seconds; else None."""
    if not applies(upscaler) or not frames:
        return None
    side = sample_side(shape, frames)
    if side is None:
        return None
    each = frame_seconds(upscaler, shape, size, side)
    total = each * frames
    if total < LONG:
        return None
    networks = upscaler.networks_for(max(size[0] / shape[0], size[1] / shape[1]))
    spans_only = all(m.name.startswith("span") for m in networks)  # already what the fast presets run
    faster = "" if spans_only else "--preset fast, or --preset clean for clean sources (SPAN), or "
    models = "+".join(m.name for m in networks)
    per = f", about {duration(each)} a {unit} for {frames} {unit}s" if frames > 1 else ""
    return (f"this job takes about {duration(total)} on the CPU ({models}{per});\n"
            f"faster: {faster}a machine with a CUDA GPU; --dry-run estimates without starting")


def applies(upscaler: Upscaler) -> bool:
    """Networks on the CPU: what can be long (a resize is seconds; no shipped model is slow on a GPU)."""
    return upscaler.device.type == "cpu" and not upscaler.resizer


def sample_side(shape: tuple[int, int], frames: int) -> int | None:
    """The timed crop's side: at most SHARE of the job's pixels, SMALLEST to SIDE; None: too small a job."""
    side = int(math.sqrt(SHARE * frames * shape[0] * shape[1])) // 16 * 16
    return None if side < SMALLEST else min(side, SIDE)


def frame_seconds(upscaler: Upscaler, shape: tuple[int, int], size: tuple[int, int], side: int) -> float:
    """One frame's upscale, from a `side` x `side` crop of noise (tests replace this to fix the rate)."""
    crop = np.random.default_rng(0).integers(0, 256, (min(side, shape[0]), min(side, shape[1]), 3), np.uint8)
    warm_up(upscaler, shape, crop, size)  # else the first run's set-up counts once per frame
    return cost_from_crop(upscaler, (*shape, 3), crop, size).seconds

