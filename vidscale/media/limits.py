"""Size limits, checked before pixels are allocated.

A small file can claim a huge picture (a PNG whose zeros inflate to
16000x16000, a GIF with a 1x1 frame on a 65535x65535 screen) and a sane
input can ask for an absurd output (x8 of a 100-megapixel photo). Both are
refused from the headers, with a line that says how to allow them.
Compressed metadata (PNG iCCP/zTXt/iTXt) is inflated with a cap.
"""

from __future__ import annotations

import io
import threading
import zlib
from pathlib import Path

from vidscale.errors import VidscaleError

# ICC profiles and XMP packets are kilobytes; no real one inflates past this.
MAX_INFLATED_BYTES = 16 << 20


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
