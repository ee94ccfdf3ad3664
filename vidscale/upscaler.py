"""The upscaler: a chain of networks (each run as often as needed), then an exact-size resize.

A job asks for an output size; the networks that run follow from the factor between
input and output (`scale.runs_needed`, `zoo.default_chain`), each network
runs in an engine (PyTorch, or TensorRT: `engine.backend`), and an antialiased bicubic step trims any surplus
(e.g. x3 from an x4 network).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from vidscale.core.settings import JobSettings
from vidscale.engine.backend import Engine, backend_device, make_engine, pick_backend
from vidscale.engine.watch import part
from vidscale.errors import UsageError
from vidscale.models import zoo
from vidscale.models.loading import file_scale
from vidscale.models.onnx_file import is_onnx
from vidscale.resample import resize
from vidscale.scale import runs_needed
from vidscale.transfer import RgbTransfer


class Upscaler:
    """Runs a model, a chain of models (`a+b`) or the default for a kind of input.

    `purpose` ("photo" or "video") chooses the default when no model is named;
    `denoise` picks the variant of a model family that has denoise levels.
    """

    def __init__(
        self,
        model: str | None = None,
        device: str | torch.device | None = None,
        tile: int | None = None,
        precision: str | None = None,
        backend: str | None = None,
        *,
        denoise: str | None = None,
        purpose: str = "photo",
    ):
        self.chain = zoo.resolve_chain(model) if model else None
        self.denoise = zoo.denoise_level(denoise) if denoise is not None else None
        self.purpose = purpose
        _check_denoise(self.chain, self.denoise)
        self.backend = pick_backend(_backend_for(self.chain, backend, device), device)
        self.onnx = (backend or "auto").strip().lower() != "torch"  # `torch` asks for PyTorch itself
        self.device = backend_device(self.backend, device)
        self.tile, self.precision = tile, precision
        self._engines: dict[str, Engine] = {}
        for info in self.chain or ():
            if info.is_network and info.kind != "family":
                self._engine(info)  # loads now: bad files fail early

    @classmethod
    def for_job(cls, settings: JobSettings, purpose: str, device: str | None = None) -> Upscaler:
        """The upscaler a job's `settings` ask for (on `device` where a worker has its own)."""
        return cls(settings.model, device or settings.device, tile=settings.tile, precision=settings.precision,
                   backend=settings.backend, denoise=settings.denoise, purpose=purpose)

    @property
    def model(self) -> zoo.ModelInfo | None:
        """The one model named, if a single one was (None for the default or a chain)."""
        return self.chain[0] if self.chain and len(self.chain) == 1 else None

    @property
    def resizer(self) -> str | None:
        """The kernel of a plain-resize "model" (bicubic, lanczos), else None."""
        return self.chain[0].name if self.chain and not self.chain[0].is_network else None

    def native_scale(self) -> int | None:
        """What the named model or chain upscales by in one run (None: nothing named, or a resizer)."""
        if not self.chain or self.resizer:
            return None
        return math.prod(self._file_scale(info) for info in self.chain)

    def _file_scale(self, info: zoo.ModelInfo) -> int:
        """A file's own scale, where its graph ends in a resize after the network (see `file_scale`)."""
        if info.kind in ("user", "file") and info.path is not None:
            return file_scale(info.path, self._scale(info))
        return self._scale(info)

    def networks_for(self, factor: float) -> list[zoo.ModelInfo]:
        """The networks that run, in order, for an overall `factor`.

        A chain runs once in order; if it falls short, its last upscaling model
        repeats (a chain of 1x models leaves the rest to the final resize).
        """
        if self.chain is None:
            return zoo.default_chain(factor, self.purpose)
        if self.resizer:
            return []
        networks: list[zoo.ModelInfo] = []
        reached = 1.0
        for i, info in enumerate(self.chain):
            last_upscaler = not any(self._scale(m) > 1 for m in self.chain[i + 1:])
            step = self._runs_of(info, factor / reached if last_upscaler else 1.0)
            networks += step
            for p in step:
                reached *= self._scale(p)
        return networks

    def label(self, factor: float) -> str:
        """What runs for `factor`, for tables and captions: e.g. "span-x2+span-x4" or "lanczos"."""
        return self.resizer or "+".join(m.name for m in self.networks_for(factor))

    def _runs_of(self, info: zoo.ModelInfo, factor: float) -> list[zoo.ModelInfo]:
        if info.family:
            return zoo.pick_variant(info, factor, self.denoise)
        return [info] * runs_needed(factor, self._scale(info))

    def _scale(self, info: zoo.ModelInfo) -> int:
        if info.kind == "family":
            return zoo.family_scales(info.family)[0]  # type: ignore[arg-type]
        return self._engine(info).scale

    @torch.inference_mode()
    def upscale(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """NCHW float RGB in [0, 1] -> the same at exactly `size` (height, width)."""
        given = x = x.to(self.device, torch.float32)
        factor = max(size[0] / x.shape[-2], size[1] / x.shape[-1])
        networks = self.networks_for(factor)
        for i, info in enumerate(networks):
            with part(i, len(networks)):  # each network its share of a watcher's progress
                x = self._engine(info)(x)
        x = resize(x, size, self.resizer or "bicubic")
        return x.clamp(0, 1) if x is given else x.clamp_(0, 1)  # the caller's tensor stays as it was

    @torch.inference_mode()
    def upscale_channels(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Like `upscale` for 1 (gray), 3 (RGB) or 4 (RGBA, straight alpha) channels.

        Gray runs as RGB and is averaged back. Alpha runs through the network as
        gray; colour under fully transparent pixels is meaningless (often black),
        so it is first filled from opaque neighbours, or edges would darken.
        """
        channels = x.shape[1]
        if channels == 3:
            return self.upscale(x, size)
        if channels == 1:
            return self.upscale(x.expand(-1, 3, -1, -1), size).mean(dim=1, keepdim=True)
        if channels != 4:
            raise ValueError(f"expected 1, 3 or 4 channels, got {channels}")
        x = x.to(self.device, torch.float32)
        alpha = x[:, 3:]
        rgb = self.upscale(bleed_colour(x[:, :3], alpha), size)
        lo, hi = alpha.amin(dim=(1, 2, 3), keepdim=True), alpha.amax(dim=(1, 2, 3), keepdim=True)
        if bool((lo == hi).all()):  # flat (often opaque, e.g. browser recordings): no second pass,
            return torch.cat([rgb, lo.expand_as(rgb[:, :1])], dim=1)  # and a GAN cannot texture it
        out_alpha = self.upscale(alpha.expand(-1, 3, -1, -1), size).mean(dim=1, keepdim=True)
        return torch.cat([rgb, out_alpha], dim=1)

    def engine(self, info: zoo.ModelInfo) -> Engine:
        """The engine that runs `info` (loaded on first use): for plans and reports."""
        return self._engine(info)

    def _engine(self, info: zoo.ModelInfo) -> Engine:
        if info.name not in self._engines:
            self._engines[info.name] = make_engine(info, self.backend, self.device, precision=self.precision,
                                                   tile=self.tile, onnx=self.onnx)
        return self._engines[info.name]


def _backend_for(chain: list[zoo.ModelInfo] | None, backend: str | None,
                 device: str | torch.device | None) -> str | None:
    """`auto` with nothing else said runs a chain holding an ONNX file on the CPU (its only engine)."""
    if (backend or "auto").strip().lower() == "auto" and device in (None, "auto") \
            and any(is_onnx(m.path) for m in chain or ()):
        return "cpu"
    return backend


def _check_denoise(chain: list[zoo.ModelInfo] | None, denoise: str | None) -> None:
    """--denoise needs a model family that has denoise variants."""
    if denoise is None or any(m.family and zoo.family_levels(m.family) for m in chain or ()):
        return
    named = "+".join(m.name for m in chain) if chain else "the default model"
    raise UsageError(f"--denoise: {named} has no denoise variants; models that do: "
                     f"{zoo.models_with_denoise()}")


def bleed_colour(rgb: torch.Tensor, alpha: torch.Tensor, steps: int = 32) -> torch.Tensor:
    """Fill the colour of fully transparent pixels from their nearest visible ones."""
    known = (alpha > 0).float()
    if bool(known.all()) or not bool(known.any()):
        return rgb
    colour = rgb * known
    for _ in range(steps):  # grow the known region by a pixel per step
        total = F.avg_pool2d(colour, 3, stride=1, padding=1, count_include_pad=False)
        count = F.avg_pool2d(known, 3, stride=1, padding=1, count_include_pad=False)
        grown = (count > 0).float()
        colour = torch.where(known.bool(), colour, total / count.clamp(min=1e-6) * grown)
        known = torch.maximum(known, grown)
        if bool(known.all()):
            return colour
    mean = (rgb * (alpha > 0)).sum(dim=(2, 3), keepdim=True) / (alpha > 0).sum(dim=(2, 3), keepdim=True)
    return torch.where(known.bool(), colour, mean.expand_as(colour))


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """HxWxC uint8/uint16/float array -> 1xCxHxW float32 in [0, 1], as the job converts frames."""
    # read-only arrays (np.asarray of a PIL image, a memory map) are copied: torch warns on them
    array = np.require(image, requirements=["C_CONTIGUOUS", "WRITEABLE"])
    return RgbTransfer(image.dtype).to_float([torch.from_numpy(array[None])])


def from_tensor(x: torch.Tensor, dtype: np.dtype) -> np.ndarray:
    """1xCxHxW float in [0, 1] -> HxWxC array of `dtype`, rounded, as the job converts frames."""
    transfer = RgbTransfer(dtype)
    return transfer.split([t.cpu().numpy() for t in transfer.from_float(x[:1])])[0].astype(dtype, copy=False)

