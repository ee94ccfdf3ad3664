"""The two pictures of a result's before/after slider: bicubic and the network, the same size.

As `vidscale compare` does, the reference is the plain bicubic resize of the
input; here it is made at the result's exact size, from the same (first) frame,
so the two line up pixel for pixel. Both are PNG, which every browser shows
(a TIFF result or a video is not).
"""

from __future__ import annotations

import threading
from pathlib import Path

import av
import av.error
import numpy as np

from vidscale.errors import Cancelled, VidscaleError
from vidscale.media.containers import main_video
from vidscale.media.image import is_image_path, read_picture, to_rgb, write_image
from vidscale.resample import resize
from vidscale.upscaler import from_tensor, to_tensor


def first_frame(path: Path) -> np.ndarray:
    """The first frame as 8-bit RGB (RGBA where a picture has transparency: the page shows it over
    a checkerboard, not the colours hidden under it), upright (EXIF orientation applied, as the
    job applies it)."""
    if is_image_path(path):
        pixels = read_picture(path).pixels
        pixels = pixels if pixels.shape[2] == 4 else to_rgb(pixels)
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


# What Chromium, Firefox and Safari all play without hardware help: H.264 8-bit 4:2:0 in MP4,
# VP8/VP9/AV1 in WebM (HEVC plays only where the GPU decodes it; FFV1, ProRes, MKV not at all).
PLAYABLE = {".mp4": {("h264", "yuv420p"), ("h264", "yuvj420p")}, ".m4v": {("h264", "yuv420p")},
            ".webm": {("vp8", None), ("vp9", None), ("av1", None)}}
PROXY_MAX_PIXELS = 1920 * 1088  # a preview, not the result: the full size of most results


def plays_in_browser(path: Path) -> bool:
    """True when a browser plays the video file as it is."""
    kinds = PLAYABLE.get(path.suffix.lower())
    if not kinds:
        return False
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            # the format's name ("av1"), not the decoder's ("libdav1d")
            codec, pix_fmt = stream.codec_context.codec.canonical_name, stream.codec_context.pix_fmt
    except (av.error.FFmpegError, IndexError):
        return False
    return (codec, pix_fmt) in kinds or (codec, None) in kinds


def proxy_size(width: int, height: int) -> tuple[int, int]:
    """(width, height) of a preview: the result's, shrunk to PROXY_MAX_PIXELS, even."""
    shrink = min(1.0, (PROXY_MAX_PIXELS / (width * height)) ** 0.5)
    return max(2, int(width * shrink) // 2 * 2), max(2, int(height * shrink) // 2 * 2)


def write_proxy(source: Path, target: Path, size: tuple[int, int], cancel: threading.Event | None = None) -> None:
    """`source`'s frames resized (bicubic) to `size` as H.264 8-bit MP4, each at its own time, no
    sound: the result's stand-in when a browser cannot play it, or the bicubic "before". A set
    `cancel` stops it (`Cancelled`) between frames."""
    width, height = size
    try:
        with av.open(str(source)) as src, av.open(str(target), "w", options={"movflags": "+faststart"}) as out:
            video = main_video(src)
            if video is None:
                raise VidscaleError(f"{source}: no video stream")
            stream = out.add_stream("libx264", rate=video.average_rate or 25)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.time_base = video.time_base
            stream.codec_context.options = {"preset": "veryfast", "crf": "22"}
            for n, frame in enumerate(src.decode(video)):
                if cancel is not None and cancel.is_set():
                    raise Cancelled("cancelled")
                small = frame.reformat(width, height, "yuv420p", interpolation="BICUBIC")
                small.pts = frame.pts if frame.pts is not None else n
                small.time_base = video.time_base
                out.mux(stream.encode(small))
            out.mux(stream.encode(None))
    except av.error.FFmpegError as exc:
        target.unlink(missing_ok=True)
        raise VidscaleError(f"{source.name}: cannot make the preview video ({exc.strerror})") from None
    except BaseException:
        target.unlink(missing_ok=True)
        raise


def make_video_previews(source: Path, result: Path, before: Path, after: Path,
                        cancel: threading.Event | None = None) -> bool:
    """The bicubic "before" video at the result's size (or the preview's, if smaller) and, when a
    browser cannot play the result, an "after" stand-in of the same size. True if one was made."""
    with av.open(str(result)) as container:
        context = container.streams.video[0].codec_context
        size = proxy_size(context.width, context.height)
    write_proxy(source, before, size, cancel)
    if plays_in_browser(result):
        return False
    write_proxy(result, after, size, cancel)
    return True
