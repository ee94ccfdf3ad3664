"""Flicker and fidelity of an upscaled sequence against its ground truth.

Temporal warping error (Lai et al., "Learning Blind Video Temporal
Consistency", ECCV 2018): the motion between consecutive ground-truth frames
is estimated, output t-1 is warped onto output t with it, and the squared
RGB difference (values in [0, 1], summed over channels) is averaged over the
pixels that are visible in both frames. A flicker-free output that follows
the true motion scores near 0.

The paper estimates motion with FlowNet2; here it is OpenCV's DIS (MEDIUM
preset) or Farneback, both classical, so no network weights are needed. The
occlusion mask is the forward-backward consistency test of Ruder et al.
2016 (without their motion-boundary term), plus pixels whose motion leaves
the frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from vidscale.metrics import psnr_y

FlowMethod = Literal["dis", "farneback"]
Motion = list[tuple[np.ndarray, np.ndarray]]  # per frame pair: backward flow, visibility mask


@dataclass(frozen=True)
class SequenceScore:
    warping_error: float  # mean masked squared RGB error, [0, 1] values
    psnr: float  # mean Y-PSNR (dB) over frames


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """HxWx3 uint8/uint16 RGB -> HxW uint8 luma (the flow estimators want 8 bits)."""
    if rgb.dtype == np.uint16:
        rgb = (rgb >> 8).astype(np.uint8)
    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)


def estimate_flow(current: np.ndarray, previous: np.ndarray, method: FlowMethod = "dis") -> np.ndarray:
    """HxWx2 flow f with current(x) ~ previous(x + f(x)), from two uint8 gray frames."""
    if method == "dis":
        return cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM).calc(current, previous, None)
    if method == "farneback":
        return cv2.calcOpticalFlowFarneback(current, previous, None, pyr_scale=0.5, levels=4,
                                            winsize=9, iterations=5, poly_n=5, poly_sigma=1.1, flags=0)
    raise ValueError(f"unknown flow method {method!r}")


def sample_points(flow: np.ndarray) -> np.ndarray:
    """Absolute sampling coordinates x + f(x), as cv2.remap takes them."""
    h, w = flow.shape[:2]
    grid = np.stack(np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32)), axis=-1)
    return grid + flow


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Sample `image` at x + flow(x) (bilinear; edges repeat)."""
    points = sample_points(flow)
    return cv2.remap(image, points[..., 0], points[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def inside(flow: np.ndarray) -> np.ndarray:
    """True where x + flow(x) lands inside the frame."""
    h, w = flow.shape[:2]
    p = sample_points(flow)
    return (p[..., 0] >= 0) & (p[..., 0] <= w - 1) & (p[..., 1] >= 0) & (p[..., 1] <= h - 1)


def visible(backward: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """Pixels of frame t seen in frame t-1: the two flows must cancel (Ruder et al.)."""
    fwd_at = warp(forward, backward)  # forward flow of the point each pixel came from
    mismatch = np.sum((backward + fwd_at) ** 2, axis=-1)
    bound = 0.01 * (np.sum(backward**2, axis=-1) + np.sum(fwd_at**2, axis=-1)) + 0.5
    return (mismatch <= bound) & inside(backward)


def _crop(a: np.ndarray, crop: int) -> np.ndarray:
    return a[crop:-crop, crop:-crop] if crop > 0 else a


def truth_motion(truth: Sequence[np.ndarray], method: FlowMethod = "dis") -> Motion:
    """(backward flow, visibility mask) for each consecutive pair of ground-truth frames.

    Separate from the error so one sequence's motion serves many outputs.
    """
    gray = [to_gray(f) for f in truth]
    motion = []
    for prev, cur in zip(gray, gray[1:]):
        backward = estimate_flow(cur, prev, method)
        motion.append((backward, visible(backward, estimate_flow(prev, cur, method))))
    return motion


def warping_error(outputs: Sequence[np.ndarray], motion: Motion, crop: int = 0) -> float:
    """Mean over t of the masked squared RGB error between output t and warped output t-1."""
    if len(outputs) != len(motion) + 1:
        raise ValueError(f"{len(outputs)} outputs for {len(motion) + 1} ground-truth frames")
    errors = []
    for (backward, mask), prev, cur in zip(motion, outputs, outputs[1:]):
        scale = 65535.0 if cur.dtype == np.uint16 else 255.0
        warped = warp(prev.astype(np.float32) / scale, backward)
        sq = np.sum((cur.astype(np.float32) / scale - warped) ** 2, axis=-1)
        m = _crop(mask, crop)
        errors.append(float(_crop(sq, crop)[m].mean()) if m.any() else 0.0)
    return float(np.mean(errors)) if errors else 0.0


def mean_psnr(outputs: Sequence[np.ndarray], truth: Sequence[np.ndarray], crop: int = 0) -> float:
    return float(np.mean([psnr_y(o, t, crop) for o, t in zip(outputs, truth, strict=True)]))


def score(outputs: Sequence[np.ndarray], truth: Sequence[np.ndarray], crop: int = 0,
          motion: Motion | None = None) -> SequenceScore:
    """Warping error and mean Y-PSNR of 8-bit outputs against the ground truth, `crop` = scale."""
    motion = truth_motion(truth) if motion is None else motion
    return SequenceScore(warping_error(outputs, motion, crop), mean_psnr(outputs, truth, crop))
