"""Run a spandrel network with PyTorch on the CPU or a CUDA GPU.

The engine takes NCHW float32 RGB in [0, 1] and returns the model's output
at `scale` times the size. Frames too large for memory are tiled; inputs a
network cannot take (its size requirements) are padded and cropped back;
a CUDA out-of-memory error retries with smaller tiles.
"""

from __future__ import annotations

import logging
import math
import os

import spandrel
import torch
import torch.nn.functional as F

from vidscale.engine.onnx_export import fold_reparameterized
from vidscale.engine.tiling import run_tiled
from vidscale.errors import VidscaleError

log = logging.getLogger(__name__)

MIN_TILE = 64
# Low-res pixels shared by neighbouring tiles, by architecture: enough context
# that tiled output matches untiled within 1/255 on real images (measured:
# SPAN and Compact at 32; the 6-block RRDB still differs by 1.5/255 at 128).
OVERLAP_BY_ARCH = {"SPAN": 32, "Compact": 32, "ESRGAN": 192}
DEFAULT_OVERLAP = 128
CPU_BUDGET_CAP = 8 << 30


class TorchEngine:
    def __init__(
        self,
        desc: spandrel.ImageModelDescriptor,
        device: torch.device,
        fp16: bool | None = None,
        tile: int | None = None,
        overlap: int | None = None,
    ):
        self.scale: int = desc.scale
        self.device = device
        self.dtype = _pick_dtype(desc, device, fp16)
        # fold SPAN-style re-parameterised convs once (fp32), not on every forward
        self.model = fold_reparameterized(desc.model).to(device=device, dtype=self.dtype).eval()
        self.requirements = desc.size_requirements
        self.fixed_tile = tile
        self.overlap = overlap or OVERLAP_BY_ARCH.get(desc.architecture.id, DEFAULT_OVERLAP)
        self._bytes_per_px = _activation_bytes_per_pixel(self.model, self.scale, self.dtype)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Upscale an NCHW float batch already on `self.device`."""
        tile = self.fixed_tile or self.auto_tile(x.shape[0], *x.shape[-2:])
        while True:
            try:
                return run_tiled(self._infer, x, self.scale, tile, self.overlap)
            except torch.OutOfMemoryError:
                if tile <= MIN_TILE:
                    raise VidscaleError(
                        f"out of memory on {self.device} even with {tile} px tiles") from None
                tile = max(MIN_TILE, min(tile, max(x.shape[-2:])) // 2)
                log.warning("out of memory: retrying with %d px tiles", tile)
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                if self.fixed_tile:
                    self.fixed_tile = tile

    def auto_tile(self, batch: int, height: int, width: int) -> int:
        """The largest tile whose activations fit the memory budget."""
        pixels = _memory_budget(self.device) / (self._bytes_per_px * batch)
        side = int(math.sqrt(pixels)) // 16 * 16
        if side * side >= height * width and side >= min(height, width):
            return max(height, width)  # whole frame fits: no tiling
        return max(MIN_TILE, side)

    def _infer(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        padded = _pad_to_requirements(x, self.requirements)
        with torch.inference_mode():
            y = self.model(padded.to(self.dtype))
        return y[..., : h * self.scale, : w * self.scale].float()


def _pick_dtype(desc: spandrel.ImageModelDescriptor, device: torch.device,
                fp16: bool | None) -> torch.dtype:
    if device.type != "cuda" or fp16 is False:
        return torch.float32
    if not desc.supports_half:
        if fp16:
            raise VidscaleError(f"{desc.architecture.name} does not support fp16")
        return torch.float32
    return torch.float16


def _pad_to_requirements(x: torch.Tensor, req: spandrel.SizeRequirements) -> torch.Tensor:
    h, w = x.shape[-2:]
    th, tw = _padded_size(h, w, req)
    if (th, tw) == (h, w):
        return x
    mode = "reflect" if th - h < h and tw - w < w else "replicate"
    return F.pad(x, (0, tw - w, 0, th - h), mode=mode)


def _padded_size(h: int, w: int, req: spandrel.SizeRequirements) -> tuple[int, int]:
    m = max(req.multiple_of, 1)
    th = max(math.ceil(h / m) * m, req.minimum)
    tw = max(math.ceil(w / m) * m, req.minimum)
    if req.square:
        th = tw = max(th, tw)
    return th, tw


def _activation_bytes_per_pixel(model: torch.nn.Module, scale: int, dtype: torch.dtype) -> int:
    """A deliberately generous estimate of peak activation bytes per input pixel:
    a few feature maps of the widest layer plus the upsampled tail."""
    widest = max((p.shape[0] for p in model.parameters() if p.dim() == 4), default=64)
    item = torch.finfo(dtype).bits // 8
    return item * (6 * widest + 4 * 64 * scale * scale) + 16 * scale * scale


def _memory_budget(device: torch.device) -> float:
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return 0.6 * free
    try:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        available = 4 << 30
    return min(0.3 * available, CPU_BUDGET_CAP)
