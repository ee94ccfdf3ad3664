"""Animated GIF, WebP and APNG: multi-frame clips whose frame durations are kept.

Reading goes through PyAV, whose probe picks FFmpeg's `gif`, `webp_anim` and
`apng` demuxers by content; their decoders composite every frame onto the
full canvas, with `pts`/`duration` per frame. The header facts FFmpeg does
not hand out (frame count, loop count) come from a small walk over the
file's chunks, which also answers `is_animated` without decoding anything.

Writing: APNG and GIF through FFmpeg's muxers, WebP through `libwebp_anim`,
which returns the whole file as one packet. Frame times come from each
frame's pts; the muxers derive every delay but the last from them, so the
last frame's duration is set afterwards (packet duration for GIF, the last
fcTL/ANMF chunk for APNG/WebP).
"""

from __future__ import annotations

import contextlib
import struct
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO, Protocol

import av
import cv2
import numpy as np

from vidscale.core.limits import DEFAULT_LIMITS, PixelLimits
from vidscale.core.position import Position
from vidscale.errors import UsageError, VidscaleError
from vidscale.media.color import for_rgb_source
from vidscale.media.frames import Frame, VideoInfo
from vidscale.media.image import DEFAULT_WEBP_QUALITY
from vidscale.media.limits import header_size
from vidscale.media.source import VideoSource
from vidscale.media.window import StartGate

Warn = Callable[[str], None]

# Suffixes only an animation writer takes; .png/.webp are animated when the source is.
ANIMATED_ONLY_SUFFIXES: tuple[str, ...] = (".gif", ".apng")
ANIMATED_SUFFIXES: tuple[str, ...] = (".gif", ".apng", ".png", ".webp")

_FORMAT_OF_SUFFIX = {".png": "apng", ".apng": "apng", ".webp": "webp", ".gif": "gif"}
_DEFAULT_FRAME_S = Fraction(1, 10)  # a frame with no known duration (browsers' GIF default)


# --------------------------------------------------------------------------
# Header walk: format, frame count and loop count without decoding


@dataclass(frozen=True)
class Animation:
    format: str  # "png", "webp" or "gif": the container family
    frames: int  # frames the file declares (APNG acTL) or holds (WebP ANMF, GIF images)
    plays: int  # times the animation plays; 0 = forever


def probe_animation(path: Path, max_frames: int | None = None) -> Animation | None:
    """What a PNG/WebP/GIF file says about its animation; None for other or malformed files.

    Counting stops at `max_frames` (enough for a yes/no answer).
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
            if head.startswith(b"\x89PNG\r\n\x1a\n"):
                return _png_animation(fh)
            if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
                return _webp_animation(fh, max_frames)
            if head[:6] in (b"GIF87a", b"GIF89a"):
                return _gif_animation(fh, max_frames)
    except (OSError, struct.error, ValueError):
        pass
    return None


def is_animated(path: Path) -> bool:
    """True for a GIF, WebP or APNG file with more than one frame; never raises."""
    animation = probe_animation(path, max_frames=2)
    return animation is not None and animation.frames > 1


def _read_exact(fh: BinaryIO, n: int) -> bytes:
    data = fh.read(n)
    if len(data) != n:
        raise ValueError("truncated")
    return data


def _png_animation(fh: BinaryIO) -> Animation:
    # An APNG announces itself with acTL before the first IDAT.
    fh.seek(8)
    while True:
        length, kind = struct.unpack(">I4s", _read_exact(fh, 8))
        if kind == b"acTL":
            frames, plays = struct.unpack(">II", _read_exact(fh, 8))
            return Animation("png", frames, plays)
        if kind in (b"IDAT", b"IEND"):
            return Animation("png", 1, 1)
        fh.seek(length + 4, 1)  # data and CRC


def _riff_chunks(fh: BinaryIO, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(fourcc, data offset, data size) of the chunks up to `end`."""
    pos = 12
    while pos + 8 <= end:
        fh.seek(pos)
        head = fh.read(8)
        if len(head) < 8:
            return
        kind, size = struct.unpack("<4sI", head)
        yield kind, pos + 8, size
        pos += 8 + size + (size & 1)  # chunks are padded to even sizes


