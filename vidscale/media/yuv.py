"""The decoder's YUV planes <-> float RGB on the device, within 1 code value of swscale.

GPU runs upload the decoded planes (half the bytes of RGB for 4:2:0) and convert
there; the CPU path uses swscale (`color.RgbConverter`). So that both give the same
pictures, this reproduces swscale with RgbConverter's flags (BICUBIC | ACCURATE_RND |
FULL_CHR_H_INT), as measured by passing single-sample impulses through it:

* Chroma is resampled separably, horizontal pass first, with swscale's cubic (B=0,
  C=0.6: Keys a=-0.6) at the frame's chroma location (H.264: "left"; untagged:
  centre). Window, edges and renormalisation follow swscale exactly (`_taps`).
* The horizontal pass saturates just under 2^bits, like swscale's intermediate.
* RGB -> 4:2:x of an even width averages pixel pairs first (swscale's reader).
* swscale's 16-bit RGB is 8.8 fixed point with white short of 65535; `RgbConverter`
  stretches it to 65535 (`color.SWS_WHITE16`), so deep RGB here is plain [0, 1].

16-bit words travel as uint16 (or int16 with the same bits: torch has few uint16
kernels) and are widened to int32 before any arithmetic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import av
import numpy as np
import torch

from vidscale.media import color as cs
from vidscale.media.color import ColorInfo

# AVChromaLocation -> (horizontal, vertical) chroma position in 1/256 of a 2x2 luma block.
CHROMA_UNSPECIFIED, CHROMA_LEFT, CHROMA_CENTER = 0, 1, 2
_SITING = {0: (128, 128), 1: (0, 128), 2: (128, 128), 3: (0, 0), 4: (128, 0), 5: (0, 256), 6: (128, 256)}
_KR_KB = {cs.SPACE_BT709: (0.2126, 0.0722), cs.SPACE_BT470BG: (0.299, 0.114),
          cs.SPACE_SMPTE170M: (0.299, 0.114), cs.SPACE_SMPTE240M: (0.212, 0.087), cs.SPACE_FCC: (0.30, 0.11),
          cs.SPACE_BT2020_NCL: (0.2627, 0.0593), cs.SPACE_BT2020_CL: (0.2627, 0.0593)}


@dataclass(frozen=True)
class _Format:
    bits: int
    sub_x: int  # log2 of chroma subsampling
    sub_y: int
    semi: bool = False  # one interleaved UV plane (nv12, p010)
    shift: int = 0  # samples stored in the high bits of 16-bit words (p010)
    full: bool = False  # yuvj: full range whatever the tags say

    @property
    def dtype(self) -> type:
        return np.uint16 if self.bits + self.shift > 8 else np.uint8


_FORMATS = {
    "yuv420p": _Format(8, 1, 1), "yuvj420p": _Format(8, 1, 1, full=True),
    "yuv422p": _Format(8, 1, 0), "yuvj422p": _Format(8, 1, 0, full=True),
    "yuv444p": _Format(8, 0, 0), "yuvj444p": _Format(8, 0, 0, full=True),
    "yuv420p10le": _Format(10, 1, 1), "yuv422p10le": _Format(10, 1, 0), "yuv444p10le": _Format(10, 0, 0),
    "nv12": _Format(8, 1, 1, semi=True), "p010le": _Format(10, 1, 1, semi=True, shift=6),
}  # 12-bit is left out: swscale's 15-bit intermediate puts its RGB -> YUV up to 2 codes off


def supports(pix_fmt: str) -> bool:
    """Whether `pix_fmt` converts here; other formats (RGB, alpha, gray, pal8...) go through swscale."""
    return pix_fmt in _FORMATS


def _format(pix_fmt: str) -> _Format:
    if pix_fmt not in _FORMATS:
        raise ValueError(f"pixel format {pix_fmt!r} is not converted on the device; "
                         f"supported: {', '.join(sorted(_FORMATS))}")
    return _FORMATS[pix_fmt]


def _plane_shapes(fmt: _Format, height: int, width: int) -> list[tuple[int, ...]]:
    ch, cw = -(-height >> fmt.sub_y), -(-width >> fmt.sub_x)  # chroma rounds up for odd sizes
    return [(height, width), (ch, cw, 2)] if fmt.semi else [(height, width), (ch, cw), (ch, cw)]


@dataclass
class YuvImage:
    """One picture's planes, tightly packed: Y as HxW, then U and V (hxw) or UV (hxwx2)."""

    pix_fmt: str
    planes: tuple[np.ndarray, ...]
    chroma_location: int = CHROMA_UNSPECIFIED  # FFmpeg AVChromaLocation of the samples

    @property
    def height(self) -> int:
        return int(self.planes[0].shape[0])

    @property
    def width(self) -> int:
        return int(self.planes[0].shape[1])

    @property
    def bits(self) -> int:
        return bits_of(self.pix_fmt)

    @property
    def deep(self) -> bool:
        return self.bits > 8


