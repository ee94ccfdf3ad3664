"""Opening what a job reads: the one module that knows every reader (video, animation, pictures)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

from vidscale.core.limits import DEFAULT_LIMITS, PixelLimits
from vidscale.core.position import Position
from vidscale.errors import UsageError, VidscaleError
from vidscale.media.animated.header import is_animated
from vidscale.media.animated.sink import ANIMATED_ONLY_SUFFIXES, ANIMATED_SUFFIXES
from vidscale.media.animated.source import AnimatedSource
from vidscale.media.image import is_image_path
from vidscale.media.protocols import Source
from vidscale.media.sequence import folder_images, is_pattern, pattern_images
from vidscale.media.source import ImageSource, VideoSource


def open_source(spec: str, recursive: bool = False, fps: Fraction = Fraction(24),
                limits: PixelLimits = DEFAULT_LIMITS, start: Position | None = None,
                limit: int | None = None) -> Source:
    """A source from a path, folder, printf pattern or glob; frames past `limits` are refused.
    `start` and `limit` (--start, --frames) are its window: a clip's frames, a sequence's files."""
    path = Path(spec)
    if not path.exists() and is_pattern(spec):
        return ImageSource(pattern_images(spec), None, fps, limits, start, limit, name=path)
    if path.is_dir():
        return ImageSource(folder_images(path, recursive), path, fps, limits, start, limit)
    if not path.exists():
        raise VidscaleError(f"{path}: no such file")
    if not path.is_file():
        raise VidscaleError(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise VidscaleError(f"{path}: file is empty")
    if is_animated(path):
        return AnimatedSource(path, limits, start, limit)
    if is_image_path(path):
        if start is not None:
            raise UsageError(f"--start: {spec} is a single picture; it applies to video, animations and "
                             "sequences")
        return ImageSource([path], None, fps, limits, limit=limit)
    return VideoSource(path, limits, start, limit)


def wants_animation(source: Source, suffix: str) -> bool:
    """Whether an image output is written as an animation: .gif/.apng always
    (a still is a one-frame clip), .png/.webp when the source is animated, and
    .webp from a video (a short clip as an animated WebP, as .gif does)."""
    suffix = suffix.lower()
    return (suffix in ANIMATED_ONLY_SUFFIXES or (source.kind == "animated" and suffix in ANIMATED_SUFFIXES)
            or (source.kind == "video" and suffix == ".webp"))
