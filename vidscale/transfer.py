"""How a batch of frames becomes a float tensor on the device, and comes back.

Frames cross the bus as integers (a quarter of float32's bytes) and are
converted on the device; results are rounded there too, so the download is
as small as the encoder's input. `RgbTransfer` moves RGB/gray/RGBA arrays
(the CPU threads convert video with swscale); `YuvTransfer` moves the
decoder's own YUV planes and converts both ways on the device (GPU runs).

torch's uint16 has few kernels, so 16-bit words travel as uint16 and are
reinterpreted as int16 on the device, which every kernel supports
(`yuv.widen_words`, `yuv.pack_words`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from vidscale.media.color import ColorInfo
from vidscale.media.frames import Frame, VideoInfo
from vidscale.media.yuv import (
    YuvImage,
    bits_of,
    from_rgb,
    pack_words,
    supports,
    to_rgb,
    unstack_planes,
    widen_words,
)

Pixels = np.ndarray | YuvImage


class Transfer(Protocol):
    def planes(self, batch: list[Pixels]) -> list[list[np.ndarray]]: ...

    def to_float(self, tensors: list[torch.Tensor]) -> torch.Tensor: ...

    def from_float(self, x: torch.Tensor) -> list[torch.Tensor]: ...

    def split(self, arrays: list[np.ndarray]) -> list[Pixels]: ...


class RgbTransfer:
    """HxWxC arrays (C = 1, 3 or 4; uint8, uint16 or float) in, the same dtype out."""

    def __init__(self, dtype: np.dtype):
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.uint8, np.uint16) and not np.issubdtype(self.dtype, np.floating):
            raise TypeError(f"unsupported image dtype {self.dtype}")

    def planes(self, batch: list[Pixels]) -> list[list[np.ndarray]]:
        return [batch]  # type: ignore[list-item]

    def to_float(self, tensors: list[torch.Tensor]) -> torch.Tensor:
        x = tensors[0].permute(0, 3, 1, 2)
        if self.dtype == np.uint8:
            return x.float().div_(255)
        if self.dtype == np.uint16:
            return widen_words(x).float().div_(65535)
        return x.float()

    def from_float(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = x.clamp(0, 1).permute(0, 2, 3, 1)  # the one full-size copy: the rest is in place
        if self.dtype == np.uint8:
            return [x.mul_(255).round_().to(torch.uint8).contiguous()]
        if self.dtype == np.uint16:
            return [pack_words(x.mul_(65535).round_()).contiguous()]
        return [x.to(torch.float32).contiguous()]

    def split(self, arrays: list[np.ndarray]) -> list[Pixels]:
        out = arrays[0].view(np.uint16) if self.dtype == np.uint16 else arrays[0]
        return list(out)


class YuvTransfer:
    """The decoder's YUV planes in, the encoder's YUV planes out; RGB only on the device."""

    def __init__(self, source: YuvImage, src_color: ColorInfo, dst_fmt: str, dst_color: ColorInfo):
        self.src_fmt, self.src_siting, self.src_color = source.pix_fmt, source.chroma_location, src_color
        self.dst_fmt, self.dst_color = dst_fmt, dst_color
        self.src_deep, self.dst_deep = source.deep, bits_of(dst_fmt) > 8

    def planes(self, batch: list[Pixels]) -> list[list[np.ndarray]]:
        images: list[YuvImage] = batch  # type: ignore[assignment]
        return [[image.planes[p] for image in images] for p in range(len(images[0].planes))]

    def to_float(self, tensors: list[torch.Tensor]) -> torch.Tensor:
        rgb = to_rgb(tensors, self.src_fmt, self.src_color, self.src_siting)
        return _host_levels(rgb, self.src_deep)

    def from_float(self, x: torch.Tensor) -> list[torch.Tensor]:
        return from_rgb(_host_levels(x.clamp(0, 1), self.dst_deep), self.dst_fmt, self.dst_color)

    def split(self, arrays: list[np.ndarray]) -> list[Pixels]:
        return unstack_planes(arrays, self.dst_fmt)  # type: ignore[return-value]


def _host_levels(rgb: torch.Tensor, deep: bool) -> torch.Tensor:
    """RGB rounded to the levels of the host path's integer arrays (uint8, or uint16 when deep).

    The network sharpens: on grainy film, inputs half a level apart come out up to
    4-5 levels apart (measured on chaplin.mp4 with span-x2). Rounding where the host
    path rounds keeps a GPU run within one code value of a CPU run, end to end.
    """
    levels = 65535 if deep else 255
    return rgb.mul(levels).round_().div_(levels)


def transfer_for(frame: Frame, yuv: YuvRoute | None) -> Transfer:
    if isinstance(frame.pixels, np.ndarray):
        return RgbTransfer(frame.pixels.dtype)
    assert yuv is not None and frame.color is not None
    return YuvTransfer(frame.pixels, frame.color, yuv.pix_fmt, yuv.color)


@dataclass(frozen=True)
class YuvRoute:
    """Video whose YUV crosses to the device as decoded and leaves as the encoder takes it."""

    pix_fmt: str  # the encoder's
    color: ColorInfo  # the output's matrix and range


def yuv_route(video: VideoInfo | None, pix_fmt: str, alpha: bool, color: ColorInfo, device: torch.device,
              device_color: bool | None, temporal: bool) -> YuvRoute | None:
    """Whether colour conversion runs on the device (then the source, a video described by
    `video`, is to decode to planes): by default (`device_color` None) on CUDA, for formats
    it knows, and not with the temporal pass (its motion search reads RGB frames on the
    host). `pix_fmt`, `alpha`, `color`: the encoder's."""
    wanted = device_color if device_color is not None else device.type == "cuda"
    if not wanted or video is None or video.alpha or alpha:
        return None
    if temporal or not supports(pix_fmt):
        return None
    return YuvRoute(pix_fmt, color)


def size_of(pixels: Pixels) -> tuple[int, int]:
    return pixels.shape[:2] if isinstance(pixels, np.ndarray) else (pixels.height, pixels.width)