def _views(frame: av.VideoFrame, fmt: _Format) -> list[np.ndarray]:
    """Each plane of `frame` as an array over its buffer, line padding cropped off."""
    out = []
    for plane, shape in zip(frame.planes, _plane_shapes(fmt, frame.height, frame.width), strict=True):
        items_per_line = plane.line_size // np.dtype(fmt.dtype).itemsize
        rows: np.ndarray = np.frombuffer(plane, fmt.dtype).reshape(-1, items_per_line)
        row_items = int(np.prod(shape[1:]))
        out.append(rows[:shape[0], :row_items].reshape(shape))
    return out


def from_frame(frame: av.VideoFrame) -> YuvImage:
    """Copies of a decoded frame's planes (the decoder reuses its buffers)."""
    fmt = _format(frame.format.name)
    planes = tuple(view.copy() for view in _views(frame, fmt))
    return YuvImage(frame.format.name, planes, int(frame.chroma_location))


def to_frame(image: YuvImage) -> av.VideoFrame:
    """A new frame holding `image`; the caller sets pts and colour tags."""
    fmt = _format(image.pix_fmt)
    frame = av.VideoFrame(image.width, image.height, image.pix_fmt)
    for view, plane in zip(_views(frame, fmt), image.planes, strict=True):
        view[...] = plane
    frame.chroma_location = image.chroma_location
    return frame


def stack_planes(images: Sequence[YuvImage]) -> list[np.ndarray]:
    """Per-plane N x ... batches of pictures sharing format, size and siting (for pinned buffers)."""
    first = images[0]
    for image in images:
        if (image.pix_fmt, image.height, image.width, image.chroma_location) != (
                first.pix_fmt, first.height, first.width, first.chroma_location):
            raise ValueError("a batch needs one pixel format, size and chroma location")
    return [np.stack(planes) for planes in zip(*(image.planes for image in images), strict=True)]


def unstack_planes(arrays: Sequence[np.ndarray], pix_fmt: str,
                   chroma_location: int = CHROMA_UNSPECIFIED) -> list[YuvImage]:
    """Downloaded per-plane batches (as `from_rgb` made them) back into one `YuvImage` per picture."""
    fmt = _format(pix_fmt)
    words = [a.view(np.uint16) if a.dtype == np.int16 else a for a in arrays]  # int16 carries uint16 bits
    shapes = _plane_shapes(fmt, *words[0].shape[1:3])
    if [a.shape[1:] for a in words] != shapes or any(a.dtype != fmt.dtype for a in words):
        raise ValueError(f"planes {[(a.shape, a.dtype) for a in arrays]} are not a batch of {pix_fmt}")
    return [YuvImage(pix_fmt, tuple(a[i] for a in words), chroma_location) for i in range(len(words[0]))]


def _cubic(d: torch.Tensor, a: float = -0.6) -> torch.Tensor:
    """swscale's default bicubic (B=0, C=0.6) is Keys' cubic with a = -0.6."""
    d = d.abs()
    near = ((a + 2) * d - (a + 3)) * d * d + 1
    far = (((d - 5) * d + 8) * d - 4) * a
    return torch.where(d < 1, near, torch.where(d < 2, far, torch.zeros_like(d)))


def _local_pos(sub: int, pos: int | None) -> int:
    """A sample's position in 1/256 of its own pixel, as swscale derives it (None: not subsampled)."""
    return ((((128 << sub) - 128) if pos is None else pos) + 128) >> sub


