"""Uploads: what the page accepts, how big, and the checks before a job is queued.

A file is streamed to disk under a name of our own choosing (never the client's),
counted as it arrives, and refused once it passes the byte limit; then its first
video stream is probed for the frame size, which must be within the pixel limits
before and after upscaling. The formats are those the CLI reads.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import av
import av.error

from vidscale.encoding import VIDEO_SUFFIXES
from vidscale.errors import UsageError, VidscaleError
from vidscale.media.image import IMAGE_SUFFIXES
from vidscale.scale import output_size

PICTURE_SUFFIXES = (*IMAGE_SUFFIXES, ".gif")
ACCEPTED_SUFFIXES = (*PICTURE_SUFFIXES, *VIDEO_SUFFIXES)


class TooLarge(VidscaleError):
    """An upload over the byte limit (HTTP 413)."""


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 4 * 1024**3  # a few minutes of high-bitrate 1080p
    max_input_pixels: int = 8192 * 8192  # per frame
    max_output_pixels: int = 16384 * 16384  # per frame, after upscaling

    def public(self) -> dict[str, int]:
        return {"max_bytes": self.max_bytes, "max_input_pixels": self.max_input_pixels,
                "max_output_pixels": self.max_output_pixels}


def display_name(name: str) -> str:
    """The client's file name reduced to a safe base name (used for the result's name only)."""
    base = re.split(r"[\\/]", name)[-1]
    cleaned = re.sub(r"[^\w.\- ]+", "_", base).strip(" .")[:100]
    return cleaned or "upload"


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


def check_frame_size(path: Path, name: str, limits: Limits, scale: float | None, width: int | None) -> None:
    """Refuse a file with no picture in it, or one whose frames are too big before or after upscaling."""
    height, frame_width = probe_size(path, name)
    if height * frame_width > limits.max_input_pixels:
        raise UsageError(f"{name}: {frame_width}x{height} is over the limit of {limits.max_input_pixels:,} pixels")
    out_h, out_w = output_size(height, frame_width, scale, width)
    if out_h * out_w > limits.max_output_pixels:
        raise UsageError(f"{name}: the result would be {out_w}x{out_h}, over the limit of "
                         f"{limits.max_output_pixels:,} pixels")


def probe_size(path: Path, name: str) -> tuple[int, int]:
    """(height, width) of the first video stream, from the container's headers."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VidscaleError(f"{name}: has no picture or video in it")
            stream = container.streams.video[0]
            height, width = stream.codec_context.height, stream.codec_context.width
    except av.error.FFmpegError as exc:
        raise VidscaleError(f"{name}: not a readable picture or video ({exc.strerror})") from None
    if not height or not width:
        raise VidscaleError(f"{name}: its frame size cannot be read")
    return height, width