def _webp_animation(fh: BinaryIO, max_frames: int | None) -> Animation:
    fh.seek(4)
    end = 8 + struct.unpack("<I", _read_exact(fh, 4))[0]
    animated, frames, plays = False, 0, 1
    for kind, offset, _ in _riff_chunks(fh, end):
        if kind == b"VP8X":
            fh.seek(offset)
            animated = bool(_read_exact(fh, 1)[0] & 0x02)
            if not animated:
                break
        elif kind == b"ANIM":
            fh.seek(offset + 4)  # after the background colour
            plays = struct.unpack("<H", _read_exact(fh, 2))[0]
        elif kind == b"ANMF":
            frames += 1
            if max_frames and frames >= max_frames:
                break
    return Animation("webp", frames, plays) if animated else Animation("webp", 1, 1)


def _skip_sub_blocks(fh: BinaryIO) -> None:
    while size := _read_exact(fh, 1)[0]:
        fh.seek(size, 1)


def _gif_animation(fh: BinaryIO, max_frames: int | None) -> Animation:
    fh.seek(10)
    packed = _read_exact(fh, 3)[0]
    if packed & 0x80:  # global colour table
        fh.seek(3 << ((packed & 7) + 1), 1)
    frames, repeats = 0, None
    while (block := fh.read(1)) not in (b"", b"\x3b"):  # 0x3b: trailer
        if block == b"\x2c":  # image descriptor
            frames += 1
            if max_frames and frames >= max_frames:
                break
            packed = _read_exact(fh, 9)[8]
            if packed & 0x80:  # local colour table
                fh.seek(3 << ((packed & 7) + 1), 1)
            fh.seek(1, 1)  # LZW minimum code size
            _skip_sub_blocks(fh)
        elif block == b"\x21":  # extension
            label = _read_exact(fh, 1)[0]
            if label == 0xFF:
                repeats = _netscape_repeats(fh, repeats)
            _skip_sub_blocks(fh)
        else:
            break  # damaged: what was counted stands
    # NETSCAPE counts repeats after the first play (0 = forever); none at all means one play.
    plays = 1 if repeats is None else 0 if repeats == 0 else repeats + 1
    return Animation("gif", frames, plays)


def _netscape_repeats(fh: BinaryIO, current: int | None) -> int | None:
    size = _read_exact(fh, 1)[0]
    ident = _read_exact(fh, size)
    if ident not in (b"NETSCAPE2.0", b"ANIMEXTS1.0"):
        return current
    size = _read_exact(fh, 1)[0]
    data = _read_exact(fh, size)
    if size >= 3 and data[0] == 1:
        return struct.unpack("<H", data[1:3])[0]
    return current


# --------------------------------------------------------------------------
# Reading


@dataclass
class AnimatedFrame(Frame):
    """A frame that also knows how long it shows, in `time_base` units."""

    duration: int | None = None


