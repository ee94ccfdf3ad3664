"""Still images: read and write RGB arrays with PyAV (FFmpeg).

Pixels are HxWxC arrays (gray, RGB or RGBA), uint8 for 8-bit images and
uint16 for deeper ones; EXIF, ICC and XMP travel with them (`photo_meta`).

FFmpeg only ever sees open Python file objects, never file names: the
image2 demuxer/muxer treat names containing '%' as numbered patterns (and
would read a different file), and names like 'x:y.png' look like protocols.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import av
import av.error
import numpy as np

from vidscale.core.limits import DEFAULT_LIMITS, PixelLimits
from vidscale.errors import UsageError, VidscaleError
from vidscale.media.limits import header_size
from vidscale.media.photo_meta import PhotoMeta, read_meta, upright, without_orientation, write_meta

IMAGE_SUFFIXES: tuple[str, ...] = (
    ".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".avif",
)

DEFAULT_JPEG_QUALITY = 95
DEFAULT_WEBP_QUALITY = 90
DEFAULT_AVIF_QUALITY = 80
WHITE = (255, 255, 255)  # what transparency is flattened onto by default

# FFmpeg's mjpeg table is the MPEG-1 intra matrix * qscale / 8. Measured on
# sample photos, qscale = IJG scale percent / 10 gives files of about the same
# size and error as libjpeg at that quality (4:4:4): 95 -> 1, 90 -> 2, 50 -> 10.
_IJG_PERCENT_PER_QSCALE = 10


def is_image_path(path: Path | str) -> bool:
    """True when the file name has a still-image extension."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


# --------------------------------------------------------------------------
# Reading


@dataclass
class Picture:
    """Decoded pixels, upright, with the metadata to carry into an output.

    `pixels` is HxWxC: C = 1 (gray), 3 (RGB) or 4 (RGBA, straight alpha);
    uint8, or uint16 for sources deeper than 8 bits.
    """

    pixels: np.ndarray
    meta: PhotoMeta = field(default_factory=PhotoMeta)


def read_picture(path: Path, limits: PixelLimits = DEFAULT_LIMITS) -> Picture:
    """Decode the first frame of an image file, keeping gray, alpha, depth and metadata.

    The header's picture size is checked against `limits` and the metadata is
    read (inflated with a cap) before FFmpeg allocates any pixels.
    """
    path = Path(path)
    data = _read_bytes(path)
    size = header_size(data)
    if size is not None:
        limits.check_input(path, *size)
    try:
        meta = read_meta(data)
    except VidscaleError as e:
        raise VidscaleError(f"{path}: {e}") from None
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.video:
                raise VidscaleError(f"{path}: not an image file")
            frame = next(container.decode(video=0))
            pixels = _frame_to_pixels(frame)
    except StopIteration:
        raise VidscaleError(f"{path}: contains no image") from None
    except av.error.FFmpegError as e:
        raise VidscaleError(f"{path}: cannot read image: {_reason(e)}") from None
    except ValueError as e:  # PyAV: a pixel format it cannot convert
        raise VidscaleError(f"{path}: unsupported image data: {e}") from None
    limits.check_input(path, pixels.shape[1], pixels.shape[0])  # formats the header reader does not know
    return Picture(upright(pixels, meta.orientation), without_orientation(meta))


def read_image(path: Path) -> np.ndarray:
    """Decode an image file to HxWx3 RGB (uint8/uint16); gray is expanded.

    For RGB-only consumers (evaluation); transparency is an error here.
    """
    pixels = read_picture(path).pixels
    if pixels.shape[2] == 4:
        raise VidscaleError(f"{path}: has an alpha channel, which this use cannot keep")
    return to_rgb(pixels)


def to_rgb(pixels: np.ndarray) -> np.ndarray:
    """HxWxC (1, 3 or 4 channels) -> HxWx3: gray repeated, alpha dropped."""
    if pixels.shape[2] == 1:
        return np.repeat(pixels, 3, axis=2)
    return np.ascontiguousarray(pixels[..., :3])


