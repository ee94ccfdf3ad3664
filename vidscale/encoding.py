"""Encoder choice and settings: good defaults per container, user overrides win."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from fractions import Fraction

import av
import av.codec.context
import av.logging

from vidscale.core.settings import EncoderSettings
from vidscale.errors import UsageError
from vidscale.media import containers

VIDEO_SUFFIXES = tuple(containers.MUXERS)


@dataclass(frozen=True)
class EncoderDefaults:
    codec: str
    crf: float | None
    preset: str | None


# 8-bit sources; 10-bit sources take the second entry.
_DEFAULTS = {
    ".webm": (EncoderDefaults("libsvtav1", 30, "7"), EncoderDefaults("libsvtav1", 30, "7")),
    # AVI holds no HEVC: 10-bit sources get 10-bit H.264 (High 10)
    ".avi": (EncoderDefaults("libx264", 18, "medium"), EncoderDefaults("libx264", 18, "medium")),
}
# libsvtav1 has no alpha; VP9 does, and the webm muxer marks it (alpha_mode) itself.
_WEBM_ALPHA = EncoderDefaults("libvpx-vp9", 30, None)
_VP9_SPEED = {"row-mt": "1", "cpu-used": "4"}  # libvpx's default speed is painfully slow
# Lists yuva420p, but its alpha layer is experimental and next to no player shows it.
_ALPHA_UNSAFE = {"libx265"}
_H264 = EncoderDefaults("libx264", 18, "medium")
_H265 = EncoderDefaults("libx265", 20, "medium")


@dataclass(frozen=True)
class EncoderChoice:
    """The encoder an output gets: codec, pixel format and options (bit rate 0: VP9 at constant quality)."""

    codec: str
    pix_fmt: str
    options: dict[str, str]
    bit_rate: int | None = None


def choose_encoder(suffix: str, deep: bool, source_pix_fmt: str | None, settings: EncoderSettings,
                   time_base: Fraction | None = None) -> EncoderChoice:
    """The encoder, pixel format and options for an output of type `suffix`, checked to open
    and to be writable into that container (at `time_base`, the clock frames come on)."""
    suffix = suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        raise UsageError(f"unsupported video output type {suffix!r} (use {', '.join(VIDEO_SUFFIXES)})")
    default = _default_for(suffix, deep, source_pix_fmt)
    codec = settings.codec or default.codec
    try:
        formats = _formats(codec)
    except (av.error.FFmpegError, ValueError) as exc:
        raise UsageError(f"--codec {codec}: no such video encoder ({exc})") from None
    alpha = has_alpha(source_pix_fmt)
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
    if suffix == ".avi":  # AVI keeps no presentation times: frames reordered by B-frames would show late
        options["bf"] = "0"
    options.update(settings.options)
    bit_rate = 0 if codec == "libvpx-vp9" and "crf" in options else None  # constant quality mode
    plan = EncoderChoice(codec, pix_fmt, options, bit_rate)
    if _chosen(settings) or settings.codec or settings.pix_fmt:  # our defaults are known to open
        check_options(plan, _chosen(settings))
    _check_container(plan, suffix, settings, time_base or Fraction(1, 25))
    return plan


def _default_for(suffix: str, deep: bool, source_pix_fmt: str | None) -> EncoderDefaults:
    if has_alpha(source_pix_fmt) and suffix == ".webm":
        return _WEBM_ALPHA
    return _DEFAULTS.get(suffix, (_H264, _H265))[1 if deep else 0]


def _check_container(plan: EncoderChoice, suffix: str, settings: EncoderSettings, time_base: Fraction) -> None:
    """Refuse, before any frame, an encoder whose output the `suffix` container cannot hold."""
    muxer = containers.muxer_of(suffix)
    reason = containers.trial(plan.codec, plan.pix_fmt, plan.options, time_base, muxer)
    if reason is None:
        return
    flag = f"--codec {plan.codec}" if settings.codec else f"the default encoder {plan.codec}"
    if not holds(muxer, plan.codec):
        takes = ", ".join(c for c in _CANDIDATES if holds(muxer, c))
        raise UsageError(f"{flag}: {suffix} files cannot hold its video; they take {takes}")
    if settings.pix_fmt and containers.trial(plan.codec, _plain_pix_fmt(plan.codec), {}, time_base, muxer) is None:
        raise UsageError(f"--pix-fmt {plan.pix_fmt}: {suffix} files cannot hold {plan.codec} in it ({reason})")
    if containers.trial(plan.codec, plan.pix_fmt, {}, Fraction(1, 25), muxer) is None:
        raise UsageError(f"{flag}: it cannot keep this clip's timestamps (time base {time_base}) in {suffix} "
                         f"files; use {_default_for(suffix, False, None).codec}")
    raise UsageError(f"{flag}: cannot write {plan.pix_fmt} video into {suffix} files here ({reason})")


# The encoders a refusal suggests, where the container holds them.
_CANDIDATES = ("libx264", "libx265", "libsvtav1", "libvpx-vp9", "ffv1", "prores_ks", "mpeg4")


def holds(muxer: str, codec: str) -> bool:
    """Whether `muxer` files can hold `codec`'s video at all (its first 8-bit format, no options)."""
    try:
        pix_fmt = _plain_pix_fmt(codec)
    except (av.error.FFmpegError, ValueError):
        return False
    return containers.trial(codec, pix_fmt, {}, Fraction(1, 25), muxer) is None