class AnimatedSource:
    """The frames of an animated GIF/WebP/APNG with their times.

    Every frame has the same layout, as batches and the sink need: RGBA when
    any frame has a pixel that is not fully opaque (found by one extra decode
    pass), else gray or RGB; uint16 for 16-bit APNG.
    """

    kind = "animated"

    def __init__(self, path: Path, limits: PixelLimits = DEFAULT_LIMITS):
        self.path = path
        self.limit: int | None = None  # stop after this many frames, as VideoSource
        self.start: Position | None = None  # begin at this frame or time; times then start at 0
        size = header_size(path)  # a GIF's logical screen: FFmpeg allocates it for every frame
        if size is not None:
            limits.check_input(path, *size)
        self.animation = probe_animation(path)
        self.plays = self.animation.plays if self.animation else 0
        self._fh, self.container = _open(path)
        videos = self.container.streams.video
        if not videos or videos[0].codec_context is None:
            self.close()
            raise VidscaleError(f"{path}: no decodable picture stream")
        self.stream = videos[0]
        ctx = self.stream.codec_context
        if not ctx.width or not ctx.height:
            self.close()
            raise VidscaleError(f"{path}: animation has no picture size")
        try:
            limits.check_input(path, ctx.width, ctx.height)
        except VidscaleError:
            self.close()
            raise
        fmt = ctx.format
        deep = fmt is not None and max(c.bits for c in fmt.components) > 8
        self.layout = self._layout(fmt)
        self.info = VideoInfo(
            width=ctx.width, height=ctx.height,
            time_base=Fraction(self.stream.time_base or Fraction(1, 1000)),
            rate=self.stream.average_rate or self.stream.guessed_rate,
            frames=self.animation.frames if self.animation else self.stream.frames or 0,
            deep=deep, pix_fmt=fmt.name if fmt else "rgba", color=for_rgb_source(ctx.width, ctx.height))
        self._to = _NDARRAY_FORMATS[(self.layout, deep)]

    def _layout(self, fmt: av.VideoFormat | None) -> str:
        if fmt is None or fmt.has_palette or any(c.is_alpha for c in fmt.components):
            if _any_transparency(self.path):
                return "rgba"
        if fmt is not None and fmt.name.startswith(("gray", "ya")):
            return "gray"
        return "rgb"

    def items(self, extra: Sequence[av.stream.Stream] = ()) -> Iterator[Frame]:
        index, clock = 0, 0  # clock: pts for frames that come without one
        gate, origin = StartGate(self.start, self.info.rate), 0  # origin: the first kept frame's pts
        try:
            for frame in self.container.decode(self.stream):
                tb = frame.time_base or self.info.time_base
                pts = frame.pts if frame.pts is not None else clock
                duration = frame.duration or None
                clock = pts + (duration or 1)
                if not gate.passes(pts, tb):
                    continue
                origin = pts if index == 0 and self.start is not None else origin
                yield AnimatedFrame(self._pixels(frame), index, pts - origin, Fraction(tb), duration=duration,
                                    source_suffix=self.path.suffix.lower())
                index += 1
                if index == self.limit:
                    return
        except av.error.FFmpegError as exc:
            raise VidscaleError(f"{self.path}: cannot decode frame {gate.seen} ({_reason(exc)})") from None
        if index == 0 and not gate.open:
            raise gate.past_end(self.path)
        if index == 0:
            raise VidscaleError(f"{self.path}: no decodable frames")

    def _pixels(self, frame: av.VideoFrame) -> np.ndarray:
        pixels = frame.to_ndarray(format=self._to)
        return pixels[..., None] if pixels.ndim == 2 else pixels

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.container.close()
        self._fh.close()


_NDARRAY_FORMATS = {("rgba", False): "rgba", ("rgba", True): "rgba64le", ("rgb", False): "rgb24",
                    ("rgb", True): "rgb48le", ("gray", False): "gray", ("gray", True): "gray16le"}


def _open(path: Path) -> tuple[BinaryIO, av.container.InputContainer]:
    # A file object, as in image.py: FFmpeg would read '%' in a name as a pattern.
    try:
        fh = open(path, "rb")
    except OSError as exc:
        raise VidscaleError(f"{path}: cannot read file: {exc.strerror or exc}") from None
    try:
        return fh, av.open(fh)
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        fh.close()
        raise VidscaleError(f"{path}: not a readable animation ({_reason(exc)})") from None


def _reason(exc: BaseException) -> str:
    return str(getattr(exc, "strerror", None) or exc)


def _any_transparency(path: Path) -> bool:
    """Whether any frame has a pixel that is not fully opaque (decodes until one is found)."""
    fh, container = _open(path)
    try:
        for frame in container.decode(video=0):
            deep = max(c.bits for c in frame.format.components) > 8
            alpha = frame.to_ndarray(format="rgba64le" if deep else "rgba")[..., 3]
            if alpha.min() < np.iinfo(alpha.dtype).max:
                return True
        return False
    except av.error.FFmpegError:
        return False  # the real pass reports the damage
    finally:
        container.close()
        fh.close()


# --------------------------------------------------------------------------
# Writing

_RANK = {1: 0, 3: 1, 4: 2}  # channels: gray < RGB < RGBA
_LAYOUT = {1: "gray", 3: "RGB", 4: "RGBA"}


