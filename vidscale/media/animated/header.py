"""An animation's header facts without decoding: its format, frame count and loop count.

FFmpeg's demuxers give neither count, so a small walk over the file's
chunks (PNG acTL, WebP ANIM/ANMF, GIF blocks) answers them, and answers
`is_animated` before any decoder is opened.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO


@dataclass(frozen=True)
class Animation:
    format: str  # "png", "webp" or "gif": the container family
    frames: int  # frames the file declares (APNG acTL) or holds (WebP ANMF, GIF images)
    plays: int  # times the animation plays; 0 = forever


def probe_animation(path: Path, max_frames: int | None = None) -> Animation | None:
    """What a PNG/WebP/GIF file says about its animation; None for other or malformed files.

    Counting stops at `max_frames` (enough for a yes/no answer).
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
            if head.startswith(b"\x89PNG\r\n\x1a\n"):
                return _png_animation(fh)
            if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
                return _webp_animation(fh, max_frames)
            if head[:6] in (b"GIF87a", b"GIF89a"):
                return _gif_animation(fh, max_frames)
    except (OSError, struct.error, ValueError):
        pass
    return None


def is_animated(path: Path) -> bool:
    """True for a GIF, WebP or APNG file with more than one frame; never raises."""
    animation = probe_animation(path, max_frames=2)
    return animation is not None and animation.frames > 1


def _read_exact(fh: BinaryIO, n: int) -> bytes:
    data = fh.read(n)
    if len(data) != n:
        raise ValueError("truncated")
    return data


def _png_animation(fh: BinaryIO) -> Animation:
    # An APNG announces itself with acTL before the first IDAT.
    fh.seek(8)
    while True:
        length, kind = struct.unpack(">I4s", _read_exact(fh, 8))
        if kind == b"acTL":
            frames, plays = struct.unpack(">II", _read_exact(fh, 8))
            return Animation("png", frames, plays)
        if kind in (b"IDAT", b"IEND"):
            return Animation("png", 1, 1)
        fh.seek(length + 4, 1)  # data and CRC


def _riff_chunks(fh: BinaryIO, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(fourcc, data offset, data size) of the chunks up to `end`."""
    pos = 12
    while pos + 8 <= end:
        fh.seek(pos)
        head = fh.read(8)
        if len(head) < 8:
            return
        kind, size = struct.unpack("<4sI", head)
        yield kind, pos + 8, size
        pos += 8 + size + (size & 1)  # chunks are padded to even sizes


def _webp_animation(fh: BinaryIO, max_frames: int | None) -> Animation:
    fh.seek(4)
    end = 8 + struct.unpack("<I", _read_exact(fh, 4))[0]
    animated, frames, plays = False, 0, 1
    for kind, offset, _ in _riff_chunks(fh, end):
        if kind == b"VP8X":
            fh.seek(offset)
            animated = bool(_read_exact(fh, 1)[0] & 0x02)
            if not animated:
                break
        elif kind == b"ANIM":
            fh.seek(offset + 4)  # after the background colour
            plays = struct.unpack("<H", _read_exact(fh, 2))[0]
        elif kind == b"ANMF":
            frames += 1
            if max_frames and frames >= max_frames:
                break
    return Animation("webp", frames, plays) if animated else Animation("webp", 1, 1)


def _skip_sub_blocks(fh: BinaryIO) -> None:
    while size := _read_exact(fh, 1)[0]:
        fh.seek(size, 1)


def _gif_animation(fh: BinaryIO, max_frames: int | None) -> Animation:
    fh.seek(10)
    packed = _read_exact(fh, 3)[0]
    if packed & 0x80:  # global colour table
        fh.seek(3 << ((packed & 7) + 1), 1)
    frames, repeats = 0, None
    while (block := fh.read(1)) not in (b"", b"\x3b"):  # 0x3b: trailer
        if block == b"\x2c":  # image descriptor
            frames += 1
            if max_frames and frames >= max_frames:
                break
            packed = _read_exact(fh, 9)[8]
            if packed & 0x80:  # local colour table
                fh.seek(3 << ((packed & 7) + 1), 1)
            fh.seek(1, 1)  # LZW minimum code size
            _skip_sub_blocks(fh)
        elif block == b"\x21":  # extension
            label = _read_exact(fh, 1)[0]
            if label == 0xFF:
                repeats = _netscape_repeats(fh, repeats)
            _skip_sub_blocks(fh)
        else:
            break  # damaged: what was counted stands
    # NETSCAPE counts repeats after the first play (0 = forever); none at all means one play.
    plays = 1 if repeats is None else 0 if repeats == 0 else repeats + 1
    return Animation("gif", frames, plays)


def _netscape_repeats(fh: BinaryIO, current: int | None) -> int | None:
    size = _read_exact(fh, 1)[0]
    ident = _read_exact(fh, size)
    if ident not in (b"NETSCAPE2.0", b"ANIMEXTS1.0"):
        return current
    size = _read_exact(fh, 1)[0]
    data = _read_exact(fh, size)
    if size >= 3 and data[0] == 1:
        return struct.unpack("<H", data[1:3])[0]
    return current