def _read_bytes(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise VidscaleError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise VidscaleError(f"{path}: is a directory, not an image") from None
    except OSError as e:
        raise VidscaleError(f"{path}: cannot read file: {e.strerror or e}") from None
    if not data:
        raise VidscaleError(f"{path}: file is empty")
    return data


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


def _is_gray(fmt: av.VideoFormat) -> bool:
    return fmt.name.startswith(("gray", "ya", "mono"))


def _frame_to_pixels(frame: av.VideoFrame) -> np.ndarray:
    fmt = frame.format
    deep = _is_deep(fmt)
    if _may_be_transparent(fmt):
        rgba = frame.to_ndarray(format="rgba64le" if deep else "rgba")
        # Fully opaque alpha carries nothing: drop it. This matters because
        # FFmpeg decodes every lossless WebP as argb, even our own RGB output.
        if rgba[..., 3].min() < np.iinfo(rgba.dtype).max:
            return rgba
        pixels = np.ascontiguousarray(rgba[..., :3])
        return pixels[..., :1] if _is_gray(fmt) else pixels
    if _is_gray(fmt):
        return frame.to_ndarray(format="gray16le" if deep else "gray")[..., None]
    # swscale handles full-range (yuvj) JPEG and CMYK-as-RGB by itself.
    return frame.to_ndarray(format="rgb48le" if deep else "rgb24")


# --------------------------------------------------------------------------
# Writing


@dataclass(frozen=True)
class _Encoder:
    codec: str
    pix_fmt: str
    options: Mapping[str, str] = field(default_factory=dict)
    muxer: str = "image2pipe"  # writes the packet as is; no file-name (pattern) handling


def write_image(path: Path, pixels: np.ndarray, quality: int | None = None,
                meta: PhotoMeta | None = None, background: tuple[int, int, int] = WHITE) -> None:
    """Encode HxWxC (C = 1, 3 or 4) uint8/uint16 pixels to `path`; the codec follows the suffix.

    `quality` (1-100) applies to JPEG, WebP and AVIF (100 = lossless WebP) and
    is ignored by the lossless formats. `meta` (EXIF, ICC, XMP, DPI) is
    embedded in JPEG, PNG, WebP, TIFF and AVIF files. Transparency going into
    a type that keeps none (JPEG, AVIF) is composited over `background`
    (8-bit RGB). The file is written in place: wrap the call in `atomic_output`.
    """
    path = Path(path)
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    _check_pixels(pixels)
    _check_quality(quality)
    encoder = _encoder_for(path, pixels.dtype, quality, pixels.shape[2])
    if pixels.shape[2] == 4 and encoder.pix_fmt not in _ALPHA_FORMATS:
        pixels = flatten(pixels, background)
    pixels = _fit_layout(pixels, encoder.pix_fmt)
    buffer = io.BytesIO()
    try:
        _encode(buffer, pixels, encoder)
    except av.error.FFmpegError as e:
        raise VidscaleError(f"{path}: cannot write image: {_reason(e)}") from None
    except OSError as e:  # Pillow's libjpeg (gray JPEG), e.g. a side longer than JPEG allows
        raise VidscaleError(f"{path}: cannot write image: {e}") from None
    try:
        data = write_meta(buffer.getvalue(), meta or PhotoMeta())
    except ValueError as e:  # the encoder's file is laid out as our writers do not expect
        raise VidscaleError(f"{path}: cannot add metadata: {e}") from None
    try:
        path.write_bytes(data)
    except OSError as e:
        raise VidscaleError(f"{path}: cannot write file: {e.strerror or e}") from None


def keeps_alpha(path: Path | str) -> bool:
    """Whether `write_image` keeps transparency in this image type (False: it is flattened)."""
    return _encoder_for(Path(path), np.dtype(np.uint8), None, 4).pix_fmt in _ALPHA_FORMATS


def flatten(rgba: np.ndarray, background: tuple[int, int, int] = WHITE) -> np.ndarray:
    """Straight-alpha RGBA composited over an opaque 8-bit RGB `background`: HxWx3, same dtype.

    Without this the colour hidden under transparent pixels (filled from
    neighbours so edges upscale cleanly) would show as streaks.
    """
    top = np.iinfo(rgba.dtype).max
    alpha = rgba[..., 3:].astype(np.float32) / top
    back = np.asarray(background, np.float32) * (top / 255)
    mixed = rgba[..., :3].astype(np.float32) * alpha + back * (1 - alpha)
    return np.clip(np.rint(mixed), 0, top).astype(rgba.dtype)


def parse_color(text: str, what: str = "colour") -> tuple[int, int, int]:
    """8-bit RGB from a CSS colour name or #RGB / #RRGGBB (the # may be left out)."""
    from PIL import ImageColor

    spec = text.strip()
    if len(spec) in (3, 6) and all(c in "0123456789abcdefABCDEF" for c in spec):
        spec = "#" + spec
    try:
        rgb = ImageColor.getrgb(spec)
    except ValueError:
        raise UsageError(f"{what} {text!r}: not a colour (a name such as white, or #RRGGBB)") from None
    return rgb[0], rgb[1], rgb[2]


def _check_pixels(pixels: np.ndarray) -> None:
    # Programming errors, not user errors: callers own the array.
    if pixels.ndim != 3 or pixels.shape[2] not in (1, 3, 4):
        raise ValueError(f"expected an HxWxC array with C in 1, 3, 4; got shape {pixels.shape}")
    if pixels.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"expected uint8 or uint16 pixels, got {pixels.dtype}")