class AnimatedSink:
    """Frames into one animated APNG (.png/.apng), WebP (.webp) or GIF (.gif).

    Frame times come from each frame's pts and time_base; the last frame
    shows for its own `duration` when it has one (AnimatedFrame), else as
    long as the one before. `quality` (1-100) applies to WebP, 100 meaning
    lossless; `plays` is how often the animation runs, 0 = forever.
    """

    def __init__(self, path: Path, suffix: str, size: tuple[int, int], quality: int | None, warn: Warn,
                 plays: int = 0):
        if suffix not in _FORMAT_OF_SUFFIX:
            raise UsageError(f"{path}: no animated format for {suffix!r}")
        if quality is not None and not 1 <= quality <= 100:
            raise UsageError(f"image quality must be 1-100, got {quality}")
        self.path, self.format, self.size, self.warn = path, _FORMAT_OF_SUFFIX[suffix], size, warn
        self.quality = DEFAULT_WEBP_QUALITY if quality is None else quality
        self.plays = plays
        self.clock = _Clock(Fraction(1, 1000))  # replaced at the first frame
        self.channels = 0  # the first frame's: the file's layout
        self._writer: _Writer | None = None
        self._warned_fast = False

    def write(self, frame: Frame) -> None:
        pixels = frame.pixels
        self._check_layout(frame)
        if self._writer is None:
            self.clock = _Clock(self._time_base(frame))
            self._writer = self._open_writer(pixels)
        pts = self.clock.tick(frame)
        self._warn_if_too_fast()
        try:
            self._writer.write(pixels, pts)
        except av.error.FFmpegError as exc:
            raise VidscaleError(f"{self.path}: cannot write frame {frame.index} ({_reason(exc)})") from None

    def _check_layout(self, frame: Frame) -> None:
        h, w, channels = frame.pixels.shape
        if (h, w) != tuple(self.size):
            raise VidscaleError(f"{self.path}: frame {frame.index} is {w}x{h}, the animation "
                                f"{self.size[1]}x{self.size[0]}; its frames must match")
        self.channels = self.channels or channels
        # Gray -> RGB -> RGBA widen losslessly; the other way would drop colour or alpha.
        if _RANK[channels] > _RANK[self.channels]:
            raise VidscaleError(f"{self.path}: frame {frame.index} has {_LAYOUT[channels]} pixels, the "
                                f"animation {_LAYOUT[self.channels]}; its frames must match")

    def _warn_if_too_fast(self) -> None:
        # Browsers (and FFmpeg's webp demuxer) show GIF/WebP frames of 10 ms or less for 100 ms.
        step = self.clock.step
        if self.format != "apng" and step is not None and step <= Fraction(1, 100) and not self._warned_fast:
            self._warned_fast = True
            self.warn(f"{self.path.name}: frames of 10 ms or less play at 100 ms in most viewers")

    def _time_base(self, first: Frame) -> Fraction:
        # GIF counts centiseconds and WebP milliseconds; APNG delays are fractions,
        # so the source's own time base keeps them exact.
        if self.format == "gif":
            return Fraction(1, 100)
        if self.format == "apng" and first.time_base:
            return Fraction(first.time_base)
        return Fraction(1, 1000)

    def _open_writer(self, first: np.ndarray) -> _Writer:
        height, width = self.size
        if self.format == "gif":
            return _GifWriter(self.path, width, height, self.clock.time_base, self.plays)
        if self.format == "webp":
            return _WebpWriter(self.path, width, height, self.clock.time_base, self.plays, self.quality,
                               alpha=first.shape[2] == 4)
        return _ApngWriter(self.path, width, height, self.clock.time_base, self.plays, first)

    def write_packet(self, packet: object) -> None:
        raise VidscaleError("internal: an animated image output received a stream packet")

    def close(self) -> None:
        if self._writer is None:
            raise VidscaleError(f"{self.path}: no frames to write")
        self._writer.finish(self.clock.last_duration())

    def abort(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.abort()


def wants_animation(source: object, suffix: str) -> bool:
    """Whether an image output is written as an animation: .gif/.apng always
    (a still is a one-frame clip), .png/.webp when the source is animated, and
    .webp from a video (a short clip as an animated WebP, as .gif does)."""
    suffix = suffix.lower()
    animated_source = isinstance(source, AnimatedSource)
    return (suffix in ANIMATED_ONLY_SUFFIXES or (animated_source and suffix in ANIMATED_SUFFIXES)
            or (isinstance(source, VideoSource) and suffix == ".webp"))


class _Clock:
    """Frame times in the output's time base: strictly increasing, as muxers require."""

    def __init__(self, time_base: Fraction):
        self.time_base = time_base
        self.origin: Fraction | None = None  # the first frame's time: animations start at 0
        self.last: int | None = None
        self.step: Fraction | None = None  # seconds between the last two frames
        self.own: Fraction | None = None  # the last frame's own duration, in seconds

    def tick(self, frame: Frame) -> int:
        tb = Fraction(frame.time_base) if frame.time_base else None
        seconds = frame.pts * tb if frame.pts is not None and tb else frame.index * _DEFAULT_FRAME_S
        if self.origin is None:
            self.origin = seconds
        pts = round((seconds - self.origin) / self.time_base)
        if self.last is not None:
            pts = max(pts, self.last + 1)
            self.step = (pts - self.last) * self.time_base
        self.last = pts
        duration = getattr(frame, "duration", None)
        self.own = duration * tb if duration and tb else None
        return pts

    def last_duration(self) -> int:
        """The last frame's duration in output units (at least one)."""
        seconds = self.own or self.step or _DEFAULT_FRAME_S
        return max(1, round(seconds / self.time_base))


class _Writer(Protocol):
    def write(self, pixels: np.ndarray, pts: int) -> None: ...
    def finish(self, last_duration: int) -> None: ...
    def abort(self) -> None: ...


class _MuxWriter:
    """One encoder into one muxer. The newest packet is held back: only at the
    end is it known to be the last, whose duration the muxer may need."""

    def __init__(self, path: Path, muxer: str, codec: str, pix_fmt: str, width: int, height: int,
                 time_base: Fraction, muxer_options: dict[str, str], codec_options: dict[str, str]):
        self.path = path
        self.fh = open(path, "wb")  # a file object: no pattern or protocol reading of the name
        try:
            self.container = av.open(self.fh, "w", format=muxer, options=muxer_options)
        except av.error.FFmpegError:
            self.fh.close()
            raise
        self.stream = self.container.add_stream(codec, options=codec_options)
        self.stream.width, self.stream.height, self.stream.pix_fmt = width, height, pix_fmt
        self.stream.time_base = self.stream.codec_context.time_base = time_base
        self.time_base = time_base
        self.held: av.Packet | None = None

    def encode(self, frame: av.VideoFrame, pts: int) -> None:
        frame.pts, frame.time_base = pts, self.time_base
        self._mux(self.stream.encode(frame))

    def _mux(self, packets: list[av.Packet]) -> None:
        for packet in packets:
            if self.held is not None:
                self.container.mux(self.held)
            self.held = packet

    def finish(self, last_duration: int) -> None:
        try:
            self._mux(self.stream.encode(None))
            if self.held is not None:
                self.held.duration = round(last_duration * self.time_base / self.held.time_base)
                self.container.mux(self.held)
            self.container.close()
        except av.error.FFmpegError as exc:
            raise VidscaleError(f"{self.path}: cannot write animation ({_reason(exc)})") from None
        finally:
            self.fh.close()

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self.container.close()
        self.fh.close()


class _ApngWriter(_MuxWriter):
    def __init__(self, path: Path, width: int, height: int, time_base: Fraction, plays: int,
                 first: np.ndarray):
        self.layout = ({1: "gray", 3: "rgb", 4: "rgba"}[first.shape[2]], first.dtype == np.uint16)
        # PNG stores big-endian samples; swscale swaps from our little-endian arrays.
        pix_fmt = {("gray", False): "gray", ("gray", True): "gray16be", ("rgb", False): "rgb24",
                   ("rgb", True): "rgb48be", ("rgba", False): "rgba", ("rgba", True): "rgba64be"}[self.layout]
        super().__init__(path, "apng", "apng", pix_fmt, width, height, time_base,
                         {"plays": str(plays)}, {"pred": "mixed"})

    def write(self, pixels: np.ndarray, pts: int) -> None:
        pixels = _fit(pixels, *self.layout)
        data = pixels[..., 0] if pixels.shape[2] == 1 else pixels
        fmt = _NDARRAY_FORMATS[self.layout]
        self.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(data), format=fmt), pts)

    def finish(self, last_duration: int) -> None:
        super().finish(last_duration)
        # The muxer gives the last frame the delay before it: write the real one.
        _set_last_apng_delay(self.path, last_duration * self.time_base)


