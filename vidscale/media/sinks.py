"""Sinks: where upscaled frames go. A video file, one image, a folder or a numbered pattern.

Every file appears complete or not at all (`atomic_output`). A video sink
re-encodes the main stream and carries every other stream of the source
through `StreamCopier`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vidscale.core.settings import EncoderSettings
from vidscale.encoding import VIDEO_SUFFIXES, has_alpha, choose_encoder
from vidscale.errors import UsageError, VidscaleError
from vidscale.media import hdr, yuv
from vidscale.media.animated.sink import ANIMATED_ONLY_SUFFIXES
from vidscale.media.atomic import TMP_MARK, atomic_output, make_folder
from vidscale.media.color import RgbConverter, for_rgb_source
from vidscale.media.containers import clock_for, muxer_of, muxer_options, tag_for_apple
from vidscale.media.frames import Failure, Frame
from vidscale.media.image import IMAGE_SUFFIXES, WHITE, keeps_alpha, to_rgb, write_image
from vidscale.media.names import ffmpeg_url
from vidscale.media.photo_meta import carries_meta
from vidscale.media.sequence import format_pattern, is_numbered
from vidscale.media.protocols import Source
from vidscale.media.source import VideoSource
from vidscale.media.streams import StreamCopier

Warn = Callable[[str], None]


class VideoSink:
    """Encodes frames into a new container; the source's other streams ride along."""

    def __init__(self, path: Path, suffix: str, size: tuple[int, int], source: Source,
                 settings: EncoderSettings, warn: Warn, carry: bool = True):
        """`carry`: bring the source's other streams along (False for a segment of a job,
        whose other streams join when the segments are put together)."""
        # a video's stream info, HDR side data and other streams come from its demuxer
        video = source if isinstance(source, VideoSource) else None
        self.suffix = suffix
        self._muxed = 0  # packets written before the encoder's flush
        self._last_slot: int | None = None
        self._warned_slots = False
        # Animations keep their own clock too (GIF: centiseconds), not --fps.
        self.clock = source.info
        deep = bool(video and video.info.deep)
        self.plan = choose_encoder(suffix, deep, video.info.pix_fmt if video else None, settings, self.time_base(settings))
        self.alpha = has_alpha(self.plan.pix_fmt)  # RGBA frames keep their alpha
        os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its whole configuration otherwise
        muxer = muxer_of(path.suffix)  # a segment of a job may use another container (.mov, .mp4)
        self.container = av.open(ffmpeg_url(path), "w", format=muxer, options=muxer_options(muxer, carry))
        self.converter = RgbConverter()
        self._warn, self._warned_alpha = warn, False
        self.color = video.info.color if video else for_rgb_source(size[1], size[0])
        self.stream = self._add_video_stream(size, video, settings)
        self.copier = (StreamCopier(video.container, self.container, skip={video.stream.index}, warn=warn)
                       if video and carry else None)
        self.frames, self.first_pts, self.last_pts = 0, None, None  # what was written

    def _add_video_stream(self, size: tuple[int, int], video: VideoSource | None,
                          settings: EncoderSettings) -> av.VideoStream:
        rate = (self.clock.rate if self.clock else None) or settings.fps
        stream = self.container.add_stream(self.plan.codec, rate=rate)
        ctx = stream.codec_context
        ctx.height, ctx.width = size
        ctx.pix_fmt = self.plan.pix_fmt
        ctx.time_base = stream.time_base = self.time_base(settings)
        ctx.options = hdr.encoder_options(self.plan.codec, dict(self.plan.options),
                                          hdr.read(video.path, video.info.color) if video else None)
        if self.plan.bit_rate is not None:
            ctx.bit_rate = self.plan.bit_rate
        ctx.colorspace, ctx.color_range = self.color.matrix, self.color.range
        ctx.color_primaries, ctx.color_trc = self.color.primaries, self.color.transfer
        tag_for_apple(stream, self.container.format.name.split(",")[0])
        if video:
            _copy_video_stream_info(video.stream, stream)
        return stream

    def time_base(self, settings: EncoderSettings) -> Fraction:
        """The clock frames are written on: the source's, or --fps for stills (AVI: its rate)."""
        if self.clock is None:
            return Fraction(1) / settings.fps
        return clock_for(self.suffix, self.clock.time_base, self.clock.rate or settings.fps)

    def _slot(self, frame: Frame) -> int:
        """The frame's pts on an AVI's clock: the nearest free slot at its rate, said once
        where that moves a frame by more than a quarter of a slot."""
        tb = self.stream.time_base
        exact = frame.pts * frame.time_base / tb
        slot = max(round(exact), self._last_slot + 1 if self._last_slot is not None else 0)
        if abs(slot - exact) > Fraction(1, 4) and not self._warned_slots:
            self._warn(f"{self.suffix} files keep a constant frame rate: frame times moved to the nearest "
                       f"1/{float(1 / tb):g} s (.mkv or .mp4 keep them)")
            self._warned_slots = True
        self._last_slot = slot
        return slot

    def write(self, frame: Frame) -> None:
        if isinstance(frame.pixels, yuv.YuvImage):  # already the encoder's format (device colour)
            out = yuv.to_frame(frame.pixels)
            out.colorspace, out.color_range = self.color.matrix, self.color.range
        else:
            out = self._from_rgb(frame)
        if self.suffix == ".avi":
            out.pts, out.time_base = self._slot(frame), self.stream.time_base
        else:
            out.pts, out.time_base = frame.pts, frame.time_base
        out.color_primaries, out.color_trc = self.color.primaries, self.color.transfer
        packets = self.stream.encode(out)
        self._muxed += len(packets)
        self.container.mux(packets)
        self.frames += 1
        self.first_pts = frame.pts if self.first_pts is None else self.first_pts
        self.last_pts = frame.pts

    def _from_rgb(self, frame: Frame) -> av.VideoFrame:
        assert isinstance(frame.pixels, np.ndarray)
        keep = self.alpha and frame.pixels.shape[2] == 4
        if frame.pixels.shape[2] == 4 and not keep and not self._warned_alpha:
            self._warn("video output keeps no transparency: alpha dropped")
            self._warned_alpha = True
        pixels = frame.pixels if keep else to_rgb(frame.pixels)
        return self.converter.from_rgb(pixels, self.plan.pix_fmt, self.color)

    def write_packet(self, packet: av.Packet) -> None:
        if self.copier:
            self.copier.write(packet)

    def wants(self, packet: av.Packet) -> bool:
        return bool(self.copier and self.copier.wants(packet))

    def carried_streams(self) -> list[av.stream.Stream]:
        return list(self.copier.streams_in) if self.copier else []

    def close(self) -> None:
        packets = self.stream.encode(None)
        if not self._muxed:  # every packet is here: a short clip or segment
            repair_decode_times(packets)
        self.container.mux(packets)
        if self.copier:
            self.copier.finish()
        self.container.close()

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self.container.close()