def _fit_layout(pixels: np.ndarray, pix_fmt: str) -> np.ndarray:
    """Match channels and depth to what the chosen pixel format holds."""
    channels = 1 if pix_fmt.startswith("gray") else 4 if pix_fmt in _ALPHA_FORMATS else 3
    if channels == 3:
        pixels = to_rgb(pixels)
    elif channels == 4 and pixels.shape[2] != 4:
        opaque = np.full(pixels.shape[:2] + (1,), np.iinfo(pixels.dtype).max, pixels.dtype)
        pixels = np.concatenate([to_rgb(pixels), opaque], axis=2)
    deep_format = any(tag in pix_fmt for tag in ("48", "64", "16", "10"))
    if pixels.dtype == np.uint16 and not deep_format:
        pixels = _to_8bit(pixels)  # 8-bit-only codec: round, don't let swscale dither
    return np.ascontiguousarray(pixels)


_ALPHA_FORMATS = ("rgba", "rgba64be", "rgba64le", "bgra", "yuva420p")
# Our own codec name: FFmpeg's mjpeg encodes colour only, so one-component JPEG goes through Pillow
_GRAY_JPEG = "gray-jpeg"
# No "Lavc..." comment (JPEG) or Software tag (TIFF) naming the encoder in the file
_BITEXACT = {"flags": "+bitexact"}


def _check_quality(quality: int | None) -> None:
    if quality is not None and not 1 <= quality <= 100:
        raise UsageError(f"image quality must be 1-100, got {quality}")


def _encoder_for(path: Path, dtype: np.dtype, quality: int | None, channels: int = 3) -> _Encoder:
    suffix = path.suffix.lower()
    deep = dtype == np.uint16
    layout = {1: "gray", 3: "rgb", 4: "rgba"}[channels]
    if suffix == ".png":
        # 'mixed' row filters: ~30% smaller than FFmpeg's default of none.
        fmt = {"gray": ("gray", "gray16be"), "rgb": ("rgb24", "rgb48be"), "rgba": ("rgba", "rgba64be")}
        return _Encoder("png", fmt[layout][deep], {"pred": "mixed"})
    if suffix in (".jpg", ".jpeg"):
        quality = DEFAULT_JPEG_QUALITY if quality is None else quality
        if channels == 1:  # a gray JPEG stays one component (its gray ICC profile stays valid)
            return _Encoder(_GRAY_JPEG, "gray", {"quality": str(quality)})
        return _jpeg_encoder(quality)
    if suffix == ".webp":
        return _webp_encoder(DEFAULT_WEBP_QUALITY if quality is None else quality, channels == 4)
    if suffix in (".tif", ".tiff"):
        # Deflate: far smaller than the default packbits, still lossless.
        fmt = {"gray": ("gray", "gray16le"), "rgb": ("rgb24", "rgb48le"), "rgba": ("rgba", "rgba64le")}
        return _Encoder("tiff", fmt[layout][deep], {"compression_algo": "deflate", **_BITEXACT})
    if suffix == ".bmp":
        return _Encoder("bmp", {"gray": "gray", "rgb": "bgr24", "rgba": "bgra"}[layout])
    if suffix == ".avif":
        return _avif_encoder(DEFAULT_AVIF_QUALITY if quality is None else quality, deep)
    raise UsageError(f"{path}: unsupported image type '{path.suffix}'")


