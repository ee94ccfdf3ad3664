"""The part of a clip a job keeps (`--start`, `--frames`), and the same cut of its other streams.

A start time counts from the clip's first frame and keeps the first frame at
or after it; a start frame counts decoded frames in presentation order from 0,
as `--frames` does. Where the packets' timestamps can be read (`scan`), the
start is found without decoding and reached by a seek to the keyframe before
it; elsewhere the frames before it are decoded and dropped (`StartGate`).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from vidscale.core.position import Position, parse_time_or_frames
from vidscale.errors import UsageError
from vidscale.media.frames import VideoInfo
from vidscale.media.protocols import Source

# Containers whose packets carry no usable pts, or whose seeking is not exact.
UNSEEKABLE_FORMATS = frozenset({"h264", "hevc", "mpeg", "mpegts", "avi", "yuv4mpegpipe", "rawvideo"})


def scan(container: av.container.InputContainer, stream: av.VideoStream) -> tuple[list[int], set[int]]:
    """The sorted pts of the stream's frames and the pts of its keyframes, read from the
    packets (no decoding); ([], set()) when they cannot be relied on. Reads `container`
    to its end: open one for the scan alone."""
    if container.format.name in UNSEEKABLE_FORMATS:
        return [], set()
    for other in container.streams:
        if other.index != stream.index:
            other.discard = av.stream.Discard.all  # not even read into packets
    pts: list[int] = []
    keys: set[int] = set()
    try:
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            if packet.pts is None:
                return [], set()
            pts.append(packet.pts)
            if packet.is_keyframe:
                keys.add(packet.pts)
    except av.error.FFmpegError:
        return [], set()  # a damaged file is decoded from its start, as far as it goes
    pts.sort()  # decode order to presentation order
    if len(set(pts)) != len(pts):
        return [], set()  # duplicate timestamps: a pts does not name one frame
    return pts, keys


def start_index(pts: list[int], time_base: Fraction, start: Position, path: Path) -> int:
    """The index in the sorted `pts` of the first frame `start` keeps."""
    if start.frame is not None:
        index = start.frame
    else:
        assert start.seconds is not None
        index = bisect_left(pts, math.ceil(pts[0] + start.seconds / time_base))  # at or after it
    if index >= len(pts):
        raise past_end(start, path, len(pts), (pts[-1] - pts[0]) * time_base)
    return index


def past_end(start: Position, path: Path, frames: int, last: Fraction | None = None,
             unit: str = "frame") -> UsageError:
    """The error for a start beyond the clip's last frame (`last`: that frame's time from the
    first), or beyond a sequence's last file."""
    at = f", the last at {float(last):.3f}s" if last is not None and start.seconds is not None else ""
    return UsageError(f"--start {start.text()}: past the end of {path} ({frames} {unit}{'s' * (frames != 1)}{at})")


def clip_seconds(container: av.container.InputContainer, stream: av.VideoStream,
                 time_base: Fraction) -> float:
    """A clip's length from its header (0: unknown)."""
    if stream.duration:
        return float(stream.duration * time_base)
    tag = stream.metadata.get("DURATION")  # Matroska's per-track tag (00:00:02.500000000)
    if tag:
        try:
            return float(parse_time_or_frames(tag, "DURATION")[0] or 0)
        except UsageError:
            pass
    return (container.duration or 0) / 1_000_000  # else the whole file's (subtitles included)


def check_start(start: Position, path: Path, frames: int, seconds: float) -> None:
    """A start that the header (`frames`, `seconds`: 0 when it does not say) already puts past
    the clip's end is refused at open, before a model loads; the exact check comes when the
    frames' timestamps are read."""
    if start.frame is not None and frames and start.frame >= frames:
        raise past_end(start, path, frames)
    if start.seconds is not None and seconds and start.seconds >= seconds:
        raise UsageError(f"--start {start.text()}: past the end of {path} ({seconds:.3f}s long)")


def clip_frames(info: VideoInfo, seconds: float, start: Position | None, limit: int | None) -> int | None:
    """About how many frames a clip's window holds, from its header; None when it does not say."""
    total = info.frames or (round(seconds * float(info.rate)) if seconds and info.rate else None)
    if total and start is not None:  # about: the exact frame is found when the job reads the clip
        skipped = start.frame if start.frame is not None else round(start.seconds * (info.rate or 0))
        total = max(1, total - skipped)
    return min(total, limit) if total and limit else total or limit


