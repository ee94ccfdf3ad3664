"""Pixel limits, per input frame and per output frame, and their `--max-pixels` spelling."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from vidscale.errors import UsageError, VidscaleError

# 100 MP takes a 108 MP phone or medium-format photo; 16000x16000 (256 MP) is refused.
DEFAULT_INPUT_PIXELS = 100_000_000
# x2 of a 100 MP photo, x4 of a 25 MP one; 8K video x2 is 133 MP.
DEFAULT_OUTPUT_PIXELS = 400_000_000


@dataclass(frozen=True)
class PixelLimits:
    """Most pixels per input frame and per output frame."""

    input: int = DEFAULT_INPUT_PIXELS
    output: int = DEFAULT_OUTPUT_PIXELS

    def check_input(self, path: Path | str, width: int, height: int) -> None:
        if width * height > self.input:
            raise VidscaleError(f"{path}: {width}x{height} is {mp(width * height)} per frame, above the "
                                f"limit of {mp(self.input)} (raise it with --max-pixels)")

    def check_output(self, width: int, height: int) -> None:
        if width * height > self.output:
            raise UsageError(f"the output would be {width}x{height} ({mp(width * height)} per frame), above "
                             f"the limit of {mp(self.output)} (choose a smaller size, or raise it with "
                             "--max-pixels IN,OUT)")


DEFAULT_LIMITS = PixelLimits()
_COUNT = re.compile(r"(\d+(?:\.\d+)?)([kKmMgG]?)")
_UNITS = {"": 1, "k": 1_000, "m": 1_000_000, "g": 1_000_000_000}


def parse_max_pixels(text: str) -> PixelLimits:
    """`IN` or `IN,OUT` pixel counts, e.g. `200M` or `200M,1G` (OUT defaults to 4 x IN, at least the default)."""
    parts = [_count(p, text) for p in text.split(",")]
    if len(parts) > 2:
        raise UsageError(f"--max-pixels {text}: expected IN or IN,OUT")
    output = parts[1] if len(parts) == 2 else max(4 * parts[0], DEFAULT_OUTPUT_PIXELS)
    return PixelLimits(parts[0], output)


def _count(part: str, text: str) -> int:
    m = _COUNT.fullmatch(part.strip())
    value = round(float(m.group(1)) * _UNITS[m.group(2).lower()]) if m else 0
    if value < 1:
        raise UsageError(f"--max-pixels {text}: expected pixel counts such as 100M or 100M,400M")
    return value


def mp(pixels: int) -> str:
    return f"{pixels / 1e6:.4g} MP" if pixels >= 1_000_000 else f"{pixels} pixels"
