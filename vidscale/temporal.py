"""Temporal consistency: damp the frame-to-frame shimmer of per-frame upscaling.

A single-image network invents detail for each frame on its own, so that
detail flickers. For each frame this pass estimates the motion from the
current to the previous *low-resolution* input (OpenCV DIS on the CPU:
cheap, since the frames are small), warps the previous *output* onto the
current frame on the engine's device, and blends it in where the
motion-compensated low-res frames agree:

    history = warp(previous out) + change of the low-res frame's smooth brightness
    out = sr + strength * confidence * (history - sr)

Blending with the previous output rather than the previous plain upscale
makes the pass recursive: on a static area it is an exponential moving
average over about (1 + s) / (1 - s) frames, which removes several times
more flicker than a two-frame average can at the same strength.

Confidence is exp(-(r / sigma)^2) of the residual r between the current
low-res frame and the warped previous one (both slightly blurred, so
compression noise does not read as motion), and 0 where the motion leaves
the frame. Moving edges, occlusions and lighting changes get a large
residual and keep the plain output, so nothing ghosts. When fewer than half
of the pixels can be followed (a cut, a flash, a whip pan) the history is
dropped and the frame passes through unchanged.

The brightness term keeps fades and slow lighting changes (too gentle to
lower the confidence) from lagging behind: the history is corrected to the
current frame at a coarse scale (Gaussian, 2 low-res pixels), so what
carries over is the finer detail, where the flicker is. Without it a fade
costs over 1 dB.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from vidscale.core.settings import DEFAULT_TEMPORAL as DEFAULT_STRENGTH
from vidscale.flicker import to_gray

# Frames that rebuild the history after a jump (a seek, a segment's start): the pass keeps at
# most 0.7 (its default strength) of the history per frame, so what is missing weighs at most
# 0.7^8 ~ 6% in the output.
WARMUP = 8
# Residual scale on [0, 1] low-res values: JPEG noise left after the blur is ~0.01.
DEFAULT_SIGMA = 0.04
# Below this mean confidence the frame is taken to start a new scene.
CUT_MATCH = 0.5
_BLUR_SIGMA = 0.8
# Scale (low-res pixels) of the brightness the history is corrected to: fades and lighting
# changes are smooth, the flicker of invented detail is not.
RELIGHT_SIGMA = 2.0


class TemporalFilter:
    """Stateful: feed it every frame of one clip, in order; `reset()` between clips."""

    def __init__(self, strength: float = DEFAULT_STRENGTH, device: str | torch.device | None = None,
                 sigma: float = DEFAULT_SIGMA, cut_match: float = CUT_MATCH, recursive: bool = True,
                 relight: float = RELIGHT_SIGMA):
        if not 0 <= strength <= 1:
            raise ValueError(f"temporal strength must be 0-1, got {strength}")
        self.strength, self.sigma, self.cut_match = strength, sigma, cut_match
        self.recursive = recursive  # False: blend with the previous plain upscale (for comparison)
        self.relight = relight  # 0: no brightness correction of the history (for comparison)
        self.device = torch.device(device) if device is not None else None
        self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
        self.cuts = 0  # scene cuts found (size changes included, the first frame not)
        self.reset()

    def reset(self) -> None:
        """Forget the history: the next frame passes through unchanged."""
        self._gray: np.ndarray | None = None
        self._lows: torch.Tensor | None = None
        self._out: torch.Tensor | None = None

    @torch.inference_mode()
    def apply(self, lr: np.ndarray, sr: torch.Tensor) -> torch.Tensor:
        """One frame: HxWx3 uint8/uint16 low-res input, 1x3xHxW [0, 1] upscale of it -> output.

        The output has `sr`'s shape, dtype and device; `sr` itself is never modified.
        """
        if sr.ndim != 4 or sr.shape[0] != 1:
            raise ValueError(f"expected a 1xCxHxW tensor, got shape {tuple(sr.shape)}")
        if self.strength == 0:
            return sr
        device = self.device or sr.device
        gray, lows = to_gray(lr), self._lows_of(lr, device)
        out = sr
        if self._continues(gray, sr):
            out = self._blend(sr, gray, lows, device)
        elif self._out is not None:
            self.cuts += 1  # a new frame size is a new scene
        history = out if self.recursive else sr
        self._gray, self._lows, self._out = gray, lows, history.to(device, torch.float32)
        return out

    def _continues(self, gray: np.ndarray, sr: torch.Tensor) -> bool:
        return (self._out is not None and self._gray is not None
                and self._out.shape == sr.shape and self._gray.shape == gray.shape)

    def _blend(self, sr: torch.Tensor, gray: np.ndarray, lows: torch.Tensor,
               device: torch.device) -> torch.Tensor:
        assert self._gray is not None and self._lows is not None and self._out is not None
        flow = _normalised(self._motion(gray, self._gray), device)  # current -> previous
        change = lows - _warp(self._lows, flow)  # what motion does not explain, at two scales
        residual = change[:, :3].abs().amax(dim=1, keepdim=True)
        conf = torch.exp(-torch.square(residual / self.sigma)) * _inside(flow)
        if float(conf.mean()) < self.cut_match:
            self.cuts += 1
            return sr
        size = tuple(sr.shape[-2:])
        big = F.interpolate(torch.cat([flow, conf, change[:, 3:]], dim=1), size=size, mode="bilinear",
                            align_corners=False)
        # The history takes on the current frame's smooth brightness (fades, lighting), so only
        # the finer detail, where the flicker is, carries over from frame to frame.
        history = _warp(self._out, big[:, :2]) + big[:, 3:]
        out = torch.lerp(sr.to(device, torch.float32), history, big[:, 2:3] * self.strength)
        return out.clamp_(0, 1).to(sr.device, sr.dtype)

    def _motion(self, current: np.ndarray, previous: np.ndarray) -> np.ndarray:
        """DIS flow in pixels; frames under DIS's minimum size are measured with their edges repeated."""
        h, w = current.shape[:2]
        if min(h, w) >= _DIS_MIN_SIDE:
            return self._dis.calc(current, previous, None)
        pad = (0, max(0, _DIS_MIN_SIDE - h), 0, max(0, _DIS_MIN_SIDE - w))
        big = [cv2.copyMakeBorder(g, *pad, cv2.BORDER_REPLICATE) for g in (current, previous)]
        return np.ascontiguousarray(self._dis.calc(big[0], big[1], None)[:h, :w])

    def _lows_of(self, lr: np.ndarray, device: torch.device) -> torch.Tensor:
        """1x6xhxw on `device`: the low-res frame lightly blurred (coding noise is not change),
        then its smooth brightness (zero when relighting is off)."""
        scale = 65535.0 if lr.dtype == np.uint16 else 255.0
        x = torch.from_numpy(np.ascontiguousarray(lr)).to(device).permute(2, 0, 1)[None].float() / scale
        light = _blur(x, self.relight) if self.relight > 0 else torch.zeros_like(x)
        return torch.cat([_blur(x, _BLUR_SIGMA), light], dim=1)


