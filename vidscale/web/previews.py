"""The two pictures of a result's before/after slider: bicubic and the network, the same size.

As `vidscale compare` does, the reference is the plain bicubic resize of the
input; here it is made at the result's exact size, from the same (first) frame,
so the two line up pixel for pixel. Both are PNG, which every browser shows
(a TIFF result or a video is not).
"""

from __future__ import annotations

from pathlib import Path

import av
import av.error
import numpy as np

from vidscale.errors import VidscaleError
from vidscale.media.image import is_image_path, read_picture, to_rgb, write_image
from vidscale.resample import resize
from vidscale.upscaler import from_tensor, to_tensor


def first_frame(path: Path) -> np.ndarray:
    """The first frame as 8-bit RGB, upright (EXIF orientation applied, as the job applies it)."""
    if is_image_path(path):
        pixels = to_rgb(read_picture(path).pixels)
        return pixels if pixels.dtype == np.uint8 else from_tensor(to_tensor(pixels), np.uint8)
    try:
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                return frame.to_ndarray(format="rgb24")
    except av.error.FFmpegError as exc:
        raise VidscaleError(f"{path.name}: cannot read a frame for the preview ({exc.strerror})") from None
    raise VidscaleError(f"{path.name}: has no frame to preview")


def bicubic_to(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    return from_tensor(resize(to_tensor(rgb), (height, width), "bicubic").clamp(0, 1), np.uint8)


def make_previews(source: Path, result: Path, before: Path, after: Path) -> tuple[int, int]:
    """Write the bicubic (`before`) and the result's (`after`) first frames; return (width, height)."""
    upscaled = first_frame(result)
    height, width = upscaled.shape[:2]
    write_image(after, upscaled)
    write_image(before, bicubic_to(first_frame(source), height, width))
    return width, height
