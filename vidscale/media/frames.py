"""What sources yield and describe: frames with their timestamps, unreadable inputs, a video's
header facts. Plain data, so that the compute layer can name them without importing a reader."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from vidscale.media import yuv
from vidscale.media.color import ColorInfo
from vidscale.media.photo_meta import PhotoMeta


@dataclass
class Frame:
    pixels: np.ndarray | yuv.YuvImage  # HxWxC gray, RGB or RGBA (uint8 or uint16), or video's YUV planes
    index: int
    pts: int | None
    time_base: Fraction | None
    name: Path | None = None  # path relative to the input folder, for folder outputs
    color: ColorInfo | None = None  # the source's colour description (video only)
    meta: PhotoMeta | None = None  # EXIF/ICC/XMP of a photo, carried to its output
    source_suffix: str = ""
    warmup: bool = False  # upscaled to prime the temporal filter before a segment, not written


@dataclass
class Failure:
    """An input that could not be read, reported by sinks that go on without it."""

    name: Path
    message: str


@dataclass
class VideoInfo:
    width: int
    height: int
    time_base: Fraction
    rate: Fraction | None
    frames: int  # 0 when the container does not say
    deep: bool  # more than 8 bits per component
    pix_fmt: str
    color: ColorInfo
    alpha: bool = False  # frames are RGBA (straight alpha)