@lru_cache(maxsize=64)
def _taps(src: int, dst: int, src_pos: int, dst_pos: int,
          device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Source indices and weights (dst x taps) of swscale's cubic resampling from `src` to `dst`
    samples. Made on the device from scalars: no host -> device copy, so no sync; cached."""
    inc = ((src << 16) + dst // 2) // dst  # swscale's 16.16 step, rounded like its own
    step, down = inc / 65536, inc > 1 << 16
    size = 1 + (4 * src + dst - 1) // dst if down else 5
    size = max(1, min(size, src - 2))  # swscale narrows the window for tiny pictures
    f64 = torch.float64  # exact for these dyadic positions
    centre = (torch.arange(dst, dtype=f64, device=device) + dst_pos / 256) * step - src_pos / 256
    first = torch.trunc(centre - (size - 2) / 2)  # C's truncating division: asymmetric at the top/left edge
    index = first[:, None] + torch.arange(size, dtype=f64, device=device)
    weight = _cubic((index - centre[:, None]) / (step if down else 1.0))
    weight = weight / weight.sum(dim=1, keepdim=True)
    return index.clamp(0, src - 1).long(), weight.float()  # clamping folds outside taps onto the edge


def _resample(x: torch.Tensor, dim: int, src_pos: int, dst_pos: int, size: int) -> torch.Tensor:
    """swscale's chroma filter along `dim` (-1: width, -2: height) to `size` samples, by gathering."""
    if x.shape[dim] == size and src_pos == dst_pos:
        return x  # same grid: swscale's filter is the identity
    index, weight = _taps(x.shape[dim], size, src_pos, dst_pos, x.device)
    shape = (-1, 1) if dim == -2 else (-1,)
    out = x.index_select(dim, index[:, 0]).mul_(weight[:, 0].reshape(shape))
    for t in range(1, index.shape[1]):
        out.addcmul_(x.index_select(dim, index[:, t]), weight[:, t].reshape(shape))
    return out


def _levels(fmt: _Format, color: ColorInfo) -> tuple[float, float, float, float]:
    """Luma black and span, chroma centre and span, in code values."""
    scale = 1 << (fmt.bits - 8)
    if fmt.full or color.full_range:
        top = float((1 << fmt.bits) - 1)
        return 0.0, top, float(1 << (fmt.bits - 1)), top
    return 16.0 * scale, 219.0 * scale, 128.0 * scale, 224.0 * scale


def _kr_kb(color: ColorInfo, encode: bool) -> tuple[float, float]:
    if encode:  # as RgbConverter.from_rgb: unknown matrices (e.g. unspecified) are written as BT.709
        return _KR_KB.get(color.matrix, _KR_KB[cs.SPACE_BT709])
    if color.matrix not in _KR_KB:
        raise ValueError(f"no YUV matrix for colour space {color.matrix}")
    return _KR_KB[color.matrix]


def widen_words(t: torch.Tensor) -> torch.Tensor:
    """16-bit words (uint16, or int16 with the same bits) as unsigned int32; other types as they are."""
    if t.dtype in (torch.uint16, torch.int16):
        return t.view(torch.int16).to(torch.int32).bitwise_and_(0xFFFF)
    return t


def pack_words(t: torch.Tensor) -> torch.Tensor:
    """Integer values 0-65535 as int16 holding uint16's bit pattern (read back as uint16 on the host)."""
    t = t.to(torch.int32)
    return torch.where(t > 32767, t - 65536, t).to(torch.int16)


def bits_of(pix_fmt: str) -> int:
    return _format(pix_fmt).bits


def _codes(t: torch.Tensor, fmt: _Format) -> torch.Tensor:
    """Sample values as float32 code values of `fmt.bits` bits."""
    x = widen_words(t).to(torch.float32)
    return x / (1 << fmt.shift) if fmt.shift else x


def _check(planes: Sequence[torch.Tensor], fmt: _Format, pix_fmt: str) -> None:
    if len(planes) != (2 if fmt.semi else 3) or planes[0].dim() != 3:
        raise ValueError(f"{pix_fmt}: expected {2 if fmt.semi else 3} planes of N x H x W")
    wanted = _plane_shapes(fmt, planes[0].shape[1], planes[0].shape[2])
    if [tuple(p.shape[1:]) for p in planes] != wanted:
        raise ValueError(f"{pix_fmt}: plane shapes {[tuple(p.shape) for p in planes]} do not fit {wanted}")


def to_rgb(planes: Sequence[torch.Tensor], pix_fmt: str, color: ColorInfo,
           chroma_location: int = CHROMA_UNSPECIFIED) -> torch.Tensor:
    """Batched planes (N x h x w each, N x h x w x 2 for nv12/p010; uint8, or 16-bit words as
    uint16/int16, or int32) -> N x 3 x H x W float32 RGB in [0, 1], like RgbConverter.to_rgb."""
    fmt = _format(pix_fmt)
    _check(planes, fmt, pix_fmt)
    _, height, width = planes[0].shape
    h_pos, v_pos = _SITING.get(chroma_location, _SITING[CHROMA_UNSPECIFIED])
    cap = float(1 << fmt.bits) - 1 / 128  # where swscale's horizontal intermediate saturates
    chroma = []
    for c in (planes[1][..., 0], planes[1][..., 1]) if fmt.semi else planes[1:]:
        c = _codes(c, fmt)
        if fmt.sub_x:
            c = _resample(c, -1, _local_pos(1, h_pos), _local_pos(0, None), width).clamp_max(cap)
        if fmt.sub_y:
            c = _resample(c, -2, _local_pos(1, v_pos), _local_pos(0, None), height)
        chroma.append(c)
    y_black, y_span, c_mid, c_span = _levels(fmt, color)
    kr, kb = _kr_kb(color, encode=False)
    luma = (_codes(planes[0], fmt) - y_black) / y_span
    pb, pr = ((c - c_mid) / c_span for c in chroma)
    red = luma + 2 * (1 - kr) * pr
    blue = luma + 2 * (1 - kb) * pb
    green = (luma - kr * red - kb * blue) / (1 - kr - kb)
    return torch.stack((red, green, blue), dim=1).clamp_(0, 1)


def _to_words(x: torch.Tensor, fmt: _Format) -> torch.Tensor:
    """Code values -> the format's integer samples: uint8, or int16 holding uint16 bit patterns."""
    x = torch.floor(x.clamp(0, (1 << fmt.bits) - 1) + 0.5)  # swscale rounds halves up
    if fmt.dtype == np.uint8:
        return x.to(torch.uint8)
    return pack_words(x.to(torch.int32) << fmt.shift)


def from_rgb(rgb: torch.Tensor, pix_fmt: str, color: ColorInfo,
             chroma_location: int = CHROMA_UNSPECIFIED) -> list[torch.Tensor]:
    """N x 3 x H x W float RGB in [0, 1] -> the planes of `pix_fmt` (layout and dtypes as `to_rgb`
    takes them; 16-bit words as int16), like RgbConverter.from_rgb fed the CPU path's RGB
    (uint8 for 8-bit formats, uint16 for deeper ones)."""
    fmt = _format(pix_fmt)
    if rgb.dim() != 4 or rgb.shape[1] != 3:
        raise ValueError(f"expected N x 3 x H x W RGB, got {tuple(rgb.shape)}")
    _, _, height, width = rgb.shape
    # the CPU path clamps before quantising; deep formats then see swscale's 8.8 reading of uint16
    rgb = rgb.to(torch.float32).clamp(0, 1)
    red, green, blue = rgb.unbind(1)
    kr, kb = _kr_kb(color, encode=True)
    luma = kr * red + (1 - kr - kb) * green + kb * blue
    y_black, y_span, c_mid, c_span = _levels(fmt, color)
    h_pos, v_pos = _SITING.get(chroma_location, _SITING[CHROMA_UNSPECIFIED])
    cap = float(1 << fmt.bits) - 1 / 128
    chroma = []
    for diff, k in ((blue - luma, kb), (red - luma, kr)):
        c = diff / (2 * (1 - k)) * c_span + c_mid
        if fmt.sub_x:
            pos = _local_pos(0, None)
            if width % 2 == 0:  # swscale averages pixel pairs, then its chroma sits at their centre
                c, pos = (c[..., 0::2] + c[..., 1::2]) / 2, _local_pos(1, None)
            c = _resample(c, -1, pos, _local_pos(1, h_pos), -(-width >> 1)).clamp_max(cap)
        if fmt.sub_y:
            c = _resample(c, -2, _local_pos(0, None), _local_pos(1, v_pos), -(-height >> 1))
        chroma.append(_to_words(c, fmt))
    planes = [_to_words(luma * y_span + y_black, fmt)]
    return planes + ([torch.stack(chroma, dim=-1)] if fmt.semi else chroma)
