"""Separable kernel resampling (bicubic, Lanczos) as two matrix products.

Used for the classic `--model bicubic|lanczos`, for the antialiased
downscale that trims a network's native scale to the requested one, and as
the bicubic baseline in `vidscale eval`. Kernels are widened by the
reduction factor when shrinking (antialiasing), which makes bicubic here
match MATLAB's `imresize`, the SR literature's reference.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch

KERNELS = ("bicubic", "lanczos")


def _cubic(x: torch.Tensor, a: float = -0.5) -> torch.Tensor:
    x = x.abs()
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return torch.where(x <= 1, near, torch.where(x < 2, far, torch.zeros_like(x)))


def _lanczos3(x: torch.Tensor) -> torch.Tensor:
    out = torch.sinc(x) * torch.sinc(x / 3)
    return torch.where(x.abs() < 3, out, torch.zeros_like(x))


_KERNEL_FN = {"bicubic": (_cubic, 2.0), "lanczos": (_lanczos3, 3.0)}


@lru_cache(maxsize=64)
def _weights(n_in: int, n_out: int, kernel: str) -> torch.Tensor:
    """(n_out, n_in) float64 matrix mapping input samples to output samples."""
    fn, radius = _KERNEL_FN[kernel]
    scale = n_out / n_in
    stretch = max(1.0, 1.0 / scale)  # widen the kernel when shrinking
    centers = (torch.arange(n_out, dtype=torch.float64) + 0.5) / scale - 0.5
    span = math.ceil(radius * stretch) * 2 + 2
    first = torch.floor(centers - radius * stretch).long()
    taps = first[:, None] + torch.arange(span)[None, :]
    w = fn((centers[:, None] - taps) / stretch)
    w = w / w.sum(dim=1, keepdim=True)
    mat = torch.zeros(n_out, n_in, dtype=torch.float64)
    # edge samples repeat the border pixel (replicate padding)
    mat.scatter_add_(1, taps.clamp(0, n_in - 1), w)
    return mat


def resize(x: torch.Tensor, size: tuple[int, int], kernel: str = "bicubic") -> torch.Tensor:
    """Resize an NCHW float tensor to (height, width) with `kernel`."""
    if kernel not in _KERNEL_FN:
        raise ValueError(f"unknown resampling kernel {kernel!r}")
    h, w = size
    if (h, w) == tuple(x.shape[-2:]):
        return x
    dtype = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
    wy = _weights(x.shape[-2], h, kernel).to(x.device, dtype)
    wx = _weights(x.shape[-1], w, kernel).to(x.device, dtype)
    out = torch.matmul(torch.matmul(wy, x.to(dtype)), wx.T)
    return out.to(x.dtype)
