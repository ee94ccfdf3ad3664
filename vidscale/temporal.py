"""Temporal consistency: damp the frame-to-frame shimmer of per-frame upscaling.

A single-image network invents detail for each frame on its own, so that
detail flickers. For each frame this pass estimates the motion from the
current to the previous *low-resolution* input (OpenCV DIS: cheap, since the
frames are small), warps the previous *output* onto the current frame on the
engine's device, and blends it in where the motion-compensated low-res
frames agree:

    out = sr + strength * confidence * (warp(previous out) - sr)

Blending with the previous output rather than the previous plain upscale
makes the pass recursive: on a static area it is an exponential moving
average over about (1 + s) / (1 - s) frames, which removes several times
more flicker than a two-frame average can, at the same strength.

Confidence is exp(-(r / sigma)^2) of the residual r between the current
low-res frame and the warped previous one (both slightly blurred, so
compression noise does not read as motion), and 0 where the motion leaves
the frame. Moving edges, occlusions and lighting changes get a large
residual and keep the plain output, so nothing ghosts. When fewer than half
of the pixels can be followed (a cut, a flash, a whip pan) the history is
dropped and the frame passes through unchanged.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from vidscale.flicker import to_gray

DEFAULT_STRENGTH = 0.7
# Residual scale on [0, 1] low-res values: JPEG noise left after the blur is ~0.01.
DEFAULT_SIGMA = 0.04
# Below this mean confidence the frame is taken to start a new scene.
CUT_MATCH = 0.5
_BLUR_SIGMA = 0.8


class TemporalFilter:
    """Stateful: feed it every frame of one clip, in order; `reset()` between clips."""

    def __init__(self, strength: float = DEFAULT_STRENGTH, device: str | torch.device | None = None,
                 sigma: float = DEFAULT_SIGMA, cut_match: float = CUT_MATCH):
        if not 0 <= strength <= 1:
            raise ValueError(f"temporal strength must be 0-1, got {strength}")
        self.strength, self.sigma, self.cut_match = strength, sigma, cut_match
        self.device = torch.device(device) if device is not None else None
        self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
        self.cuts = 0  # scene cuts seen (not counting the first frame)
        self.reset()

    def reset(self) -> None:
        """Forget the history: the next frame passes through unchanged."""
        self._gray: np.ndarray | None = None
        self._smooth: np.ndarray | None = None
        self._out: torch.Tensor | None = None

    @torch.inference_mode()
    def apply(self, lr: np.ndarray, sr: torch.Tensor) -> torch.Tensor:
        """One frame: HxWx3 uint8/uint16 low-res input, 1x3xHxW [0, 1] upscale of it -> output.

        The output has `sr`'s shape, dtype and device.
        """
        if sr.ndim != 4 or sr.shape[0] != 1:
            raise ValueError(f"expected a 1xCxHxW tensor, got shape {tuple(sr.shape)}")
        gray, smooth = to_gray(lr), _smooth(lr)
        prev_out, prev_gray, prev_smooth = self._out, self._gray, self._smooth
        out = sr
        if prev_out is not None and prev_out.shape == sr.shape and prev_gray.shape == gray.shape:
            out = self._blend(sr, prev_out, gray, prev_gray, smooth, prev_smooth)
        elif prev_out is not None:
            self.cuts += 1  # a new size is a new scene
        self._gray, self._smooth = gray, smooth
        self._out = out if self.strength > 0 else None
        return out

    def _blend(self, sr: torch.Tensor, prev_out: torch.Tensor, gray: np.ndarray, prev_gray: np.ndarray,
               smooth: np.ndarray, prev_smooth: np.ndarray) -> torch.Tensor:
        flow = self._dis.calc(gray, prev_gray, None)  # current -> previous, low-res pixels
        conf = self._confidence(flow, smooth, prev_smooth)
        if conf.mean() < self.cut_match:
            self.cuts += 1
            return sr
        device = self.device or sr.device
        grid, weight = _sampling(flow, conf, tuple(sr.shape[-2:]), device)
        warped = F.grid_sample(prev_out.to(device, torch.float32), grid, mode="bilinear",
                               padding_mode="border", align_corners=False)
        out = torch.lerp(sr.to(device, torch.float32), warped, weight * self.strength)
        return out.to(sr.device, sr.dtype)

    def _confidence(self, flow: np.ndarray, smooth: np.ndarray, prev_smooth: np.ndarray) -> np.ndarray:
        """Per low-res pixel, 0-1: how well the previous frame, moved by `flow`, matches this one."""
        points = _pixel_grid(*flow.shape[:2]) + flow
        warped = cv2.remap(prev_smooth, points[..., 0], points[..., 1], cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE)
        residual = np.abs(smooth - warped).max(axis=-1)
        h, w = flow.shape[:2]
        inside = ((points[..., 0] >= 0) & (points[..., 0] <= w - 1)
                  & (points[..., 1] >= 0) & (points[..., 1] <= h - 1))
        return np.exp(-np.square(residual / self.sigma)) * inside


def _smooth(lr: np.ndarray) -> np.ndarray:
    """Low-res frame as float [0, 1], blurred so coding noise does not count as change."""
    scale = 65535.0 if lr.dtype == np.uint16 else 255.0
    return cv2.GaussianBlur(lr.astype(np.float32) / scale, (0, 0), _BLUR_SIGMA)


@lru_cache(maxsize=4)
def _pixel_grid(h: int, w: int) -> np.ndarray:
    """HxWx2 (x, y) pixel coordinates."""
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return np.dstack([xs, ys])


@lru_cache(maxsize=4)
def _unit_grid(h: int, w: int, device: torch.device) -> torch.Tensor:
    """1xHxWx2 pixel centres in grid_sample's [-1, 1] coordinates (align_corners=False)."""
    ys = (2 * torch.arange(h, dtype=torch.float32) + 1) / h - 1
    xs = (2 * torch.arange(w, dtype=torch.float32) + 1) / w - 1
    return torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)[None].to(device)


def _sampling(flow: np.ndarray, conf: np.ndarray, size: tuple[int, int],
              device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Low-res flow and confidence -> grid_sample grid and blend weight at the output size.

    In [-1, 1] units a shift is the same fraction of the frame at any size, so
    the flow is normalised at low res and then just interpolated up.
    """
    h, w = flow.shape[:2]
    small = np.dstack([flow[..., 0] * (2 / w), flow[..., 1] * (2 / h), conf]).astype(np.float32)
    small_t = torch.from_numpy(small).permute(2, 0, 1)[None].to(device)
    big = F.interpolate(small_t, size=size, mode="bilinear", align_corners=False)
    return _unit_grid(*size, device) + big[:, :2].permute(0, 2, 3, 1), big[:, 2:]