def _jpeg_encoder(quality: int) -> _Encoder:
    # Setting codec_context.qscale/global_quality has no effect from PyAV:
    # with the qscale flag the encoder reads each frame's `quality` field,
    # which PyAV leaves at 0; without it, rate control aims at 200 kb/s.
    # Pinning qmin == qmax fixes the quantiser instead.
    # yuvj444p: full range, no chroma subsampling.
    q = str(_jpeg_qscale(quality))
    return _Encoder("mjpeg", "yuvj444p", {"qmin": q, "qmax": q, **_BITEXACT})


def _jpeg_qscale(quality: int) -> int:
    """Map libjpeg-style quality 1-100 to an mjpeg qscale 1-31 (lower = finer)."""
    scale = 5000 / quality if quality < 50 else 200 - 2 * quality  # IJG percent
    return min(max(round(scale / _IJG_PERCENT_PER_QSCALE), 1), 31)


def _webp_encoder(quality: int, alpha: bool = False) -> _Encoder:
    if quality == 100:
        # Lossless must get RGB(A): fed yuv420p, the output is far from exact.
        return _Encoder("libwebp", "bgra", {"lossless": "1"})
    return _Encoder("libwebp", "yuva420p" if alpha else "yuv420p", {"quality": str(quality)})


def _avif_encoder(quality: int, deep: bool) -> _Encoder:
    # SVT-AV1's CRF runs 1-63 (lower = finer): quality 90 -> 11, 75 -> 21, 50 -> 36.
    crf = min(max(round(63 * (1 - quality / 100) + 5), 1), 63)
    os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its whole configuration otherwise
    return _Encoder("libsvtav1", "yuv420p10le" if deep else "yuv420p", {"crf": str(crf)}, muxer="avif")


def _to_8bit(rgb: np.ndarray) -> np.ndarray:
    # 65535 / 255 == 257 exactly: round to the nearest 8-bit level.
    return ((rgb.astype(np.uint32) + 128) // 257).astype(np.uint8)


_INPUT_FORMATS = {(1, False): "gray", (1, True): "gray16le", (3, False): "rgb24",
                  (3, True): "rgb48le", (4, False): "rgba", (4, True): "rgba64le"}


def _encode(fh: BinaryIO, pixels: np.ndarray, encoder: _Encoder) -> None:
    if encoder.codec == _GRAY_JPEG:
        _encode_gray_jpeg(fh, pixels[..., 0], int(encoder.options["quality"]))
        return
    in_fmt = _INPUT_FORMATS[(pixels.shape[2], pixels.dtype == np.uint16)]
    data = pixels[..., 0] if pixels.shape[2] == 1 else pixels
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(data), format=in_fmt)
    with av.open(fh, mode="w", format=encoder.muxer) as container:
        stream = container.add_stream(encoder.codec, options=dict(encoder.options))
        stream.width, stream.height = pixels.shape[1], pixels.shape[0]
        stream.pix_fmt = encoder.pix_fmt
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def _encode_gray_jpeg(fh: BinaryIO, gray: np.ndarray, quality: int) -> None:
    """One-component baseline JPEG through Pillow's libjpeg (IJG quality scale, as ours)."""
    from PIL import Image  # only this path needs it

    Image.fromarray(np.ascontiguousarray(gray)).save(fh, format="JPEG", quality=quality)
