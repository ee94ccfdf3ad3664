"""Uploads: what the page accepts, how big, and the checks before a job is queued.

A file is streamed to disk under a name of our own choosing (never the client's),
counted as it arrives, and refused once it passes the byte limit (the page's own:
the CLI reads files already on disk). Then its frame size is read from the headers
(a picture's by Pillow, as the CLI reads it, else the first video stream's by
FFmpeg) and checked with the CLI's pixel limits (`--max-pixels`) before and after
upscaling, in the CLI's words. The formats are those the CLI reads.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import av
import av.error

from vidscale.core.limits import DEFAULT_LIMITS, PixelLimits
from vidscale.encoding import VIDEO_SUFFIXES
from vidscale.errors import UsageError, VidscaleError
from vidscale.media.containers import main_video
from vidscale.media.image import IMAGE_SUFFIXES
from vidscale.media.limits import header_size
from vidscale.scale import MAX_SCALE, output_size

PICTURE_SUFFIXES = (*IMAGE_SUFFIXES, ".gif")
ACCEPTED_SUFFIXES = (*PICTURE_SUFFIXES, *VIDEO_SUFFIXES)


class TooLarge(VidscaleError):
    """An upload over the byte limit, or frames over the pixel limits (HTTP 413)."""


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 4 * 1024**3  # a few minutes of high-bitrate 1080p
    pixels: PixelLimits = DEFAULT_LIMITS  # per frame, before and after upscaling: the CLI's --max-pixels

    def public(self) -> dict[str, int]:
        return {"max_bytes": self.max_bytes, "max_input_pixels": self.pixels.input,
                "max_output_pixels": self.pixels.output}


NAME_BYTES = 120  # of a result's stem: with "-x2-10.ext" and the hidden names beside it, under 255


def display_name(name: str) -> str:
    """The client's file name reduced to a safe base name (used for the result's name only); a long
    one keeps its start and its suffix, within NAME_BYTES of UTF-8 (file names are limited in bytes:
    120 CJK characters are 360)."""
    base = re.split(r"[\\/]", name)[-1]
    cleaned = re.sub(r"[^\w.\- ]+", "_", base).strip(" .")
    stem, suffix = (cleaned[:-len(Path(cleaned).suffix)], Path(cleaned).suffix) if Path(cleaned).suffix \
        else (cleaned, "")
    stem = stem.encode("utf-8")[:NAME_BYTES].decode("utf-8", "ignore").strip(" .")
    return f"{stem}{suffix[:12]}" if stem else "upload"


def suffix_of(name: str) -> str:
    suffix = Path(name).suffix.lower()
    if suffix not in ACCEPTED_SUFFIXES:
        raise UsageError(f"{name}: not a picture or video type vidscale reads "
                         f"({', '.join(s.lstrip('.') for s in ACCEPTED_SUFFIXES)})")
    return suffix


def is_video(suffix: str) -> bool:
    return suffix in VIDEO_SUFFIXES


async def receive(chunks: AsyncIterator[bytes], target: Path, limits: Limits, declared: int | None) -> int:
    """Write the body to `target`, refusing it (and removing the part written) past the byte limit."""
    if declared is not None and declared > limits.max_bytes:
        raise TooLarge(f"upload of {declared} bytes is over the {limits.max_bytes}-byte limit")
    written = 0
    try:
        with target.open("xb") as fh:
            async for chunk in chunks:
                written += len(chunk)
                if written > limits.max_bytes:
                    raise TooLarge(f"upload is over the {limits.max_bytes}-byte limit")
                fh.write(chunk)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    if not written:
        target.unlink(missing_ok=True)
        raise VidscaleError("the file is empty")
    return written


Sizes = tuple[tuple[int, int], tuple[int, int]]  # (width, height) of the input and of the result


def check_frame_size(path: Path, name: str, limits: Limits, scale: float | None, width: int | None,
                     video: bool) -> Sizes:
    """Refuse a file with no picture in it, or one whose frames are too big before or after upscaling
    (video sizes are rounded down to even numbers, as the job rounds them); return both sizes."""
    size = None if video else header_size(path)  # before FFmpeg: a small file can claim a huge picture
    if size is not None:
        _within(limits.pixels.check_input, name, *size)
    height, frame_width = probe_size(path, name)
    _within(limits.pixels.check_input, name, frame_width, height)
    out_h, out_w = _result_size(name, height, frame_width, scale, width)
    if video:
        out_h, out_w = max(2, out_h - out_h % 2), max(2, out_w - out_w % 2)
    _within(limits.pixels.check_output, out_w, out_h)
    return (frame_width, height), (out_w, out_h)


def _result_size(name: str, height: int, width: int, scale: float | None, out_width: int | None) -> tuple[int, int]:
    """(height, width) of the result; a width the picture cannot reach is said in widths, not factors."""
    try:
        return output_size(height, width, scale, out_width)
    except UsageError:
        if out_width is None:
            raise
        raise UsageError(f"{name}: a width of {out_width} px is {out_width / width:.3g}x its {width} px; "
                         f"choose between {width} and {int(width * MAX_SCALE)} px for it") from None


def _within(check: Callable[..., None], *args: object) -> None:
    try:
        check(*args)
    except VidscaleError as exc:
        raise TooLarge(str(exc)) from None


def probe_size(path: Path, name: str) -> tuple[int, int]:
    """(height, width) of the first video stream, from the container's headers."""
    try:
        with av.open(str(path)) as container:
            stream = main_video(container)
            if stream is None:
                raise VidscaleError(f"{name}: has no picture or video in it")
            height, width = stream.codec_context.height, stream.codec_context.width
    except av.error.FFmpegError as exc:
        raise VidscaleError(f"{name}: not a readable picture or video ({exc.strerror})") from None
    if not height or not width:
        raise VidscaleError(f"{name}: its frame size cannot be read")
    return height, width
