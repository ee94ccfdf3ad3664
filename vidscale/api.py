"""The library's front door: `upscale` (files, as the CLI does) and `upscale_image` (one picture)."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from vidscale.errors import UsageError
from vidscale.job import Summary, run_job
from vidscale.options import job_settings
from vidscale.scale import output_size
from vidscale.upscaler import Upscaler, from_tensor, to_tensor

if TYPE_CHECKING:
    from PIL.Image import Image


def upscale(
    source: str, output: str, *,
    scale: float | None = None, width: int | None = None, height: int | None = None,
    model: str | None = None, denoise: str | None = None, backend: str | None = None,
    device: str | None = None, tile: int | None = None, precision: str | None = None,
    batch: int | None = None, frames: int | None = None, start: str | float | None = None,
    device_color: bool | None = None, skip_repeats: bool = True, repeat_threshold: float | None = None,
    temporal: float | bool | None = None, recursive: bool = False, format: str | None = None,
    fps: float | Fraction | str | None = None, codec: str | None = None, crf: float | None = None,
    encoder_preset: str | None = None, pix_fmt: str | None = None,
    encoder_opt: Mapping[str, object] | Sequence[str] | None = None, quality: int | None = None,
    preset: str | None = None, overwrite: bool = False, quiet: bool = True, dry_run: bool = False,
    on_progress: Callable[[int, int | None], None] | None = None, cancel: threading.Event | None = None,
    segment: str | None = None, fresh: bool = False,
) -> Summary:
    """Upscale a video, image, folder, numbered sequence or glob into `output`, as the CLI does.

    The keywords are the CLI's options (`--encoder-preset` is `encoder_preset`,
    `--encoder-opt` takes a dict or KEY=VALUE strings); a `preset` fills what
    is not given. `start` is `--start`: seconds as a number, or the CLI's text
    ("1:23.5", "200f"). `on_progress(done, total)` is called after each frame is
    written (`total` is None when unknown); setting `cancel` stops the job,
    raises `vidscale.Cancelled` and leaves no output. Bad input raises
    `vidscale.VidscaleError`, impossible settings `vidscale.UsageError`.
    `quiet` (the default here) hides the progress bar. With `dry_run` nothing is
    written: the plan is logged and the summary's `estimate` holds the time
    and size that a few upscaled sample frames predict. `segment` and `fresh`
    are `--segment` ("20s", "500f", "0") and `--fresh` for video files. `skip_repeats=False` is
    `--no-skip-repeats`.

    Example::

        import threading, vidscale

        stop = threading.Event()
        summary = vidscale.upscale("in.mp4", "out.mp4", scale=2, model="span-x2", crf=16,
                                   encoder_preset="slow", frames=240,
                                   on_progress=lambda done, total: print(done, "of", total),
                                   cancel=stop)
        print(summary.line())
    """
    given = {k: v for k, v in locals().items()
             if k not in ("source", "output") and (v is not False or k == "skip_repeats")}
    return run_job(str(source), str(output), job_settings(given, str(output)))


_cache_lock = threading.Lock()
_cached: tuple[tuple[str | None, str], Upscaler] | None = None


def cached_upscaler(model: str | None, device: str | torch.device | None) -> Upscaler:
    """The Upscaler of the last `upscale_image` call if it used the same model and device.

    One is kept: loading a network costs far more than running it on a small picture.
    """
    global _cached
    key = (model, str(device))
    with _cache_lock:
        if _cached is None or _cached[0] != key:
            _cached = None  # free the old network before loading the next
            _cached = (key, Upscaler(model, device))
        return _cached[1]


def upscale_image(
    image: np.ndarray | "Image",
    scale: float | None = None,
    model: str | None = None,
    device: str | torch.device | None = None,
    *,
    width: int | None = None,
    height: int | None = None,
    upscaler: Upscaler | None = None,
) -> Any:
    """Upscale one picture: an HxWxC (or HxW) array, or a PIL image.

    An array comes back with the same dtype (uint8, uint16, float in [0, 1]) and
    channel layout: C may be 1 (gray), 3 (RGB) or 4 (RGBA, straight alpha). A
    PIL image comes back as a PIL image of the same mode (palette and CMYK
    images as RGB or RGBA), with its ICC profile and DPI. Give `scale`, or
    `width` and/or `height` (one alone keeps the aspect ratio), not both; with
    none, a named model upscales by its own factor, the default by 2.

    The model stays loaded for the next call with the same `model` and
    `device`. To hold several at once, or set tile, precision or backend,
    build an `Upscaler` and pass it:

        up = vidscale.Upscaler("realcugan", "cuda", tile=512, denoise="2")
        bigger = [vidscale.upscale_image(p, scale=2, upscaler=up) for p in pictures]
    """
    if scale is not None and (width or height):
        raise UsageError("give either scale or width/height, not both")
    if _is_pil(image):
        return _upscale_pil(image, scale, model, device, width, height, upscaler)
    if image.ndim == 2:
        return upscale_image(image[..., None], scale, model, device, width=width,
                             height=height, upscaler=upscaler)[..., 0]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise ValueError(f"expected HxWx1, HxWx3 or HxWx4 array, got shape {image.shape}")
    up = upscaler or cached_upscaler(model, device)
    if scale is None and not (width or height):
        scale = up.native_scale() or 2
    size = output_size(image.shape[0], image.shape[1], scale, width, height)
    return from_tensor(up.upscale_channels(to_tensor(image), size), image.dtype)


def _is_pil(image: object) -> bool:
    pil = sys.modules.get("PIL.Image")  # a PIL image means PIL is loaded; no import otherwise
    return pil is not None and isinstance(image, pil.Image)


# PIL modes that become arrays as they are; others are converted to the mode named
_PIL_DIRECT = {"L", "RGB", "RGBA", "I;16"}
_PIL_VIA = {"1": "L", "LA": "RGBA", "P": None, "PA": "RGBA", "CMYK": "RGB", "YCbCr": "RGB", "LAB": "RGB",
            "HSV": "RGB", "RGBX": "RGB", "RGBa": "RGBA", "La": "RGBA"}


def _upscale_pil(image: "Image", scale: float | None, model: str | None, device: str | torch.device | None,
                 width: int | None, height: int | None, upscaler: Upscaler | None) -> "Image":
    from PIL import Image as PILImage

    mode = image.mode
    if mode not in _PIL_DIRECT and mode not in _PIL_VIA:
        raise ValueError(f"PIL mode {mode} is not supported; convert the image to RGB, RGBA, L or I;16")
    work = image
    if mode in _PIL_VIA:
        via = _PIL_VIA[mode] or ("RGBA" if "transparency" in image.info else "RGB")
        work = image.convert(via)
    pixels = np.array(work)  # a copy: writable, and the caller's image is untouched
    out = PILImage.fromarray(upscale_image(pixels, scale, model, device, width=width, height=height,
                                           upscaler=upscaler))
    if mode == "1":
        out = out.convert("1", dither=PILImage.Dither.NONE)  # threshold: dithering would add noise
    elif mode == "LA":
        out = out.convert("LA")
    for key in ("icc_profile", "dpi"):
        if key in image.info:
            out.info[key] = image.info[key]
    return out


__all__ = ["Upscaler", "cached_upscaler", "upscale", "upscale_image"]
