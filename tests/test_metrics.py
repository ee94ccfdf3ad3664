"""PSNR/SSIM as the SR literature computes them, and the bicubic reference."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vidscale.metrics import psnr_y, rgb_to_y, ssim_y


def test_luma_range() -> None:
    black, white = np.zeros((1, 1, 3), np.uint8), np.full((1, 1, 3), 255, np.uint8)
    assert rgb_to_y(black)[0, 0] == pytest.approx(16)
    assert rgb_to_y(white)[0, 0] == pytest.approx(235)


def test_psnr_of_known_error() -> None:
    a = np.full((20, 20, 3), 100, np.uint8)
    b = a + 10  # luma moves by 10 * (65.481 + 128.553 + 24.966) / 255
    dy = 10 * 219 / 255
    assert psnr_y(a, b) == pytest.approx(10 * math.log10(255**2 / dy**2))
    assert psnr_y(a, a) == math.inf


def test_crop_ignores_the_border() -> None:
    a = np.full((20, 20, 3), 100, np.uint8)
    b = a.copy()
    b[:2] = 0
    assert psnr_y(a, b, crop=2) == math.inf and psnr_y(a, b) < 30


def test_ssim() -> None:
    rng = np.random.default_rng(0)
    ramp = np.linspace(40, 200, 48)
    a = np.repeat((ramp[:, None] + ramp[None, :] / 4)[..., None], 3, axis=2).astype(np.uint8)
    noisy = np.clip(a.astype(int) + rng.integers(-30, 31, a.shape), 0, 255).astype(np.uint8)
    assert ssim_y(a, a) == pytest.approx(1.0)
    assert 0 < ssim_y(a, noisy) < 0.6