# OpenCV's DIS refuses frames under 12 pixels on both sides; 16 leaves its patches room.
_DIS_MIN_SIDE = 16


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of an NCHW tensor, edges repeated."""
    k = _gaussian(sigma, x.device)
    c = x.shape[1]
    x = F.pad(x, (k.shape[-1] // 2,) * 4, mode="replicate")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


@lru_cache(maxsize=4)
def _gaussian(sigma: float, device: torch.device) -> torch.Tensor:
    radius = max(1, round(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-(x**2) / (2 * sigma**2))
    return (k / k.sum()).to(device)


def _normalised(flow: np.ndarray, device: torch.device) -> torch.Tensor:
    """HxWx2 flow in pixels -> 1x2xHxW in grid_sample units (2 = the frame's width/height).

    In these units a shift is the same fraction of the frame at any size, so
    the low-res flow serves the output after plain interpolation.
    """
    h, w = flow.shape[:2]
    t = torch.from_numpy(flow).to(device).permute(2, 0, 1)[None]
    return t * torch.tensor([2 / w, 2 / h], device=device).view(1, 2, 1, 1)


@lru_cache(maxsize=8)
def _unit_grid(h: int, w: int, device: torch.device) -> torch.Tensor:
    """1xHxWx2 pixel centres in grid_sample's [-1, 1] coordinates (align_corners=False)."""
    ys = (2 * torch.arange(h, dtype=torch.float32) + 1) / h - 1
    xs = (2 * torch.arange(w, dtype=torch.float32) + 1) / w - 1
    return torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)[None].to(device)


def _grid(flow: torch.Tensor) -> torch.Tensor:
    h, w = flow.shape[-2:]
    return _unit_grid(h, w, flow.device) + flow.permute(0, 2, 3, 1)


def _warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample `image` at x + flow(x) (normalised flow of the same size), bilinear, edges repeated."""
    return F.grid_sample(image, _grid(flow), mode="bilinear", padding_mode="border", align_corners=False)


def _inside(flow: torch.Tensor) -> torch.Tensor:
    """1x1xHxW: 1 where x + flow(x) stays between the outer pixel centres, else 0."""
    h, w = flow.shape[-2:]
    g = _grid(flow)
    limit = torch.tensor([1 - 1 / w, 1 - 1 / h], device=flow.device) + 1e-6
    return (g.abs() <= limit).all(dim=-1, keepdim=True).permute(0, 3, 1, 2).float()
