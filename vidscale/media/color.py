"""YUV <-> RGB with the source's own matrix and range, and the tags that say so.

Decoders hand out YUV in some matrix (BT.601/709/2020) and range (limited
or full); converting with the wrong one shifts colours. Untagged sources get
the usual guess from their size, and outputs are always tagged explicitly,
because a player would otherwise guess from the *upscaled* size.
"""

from __future__ import annotations

from dataclasses import dataclass

import av
import numpy as np
from av.video.reformatter import ColorRange, Colorspace, Interpolation, VideoReformatter

# FFmpeg AVColorSpace / AVColorPrimaries / AVColorTransferCharacteristic values
SPACE_BT709, SPACE_UNSPECIFIED, SPACE_BT470BG, SPACE_SMPTE170M = 1, 2, 5, 6
SPACE_SMPTE240M, SPACE_BT2020_NCL, SPACE_BT2020_CL, SPACE_FCC = 7, 9, 10, 4
RANGE_UNSPECIFIED, RANGE_LIMITED, RANGE_FULL = 0, 1, 2
PRIMARIES_BT709, PRIMARIES_SMPTE170M, TRC_BT709, TRC_SMPTE170M = 1, 6, 1, 6

_SWS_MATRIX = {
    SPACE_BT709: Colorspace.ITU709,
    SPACE_FCC: Colorspace.FCC,
    SPACE_BT470BG: Colorspace.ITU601,
    SPACE_SMPTE170M: Colorspace.SMPTE170M,
    SPACE_SMPTE240M: Colorspace.SMPTE240M,
    SPACE_BT2020_NCL: Colorspace.BT2020,
    SPACE_BT2020_CL: Colorspace.BT2020,
}
# swscale's accurate path: without these it rounds chroma coarsely
_SWS_FLAGS = Interpolation.BICUBIC | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT


@dataclass(frozen=True)
class ColorInfo:
    """What a stream's YUV means. Values are FFmpeg's enum integers."""

    matrix: int = SPACE_BT709
    range: int = RANGE_LIMITED
    primaries: int = 2  # unspecified
    transfer: int = 2

    @property
    def full_range(self) -> bool:
        return self.range == RANGE_FULL


def guess_matrix(width: int, height: int) -> int:
    """The matrix players assume for untagged video: BT.709 from 720p (or 1280 wide) up."""
    return SPACE_BT709 if height >= 720 or width >= 1280 else SPACE_SMPTE170M


def color_of(frame: av.VideoFrame | av.video.codeccontext.VideoCodecContext) -> ColorInfo:
    """The colour description of a decoded frame (or a stream's decoder), with guesses for gaps."""
    matrix = frame.colorspace if frame.colorspace in _SWS_MATRIX else guess_matrix(frame.width, frame.height)
    pix_fmt = frame.format.name if frame.format else ""
    full = frame.color_range == RANGE_FULL or pix_fmt.startswith("yuvj")
    return ColorInfo(matrix, RANGE_FULL if full else RANGE_LIMITED,
                     int(frame.color_primaries), int(frame.color_trc))


def for_rgb_source(width: int, height: int) -> ColorInfo:
    """Tags for video made from RGB pictures: the matrix and primaries of its size class."""
    if guess_matrix(width, height) == SPACE_BT709:
        return ColorInfo(SPACE_BT709, RANGE_LIMITED, PRIMARIES_BT709, TRC_BT709)
    return ColorInfo(SPACE_SMPTE170M, RANGE_LIMITED, PRIMARIES_SMPTE170M, TRC_SMPTE170M)


def bit_depth(fmt: av.VideoFormat) -> int:
    return max(c.bits for c in fmt.components)


# swscale converts YUV <-> 16-bit RGB in 8.8 fixed point, so its white is not 65535:
# limited-range YUV decodes to 255 << 8, full range to its peak code shifted to 16 bits,
# and encoding takes 255 << 8 as white (measured with swscale; no flag changes it).
SWS_WHITE16 = 255 << 8


def _shifted_peak(bits: int) -> int:
    """The top code of `bits` shifted into 16 bits, as swscale widens full-range samples."""
    return ((1 << bits) - 1) << (16 - bits)


def _rescale16(rgb: np.ndarray, gain: float, alpha_gain: float) -> np.ndarray:
    """16-bit RGB(A) with colour times `gain` and alpha times `alpha_gain`, rounded."""
    gains = np.array([gain] * 3 + [alpha_gain] * (rgb.shape[2] - 3), np.float32)
    if np.all(gains == 1):
        return rgb
    return np.clip(np.rint(rgb * gains), 0, 65535).astype(np.uint16)


class RgbConverter:
    """Frame <-> HxWx3 RGB or HxWx4 RGBA arrays (uint8, or uint16 for deep formats), one per thread."""

    def __init__(self) -> None:
        self._sws = VideoReformatter()

    def to_rgb(self, frame: av.VideoFrame, color: ColorInfo, deep: bool, alpha: bool = False) -> np.ndarray:
        """HxWx3 RGB, or HxWx4 straight-alpha RGBA with `alpha` (opaque for frames without it)."""
        fmt = ("rgba64le" if deep else "rgba") if alpha else ("rgb48le" if deep else "rgb24")
        if frame.format.name in ("rgb24", "rgb48le", "gbrp", "gbrp10le", "gbrp16le", "rgba", "bgra", "argb",
                                 "abgr", "rgba64le", "rgba64be", "gbrap", "gbrap10le", "gbrap16le"):
            return self._sws.reformat(frame, format=fmt).to_ndarray()
        rgb = self._sws.reformat(
            frame, format=fmt, src_colorspace=_SWS_MATRIX[color.matrix],
            src_color_range=ColorRange.JPEG if color.full_range else ColorRange.MPEG,
            dst_color_range=ColorRange.JPEG, interpolation=_SWS_FLAGS).to_ndarray()
        if deep:  # swscale's white (and opaque alpha) fall short of 65535: stretch them there
            bits = bit_depth(frame.format)
            white = SWS_WHITE16 if not color.full_range else _shifted_peak(bits)
            rgb = _rescale16(rgb, 65535 / white, 65535 / _shifted_peak(bits))
        return rgb

    def from_rgb(self, rgb: np.ndarray, pix_fmt: str, color: ColorInfo) -> av.VideoFrame:
        """RGB or RGBA (straight alpha) -> `pix_fmt`; alpha survives only into formats that have it."""
        deep = rgb.dtype == np.uint16
        layout = ("rgba64le" if deep else "rgba") if rgb.shape[2] == 4 else ("rgb48le" if deep else "rgb24")
        if pix_fmt.startswith(("rgb", "bgr", "gbr")):
            return self._sws.reformat(av.VideoFrame.from_ndarray(rgb, format=layout), format=pix_fmt)
        if deep:  # swscale reads 16-bit RGB as 8.8 fixed point: 255 << 8 is its white
            rgb = _rescale16(rgb, SWS_WHITE16 / 65535, 1.0)
        src = av.VideoFrame.from_ndarray(rgb, format=layout)
        out = self._sws.reformat(
            src, format=pix_fmt, dst_colorspace=_SWS_MATRIX.get(color.matrix, Colorspace.ITU709),
            src_color_range=ColorRange.JPEG,
            dst_color_range=ColorRange.JPEG if color.full_range else ColorRange.MPEG,
            interpolation=_SWS_FLAGS)
        out.colorspace = color.matrix
        out.color_range = color.range
        return out