def files_kept(paths: list[Path], start: Position | None, limit: int | None, fps: Fraction, clocked: bool,
               name: Path) -> list[Path]:
    """The files of a sequence (`name`: its folder or pattern) that --start and --frames keep:
    a start skips a count of files, or a time at `fps` where the sequence is `clocked` (not a
    folder of pictures); --frames keeps the first N after it."""
    if start is not None:
        if start.frame is None and not clocked:
            raise UsageError(f"--start {start.text()}: a folder of pictures has no clock; give a count of "
                             "files to skip (--start 10f)")
        skip = start.frame_at(fps)
        if skip >= len(paths):
            raise past_end(start, name, len(paths), unit="file")
        paths = paths[skip:]
    return paths[:limit] if limit else paths


class StartGate:
    """Decode-and-drop up to the start, for clips whose timestamps cannot be scanned and
    for animations: `passes` is called once per decoded frame, in order."""

    def __init__(self, start: Position | None, rate: Fraction | None):
        self.start, self.rate = start, rate
        self.open = start is None
        self.seen = 0  # frames decoded so far
        self._origin: Fraction | None = None  # the first frame's time
        self._last: Fraction | None = None

    def passes(self, pts: int | None, time_base: Fraction | None) -> bool:
        index, self.seen = self.seen, self.seen + 1
        if self.open:
            return True
        start = self.start
        assert start is not None
        if start.frame is not None:
            self.open = index >= start.frame
            return self.open
        if pts is not None and time_base:
            t = pts * Fraction(time_base)
        else:  # no timestamp: the frame's place at the nominal rate
            t = Fraction(index) / Fraction(self.rate or 24)
        self._origin = t if self._origin is None else self._origin
        self._last = t - self._origin
        self.open = self._last >= start.seconds  # type: ignore[operator]
        return self.open

    def past_end(self, path: Path) -> UsageError:
        return past_end(self.start, path, self.seen, self._last)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Cut:
    """The stretch of the source's clock an output covers, in seconds: `start`, the first
    output frame's time (None: no --start, times stay as they are), to `end`, the time of
    the first frame after it (None: to the end). With a start, every time moves back by it,
    so the output starts at 0, as `ffmpeg -ss` before `-i` does."""

    start: Fraction | None = None
    end: Fraction | None = None

    def place(self, packet: av.Packet, kind: str, early: bool) -> bool:
        """Move a carried stream's packet onto the output's clock; False: it is outside.

        A packet that begins before the start and ends after it: audio is kept when
        `early` (the container stores times below 0, and players begin the sound at 0),
        else dropped, so the sound begins up to one packet late; a subtitle is shortened
        to begin at the start; anything else is dropped.
        """
        ts = packet.pts if packet.pts is not None else packet.dts
        tb = packet.time_base
        if ts is None or tb is None:
            return True  # e.g. cover art: no time to place
        begin = ts * tb
        if self.end is not None and begin >= self.end:
            return False
        if self.start is None:
            return True
        if begin < self.start:
            finish = begin + (packet.duration or 0) * tb
            if finish <= self.start or not (kind == "subtitle" or (kind == "audio" and early)):
                return False
            if kind == "subtitle":
                packet.duration = math.floor((finish - self.start) / tb)
                packet.pts = packet.dts = math.ceil(self.start / tb)
        shift = round(self.start / tb)
        if packet.pts is not None:
            packet.pts -= shift
        if packet.dts is not None:
            packet.dts -= shift
        return True

    def chapters(self, chapters: list[dict]) -> list[dict]:
        """The chapters that overlap the cut, clipped to it and moved with it."""
        kept = []
        for chapter in chapters:
            tb = Fraction(chapter["time_base"])
            begin, finish = chapter["start"] * tb, chapter["end"] * tb
            low = self.start or Fraction(0)
            ends_before = finish <= low if finish > begin else begin < low  # a span, or a point
            if ends_before or (self.end is not None and begin >= self.end):
                continue
            begin, finish = max(begin, low), min(finish, self.end) if self.end is not None else max(finish, low)
            kept.append({**chapter, "start": round((begin - low) / tb), "end": round((finish - low) / tb)})
        return kept


class ClipFile(Source):
    """What a source read from one container file (a video, an animation) answers alike from its
    `path`, `container`, `stream`, `info` and window."""

    path: Path
    container: av.container.InputContainer
    stream: av.video.stream.VideoStream
    info: VideoInfo
    start: Position | None
    limit: int | None

    @property
    def paths(self) -> list[Path]:
        return [self.path]

    def first_size(self) -> tuple[int, int]:
        return self.info.height, self.info.width

    def seconds(self) -> float:
        """The length from the header (0: unknown)."""
        return clip_seconds(self.container, self.stream, self.info.time_base)

    def frame_estimate(self) -> int | None:
        return clip_frames(self.info, self.seconds(), self.start, self.limit)
