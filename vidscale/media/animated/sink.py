"""Writing an animated APNG, WebP or GIF: frame times from each frame's pts, and the last
frame's own duration kept (the muxers derive every delay but the last: see `writers`)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av

from vidscale.errors import UsageError, VidscaleError
from vidscale.media.animated.formats import reason
from vidscale.media.animated.writers import Writer, open_writer
from vidscale.media.frames import Frame
from vidscale.media.image import DEFAULT_WEBP_QUALITY

Warn = Callable[[str], None]

# Suffixes only an animation writer takes; .png/.webp are animated when the source is.
ANIMATED_ONLY_SUFFIXES: tuple[str, ...] = (".gif", ".apng")
ANIMATED_SUFFIXES: tuple[str, ...] = (".gif", ".apng", ".png", ".webp")

FORMAT_OF_SUFFIX = {".png": "apng", ".apng": "apng", ".webp": "webp", ".gif": "gif"}
DEFAULT_FRAME_S = Fraction(1, 10)  # a frame with no known duration (browsers' GIF default)

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
        if suffix not in FORMAT_OF_SUFFIX:
            raise UsageError(f"{path}: no animated format for {suffix!r}")
        if quality is not None and not 1 <= quality <= 100:
            raise UsageError(f"image quality must be 1-100, got {quality}")
        self.path, self.format, self.size, self.warn = path, FORMAT_OF_SUFFIX[suffix], size, warn
        self.quality = DEFAULT_WEBP_QUALITY if quality is None else quality
        self.plays = plays
        self.clock = _Clock(Fraction(1, 1000))  # replaced at the first frame
        self.channels = 0  # the first frame's: the file's layout
        self._writer: Writer | None = None
        self._warned_fast = False

    def write(self, frame: Frame) -> None:
        pixels = frame.pixels
        self._check_layout(frame)
        if self._writer is None:
            self.clock = _Clock(self._time_base(frame))
            self._writer = open_writer(self.format, self.path, self.size, self.clock.time_base, self.plays,
                                       self.quality, pixels)
        pts = self.clock.tick(frame)
        self._warn_if_too_fast()
        try:
            self._writer.write(pixels, pts)
        except av.error.FFmpegError as exc:
            raise VidscaleError(f"{self.path}: cannot write frame {frame.index} ({reason(exc)})") from None

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
        seconds = frame.pts * tb if frame.pts is not None and tb else frame.index * DEFAULT_FRAME_S
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
        seconds = self.own or self.step or DEFAULT_FRAME_S
        return max(1, round(seconds / self.time_base))

