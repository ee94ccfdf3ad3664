"""`vidscale eval`: fidelity of a model against ground truth, next to bicubic.

Inputs are the given low-res images, or made from the ground truth: a
MATLAB-style bicubic downscale, then optionally realistic damage
(`vidscale.degrade`). Each output is scored on Y-PSNR/SSIM, RGB MS-SSIM and
HaarPSI, and on how visible the input's JPEG block grid is (`metrics.blockiness`).
`evaluate` is the library entry point (benchmarks call it in-process); the CLI
only formats its `Evaluation`.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidscale.degrade import Degradation, image_rng
from vidscale.errors import UsageError
from vidscale.media.atomic import atomic_output, make_folder
from vidscale.media.image import IMAGE_SUFFIXES, read_image, write_image
from vidscale.metrics import MS_SSIM_WEIGHTS, blockiness, haarpsi, ms_ssim, ms_ssim_scales, psnr_y, ssim_y
from vidscale.resample import resize
from vidscale.upscaler import Upscaler, from_tensor, to_tensor

METRICS = ("psnr", "ssim", "ms_ssim", "haarpsi", "blockiness")


@dataclass(frozen=True)
class Metrics:
    """Scores of one output against its ground truth; None where the image is too small."""

    psnr: float
    ssim: float
    ms_ssim: float | None
    haarpsi: float | None
    blockiness: float | None


@dataclass(frozen=True)
class Score:
    name: str
    model: Metrics
    bicubic: Metrics
    ms_ssim_scales: int  # 5 normally; fewer on images under 161 px, 0 = not computed


@dataclass(frozen=True)
class Evaluation:
    scale: int
    label: str  # what ran, from Upscaler.label
    generated: bool  # inputs made from the ground truth (else read from --lr)
    degradation: Degradation | None
    seed: int
    scores: list[Score] = field(default_factory=list)

    def mean(self, which: str) -> Metrics:
        """Mean of "model" or "bicubic" over the images that have each score."""
        rows = [getattr(s, which) for s in self.scores]
        return Metrics(*(_mean([getattr(m, f) for m in rows]) for f in METRICS))  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data; infinite or missing scores are None."""
        return {
            "scale": self.scale,
            "model": self.label,
            "inputs": "generated" if self.generated else "given",
            "degradation": None if self.degradation is None
            else {"spec": self.degradation.spec, **self.degradation.to_dict()},
            "seed": self.seed if self.generated else None,
            "crop": self.scale,
            "images": [{"name": s.name, "ms_ssim_scales": s.ms_ssim_scales,
                        "model": _plain(s.model), "bicubic": _plain(s.bicubic)} for s in self.scores],
            "mean": {"model": _plain(self.mean("model")), "bicubic": _plain(self.mean("bicubic"))},
        }


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def _plain(m: Metrics) -> dict[str, float | None]:
    return {k: v if v is not None and math.isfinite(v) else None for k, v in asdict(m).items()}


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


def score(out: np.ndarray, truth: np.ndarray, scale: int) -> Metrics:
    """All scores with the literature's border crop (= scale)."""
    return Metrics(psnr_y(out, truth, scale), ssim_y(out, truth, scale), ms_ssim(out, truth, scale),
                   haarpsi(out, truth, scale), blockiness(out, truth, scale, scale))


def evaluate(pairs: list[tuple[Path, Path | None]], scale: int, upscaler: Upscaler,
             degrade: Degradation | None = None, seed: int = 0,
             save_lr: Path | None = None, overwrite: bool = False) -> Evaluation:
    """Score `upscaler` and bicubic on each (ground truth, low-res or None) pair.

    Pairs without a low-res image get one made by `make_lr`, then `degrade`d
    with noise seeded by (seed, image stem). `save_lr` keeps those inputs as
    PNG (`<stem>.png`, lossless, so `--lr` on that folder scores the same).
    """
    generated = all(lr is None for _, lr in pairs)
    if not generated and (degrade is not None or save_lr is not None):
        raise UsageError("--degrade and --save-lr make the inputs from the ground truth; drop --lr")
    if save_lr is not None:
        _prepare_save_dir(save_lr, [hr for hr, _ in pairs], overwrite)
    scores = []
    for hr_path, lr_path in pairs:
        hr, lr = _load_pair(hr_path, lr_path, scale, degrade, seed)
        if save_lr is not None:
            with atomic_output(save_lr / f"{hr_path.stem}.png", overwrite=overwrite) as tmp:
                write_image(tmp, lr)
        size = hr.shape[:2]
        sr = _quantize(upscaler.upscale(to_tensor(lr), size))
        bic = _quantize(resize(to_tensor(lr).double(), size))
        scales = ms_ssim_scales(size[0] - 2 * scale, size[1] - 2 * scale)
        scores.append(Score(hr_path.stem, score(sr, hr, scale), score(bic, hr, scale), scales))
    return Evaluation(scale, upscaler.label(scale), generated, degrade, seed, scores)


