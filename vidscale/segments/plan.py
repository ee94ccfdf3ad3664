"""The plan of a segmented job: where the clip is cut.

Cuts go at keyframes, so each segment decodes on its own, and are found by
reading the packets' timestamps (no decoding). A segment holds the frames
whose pts lie in [start, end): the pts of its first keyframe up to the next
segment's. Decoders give frames out in pts order, so an open GOP's leading
pictures (which follow a keyframe in the file but show before it) fall to
the segment before, which decodes them with their references.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import av

from vidscale.errors import UsageError, VidscaleError
from vidscale.media.names import ffmpeg_url

DEFAULT_SECONDS = 20.0  # see benchmarks/results/*-segments-cpu.md
# Containers whose packets carry no usable pts, or whose seeking is not exact.
_UNCUTTABLE_FORMATS = frozenset({"h264", "hevc", "mpeg", "mpegts", "avi", "yuv4mpegpipe", "rawvideo"})


@dataclass(frozen=True)
class SegmentLength:
    """How long a segment should be: seconds, frames, or 0 for one segment (no cutting)."""

    seconds: float | None = DEFAULT_SECONDS
    frames: int | None = None

    @classmethod
    def parse(cls, text: str) -> "SegmentLength":
        """'20' or '20s' (seconds), '500f' (frames), '0' (the whole clip as one segment)."""
        t = text.strip().lower()
        try:
            if t.endswith("f"):
                n = int(t[:-1])
                if n < 0:
                    raise ValueError
                return cls(None, n)
            value = float(t[:-1] if t.endswith("s") else t)
        except ValueError:
            raise UsageError(f"--segment {text!r}: give seconds (20, 20s), frames (500f) or 0") from None
        if not math.isfinite(value) or value < 0:
            raise UsageError(f"--segment {text!r}: must be 0 or more")
        return cls(value, None)

    def frames_at(self, rate: Fraction | None) -> int:
        """Frames per segment (0: no cutting)."""
        if self.frames is not None:
            return self.frames
        if not self.seconds:
            return 0
        return max(1, round(self.seconds * float(rate or 24)))

    def text(self) -> str:
        return f"{self.frames}f" if self.frames is not None else f"{self.seconds:g}s"


@dataclass(frozen=True)
class Segment:
    index: int
    start: int  # pts of its first frame, a keyframe (stream time base)
    end: int | None  # pts of the next segment's first frame; None: to the end of the clip
    first_frame: int  # the clip's frame number of its first frame
    frames: int  # frames it holds, by the packet count
    warmup_from: int | None = None  # with --temporal: pts of the first frame that primes the filter


@dataclass(frozen=True)
class Plan:
    segments: tuple[Segment, ...]
    frames: int

    def to_json(self) -> dict:
        return {"frames": self.frames, "segments": [asdict(s) for s in self.segments]}

    @classmethod
    def from_json(cls, data: dict) -> "Plan":
        return cls(tuple(Segment(**s) for s in data["segments"]), int(data["frames"]))


def plan_segments(path: Path, length: SegmentLength, limit: int | None = None, warmup: int = 0) -> Plan:
    """Cut the clip's main video stream at keyframes into segments of about `length`.

    `limit` keeps only the first frames; `warmup` gives each segment after the first
    the pts of the frame that many frames before its start.
    """
    try:
        container = av.open(ffmpeg_url(path))
    except (av.error.FFmpegError, OSError) as exc:
        raise VidscaleError(f"{path}: not a readable media file ({exc})") from None
    with container:
        stream = next(s for s in container.streams.video
                      if not s.disposition & av.stream.Disposition.attached_pic)
        per = length.frames_at(stream.average_rate or stream.guessed_rate)
        pts, keys = _scan(container, stream) if per and container.format.name not in _UNCUTTABLE_FORMATS \
            else ([], set())
    if not pts:
        return _whole(limit)
    if limit is not None and limit < len(pts):
        end_of_plan: int | None = pts[limit]
        pts = pts[:limit]
    else:
        end_of_plan = None
    starts = [0]
    for i in range(1, len(pts)):
        if pts[i] in keys and i - starts[-1] >= per:
            starts.append(i)
    segments = []
    for k, first in enumerate(starts):
        last = starts[k + 1] if k + 1 < len(starts) else len(pts)
        end = pts[last] if last < len(pts) else end_of_plan
        warm = pts[max(0, first - warmup)] if warmup and first else None
        segments.append(Segment(k, pts[first], end, first, last - first, warm))
    return Plan(tuple(segments), len(pts))


def _whole(limit: int | None) -> Plan:
    """One segment: the clip as the decoder gives it (no seeking, no pts needed)."""
    return Plan((Segment(0, 0, None, 0, limit or 0),), limit or 0)


def _scan(container: av.container.InputContainer, stream: av.VideoStream) -> tuple[list[int], set[int]]:
    """The sorted pts of the stream's frames and the pts of its keyframes; ([], ...) when a
    packet has no pts (the clip then runs as one segment)."""
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
        return [], set()  # a damaged file runs as one segment, as far as it decodes
    pts.sort()  # decode order to presentation order
    if len(set(pts)) != len(pts):
        return [], set()  # duplicate timestamps: the pts windows would be ambiguous
    return pts, keys
