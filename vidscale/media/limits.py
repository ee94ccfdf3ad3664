"""Size limits, checked before pixels are allocated.

A small file can claim a huge picture (a PNG whose zeros inflate to
16000x16000, a GIF with a 1x1 frame on a 65535x65535 screen) and a sane
input can ask for an absurd output (x8 of a 100-megapixel photo). Both are
refused from the headers, with a line that says how to allow them.
Compressed metadata (PNG iCCP/zTXt/iTXt) is inflated with a cap.
"""

from __future__ import annotations

import io
import re
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path

from vidscale.errors import UsageError, VidscaleError

# 100 MP takes a 108 MP phone or medium-format photo; 16000x16000 (256 MP) is refused.
DEFAULT_INPUT_PIXELS = 100_000_000
# x2 of a 100 MP photo, x4 of a 25 MP one; 8K video x2 is 133 MP.
DEFAULT_OUTPUT_PIXELS = 400_000_000
# ICC profiles and XMP packets are kilobytes; no real one inflates past this.
MAX_INFLATED_BYTES = 16 << 20


@dataclass(frozen=True)
class PixelLimits:
    """Most pixels per input frame and per output frame."""

    input: int = DEFAULT_INPUT_PIXELS
    output: int = DEFAULT_OUTPUT_PIXELS

    def check_input(self, path: Path | str, width: int, height: int) -> None:
        if width * height > self.input:
            raise VidscaleError(f"{path}: {width}x{height} is {_mp(width * height)} per frame, above the "
                                f"limit of {_mp(self.input)} (raise it with --max-pixels)")

    def check_output(self, width: int, height: int) -> None:
        if width * height > self.output:
            raise UsageError(f"the output would be {width}x{height} ({_mp(width * height)} per frame), above "
                             f"the limit of {_mp(self.output)} (choose a smaller size, or raise it with "
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


_PILLOW_LIMIT = threading.Lock()


def header_size(data: bytes | Path) -> tuple[int, int] | None:
    """(width, height) an image file declares (a GIF's logical screen), read from its header only.

    None for files the header reader does not know; FFmpeg reports those.
    """
    from PIL import Image

    with _PILLOW_LIMIT:  # a process-wide setting: one reader at a time switches it off and back
        saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # our limit, not Pillow's, decides
        try:
            with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as im:  # lazy: headers only
                return im.size
        except Exception:  # not an image Pillow knows, or a hostile header: FFmpeg's decode reports it
            return None
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def inflate(data: bytes, what: str, limit: int = MAX_INFLATED_BYTES) -> bytes:
    """zlib-decompress at most `limit` bytes; a stream that inflates past it is refused."""
    inflater = zlib.decompressobj()
    out = inflater.decompress(data, limit + 1)
    if len(out) > limit:
        raise VidscaleError(f"{what} inflates past {limit >> 20} MiB")
    return out


def _mp(pixels: int) -> str:
    return f"{pixels / 1e6:.4g} MP" if pixels >= 1_000_000 else f"{pixels} pixels"
