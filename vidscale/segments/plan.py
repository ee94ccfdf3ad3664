"""The plan of a segmented job: where the clip is cut.

Cuts go at keyframes, so each segment decodes on its own, and are found by
reading the packets' timestamps (no decoding). A segment holds the frames
whose pts lie in [start, end): the pts of its first keyframe up to the next
segment's. Decoders give frames out in pts order, so an open GOP's leading
pictures (which follow a keyframe in the file but show before it) fall to
the segment before, which decodes them with their references. With --start,
the plan covers the clip from the start frame on: the first segment begins
there, keyframe or not (its decode seeks to the keyframe before and drops the
frames up to it).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import av

from vidscale.core.position import Position, parse_time_or_frames
from vidscale.errors import VidscaleError
from vidscale.media.containers import main_video
from vidscale.media.names import ffmpeg_url
from vidscale.media.window import scan, start_index

DEFAULT_SECONDS = 20.0  # see benchmarks/results/*-segments-cpu.md


@dataclass(frozen=True)
class SegmentLength:
    """How long a segment should be: seconds, frames, or 0 for one segment (no cutting)."""

    seconds: float | None = DEFAULT_SECONDS
    frames: int | None = None

    @classmethod
    def parse(cls, text: str) -> "SegmentLength":
        """'20' or '20s' (seconds, or a clock time: '1:30'), '500f' (frames), '0' (the whole
        clip as one segment)."""
        seconds, frames = parse_time_or_frames(text, "--segment")
        return cls(None, frames) if frames is not None else cls(float(seconds), None)  # type: ignore[arg-type]

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
    start: int  # pts of its first frame, a keyframe but for a --start (stream time base)
    end: int | None  # pts of the next segment's first frame; None: to the end of the clip
    first_frame: int  # the clip's frame number of its first frame
    frames: int  # frames it holds, by the packet count
    warmup_from: int | None = None  # with --temporal: pts of the first frame that primes the filter


@dataclass(frozen=True)
class SegmentPlan:
    """The segments a clip is cut into; the state folder keeps it (job.json's "plan")."""

    segments: tuple[Segment, ...]
    frames: int
    scanned: bool = True  # False: one segment decoded from the clip's start (its pts unknown)

    def to_json(self) -> dict:
        return {"frames": self.frames, "segments": [asdict(s) for s in self.segments], "scanned": self.scanned}

    @classmethod
    def from_json(cls, data: dict) -> "SegmentPlan":
        return cls(tuple(Segment(**s) for s in data["segments"]), int(data["frames"]), data.get("scanned", True))


def plan_segments(path: Path, length: SegmentLength, limit: int | None = None, warmup: int = 0,
                  start: Position | None = None) -> SegmentPlan:
    """Cut the clip's main video stream at keyframes into segments of about `length`.

    With `start`, the plan covers the clip from the first frame it keeps (the first
    segment begins there, on a keyframe or not); `limit` keeps only that many frames;
    `warmup` gives each segment after the first the pts of the frame that many frames
    before its start (within the plan).
    """
    try:
        container = av.open(ffmpeg_url(path))
    except (av.error.FFmpegError, OSError) as exc:
        raise VidscaleError(f"{path}: not a readable media file ({exc})") from None
    with container:
        stream = main_video(container)
        if stream is None:
            raise VidscaleError(f"{path}: no video stream")
        per = length.frames_at(stream.average_rate or stream.guessed_rate)
        pts, keys = scan(container, stream) if per or start is not None else ([], set())
        time_base = Fraction(stream.time_base or Fraction(1, 90000))
    if not pts:
        return _whole(limit)
    first_kept = start_index(pts, time_base, start, path) if start is not None else 0
    pts = pts[first_kept:]
    if limit is not None and limit < len(pts):
        end_of_plan: int | None = pts[limit]
        pts = pts[:limit]
    else:
        end_of_plan = None
    starts = [0]
    for i in range(1, len(pts)):
        if per and pts[i] in keys and i - starts[-1] >= per:
            starts.append(i)
    segments = []
    for k, first in enumerate(starts):
        last = starts[k + 1] if k + 1 < len(starts) else len(pts)
        end = pts[last] if last < len(pts) else end_of_plan
        warm = pts[max(0, first - warmup)] if warmup and first else None
        segments.append(Segment(k, pts[first], end, first_kept + first, last - first, warm))
    return SegmentPlan(tuple(segments), len(pts))


def _whole(limit: int | None) -> SegmentPlan:
    """One segment: the clip as the decoder gives it (no seeking, no pts needed); a start
    is then reached by decoding."""
    return SegmentPlan((Segment(0, 0, None, 0, limit or 0),), limit or 0, scanned=False)