class _GifWriter(_MuxWriter):
    def __init__(self, path: Path, width: int, height: int, time_base: Fraction, plays: int):
        # The GIF loop field counts repeats after the first play; -1 writes none (one play).
        loop = 0 if plays == 0 else -1 if plays == 1 else plays - 1
        super().__init__(path, "gif", "gif", "pal8", width, height, time_base, {"loop": str(loop)}, {})
        self.quantize = GifQuantizer()

    def write(self, pixels: np.ndarray, pts: int) -> None:
        indices, palette = self.quantize(_fit(pixels, "rgba" if pixels.shape[2] == 4 else "rgb", False))
        self.encode(av.VideoFrame.from_ndarray((indices, palette), format="pal8"), pts)


class _WebpWriter:
    """libwebp's animation encoder hands back the finished file as one packet,
    so no muxer is involved: the bytes are patched and written here."""

    def __init__(self, path: Path, width: int, height: int, time_base: Fraction, plays: int,
                 quality: int, alpha: bool):
        self.path, self.plays, self.time_base = path, plays, time_base
        self.alpha = alpha
        self.codec = av.CodecContext.create("libwebp_anim", "w")
        self.codec.width, self.codec.height, self.codec.time_base = width, height, time_base
        if quality == 100:  # lossless needs RGB(A) input: from YUV it is far from exact
            self.codec.pix_fmt, self.codec.options = "bgra", {"lossless": "1"}
        else:
            self.codec.pix_fmt = "yuva420p" if alpha else "yuv420p"
            self.codec.options = {"quality": str(quality)}
        self.packets: list[av.Packet] = []

    def write(self, pixels: np.ndarray, pts: int) -> None:
        layout = "rgba" if self.alpha else "rgb"
        pixels = _fit(pixels, layout, False)
        frame = av.VideoFrame.from_ndarray(pixels, format=_NDARRAY_FORMATS[(layout, False)])
        frame.pts, frame.time_base = pts, self.time_base
        self.packets += self.codec.encode(frame)

    def finish(self, last_duration: int) -> None:
        try:
            self.packets += self.codec.encode(None)
        except av.error.FFmpegError as exc:
            raise VidscaleError(f"{self.path}: cannot write animation ({_reason(exc)})") from None
        data = b"".join(bytes(p) for p in self.packets)
        last_ms = max(1, round(last_duration * self.time_base * 1000))
        try:
            self.path.write_bytes(_patch_webp(data, last_ms, self.plays))
        except OSError as exc:
            raise VidscaleError(f"{self.path}: cannot write file: {exc.strerror or exc}") from None

    def abort(self) -> None:
        self.packets.clear()


