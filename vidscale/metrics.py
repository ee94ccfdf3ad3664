"""Image quality metrics as the SR literature computes them.

Y-channel (BT.601 luma, studio range) PSNR and SSIM on 8-bit images, with
`crop` pixels removed from each border (crop = scale by convention); RGB
MS-SSIM and HaarPSI (piq) on the same crop; and a JPEG blockiness ratio.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def rgb_to_y(rgb: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 RGB -> HxW float64 luma in [16, 235] (MATLAB's rgb2ycbcr)."""
    x = rgb.astype(np.float64) / 255.0
    return 16.0 + 65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]


def _crop(a: np.ndarray, crop: int) -> np.ndarray:
    return a[crop:-crop, crop:-crop] if crop > 0 else a


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    """PSNR of two arrays of any shape and sample type, `peak` their white."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(peak * peak / mse)


def psnr_y(sr: np.ndarray, hr: np.ndarray, crop: int = 0) -> float:
    diff = _crop(rgb_to_y(sr), crop) - _crop(rgb_to_y(hr), crop)
    mse = float(np.mean(diff**2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def _gaussian_1d(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    ax = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(ax**2) / (2 * sigma**2))
    return g / g.sum()


def _window_mean(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    # The 2-D Gaussian is separable: two 1-D passes, ~5x faster than one 11x11 in float64.
    return F.conv2d(F.conv2d(x, g[None, None, None, :]), g[None, None, :, None])


def ssim_y(sr: np.ndarray, hr: np.ndarray, crop: int = 0) -> float:
    """Mean SSIM (Wang et al. 2004: 11x11 Gaussian, sigma 1.5, valid region)."""
    a = torch.from_numpy(_crop(rgb_to_y(sr), crop))[None, None]
    b = torch.from_numpy(_crop(rgb_to_y(hr), crop))[None, None]
    g = _gaussian_1d()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_a, mu_b = _window_mean(a, g), _window_mean(b, g)
    var_a = _window_mean(a * a, g) - mu_a**2
    var_b = _window_mean(b * b, g) - mu_b**2
    cov = _window_mean(a * b, g) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(ssim_map.mean())


# --- Perceptual full-reference scores (piq; no downloaded weights) ---------------------------

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # Wang et al. 2003, five scales
_SSIM_WINDOW = 11
HAARPSI_MIN_SIDE = 16  # three Haar scales: the coarsest filter is 16 px wide


def _rgb01(a: np.ndarray, crop: int) -> torch.Tensor:
    """HxWx3 uint8 -> 1x3xHxW float32 in [0, 1], border cropped like PSNR.

    float32: piq's 2-D convolutions run ~20x slower in float64 on the CPU, and
    the scores agree to ~1e-6.
    """
    return torch.from_numpy(np.ascontiguousarray(_crop(a, crop))).permute(2, 0, 1)[None].float() / 255.0


def ms_ssim_scales(height: int, width: int) -> int:
    """How many of MS-SSIM's five scales fit: scale k (from 1) needs 10 * 2**(k-1) + 1 px per side."""
    side, n = min(height, width), 0
    while n < len(MS_SSIM_WEIGHTS) and side >= (_SSIM_WINDOW - 1) * 2**n + 1:
        n += 1
    return n


def ms_ssim(sr: np.ndarray, hr: np.ndarray, crop: int = 0) -> float | None:
    """MS-SSIM on RGB (mean over channels), 11x11 Gaussian window, sigma 1.5.

    Images under 161 px per side (after the crop) use only the finest scales that
    fit, with their paper weights renormalised; `ms_ssim_scales` says how many.
    None when not even one scale fits (under 11 px).
    """
    import piq  # a second or so to import: only when scoring

    x, y = _rgb01(sr, crop), _rgb01(hr, crop)
    n = ms_ssim_scales(*x.shape[-2:])
    if n == 0:
        return None
    weights = None if n == len(MS_SSIM_WEIGHTS) else torch.tensor(MS_SSIM_WEIGHTS[:n], dtype=x.dtype)
    return float(piq.multi_scale_ssim(x, y, data_range=1.0, scale_weights=weights))


def haarpsi(sr: np.ndarray, hr: np.ndarray, crop: int = 0) -> float | None:
    """HaarPSI (Reisenhofer et al. 2018) on RGB, piq's defaults; None under 16 px per side."""
    import piq

    x, y = _rgb01(sr, crop), _rgb01(hr, crop)
    if min(x.shape[-2:]) < HAARPSI_MIN_SIDE:
        return None
    return float(piq.haarpsi(x, y, data_range=1.0))


# --- JPEG blockiness ---------------------------------------------------------------------------

JPEG_BLOCK = 8
_STEP_EPS = 1e-3  # luma levels: keeps a perfectly flat image at ratio 1, not 0/0


def grid_step_ratio(rgb: np.ndarray, period: int, pitch: int = 1, offset: int = 0) -> float | None:
    """Mean luma step across the lines of a `period` grid over the mean step across other `pitch` lines.

    Steps are |Y[i, j+1] - Y[i, j]| (and the same down columns) on BT.601 luma.
    The step after pixel j lies on a line of spacing p when (j + 1 + offset) % p == 0,
    `offset` being how far the array's origin sits from the grid's (a border crop).
    The reference steps are those on `pitch` lines but off the grid: after an
    integer upscale by `pitch`, steps between two input pixels and steps inside one
    differ by the interpolation alone, so only like is compared with like.
    Horizontal and vertical steps are pooled. None when either set is empty.
    """
    y = rgb_to_y(rgb)
    dx, dy = np.abs(np.diff(y, axis=1)), np.abs(np.diff(y, axis=0))
    across, rest = [], []
    for steps, axis in ((dx, 1), (dy, 0)):
        pos = np.arange(steps.shape[axis]) + 1 + offset
        on_grid, on_pitch = pos % period == 0, pos % pitch == 0
        across.append(np.compress(on_grid, steps, axis).ravel())
        rest.append(np.compress(on_pitch & ~on_grid, steps, axis).ravel())
    a, r = np.concatenate(across), np.concatenate(rest)
    if a.size == 0 or r.size == 0:
        return None
    return float((a.mean() + _STEP_EPS) / (r.mean() + _STEP_EPS))


def blockiness(out: np.ndarray, truth: np.ndarray, scale: int, crop: int = 0) -> float | None:
    """How much stronger the low-res input's JPEG grid is in `out` than in the ground truth.

    The input's 8x8 blocks start at its top-left pixel, so at output scale their
    edges fall between output pixels 8*scale*k - 1 and 8*scale*k (k >= 1), and the
    edges between any two input pixels between scale*k - 1 and scale*k. R(img) is the
    mean absolute luma step across block edges over the mean across the other
    input-pixel edges (`grid_step_ratio(img, 8 * scale, scale)`), rows and columns
    pooled, on the image cropped by `crop` per border (positions kept in uncropped
    coordinates); then

        blockiness = R(out) / R(truth)

    so 1.0 is as blocky as the truth (which has no reason to step on that grid)
    and > 1 means the block edges show. None when the image is smaller than one block.
    """
    period = JPEG_BLOCK * scale
    r_out = grid_step_ratio(_crop(out, crop), period, scale, crop)
    r_truth = grid_step_ratio(_crop(truth, crop), period, scale, crop)
    return None if r_out is None or r_truth is None else r_out / r_truth
