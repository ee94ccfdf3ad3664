"""Image quality metrics as the SR literature computes them.

Y-channel (BT.601 luma, studio range) PSNR and SSIM on 8-bit images, with
`crop` pixels removed from each border (crop = scale by convention).
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


def psnr_y(sr: np.ndarray, hr: np.ndarray, crop: int = 0) -> float:
    diff = _crop(rgb_to_y(sr), crop) - _crop(rgb_to_y(hr), crop)
    mse = float(np.mean(diff**2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    ax = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(ax**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


def ssim_y(sr: np.ndarray, hr: np.ndarray, crop: int = 0) -> float:
    """Mean SSIM (Wang et al. 2004: 11x11 Gaussian, sigma 1.5, valid region)."""
    a = torch.from_numpy(_crop(rgb_to_y(sr), crop))[None, None]
    b = torch.from_numpy(_crop(rgb_to_y(hr), crop))[None, None]
    win = _gaussian_window()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_a, mu_b = F.conv2d(a, win), F.conv2d(b, win)
    var_a = F.conv2d(a * a, win) - mu_a**2
    var_b = F.conv2d(b * b, win) - mu_b**2
    cov = F.conv2d(a * b, win) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(ssim_map.mean())
