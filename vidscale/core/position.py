"""Where a job begins in a clip: a time or a frame number, as `--start` and `--segment` write them."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from vidscale.errors import UsageError

# 83.5, 83.5s, 1:23.5, 01:23.500, 0:01:23.5 (seconds) or 200f (a frame number)
_SECONDS = re.compile(r"(\d+(?:\.\d*)?|\.\d+)s?")
_CLOCK = re.compile(r"(?:(\d+):)?(\d+):(\d{1,2}(?:\.\d*)?)")
_FRAMES = re.compile(r"(\d+)f")
TIME_OR_FRAMES = "seconds (90, 90s), a clock time (1:30, 0:01:30.5) or frames (500f)"


def parse_time_or_frames(text: str, flag: str) -> tuple[Fraction | None, int | None]:
    """(seconds, None) or (None, frames) from a duration or position as `flag` takes it.

    Decimal seconds stay exact (Fractions), so a time compares with frame
    timestamps without rounding.
    """
    t = str(text).strip().lower()
    if t.startswith("-"):
        raise UsageError(f"{flag} {text!r}: must be 0 or more")
    if m := _FRAMES.fullmatch(t):
        return None, int(m[1])
    if m := _SECONDS.fullmatch(t):
        return Fraction(m[1]), None
    if m := _CLOCK.fullmatch(t):
        hours, minutes, seconds = int(m[1] or 0), int(m[2]), Fraction(m[3])
        if (m[1] is not None and minutes >= 60) or seconds >= 60:
            raise UsageError(f"{flag} {text!r}: minutes and seconds of a clock time run 0-59")
        return 3600 * hours + 60 * minutes + seconds, None
    raise UsageError(f"{flag} {text!r}: give {TIME_OR_FRAMES}")


@dataclass(frozen=True)
class Position:
    """Where a job starts in a clip: a time from its first frame, or a frame number
    (0-based, in presentation order, as --frames counts)."""

    seconds: Fraction | None = None
    frame: int | None = None

    def text(self) -> str:
        """As --start takes it."""
        if self.frame is not None:
            return f"{self.frame}f"
        return f"{float(self.seconds):g}s"  # type: ignore[arg-type]

    def frame_at(self, fps: Fraction) -> int:
        """The frame number at a constant rate: frame i shows at i / fps."""
        return self.frame if self.frame is not None else math.ceil(self.seconds * fps)  # type: ignore[operator]


def parse_start(value: Any) -> Position:
    """`--start` from the CLI's text, or the library's number of seconds or text."""
    if isinstance(value, Position):
        return value
    if isinstance(value, (int, float, Fraction)) and not isinstance(value, bool):
        if not math.isfinite(value) or value < 0:
            raise UsageError(f"--start {value}: must be a number of seconds, 0 or more")
        return Position(seconds=Fraction(value))  # a float's exact value
    seconds, frame = parse_time_or_frames(str(value), "--start")
    return Position(seconds, frame)
