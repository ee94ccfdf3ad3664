"""Still images: read and write RGB arrays with PyAV (FFmpeg).

Arrays are HxWx3 RGB, uint8 for 8-bit images and uint16 for deeper ones.

FFmpeg only ever sees open Python file objects, never file names: the
image2 demuxer/muxer treat names containing '%' as numbered patterns (and
would read a different file), and names like 'x:y.png' look like protocols.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import av
import av.error
import numpy as np

from vidscale.errors import UsageError, VidscaleError

IMAGE_SUFFIXES: tuple[str, ...] = (
    ".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp",
)

DEFAULT_JPEG_QUALITY = 95
DEFAULT_WEBP_QUALITY = 90

# FFmpeg's mjpeg table is the MPEG-1 intra matrix * qscale / 8. Measured on
# sample photos, qscale = IJG scale percent / 10 gives files of about the same
# size and error as libjpeg at that quality (4:4:4): 95 -> 1, 90 -> 2, 50 -> 10.
_IJG_PERCENT_PER_QSCALE = 10


def is_image_path(path: Path | str) -> bool:
    """True when the file name has a still-image extension."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


# --------------------------------------------------------------------------
# Reading


def read_image(path: Path) -> np.ndarray:
    """Decode the first frame of an image file to HxWx3 RGB (uint8/uint16)."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            if os.fstat(fh.fileno()).st_size == 0:
                raise VidscaleError(f"{path}: file is empty")
            with av.open(fh, mode="r") as container:
                if not container.streams.video:
                    raise VidscaleError(f"{path}: not an image file")
                frame = next(container.decode(video=0))
                return _frame_to_rgb(frame, path)
    except StopIteration:
        raise VidscaleError(f"{path}: contains no image") from None
    # Before OSError: some PyAV errors subclass both.
    except av.error.FFmpegError as e:
        raise VidscaleError(f"{path}: cannot read image: {_reason(e)}") from None
    except ValueError as e:  # PyAV: a pixel format it cannot convert
        raise VidscaleError(f"{path}: unsupported image data: {e}") from None
    except FileNotFoundError:
        raise VidscaleError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise VidscaleError(f"{path}: is a directory, not an image") from None
    except OSError as e:
        raise VidscaleError(f"{path}: cannot read file: {e.strerror or e}") from None


def _reason(e: av.error.FFmpegError) -> str:
    # Failures of our Python file object (disk full...) reach us wrapped as
    # "Error in PyAV callback", with the OSError as context.
    cause = e.__context__
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror
    return str(e.strerror)


def _is_deep(fmt: av.VideoFormat) -> bool:
    return max(c.bits for c in fmt.components) > 8


def _may_be_transparent(fmt: av.VideoFormat) -> bool:
    # Palette entries can carry alpha (PNG tRNS) without an alpha component.
    return fmt.has_palette or any(c.is_alpha for c in fmt.components)


def _frame_to_rgb(frame: av.VideoFrame, path: Path) -> np.ndarray:
    deep = _is_deep(frame.format)
    if not _may_be_transparent(frame.format):
        # swscale expands gray and handles full-range (yuvj) JPEG by itself.
        return frame.to_ndarray(format="rgb48le" if deep else "rgb24")
    rgba = frame.to_ndarray(format="rgba64le" if deep else "rgba")
    # Fully opaque alpha carries nothing: drop it. This matters because
    # FFmpeg decodes every lossless WebP as argb, even our own RGB output.
    if rgba[..., 3].min() < np.iinfo(rgba.dtype).max:
        raise VidscaleError(
            f"{path}: images with an alpha channel are not supported yet"
        )
    return np.ascontiguousarray(rgba[..., :3])


# --------------------------------------------------------------------------
# Writing


@dataclass(frozen=True)
class _Encoder:
    codec: str
    pix_fmt: str
    options: Mapping[str, str] = field(default_factory=dict)


def write_image(path: Path, rgb: np.ndarray, quality: int | None = None) -> None:
    """Encode HxWx3 uint8/uint16 RGB to `path`; the codec follows the suffix.

    `quality` (1-100) applies to JPEG and WebP (100 = lossless WebP) and is
    ignored by the lossless formats. The file is written in place: wrap the
    call in `atomic_output` so a failure never leaves a partial output.
    """
    path = Path(path)
    _check_rgb(rgb)
    _check_quality(quality)
    encoder = _encoder_for(path, rgb.dtype, quality)
    if rgb.dtype == np.uint16 and not encoder.pix_fmt.startswith("rgb48"):
        rgb = _to_8bit(rgb)  # 8-bit-only codec: round, don't let swscale dither
    try:
        with open(path, "wb") as fh:
            _encode(fh, rgb, encoder)
    except av.error.FFmpegError as e:
        raise VidscaleError(f"{path}: cannot write image: {_reason(e)}") from None
    except OSError as e:
        raise VidscaleError(f"{path}: cannot write file: {e.strerror or e}") from None


def _check_rgb(rgb: np.ndarray) -> None:
    # Programming errors, not user errors: callers own the array.
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 RGB array, got shape {rgb.shape}")
    if rgb.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"expected uint8 or uint16 pixels, got {rgb.dtype}")


def _check_quality(quality: int | None) -> None:
    if quality is not None and not 1 <= quality <= 100:
        raise UsageError(f"image quality must be 1-100, got {quality}")


def _encoder_for(path: Path, dtype: np.dtype, quality: int | None) -> _Encoder:
    suffix = path.suffix.lower()
    deep = dtype == np.uint16
    if suffix == ".png":
        # 'mixed' row filters: ~30% smaller than FFmpeg's default of none.
        return _Encoder("png", "rgb48be" if deep else "rgb24", {"pred": "mixed"})
    if suffix in (".jpg", ".jpeg"):
        return _jpeg_encoder(DEFAULT_JPEG_QUALITY if quality is None else quality)
    if suffix == ".webp":
        return _webp_encoder(DEFAULT_WEBP_QUALITY if quality is None else quality)
    if suffix in (".tif", ".tiff"):
        # Deflate: far smaller than the default packbits, still lossless.
        return _Encoder("tiff", "rgb48le" if deep else "rgb24",
                        {"compression_algo": "deflate"})
    if suffix == ".bmp":
        return _Encoder("bmp", "bgr24")
    raise UsageError(f"{path}: unsupported image type '{path.suffix}'")


def _jpeg_encoder(quality: int) -> _Encoder:
    # Setting codec_context.qscale/global_quality has no effect from PyAV:
    # with the qscale flag the encoder reads each frame's `quality` field,
    # which PyAV leaves at 0; without it, rate control aims at 200 kb/s.
    # Pinning qmin == qmax fixes the quantiser instead.
    # yuvj444p: full range, no chroma subsampling.
    q = str(_jpeg_qscale(quality))
    return _Encoder("mjpeg", "yuvj444p", {"qmin": q, "qmax": q})


def _jpeg_qscale(quality: int) -> int:
    """Map libjpeg-style quality 1-100 to an mjpeg qscale 1-31 (lower = finer)."""
    scale = 5000 / quality if quality < 50 else 200 - 2 * quality  # IJG percent
    return min(max(round(scale / _IJG_PERCENT_PER_QSCALE), 1), 31)


def _webp_encoder(quality: int) -> _Encoder:
    if quality == 100:
        # Lossless must get RGB(A): fed yuv420p, the output is far from exact.
        return _Encoder("libwebp", "bgra", {"lossless": "1"})
    return _Encoder("libwebp", "yuv420p", {"quality": str(quality)})


def _to_8bit(rgb: np.ndarray) -> np.ndarray:
    # 65535 / 255 == 257 exactly: round to the nearest 8-bit level.
    return ((rgb.astype(np.uint32) + 128) // 257).astype(np.uint8)


def _encode(fh: BinaryIO, rgb: np.ndarray, encoder: _Encoder) -> None:
    in_fmt = "rgb48le" if rgb.dtype == np.uint16 else "rgb24"
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format=in_fmt)
    # image2pipe writes the packet as is; no file-name (pattern) handling.
    with av.open(fh, mode="w", format="image2pipe") as container:
        stream = container.add_stream(encoder.codec, options=dict(encoder.options))
        stream.width, stream.height = rgb.shape[1], rgb.shape[0]
        stream.pix_fmt = encoder.pix_fmt
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