def _fit(pixels: np.ndarray, layout: str, deep: bool) -> np.ndarray:
    """Pixels in `layout` (gray, rgb, rgba) at 8 or 16 bits."""
    if pixels.dtype == np.uint16 and not deep:
        pixels = ((pixels.astype(np.uint32) + 128) // 257).astype(np.uint8)  # round, don't truncate
    elif pixels.dtype == np.uint8 and deep:
        pixels = pixels.astype(np.uint16) * 257
    channels = pixels.shape[2]
    if layout == "gray":
        return pixels if channels == 1 else pixels[..., :1]  # only gray sources ask for gray
    rgb = np.repeat(pixels, 3, axis=2) if channels == 1 else pixels[..., :3]
    if layout == "rgb":
        return np.ascontiguousarray(rgb)
    alpha = pixels[..., 3:] if channels == 4 else np.full(rgb.shape[:2] + (1,), np.iinfo(rgb.dtype).max,
                                                          rgb.dtype)
    return np.ascontiguousarray(np.concatenate([rgb, alpha], axis=2))


# --------------------------------------------------------------------------
# Timing fixes in the written files


def _set_last_apng_delay(path: Path, seconds: Fraction) -> None:
    """Rewrite the delay of the last fcTL chunk (u16/u16 seconds) and its CRC."""
    delay = Fraction(seconds).limit_denominator(0xFFFF)
    num, den = min(delay.numerator, 0xFFFF), max(delay.denominator, 1)
    with open(path, "r+b") as fh:
        last = None
        pos = 8
        while True:
            fh.seek(pos)
            head = fh.read(8)
            if len(head) < 8:
                break
            length, kind = struct.unpack(">I4s", head)
            if kind == b"fcTL":
                last = pos
            if kind == b"IEND":
                break
            pos += 12 + length
        if last is None:
            return
        fh.seek(last + 8)
        data = bytearray(fh.read(26))
        data[20:24] = struct.pack(">HH", num, den)
        fh.seek(last + 8)
        fh.write(bytes(data) + struct.pack(">I", zlib.crc32(b"fcTL" + bytes(data))))


def _patch_webp(data: bytes, last_ms: int, plays: int) -> bytes:
    """Set the loop count (ANIM) and the last frame's duration (ANMF) of an animated WebP."""
    out = bytearray(data)
    pos, last = 12, None
    while pos + 8 <= len(out):
        kind, size = struct.unpack_from("<4sI", out, pos)
        if kind == b"ANIM":
            struct.pack_into("<H", out, pos + 12, min(plays, 0xFFFF))
        elif kind == b"ANMF":
            last = pos
        pos += 8 + size + (size & 1)
    if last is not None:  # duration: 24 bits after offsets and size
        out[last + 20:last + 23] = min(last_ms, 0xFFFFFF).to_bytes(3, "little")
    return bytes(out)


# --------------------------------------------------------------------------
# GIF palettes

GIF_TRANSPARENT = 255  # the palette index kept for transparent pixels
_PALETTE_SAMPLE = 10_000  # pixels k-means and the fit check see: a stable palette, fast at any size
_CELL_BITS = 6  # lookup cells: 64 levels a channel, at most ~3.5 off the nearest colour
_REFIT = 1.5  # a palette is rebuilt when a frame's error exceeds its first frame's this many times (+1)


class GifQuantizer:
    """Frames -> (HxW uint8 palette indices, 256x4 palette rows in PyAV's A,R,G,B order).

    A palette of up to 255 colours (the frame's own colours when it has no
    more, else k-means on a pixel sample) is kept while later frames still
    fit it: static areas then keep their indices, which the GIF encoder
    turns into skipped pixels, and one colour table serves the whole file.
    A frame that fits badly (a new scene) gets a new palette. Pixels take
    their nearest colour, undithered, through a lookup table filled as cells
    appear. Alpha below half becomes index GIF_TRANSPARENT, always kept free.
    """

    def __init__(self) -> None:
        self.colours = np.zeros((0, 3), np.uint8)
        self.codes = np.zeros(0, np.int32)  # packed RGB of `colours`, sorted, when exact
        self.exact = False  # the palette holds a frame's exact colours
        self.fit = 0.0  # mean error on the frame the palette was built from
        self.lut = np.full(1 << 3 * _CELL_BITS, -1, np.int16)

    def __call__(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h, w = pixels.shape[:2]
        rgb = pixels[..., :3].reshape(-1, 3)
        opaque = pixels[..., 3].reshape(-1) >= 128 if pixels.shape[2] == 4 else np.ones(h * w, bool)
        indices = np.full(h * w, GIF_TRANSPARENT, np.uint8)
        indices[opaque] = self._indices(rgb[opaque])
        return indices.reshape(h, w), self._palette()

    def _indices(self, rgb: np.ndarray) -> np.ndarray:
        cells = _cell_codes(rgb)
        if np.count_nonzero(np.bincount(cells, minlength=len(self.lut))) <= GIF_TRANSPARENT:
            codes = _packed(rgb)
            colours = np.unique(codes)
            if len(colours) <= GIF_TRANSPARENT:  # few colours: kept exactly
                if not (self.exact and np.isin(colours, self.codes).all()):
                    self._rebuild(_unpacked(colours), exact=True)
                return np.searchsorted(self.codes, codes).astype(np.uint8)
        if len(self.colours):
            indices = self._lookup(cells)
            if _error(rgb, self.colours, indices) <= _REFIT * self.fit + 1:
                return indices
        self._rebuild(_kmeans(rgb, GIF_TRANSPARENT), exact=False)
        indices = self._lookup(cells)
        self.fit = _error(rgb, self.colours, indices)
        return indices

    def _rebuild(self, colours: np.ndarray, exact: bool) -> None:
        self.colours, self.exact, self.fit = colours, exact, 0.0
        self.codes = _packed(colours)  # sorted when exact: np.unique's order
        self.lut.fill(-1)

    def _lookup(self, cells: np.ndarray) -> np.ndarray:
        present = np.zeros(len(self.lut), bool)
        present[cells] = True
        missing = np.flatnonzero(present & (self.lut < 0))
        if len(missing):
            self.lut[missing] = _nearest(_cell_centres(missing), self.colours)
        return self.lut[cells].astype(np.uint8)

    def _palette(self) -> np.ndarray:
        # Unused rows are opaque black: FFmpeg takes the row of lowest alpha (the first
        # of equals) as the transparent one.
        palette = np.zeros((256, 4), np.uint8)
        palette[:, 0] = 255
        palette[:len(self.colours), 1:] = self.colours
        palette[GIF_TRANSPARENT] = 0
        return palette


def gif_quantize(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One picture's palette indices and palette (see GifQuantizer)."""
    return GifQuantizer()(pixels)


def _packed(rgb: np.ndarray) -> np.ndarray:
    return (rgb[:, 0].astype(np.int32) << 16) | (rgb[:, 1].astype(np.int32) << 8) | rgb[:, 2]


def _unpacked(codes: np.ndarray) -> np.ndarray:
    return np.stack([codes >> 16, (codes >> 8) & 255, codes & 255], axis=1).astype(np.uint8)


def _cell_codes(rgb: np.ndarray) -> np.ndarray:
    shift, bits = 8 - _CELL_BITS, _CELL_BITS
    q = (rgb >> shift).astype(np.int32)
    return (q[:, 0] << 2 * bits) | (q[:, 1] << bits) | q[:, 2]


def _cell_centres(cells: np.ndarray) -> np.ndarray:
    mask, bits, size = (1 << _CELL_BITS) - 1, _CELL_BITS, 1 << (8 - _CELL_BITS)
    q = np.stack([cells >> 2 * bits, (cells >> bits) & mask, cells & mask], axis=1)
    return (q * size + size // 2).astype(np.uint8)


def _sample(n: int) -> np.ndarray:
    """The same positions for the same count: a given frame always gets the same palette."""
    if n <= _PALETTE_SAMPLE:
        return np.arange(n)
    return np.random.default_rng(0).choice(n, _PALETTE_SAMPLE, replace=False)


def _error(rgb: np.ndarray, colours: np.ndarray, indices: np.ndarray) -> float:
    pick = _sample(len(rgb))
    if not len(pick):
        return 0.0
    return float(np.abs(colours[indices[pick]].astype(np.int16) - rgb[pick]).mean())


def _kmeans(rgb: np.ndarray, k: int) -> np.ndarray:
    samples = rgb[_sample(len(rgb))].astype(np.float32)
    cv2.setRNGSeed(0)  # k-means++ seeding draws from OpenCV's own generator
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_MAX_ITER, 10, 0.5)
    _, _, centres = cv2.kmeans(samples, k, None, criteria, 1, cv2.KMEANS_PP_CENTERS)
    return np.clip(np.rint(centres), 0, 255).astype(np.uint8)


def _nearest(colours: np.ndarray, centres: np.ndarray, chunk: int = 8192) -> np.ndarray:
    """Index of the nearest centre (Euclidean RGB) for each colour, in chunks to bound memory."""
    c = centres.astype(np.float32)
    c_sq = (c * c).sum(axis=1)
    out = np.empty(len(colours), np.int16)
    for start in range(0, len(colours), chunk):
        x = colours[start:start + chunk].astype(np.float32)
        # |x - c|^2 = |x|^2 - 2 x.c + |c|^2, and |x|^2 is the same for every centre
        out[start:start + chunk] = np.argmin(c_sq[None, :] - 2 * x @ c.T, axis=1)
    return out

