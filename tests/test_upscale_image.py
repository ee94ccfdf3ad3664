"""The library call `vidscale.upscale_image`."""

from __future__ import annotations

import numpy as np
import pytest

import vidscale
from vidscale.resample import resize
from vidscale.upscaler import from_tensor, to_tensor


@pytest.fixture(scope="module")
def small(bunny: np.ndarray) -> np.ndarray:
    return bunny[110:170, 220:300]  # trees: detail a network reconstructs


def test_uint8_in_uint8_out_and_sharper_than_bicubic(small: np.ndarray) -> None:
    out = vidscale.upscale_image(small, scale=2, device="cpu")
    assert out.dtype == np.uint8 and out.shape == (120, 160, 3)
    # the network must do something a resize does not, yet stay close to it
    bicubic = vidscale.upscale_image(small, scale=2, model="bicubic")
    diff = np.abs(out.astype(int) - bicubic.astype(int))
    assert 0.5 < diff.mean() < 20


def test_dtypes_are_kept(small: np.ndarray) -> None:
    deep = small.astype(np.uint16) * 257
    out16 = vidscale.upscale_image(deep, scale=2, model="lanczos")
    assert out16.dtype == np.uint16 and out16.max() > 255
    flt = small.astype(np.float32) / 255
    outf = vidscale.upscale_image(flt, scale=2, model="lanczos")
    assert outf.dtype == np.float32 and 0 <= outf.min() and outf.max() <= 1


def test_gray_and_alpha_layouts_are_kept(small: np.ndarray) -> None:
    gray = small[..., 1]
    assert vidscale.upscale_image(gray, scale=2).shape == (120, 160)
    rgba = np.dstack([small, np.full(small.shape[:2], 200, np.uint8)])
    out = vidscale.upscale_image(rgba, scale=2)
    assert out.shape == (120, 160, 4)
    assert np.all(out[..., 3] == 200)  # flat alpha stays flat


def test_non_integer_scale_and_exact_size(small: np.ndarray) -> None:
    assert vidscale.upscale_image(small, scale=3).shape == (180, 240, 3)  # x4 network, trimmed
    assert vidscale.upscale_image(small, scale=1.5).shape == (90, 120, 3)
    assert vidscale.upscale_image(small, scale=None, width=100).shape == (75, 100, 3)


def test_bicubic_model_is_the_resampler(small: np.ndarray) -> None:
    out = vidscale.upscale_image(small, scale=2, model="bicubic")
    expected = from_tensor(resize(to_tensor(small), (120, 160), "bicubic").clamp(0, 1), np.uint8)
    assert np.array_equal(out, expected)


def test_above_four_runs_two_passes(small: np.ndarray) -> None:
    out = vidscale.upscale_image(small[:20, :24], scale=6)
    assert out.shape == (120, 144, 3)