def repair_decode_times(packets: list[av.Packet]) -> None:
    """Give a whole stream's packets valid decode times where the encoder's are not.

    x265 derives its B-frame delay from the first frames' times and leaves it
    unset (garbage: dts -1.6e17, or above pts) when a clip or segment has fewer
    frames than that delay. The standard assignment is the presentation times
    in order, moved back by the least amount that keeps each at or before its
    packet's own pts.
    """
    pts = [p.pts for p in packets]
    if not packets or None in pts or _valid_decode_times(packets):
        return
    ordered = sorted(pts)  # type: ignore[type-var]
    delay = max(0, *(o - t for o, t in zip(ordered, pts)))  # type: ignore[operator]
    for packet, dts in zip(packets, ordered):
        packet.dts = dts - delay  # type: ignore[operator]


def _valid_decode_times(packets: list[av.Packet]) -> bool:
    span = max(p.pts for p in packets) - min(p.pts for p in packets) + 1
    dts = [p.dts for p in packets]
    return (None not in dts and all(a < b for a, b in zip(dts, dts[1:]))
            and all(p.pts - span <= p.dts <= p.pts for p in packets))


def _copy_video_stream_info(src: av.VideoStream, dst: av.VideoStream) -> None:
    """Metadata, disposition, sample aspect and rotation of the source's video stream."""
    copy_video_stream_tags(src, dst)
    sar = src.codec_context.sample_aspect_ratio or src.sample_aspect_ratio
    if sar and sar.numerator and sar != 1:
        dst.codec_context.sample_aspect_ratio = sar
    matrix = src.codec_context.coded_side_data.get("display_matrix")
    if matrix:
        dst.set_display_matrix([int.from_bytes(matrix[i:i + 4], "little", signed=True) for i in range(0, 36, 4)])


def copy_video_stream_tags(src: av.VideoStream, dst: av.VideoStream) -> None:
    """The source's video stream metadata (but what describes its encoding) and disposition."""
    for key, value in src.metadata.items():
        # alpha_mode: the Matroska muxer sets it from the pixel format, true only when alpha is kept
        if key.lower() not in ("encoder", "duration", "handler_name", "vendor_id", "alpha_mode"):
            dst.metadata[key] = value
    dst.disposition = src.disposition


