"""The upscaler: a chain of network passes, then an exact-size resize.

A job asks for an output size; the chain is planned from the factor between
input and output (`scale.passes_needed`, `zoo.default_chain`), each network
runs in a `TorchEngine`, and an antialiased bicubic step trims any surplus
(e.g. x3 from an x4 network).
"""

from __future__ import annotations

import numpy as np
import torch

from vidscale.engine.device import pick_device
from vidscale.engine.torch_engine import TorchEngine
from vidscale.models import zoo
from vidscale.models.loading import load_descriptor
from vidscale.resample import resize
from vidscale.scale import output_size, passes_needed


class Upscaler:
    def __init__(
        self,
        model: str | None = None,
        device: str | torch.device | None = None,
        tile: int | None = None,
        fp16: bool | None = None,
    ):
        self.model = zoo.resolve(model) if model else None
        self.device = pick_device(device)
        self.tile, self.fp16 = tile, fp16
        self._engines: dict[str, TorchEngine] = {}
        if self.model and self.model.is_network:
            self.model_scale = self._engine(self.model).scale  # loads now: bad files fail early

    def plan(self, factor: float) -> list[zoo.ModelInfo]:
        """The networks that run, in order, for an overall `factor`."""
        if self.model is None:
            return zoo.default_chain(factor)
        if not self.model.is_network:
            return []
        return [self.model] * passes_needed(factor, self.model_scale)

    @torch.inference_mode()
    def upscale(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """NCHW float RGB in [0, 1] -> the same at exactly `size` (height, width)."""
        x = x.to(self.device, torch.float32)
        factor = max(size[0] / x.shape[-2], size[1] / x.shape[-1])
        for info in self.plan(factor):
            x = self._engine(info)(x)
        kernel = self.model.name if self.model and not self.model.is_network else "bicubic"
        return resize(x, size, kernel).clamp_(0, 1)

    def _engine(self, info: zoo.ModelInfo) -> TorchEngine:
        if info.name not in self._engines:
            assert info.path is not None
            self._engines[info.name] = TorchEngine(
                load_descriptor(info.path), self.device, fp16=self.fp16, tile=self.tile)
        return self._engines[info.name]


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """HxWxC uint8/uint16/float array -> 1xCxHxW float32 in [0, 1]."""
    if image.dtype == np.uint8:
        data = image.astype(np.float32) / 255
    elif image.dtype == np.uint16:
        data = image.astype(np.float32) / 65535
    elif np.issubdtype(image.dtype, np.floating):
        data = image.astype(np.float32)
    else:
        raise TypeError(f"unsupported image dtype {image.dtype}")
    return torch.from_numpy(np.ascontiguousarray(data)).permute(2, 0, 1)[None]


def from_tensor(x: torch.Tensor, dtype: np.dtype) -> np.ndarray:
    """1xCxHxW float in [0, 1] -> HxWxC array of `dtype`, rounded."""
    data = x[0].permute(1, 2, 0).float().clamp(0, 1).cpu().numpy()
    if dtype == np.uint8:
        return np.rint(data * 255).astype(np.uint8)
    if dtype == np.uint16:
        return np.rint(data * 65535).astype(np.uint16)
    return data.astype(dtype)


def upscale_image(
    image: np.ndarray,
    scale: float | None = 2,
    model: str | None = None,
    device: str | torch.device | None = None,
    *,
    width: int | None = None,
    height: int | None = None,
    upscaler: Upscaler | None = None,
) -> np.ndarray:
    """Upscale one HxWxC (or HxW) image; returns the same dtype and channel layout.

    RGB goes through the network; gray is upscaled as RGB and averaged back;
    an alpha channel is resized with Lanczos (networks are trained on colour).
    """
    if image.ndim == 2:
        return upscale_image(image[..., None], scale, model, device, width=width,
                             height=height, upscaler=upscaler)[..., 0]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise ValueError(f"expected HxWx1, HxWx3 or HxWx4 array, got shape {image.shape}")
    up = upscaler or Upscaler(model, device)
    size = output_size(image.shape[0], image.shape[1], scale if not (width or height) else None,
                       width, height)
    x = to_tensor(image)
    rgb = x[:, :3] if x.shape[1] >= 3 else x.expand(-1, 3, -1, -1)
    out = up.upscale(rgb, size)
    if x.shape[1] == 1:
        out = out.mean(dim=1, keepdim=True)
    elif x.shape[1] == 4:
        alpha = resize(x[:, 3:].to(out.device), size, "lanczos").clamp_(0, 1)
        out = torch.cat([out, alpha], dim=1)
    return from_tensor(out, image.dtype)
