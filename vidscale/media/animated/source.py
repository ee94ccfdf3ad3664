"""Reading an animated GIF, WebP or APNG: its frames with their times.

PyAV's probe picks FFmpeg's `gif`, `webp_anim` and `apng` demuxers by
content; their decoders composite every frame onto the full canvas, with
`pts`/`duration` per frame. Frame and loop counts come from `header`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import av
import numpy as np

from vidscale.core.limits import DEFAULT_LIMITS, PixelLimits
from vidscale.core.position import Position
from vidscale.errors import UsageError, VidscaleError
from vidscale.media.animated.formats import NDARRAY_FORMATS, reason
from vidscale.media.animated.header import probe_animation
from vidscale.media.color import for_rgb_source
from vidscale.media.frames import Frame, VideoInfo
from vidscale.media.limits import header_size
from vidscale.media.window import ClipFile, StartGate, check_start


@dataclass
class AnimatedFrame(Frame):
    """A frame that also knows how long it shows, in `time_base` units."""

    duration: int | None = None


class AnimatedSource(ClipFile):
    """The frames of an animated GIF/WebP/APNG with their times.

    Every frame has the same layout, as batches and the sink need: RGBA when
    any frame has a pixel that is not fully opaque (found by one extra decode
    pass), else gray or RGB; uint16 for 16-bit APNG. `start` and `limit` are
    the window, as for `VideoSource`.
    """

    kind = "animated"
    video = None  # the encoder matches no stream of an animation
    root = None
    photos = False
    damage = None  # damage stops the job: decoding does not go past it

    def __init__(self, path: Path, limits: PixelLimits = DEFAULT_LIMITS, start: Position | None = None,
                 limit: int | None = None):
        self.path = path
        self.limit = limit  # stop after this many frames, as VideoSource
        self.start = start  # begin at this frame or time; times then start at 0
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
        self._to = NDARRAY_FORMATS[(self.layout, deep)]
        if start is not None:
            try:
                check_start(start, path, self.info.frames, self.seconds())
            except UsageError:
                self.close()
                raise

    def _layout(self, fmt: av.VideoFormat | None) -> str:
        if fmt is None or fmt.has_palette or any(c.is_alpha for c in fmt.components):
            if _any_transparency(self.path):
                return "rgba"
        if fmt is not None and fmt.name.startswith(("gray", "ya")):
            return "gray"
        return "rgb"

    def items(self, extra: Sequence[av.stream.Stream] = (), planes: bool = False) -> Iterator[Frame]:
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
            raise VidscaleError(f"{self.path}: cannot decode frame {gate.seen} ({reason(exc)})") from None
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
        raise VidscaleError(f"{path}: not a readable animation ({reason(exc)})") from None


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

