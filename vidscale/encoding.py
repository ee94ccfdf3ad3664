"""Encoder choice and settings: good defaults per container, user overrides win."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import av

from vidscale.errors import UsageError

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi")


@dataclass(frozen=True)
class EncoderDefaults:
    codec: str
    crf: float | None
    preset: str | None


# 8-bit sources; 10-bit sources take the second entry.
_DEFAULTS = {
    ".webm": (EncoderDefaults("libsvtav1", 30, "7"), EncoderDefaults("libsvtav1", 30, "7")),
}
# libsvtav1 has no alpha; VP9 does, and the webm muxer marks it (alpha_mode) itself.
_WEBM_ALPHA = EncoderDefaults("libvpx-vp9", 30, None)
_VP9_SPEED = {"row-mt": "1", "cpu-used": "4"}  # libvpx's default speed is painfully slow
# Lists yuva420p, but its alpha layer is experimental and next to no player shows it.
_ALPHA_UNSAFE = {"libx265"}
_H264 = EncoderDefaults("libx264", 18, "medium")
_H265 = EncoderDefaults("libx265", 20, "medium")


@dataclass
class EncoderSettings:
    """What the user asked for; None means 'the default for this output'."""

    codec: str | None = None
    crf: float | None = None
    preset: str | None = None
    pix_fmt: str | None = None
    options: dict[str, str] = field(default_factory=dict)
    fps: Fraction = Fraction(24)  # for image sequences turned into video


@dataclass(frozen=True)
class EncoderPlan:
    codec: str
    pix_fmt: str
    options: dict[str, str]
    bit_rate: int | None = None


def plan_encoder(suffix: str, deep: bool, source_pix_fmt: str | None, settings: EncoderSettings) -> EncoderPlan:
    """The encoder, pixel format and options for an output of type `suffix`."""
    suffix = suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        raise UsageError(f"unsupported video output type {suffix!r} (use {', '.join(VIDEO_SUFFIXES)})")
    default = _DEFAULTS.get(suffix, (_H264, _H265))[1 if deep else 0]
    alpha = has_alpha(source_pix_fmt)
    if alpha and suffix == ".webm":
        default = _WEBM_ALPHA
    codec = settings.codec or default.codec
    try:
        formats = [f.name for f in av.Codec(codec, "w").video_formats or []]
    except (av.error.FFmpegError, ValueError) as exc:
        raise UsageError(f"--codec {codec}: no such video encoder ({exc})") from None
    keep_alpha = alpha and codec not in _ALPHA_UNSAFE
    pix_fmt = settings.pix_fmt or _default_pix_fmt(formats, deep, source_pix_fmt, keep_alpha)
    if formats and pix_fmt not in formats:
        raise UsageError(f"--pix-fmt {pix_fmt}: {codec} takes {', '.join(formats)}")
    options: dict[str, str] = {}
    same_family = codec == default.codec
    crf = settings.crf if settings.crf is not None else (default.crf if same_family else None)
    preset = settings.preset or (default.preset if same_family else None)
    if crf is not None:
        options["crf"] = f"{crf:g}"
    if preset is not None:
        options["preset"] = preset
    if codec == "libx265":
        options.setdefault("x265-params", "log-level=error")
    if default is _WEBM_ALPHA and same_family:
        options.update(_VP9_SPEED)
    options.update(settings.options)
    bit_rate = 0 if codec == "libvpx-vp9" and "crf" in options else None  # constant quality mode
    return EncoderPlan(codec, pix_fmt, options, bit_rate)


def has_alpha(pix_fmt: str | None) -> bool:
    return bool(pix_fmt) and any(c.is_alpha for c in av.VideoFormat(pix_fmt).components)


def _default_pix_fmt(formats: list[str], deep: bool, source: str | None, alpha: bool = False) -> str:
    """Keep the source's chroma layout, depth and alpha when the encoder can; else 4:2:0."""
    wanted = []
    if source and source.startswith("yuv") and not source.startswith("yuvj") and (alpha or not has_alpha(source)):
        wanted.append(source)
    if alpha:  # any format with alpha beats dropping it (ProRes: yuva444p10le)
        wanted += ["yuva420p"] + [f for f in formats if has_alpha(f)]
    wanted.append("yuv420p10le" if deep else "yuv420p")
    wanted.append("yuv420p")
    for fmt in wanted:
        if not formats or fmt in formats:
            return fmt
    return formats[0]