def _formats(codec: str) -> list[str]:
    """The pixel formats `codec` encodes ([] where it does not say)."""
    return [f.name for f in av.Codec(codec, "w").video_formats or []]


def _plain_pix_fmt(codec: str) -> str:
    formats = _formats(codec)
    return "yuv420p" if not formats or "yuv420p" in formats else formats[0]


# A preset's settings carried over to the encoder a container takes instead. CRF scales
# differ (x264 23 ~ x265 28 ~ SVT-AV1 35 for a similar look): each is put on x264's scale and
# back. x264/x265 speed names map to SVT-AV1's numbered presets.
_CRF_FROM_X264 = {"libx264": 0, "libx265": 5, "libsvtav1": 12, "libvpx-vp9": 12}
_SVT_SPEED = {"ultrafast": "12", "superfast": "11", "veryfast": "10", "faster": "9", "fast": "8",
              "medium": "7", "slow": "6", "slower": "5", "veryslow": "4", "placebo": "3"}


def fit_container(settings: EncoderSettings, suffix: str, deep: bool,
                  source_pix_fmt: str | None) -> tuple[EncoderSettings, str | None]:
    """A preset's codec that `suffix` files cannot hold gives way to the container's own
    default at an equivalent quality; returns the settings and a note saying so (None when
    nothing changed). A codec the user chose is never replaced (`choose_encoder` refuses it)."""
    suffix = suffix.lower()
    codec = settings.codec
    if not codec or "codec" not in settings.preferred or suffix not in VIDEO_SUFFIXES:
        return settings, None
    if holds(containers.muxer_of(suffix), codec):
        return settings, None
    default = _default_for(suffix, deep, source_pix_fmt)
    kept_options = {k: v for k, v in settings.options.items() if f"opt:{k}" not in settings.preferred}
    fitted = replace(settings, codec=None, crf=_equivalent_crf(settings, codec, default.codec),
                     preset=_equivalent_speed(settings, default.codec),
                     pix_fmt=_fitting_pix_fmt(settings, default.codec), options=kept_options,
                     preferred=frozenset())
    plan = choose_encoder(suffix, deep, source_pix_fmt, fitted)
    options = " ".join(f"{k}={v}" for k, v in plan.options.items() if k in ("crf", "preset"))
    return fitted, (f"{suffix} files cannot hold the preset's {codec}: encoding {plan.codec} {plan.pix_fmt}"
                    f"{' ' + options if options else ''} instead")


def _equivalent_crf(settings: EncoderSettings, codec: str, target: str) -> float | None:
    if "crf" not in settings.preferred:
        return settings.crf  # the user's own
    if settings.crf is None or codec not in _CRF_FROM_X264 or target not in _CRF_FROM_X264:
        return None  # the container default's own
    return float(min(63, max(0, settings.crf - _CRF_FROM_X264[codec] + _CRF_FROM_X264[target])))


def _equivalent_speed(settings: EncoderSettings, target: str) -> str | None:
    if target == "libsvtav1" and settings.preset in _SVT_SPEED:
        return _SVT_SPEED[settings.preset]
    if target in ("libx264", "libx265") and settings.preset in _SVT_SPEED:
        return settings.preset  # the same names
    return None if "preset" in settings.preferred else settings.preset