def _load_pair(hr_path: Path, lr_path: Path | None, scale: int, degrade: Degradation | None,
               seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(ground truth, low-res input), the truth cropped to exactly scale x the input."""
    hr = read_image(hr_path)
    if hr.dtype != np.uint8:
        raise UsageError(f"{hr_path}: eval expects 8-bit images")
    if lr_path is None:
        hr, lr = make_lr(hr, scale)
        if degrade is not None:
            lr = degrade.apply(lr, image_rng(seed, hr_path.stem))
    else:
        lr = read_image(lr_path)
        hr = hr[: lr.shape[0] * scale, : lr.shape[1] * scale]
    if hr.shape[:2] != (lr.shape[0] * scale, lr.shape[1] * scale) or min(lr.shape[:2]) == 0:
        raise UsageError(f"{lr_path or hr_path}: size is not the ground truth's divided by {scale}")
    return hr, lr


def _prepare_save_dir(folder: Path, hr_paths: list[Path], overwrite: bool) -> None:
    # Check every name first: failing on the tenth image after minutes of work helps no one.
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{folder}: not a directory")
    taken = [p.stem + ".png" for p in hr_paths if (folder / f"{p.stem}.png").exists()]
    if taken and not overwrite:
        raise UsageError(f"{folder}: {', '.join(taken)} already there (use --overwrite)")
    make_folder(folder, folder, parents=True)


# --- text table --------------------------------------------------------------------------------

_HEAD = f"{'PSNR':>7}  {'SSIM':>6}  {'MS-SSIM':>7}  {'HaarPSI':>7}  {'blockiness':>10}"


def describe_inputs(ev: Evaluation) -> str:
    if not ev.generated:
        return "given low-res images"
    if ev.degradation is None:
        return "bicubic downscale"
    return f"bicubic downscale, then {ev.degradation.spec} (seed {ev.seed})"


def _fmt(v: float | None, width: int, digits: int) -> str:
    return f"{'-':>{width}}" if v is None else f"{v:>{width}.{digits}f}"


def _cells(m: Metrics) -> str:
    return "  ".join([_fmt(m.psnr, 7, 2), _fmt(m.ssim, 6, 4), _fmt(m.ms_ssim, 7, 4),
                      _fmt(m.haarpsi, 7, 4), _fmt(m.blockiness, 10, 3)])


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "~"


def format_table(ev: Evaluation) -> str:
    """Two rows per image (model, then bicubic) and the means; fits 110 columns."""
    name_w = min(max([len(s.name) for s in ev.scores] + [5]), 24)
    label_w = min(max(len(ev.label), 7), 32)
    head = f"{'image':<{name_w}}  {'method':<{label_w}}  {_HEAD}"
    rule = "-" * len(head)
    rows = [f"x{ev.scale}, inputs: {describe_inputs(ev)}", head, rule]

    def pair(name: str, model: Metrics, bicubic: Metrics) -> None:
        label = _clip(ev.label, label_w)
        rows.append(f"{_clip(name, name_w):<{name_w}}  {label:<{label_w}}  {_cells(model)}")
        rows.append(f"{'':<{name_w}}  {'bicubic':<{label_w}}  {_cells(bicubic)}")

    for s in ev.scores:
        pair(s.name, s.model, s.bicubic)
    rows.append(rule)
    pair("mean", ev.mean("model"), ev.mean("bicubic"))
    rows.extend(_notes(ev))
    return "\n".join(rows)


def _notes(ev: Evaluation) -> list[str]:
    notes = ["blockiness: luma steps on the input's 8x8 JPEG block edges (at output scale) over steps",
             "  elsewhere, relative to the same ratio for the ground truth: 1 = as blocky as the truth"]
    full = len(MS_SSIM_WEIGHTS)
    few = [f"{s.name} {s.ms_ssim_scales}" for s in ev.scores if s.ms_ssim_scales < full]
    if few:
        notes.append(f"MS-SSIM on fewer than {full} scales (image under 161 px after the crop; 0 = '-'): "
                     + ", ".join(few))
    if any(s.model.haarpsi is None for s in ev.scores):
        notes.append("HaarPSI '-': image under 16 px after the border crop")
    return notes
