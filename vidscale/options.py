"""The upscale options by their command-line names: their limits, and `JobSettings` from them.

The CLI, the library (`vidscale.upscale`) and the VapourSynth filter take the
same names and refuse the same values in the same words (one click type per
option); the CLI and the library build their settings here, a preset filling
only what was not given. Light at import time: the CLI reads the types below
while building `--help`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import click

from vidscale.core.position import parse_start
from vidscale.core.settings import EncoderSettings, JobSettings
from vidscale.errors import UsageError

BACKEND = click.Choice(["auto", "tensorrt", "cuda", "cpu", "torch"], case_sensitive=False)  # engine.backend.BACKENDS
PRECISION = click.Choice(["auto", "fp16", "bf16", "fp32"], case_sensitive=False)
TILE = click.IntRange(min=32)
BATCH = click.IntRange(1, 256)
TEMPORAL = click.FloatRange(0, 1)
FRAMES = click.IntRange(min=1)
QUALITY = click.IntRange(1, 100)
SIZE = click.IntRange(min=1)
FORMAT = click.Choice(["png", "jpg", "webp", "avif", "tif", "bmp"])
WORKERS = click.IntRange(min=1)
REPEAT_THRESHOLD = click.FloatRange(0, 255)
# the options whose values are checked, by name
TYPES: dict[str, click.ParamType] = {"backend": BACKEND, "precision": PRECISION, "tile": TILE, "batch": BATCH,
                                     "frames": FRAMES, "quality": QUALITY, "width": SIZE, "height": SIZE,
                                     "format": FORMAT, "workers": WORKERS,
                                     "repeat_threshold": REPEAT_THRESHOLD}


def check(flag: str, kind: click.ParamType, value: Any) -> Any:
    """`value` converted by `kind`, or a UsageError worded as the CLI words it for `flag`."""
    try:
        return kind.convert(value, None, None)
    except click.BadParameter as exc:
        raise UsageError(f"Invalid value for {flag!r}: {exc.message}") from None


# option name -> JobSettings field, where they differ
_FIELDS = {"frames": "max_frames", "format": "image_format"}
_ENCODER = {"codec": "codec", "crf": "crf", "encoder_preset": "preset", "pix_fmt": "pix_fmt"}
_JOB = ("scale", "width", "height", "model", "denoise", "backend", "device", "tile", "precision", "batch",
        "frames", "device_color", "temporal", "skip_repeats", "repeat_threshold", "recursive", "format", "quality",
        "background", "overwrite", "quiet", "on_progress", "cancel", "dry_run", "segment", "fresh", "workers", "ray",
        "start")
NAMES = frozenset({*_JOB, *_ENCODER, "fps", "encoder_opt", "preset", "max_pixels"})


def job_settings(given: Mapping[str, Any], output: str) -> JobSettings:
    """Settings for the options the caller gave (the rest keep their defaults).

    `given` maps option names to values; None counts as not given. A `preset`
    fills what is not given; its container must match `output`'s suffix.
    """
    given = {k: v for k, v in given.items() if v is not None}
    unknown = sorted(set(given) - NAMES)
    if unknown:
        raise TypeError(f"unknown upscale option(s): {', '.join(unknown)}")
    given = {k: check(f"--{k.replace('_', '-')}", TYPES[k], v) if k in TYPES else v for k, v in given.items()}
    settings = JobSettings(**{_FIELDS.get(k, k): _job_value(k, v) for k, v in given.items() if k in _JOB})
    settings.encoder = EncoderSettings(**{_ENCODER[k]: v for k, v in given.items() if k in _ENCODER},
                                       options=parse_encoder_opts(given.get("encoder_opt", ())))
    if "fps" in given:
        settings.encoder.fps = parse_fps(given["fps"])
    if "max_pixels" in given:
        from vidscale.core.limits import PixelLimits, parse_max_pixels

        limits = given["max_pixels"]
        settings.limits = limits if isinstance(limits, PixelLimits) else parse_max_pixels(str(limits))
    if "preset" in given:
        apply_preset(str(given["preset"]), settings, output, set(given))
    return settings


def _job_value(name: str, value: Any) -> Any:
    if name == "format":
        return "." + str(value).lower()
    if name == "scale":
        return float(value)
    if name == "start":
        return parse_start(value)
    if name == "background" and isinstance(value, str):
        from vidscale.media.image import parse_color

        return parse_color(value, "--background")
    return value


def parse_fps(value: Any) -> Fraction:
    try:
        fps = Fraction(str(value)) if not isinstance(value, (Fraction, int)) else Fraction(value)
    except (ValueError, ZeroDivisionError):
        raise UsageError(f"--fps {value}: not a number") from None
    if not 0 < fps <= 1000:
        raise UsageError(f"--fps {value}: must be above 0 and at most 1000")
    return fps


def parse_encoder_opts(pairs: Mapping[str, Any] | Sequence[str]) -> dict[str, str]:
    """Encoder options from KEY=VALUE strings (the CLI's) or a mapping (the library's)."""
    if isinstance(pairs, Mapping):
        return {str(k): str(v) for k, v in pairs.items()}
    if isinstance(pairs, str):
        pairs = [pairs]
    opts = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--encoder-opt {pair!r}: expected KEY=VALUE")
        opts[key] = value
    return opts


def apply_preset(spec: str, settings: JobSettings, output: str, given: set[str]) -> None:
    """Fill every setting that is not in `given` from the preset."""
    from vidscale.presets import find_preset

    preset = find_preset(spec)
    values = preset.values
    container = values.get("container")
    if container and Path(output).suffix.lower() != container:
        raise UsageError(f"preset {preset.name} writes {container} files; the output is {output}")
    sized = bool({"width", "height"} & given)
    for key in ("model", "batch", "quality", "tile", "temporal"):
        if key in values and key not in given:
            setattr(settings, key, values[key])
    if "denoise" in values and not {"denoise", "model"} & given:  # it belongs to the preset's model
        settings.denoise = str(values["denoise"])
    if "scale" in values and "scale" not in given and not sized:
        settings.scale = float(values["scale"])
    enc, ours = values.get("encoder", {}), settings.encoder
    preferred = set()  # the preset's encoder choices: the output's container may overrule them
    for key, option in (("codec", "codec"), ("crf", "crf"), ("preset", "encoder_preset"), ("pix_fmt", "pix_fmt")):
        if key in enc and option not in given:
            setattr(ours, key, enc[key])
            preferred.add(key)
    options = {k: str(v) for k, v in enc.get("options", {}).items() if k not in ours.options}
    ours.options = {**options, **ours.options}
    ours.preferred = frozenset(preferred | {f"opt:{k}" for k in options})