def _fitting_pix_fmt(settings: EncoderSettings, codec: str) -> str | None:
    """The preset's pixel format where the replacement encoder takes it (10-bit stays 10-bit)."""
    if settings.pix_fmt is None or "pix_fmt" not in settings.preferred:
        return settings.pix_fmt
    return settings.pix_fmt if settings.pix_fmt in _formats(codec) else None


def _chosen(settings: EncoderSettings) -> dict[str, str]:
    """The options the user set, each with the flag that set it."""
    flags = {}
    if settings.crf is not None:
        flags["crf"] = f"--crf {settings.crf:g}"
    if settings.preset:
        flags["preset"] = f"--encoder-preset {settings.preset}"
    return {**flags, **{k: f"--encoder-opt {k}={v}" for k, v in settings.options.items()}}


# x264 and x265 share these speed presets; their AVOption is a free string.
_X26X_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
                 "veryslow", "placebo")
_TRIAL_SIZE = 256  # a trial open at this size checks the options (above GPU encoders' minimum sizes)


def check_options(plan: EncoderChoice, chosen: dict[str, str]) -> None:
    """Refuse an option the user `chose` that the encoder lacks, or a value it refuses, naming it (exit 2).

    Unknown keys would otherwise be dropped silently, and bad values only
    fail when the first frame reaches the encoder. A trial open of the
    encoder (at 256x256, milliseconds) is the only full check of the values.
    """
    known = _encoder_options(plan.codec)
    for key, value in plan.options.items():
        if key in chosen and key not in known:
            raise UsageError(f"{chosen[key]}: {plan.codec} has no option {key!r}")
    if _opens(plan, plan.options):
        return
    if not _opens(plan, {}):  # e.g. a GPU encoder on a machine without that GPU
        raise UsageError(f"--codec {plan.codec}: the encoder does not start here with --pix-fmt {plan.pix_fmt}")
    for key, value in plan.options.items():
        if key in chosen and not _opens(plan, {key: value}):
            raise UsageError(f"{chosen[key]}: {plan.codec} does not take {value!r}"
                             + _accepted(plan.codec, known[key]))
    raise UsageError(f"{plan.codec} refuses these settings together: "
                     + ", ".join(f"{k}={v}" for k, v in plan.options.items()))


def _encoder_options(codec: str) -> dict[str, av.codec.context.CodecOption]:
    options = av.CodecContext.create(codec, "w").supported_options
    return {o.name: o for o in (*options.generic, *options.private)}


def _opens(plan: EncoderChoice, options: dict[str, str]) -> bool:
    ctx = av.CodecContext.create(plan.codec, "w")
    ctx.width = ctx.height = _TRIAL_SIZE
    ctx.pix_fmt, ctx.time_base, ctx.framerate = plan.pix_fmt, Fraction(1, 25), Fraction(25)
    ctx.options = {**containers.QUIET.get(plan.codec, {}), **options}
    os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its whole configuration otherwise
    try:
        with _stderr_silenced(), av.logging.Capture():  # the encoder's complaint: our line says it
            ctx.open()
    except (av.error.FFmpegError, ValueError):
        return False
    return True


@contextmanager
def _stderr_silenced() -> Iterator[None]:
    """x264 and x265 print their errors straight to file descriptor 2, past FFmpeg's logging."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


_NUMERIC = {av.codec.context.OptionType.INT, av.codec.context.OptionType.INT64,
            av.codec.context.OptionType.UINT, av.codec.context.OptionType.UINT64,
            av.codec.context.OptionType.DOUBLE, av.codec.context.OptionType.FLOAT}


def _accepted(codec: str, option: av.codec.context.CodecOption) -> str:
    """', accepted: ...' where the values are known, else ''."""
    if option.choices:
        return "; accepted: " + ", ".join(c.name for c in option.choices)
    if option.name == "preset" and codec in ("libx264", "libx265"):
        return "; accepted: " + ", ".join(_X26X_PRESETS)
    if option.type in _NUMERIC and option.min < option.max:
        if option.max >= 2**31:  # no real upper bound
            return f"; accepted: a number, at least {option.min:g}"
        return f"; accepted: a number from {option.min:g} to {option.max:g}"
    return ""


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