class _PhotoWriter:
    """Writes one picture with its metadata and a quality near the source's."""

    def __init__(self, quality: int | None, warn: Warn, background: tuple[int, int, int] = WHITE):
        self.quality, self.warn, self.background = quality, warn, background
        self._warned: set[str] = set()

    def write(self, target: Path, frame: Frame) -> None:
        meta = frame.meta
        if meta is not None and (meta.exif or meta.icc or meta.xmp) and not carries_meta(target.suffix):
            self._warn_once(target.suffix, f"{target.suffix} outputs do not keep EXIF/ICC/XMP metadata")
            meta = None
        if frame.pixels.shape[2] == 4 and not keeps_alpha(target):
            self._warn_once(f"alpha{target.suffix}", f"{target.suffix} outputs keep no transparency: flattened onto "
                            f"#{bytes(self.background).hex()} (--background COLOR to choose)")
        write_image(target, frame.pixels, quality=self._quality(frame, target), meta=meta,
                    background=self.background)

    def _quality(self, frame: Frame, target: Path) -> int | None:
        if self.quality is not None:
            return self.quality
        lossy = target.suffix.lower() in (".jpg", ".jpeg", ".webp", ".avif")
        source_q = frame.meta.jpeg_quality if frame.meta else None
        return max(source_q, 75) if lossy and source_q else None  # never below a decent floor

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self.warn(message)


class _FrameFiles:
    """What sinks that write pictures share: no carried streams, nothing to finish."""

    def write_packet(self, item: object) -> None:
        raise VidscaleError("internal: an image output received a stream packet")

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


class ImageFileSink(_FrameFiles):
    """Exactly one picture into one image file."""

    def __init__(self, path: Path, quality: int | None, warn: Warn, background: tuple[int, int, int] = WHITE):
        self.path, self.count = path, 0
        self.writer = _PhotoWriter(quality, warn, background)

    def write(self, frame: Frame) -> None:
        if self.count:
            raise VidscaleError(f"{self.path}: the input has more than one frame; "
                                "write to a folder, a pattern like out/%04d.png, or a video")
        self.writer.write(self.path, frame)
        self.count += 1


class FolderSink(_FrameFiles):
    """One file per frame: the input's relative names, or numbers for video frames.

    Each file appears complete or not at all, so a file already there is a
    finished one: it is skipped (a stopped batch resumes) unless overwriting.
    Unreadable inputs are reported and counted, and the batch goes on.
    """

    def __init__(self, folder: Path, fmt: str | None, quality: int | None, overwrite: bool,
                 inputs: list[Path], warn: Warn, background: tuple[int, int, int] = WHITE):
        self.folder, self.fmt, self.overwrite, self.inputs = folder, fmt, overwrite, inputs
        self.writer = _PhotoWriter(quality, warn, background)
        self.warn = warn
        self.done = self.skipped = self.failed = 0

    def target(self, frame: Frame) -> Path:
        return self.target_for(frame.name or Path(f"{frame.index + 1:06d}.png"), frame.index)

    def target_for(self, name: Path, index: int) -> Path:
        return self.folder / (name.with_suffix(self.fmt) if self.fmt else name)

    def write(self, frame: Frame) -> None:
        target = self.target(frame)
        if target.exists() and not self.overwrite:
            self.skipped += 1
            return
        try:
            make_folder(target.parent, target, parents=True)  # a --recursive input's subfolder
            with atomic_output(target, overwrite=self.overwrite, inputs=self.inputs) as tmp:
                self.writer.write(tmp, frame)
        except UsageError:
            raise  # e.g. the output would overwrite an input: stop, whatever the batch
        except VidscaleError as exc:
            self.report(Failure(frame.name or target, str(exc)))
            return
        self.done += 1

    def write_packet(self, item: object) -> None:
        """Inputs that could not be read come as `Failure` items between the frames."""
        if not isinstance(item, Failure):
            super().write_packet(item)
        self.report(item)  # type: ignore[arg-type]

    def report(self, failure: Failure) -> None:
        self.failed += 1
        self.warn(f"skipped: {failure.message}")

    def remove_stale_temps(self) -> None:
        """Temporary files left by a killed run are never complete outputs."""
        if self.folder.is_dir():
            for stale in self.folder.rglob(f".*{TMP_MARK}*"):
                stale.unlink(missing_ok=True)


class PatternSink(FolderSink):
    """Numbered files from a printf pattern such as `out/%04d.png` (numbers start at 1)."""

    def __init__(self, pattern: Path, quality: int | None, overwrite: bool, inputs: list[Path], warn: Warn,
                 background: tuple[int, int, int] = WHITE):
        super().__init__(pattern.parent, None, quality, overwrite, inputs, warn, background)
        self.pattern = pattern

    def target_for(self, name: Path, index: int) -> Path:
        return format_pattern(self.pattern, index + 1)


def output_kind(spec: str) -> str:
    """'pattern', 'folder', 'image' or 'video', from how the output is written."""
    path = Path(spec)
    if is_numbered(path.name) and path.suffix.lower() in IMAGE_SUFFIXES:
        return "pattern"  # elsewhere '%' is literal: "50%.mp4" and "a%d.mp4" are single files
    if path.is_dir() or spec.endswith(("/", "\\")) or not path.suffix:
        return "folder"
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES or suffix in ANIMATED_ONLY_SUFFIXES:
        return "image"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    raise UsageError(f"{spec}: unsupported output type {suffix!r}")
