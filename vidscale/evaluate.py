"""`vidscale eval`: fidelity of a model against ground truth, next to bicubic."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vidscale.errors import UsageError
from vidscale.media.image import IMAGE_SUFFIXES, read_image
from vidscale.metrics import psnr_y, ssim_y
from vidscale.resample import resize
from vidscale.upscaler import Upscaler, from_tensor, to_tensor


@dataclass
class Score:
    name: str
    psnr: float
    ssim: float
    bicubic_psnr: float
    bicubic_ssim: float


def _images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise UsageError(f"{folder}: not a directory")
    found = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not found:
        raise UsageError(f"{folder}: no images found")
    return found


def pair_images(hr_dir: Path, lr_dir: Path | None, scale: int) -> list[tuple[Path, Path | None]]:
    """Match each ground-truth image with its low-res input by name.

    Low-res names may carry the scale as a suffix (`babyx2.png`, `baby_x2.png`).
    """
    hr = _images(hr_dir)
    if lr_dir is None:
        return [(p, None) for p in hr]
    suffix = re.compile(rf"[_-]?x{scale}$", re.IGNORECASE)
    lr = {suffix.sub("", p.stem): p for p in _images(lr_dir)}
    missing = [p.name for p in hr if p.stem not in lr]
    if missing:
        raise UsageError(f"{lr_dir}: no low-res image for {', '.join(missing)}")
    return [(p, lr[p.stem]) for p in hr]


def _quantize(x: torch.Tensor) -> np.ndarray:
    return from_tensor(x.clamp(0, 1), np.uint8)


def make_lr(hr: np.ndarray, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """Crop HR to a multiple of `scale`, then bicubic-downscale it (MATLAB-style)."""
    h, w = (hr.shape[0] // scale) * scale, (hr.shape[1] // scale) * scale
    hr = hr[:h, :w]
    return hr, _quantize(resize(to_tensor(hr).double(), (h // scale, w // scale)))


def evaluate(pairs: list[tuple[Path, Path | None]], scale: int, upscaler: Upscaler) -> list[Score]:
    scores = []
    for hr_path, lr_path in pairs:
        hr = read_image(hr_path)
        if hr.dtype != np.uint8:
            raise UsageError(f"{hr_path}: eval expects 8-bit images")
        if lr_path is None:
            hr, lr = make_lr(hr, scale)
        else:
            lr = read_image(lr_path)
            hr = hr[: lr.shape[0] * scale, : lr.shape[1] * scale]
        if hr.shape[:2] != (lr.shape[0] * scale, lr.shape[1] * scale):
            raise UsageError(f"{lr_path}: size is not the ground truth's divided by {scale}")
        size = hr.shape[:2]
        sr = _quantize(upscaler.upscale(to_tensor(lr), size))
        bic = _quantize(resize(to_tensor(lr).double(), size))
        scores.append(Score(hr_path.stem, psnr_y(sr, hr, scale), ssim_y(sr, hr, scale),
                            psnr_y(bic, hr, scale), ssim_y(bic, hr, scale)))
    return scores


def format_table(scores: list[Score], model_name: str) -> str:
    head = f"{'image':<16} {model_name + ' PSNR':>18} {'SSIM':>7} {'bicubic PSNR':>13} {'SSIM':>7}"
    rows = [head, "-" * len(head)]
    for s in scores:
        rows.append(f"{s.name:<16} {s.psnr:>18.2f} {s.ssim:>7.4f} {s.bicubic_psnr:>13.2f} {s.bicubic_ssim:>7.4f}")
    n = len(scores)
    mean = Score("mean", *(sum(getattr(s, f) for s in scores) / n
                           for f in ("psnr", "ssim", "bicubic_psnr", "bicubic_ssim")))
    rows.append("-" * len(head))
    rows.append(f"{'mean':<16} {mean.psnr:>18.2f} {mean.ssim:>7.4f} {mean.bicubic_psnr:>13.2f} {mean.bicubic_ssim:>7.4f}")
    return "\n".join(rows)
