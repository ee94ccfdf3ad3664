"""Sources: what a job reads. A video file, or a list of images (one image is a one-frame clip).

A source yields `Frame`s (RGB arrays with their timestamps) and, for video,
the packets of the other streams the sink carries, in file order. Both are
`protocols.Source`s; `opener.open_source` picks the reader for a path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vidscale.core.limits import DEFAULT_LIMITS, PixelLimits
from vidscale.core.position import Position
from vidscale.errors import VidscaleError
from vidscale.media import yuv
from vidscale.media.color import RgbConverter, bit_depth, color_of
from vidscale.media.containers import main_video
from vidscale.media.frames import Failure, Frame, VideoInfo
from vidscale.media.image import read_picture
from vidscale.media.names import ffmpeg_url
from vidscale.media.protocols import Source
from vidscale.media.window import (ClipFile, StartGate, check_start, files_kept, scan,
                                   start_index)


def _fail(path: Path, what: str, exc: BaseException) -> VidscaleError:
    return VidscaleError(f"{path}: {what} ({_why(exc)})")


def _why(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return getattr(exc, "strerror", None) or (lines[0] if lines else type(exc).__name__)


class VideoSource(ClipFile):
    """A media file demuxed and decoded with PyAV; RGBA frames when the stream has alpha.

    `start` and `limit` are the window (--start, --frames); a start the header puts past the
    end is refused here."""

    kind = "video"
    root = None
    photos = False
    plays = 0

    def __init__(self, path: Path, limits: PixelLimits = DEFAULT_LIMITS, start: Position | None = None,
                 limit: int | None = None):
        self.path = path
        try:
            self.container = av.open(ffmpeg_url(path))
        except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
            raise _fail(path, "not a readable media file", exc) from None
        self.limit = limit  # stop after this many frames
        self.start = start  # begin at this frame or time (--start)
        self.damage: str | None = None  # why decoding skipped or stopped early, if it did
        try:
            self._read_header(path, limits)
        except BaseException:
            self.close()  # a refused file is not left open
            raise

    def _read_header(self, path: Path, limits: PixelLimits) -> None:
        """The stream, its decoder and what they say; refuses what cannot be read, is too big or
        starts past its end."""
        self.stream = self._main_video_stream()
        ctx = self.stream.codec_context
        if ctx is None:
            raise VidscaleError(f"{path}: no decoder for its video stream in this FFmpeg build")
        self.stream.thread_type = "AUTO"
        self.info = VideoInfo(
            width=ctx.width, height=ctx.height, time_base=self.stream.time_base or Fraction(1, 90000),
            rate=self.stream.average_rate or self.stream.guessed_rate, frames=self.stream.frames or 0,
            deep=ctx.format is not None and bit_depth(ctx.format) > 8,
            pix_fmt=ctx.format.name if ctx.format else "yuv420p", color=color_of(ctx))
        if not ctx.width or not ctx.height:
            raise VidscaleError(f"{path}: video stream has no picture size")
        limits.check_input(path, ctx.width, ctx.height)
        self.decoder = self._alpha_decoder()  # None: the stream's own decoder
        if self.decoder is not None:
            self.info.alpha, self.info.pix_fmt = True, "yuva420p"
        elif ctx.format is not None and any(c.is_alpha for c in ctx.format.components):
            self.info.alpha = True  # e.g. ProRes 4444, PNG or QuickTime RLE with alpha
        if self.start is not None:
            check_start(self.start, path, self.info.frames, self.seconds())

    @property
    def video(self) -> VideoInfo:
        return self.info

    def _alpha_decoder(self) -> av.VideoCodecContext | None:
        """A libvpx decoder for VP8/VP9 with alpha: FFmpeg's native ones ignore the alpha plane,
        which Matroska carries in BlockAdditional side data."""
        name = {"vp8": "libvpx", "vp9": "libvpx-vp9"}.get(self.stream.codec_context.name)
        if name is None or self.stream.metadata.get("alpha_mode", self.stream.metadata.get("ALPHA_MODE")) != "1":
            return None
        try:
            ctx = av.CodecContext.create(name, "r")
        except (av.error.FFmpegError, ValueError):
            return None  # FFmpeg built without libvpx: opaque, as before
        src = self.stream.codec_context
        if src.extradata:
            ctx.extradata = src.extradata
        ctx.width, ctx.height = src.width, src.height
        ctx.thread_type = "AUTO"
        return ctx

    def _main_video_stream(self) -> av.VideoStream:
        video = main_video(self.container)
        if video is None:
            raise VidscaleError(f"{self.path}: no video stream")
        return video

    def items(self, extra: Sequence[av.stream.Stream] = (),
              planes: bool = False) -> Iterator[Frame | av.Packet]:
        """Decoded frames of the main stream, and packets of `extra` streams, in file order;
        from `start` on (then without `extra` packets: they are cut apart, see `window.Cut`).
        `planes`: frames as the decoder's YUV planes (`YuvImage`) where supported.

        Damage after the first frame does not stop the job: a packet that does
        not decode is skipped and a container that cannot be read further ends
        the stream; `damage` keeps the first reason, for the job's warning.
        """
        found = self._find_start() if self.start is not None else None
        if found is not None and found[0] > 0:
            yield from self.window(found[1], found[2], planes=planes)
            return
        gate = StartGate(self.start if found is None else None, self.info.rate)  # None: found at frame 0
        converter = RgbConverter()
        index = 0
        try:
            for packet in self.container.demux(self.stream, *extra):
                if packet.stream.index != self.stream.index:
                    if packet.dts is not None or packet.pts is not None:
                        yield packet
                    continue
                for frame in self._decode(packet, index):
                    if not gate.passes(frame.pts, frame.time_base):
                        continue
                    yield self._frame(frame, index, converter, planes)
                    index += 1
                    if index == self.limit:
                        return
        except av.error.FFmpegError as exc:
            if index == 0:
                raise _fail(self.path, f"cannot decode frame {gate.seen}", exc) from None
            self.damage = self.damage or f"unreadable after frame {index}: {_why(exc)}"
        if index == 0 and not gate.open:
            raise gate.past_end(self.path)
        if index == 0:
            why = f" ({self.damage})" if self.damage else ""
            raise VidscaleError(f"{self.path}: no decodable video frames{why}")

    def _find_start(self) -> tuple[int, int, int | None] | None:
        """(index, pts) of the first frame `start` keeps and the pts after the `limit`th from it,
        from a scan of the packets; None when their timestamps cannot be used (the start is
        then reached by decoding)."""
        assert self.start is not None
        try:
            with av.open(ffmpeg_url(self.path)) as probe:
                pts, _ = scan(probe, probe.streams[self.stream.index])
        except (av.error.FFmpegError, OSError):
            return None
        if not pts:
            return None
        first = start_index(pts, self.info.time_base, self.start, self.path)
        last = first + self.limit if self.limit is not None else len(pts)
        return first, pts[first], pts[last] if last < len(pts) else None

    def _decode(self, packet: av.Packet, index: int) -> list[av.VideoFrame]:
        try:
            return self.decoder.decode(packet) if self.decoder else packet.decode()
        except av.error.FFmpegError as exc:
            self.damage = self.damage or f"frame {index} does not decode: {_why(exc)}"
            return []

    def window(self, start: int, end: int | None, first_index: int = 0,
               warmup_from: int | None = None, planes: bool = False) -> Iterator[Frame]:
        """The frames with `start <= pts < end` (pts in the stream's time base), `start` being a
        frame's: a segment of the clip, decoded on its own from the keyframe at or before it.
        With `warmup_from`, the frames from that pts up to `start` come first, marked `warmup`;
        `planes` as for `items`."""
        begin = start if warmup_from is None else warmup_from
        try:
            self.container.seek(begin, backward=True, stream=self.stream)
        except av.error.FFmpegError as exc:
            raise _fail(self.path, "cannot seek", exc) from None
        converter, index, found = RgbConverter(), first_index, False
        try:
            for packet in self.container.demux(self.stream):
                for frame in self._decode(packet, index):
                    if frame.pts is None:
                        raise VidscaleError(f"{self.path}: a frame has no timestamp, so the clip cannot be "
                                            "cut into segments (use --segment 0)")
                    if frame.pts < begin:
                        continue  # before the segment (or a leading picture of an open GOP)
                    if not found and frame.pts != begin:
                        raise VidscaleError(f"{self.path}: seeking to {begin} landed at {frame.pts}; "
                                            "this file cannot be cut into segments (use --segment 0)")
                    found = True
                    if end is not None and frame.pts >= end:
                        return  # decoders hand out frames in pts order: the segment is complete
                    out = self._frame(frame, index if frame.pts >= start else -1, converter, planes)
                    out.warmup = frame.pts < start
                    index += not out.warmup
                    yield out
        except av.error.FFmpegError as exc:
            raise _fail(self.path, f"cannot decode frame {index}", exc) from None

    def _frame(self, frame: av.VideoFrame, index: int, converter: RgbConverter, planes: bool) -> Frame:
        if (frame.width, frame.height) != (self.info.width, self.info.height):
            raise VidscaleError(f"{self.path}: frame {index} is {frame.width}x{frame.height} where the stream "
                                f"says {self.info.width}x{self.info.height}; a size change within a stream "
                                "is refused (cut the video where its size changes)")
        color = color_of(frame)
        if planes and not self.info.alpha and yuv.supports(frame.format.name):
            pixels: np.ndarray | yuv.YuvImage = yuv.from_frame(frame)
        else:
            pixels = converter.to_rgb(frame, color, self.info.deep, alpha=self.info.alpha)
        return Frame(pixels, index, frame.pts, frame.time_base or self.info.time_base, color=color)

    def close(self) -> None:
        self.container.close()


class ImageSource(Source):
    """Still images in order; each is a frame, sizes may differ.

    `start` and `limit` keep part of the sequence (see `window.files_kept`; `name`: the folder
    or pattern it came from, for messages). Read as a `batch`, an unreadable image becomes a
    `Failure` item and the rest go on (photo batches); otherwise it stops the job.
    """

    kind = "images"
    info = None
    video = None
    plays = 0
    damage = None

    def __init__(self, paths: list[Path], root: Path | None, fps: Fraction,
                 limits: PixelLimits = DEFAULT_LIMITS, start: Position | None = None, limit: int | None = None,
                 name: Path | None = None):
        self.root, self.fps, self.limits, self.start, self.limit = root, fps, limits, start, limit
        self.paths = files_kept(paths, start, limit, fps, root is None, name or root or paths[0])
        self.tolerant = False
        self.skip: set[Path] = set()  # inputs whose outputs already exist

    @property
    def photos(self) -> bool:
        return self.root is not None or len(self.paths) < 2

    def name_of(self, path: Path) -> Path:
        return path.relative_to(self.root) if self.root else Path(path.name)

    def batch(self, finished: Callable[[Path, int], bool] | None) -> int:
        """Read as a resumable batch: an unreadable picture becomes a `Failure` and the rest go
        on, and a picture whose output is `finished(name, index)` is not decoded again. Returns
        how many are skipped."""
        self.tolerant = True
        if finished is not None:
            self.skip = {p for i, p in enumerate(self.paths) if finished(self.name_of(p), i)}
        return len(self.skip)

    def first_size(self) -> tuple[int, int]:
        return read_picture(self.paths[0], self.limits).pixels.shape[:2]

    def frame_estimate(self) -> int:
        return len(self.paths)

    def items(self, extra: Sequence[av.stream.Stream] = (),
              planes: bool = False) -> Iterator[Frame | Failure]:
        tb = 1 / self.fps
        for index, path in enumerate(self.paths):
            if path in self.skip:
                continue
            try:
                picture = read_picture(path, self.limits)
            except VidscaleError as exc:
                if not self.tolerant:
                    raise
                yield Failure(self.name_of(path), str(exc))
                continue
            yield Frame(picture.pixels, index, index, tb, name=self.name_of(path),
                        meta=picture.meta, source_suffix=path.suffix.lower())

    def close(self) -> None:
        pass
