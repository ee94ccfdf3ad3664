"""One upscaling job: a source, an upscaler and a sink wired through the pipeline."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

from vidscale.core.settings import JobSettings
from vidscale.core.units import human_bytes
from vidscale.encoding import fit_container, choose_encoder
from vidscale.errors import UsageError, VidscaleError
from vidscale.media import hdr
from vidscale.media.animated.sink import AnimatedSink
from vidscale.media.atomic import atomic_output, making_folder, remove_stale_temps, require_parent
from vidscale.media.containers import clock_for
from vidscale.media.opener import open_source, wants_animation
from vidscale.media.sinks import FolderSink, ImageFileSink, PatternSink, VideoSink, output_kind
from vidscale.media.protocols import Sink, Source
from vidscale.media.source import ImageSource, VideoSource
from vidscale.passes import SizeRule, run_pass
from vidscale.progress import Progress
from vidscale.scale import MAX_SCALE
from vidscale.segments.run import run_segmented
from vidscale.transfer import yuv_route
from vidscale.upscaler import Upscaler

if TYPE_CHECKING:
    from vidscale.dry_run import Estimate

log = logging.getLogger("vidscale")


@dataclass
class Summary:
    frames: int  # frames (or pictures) written
    seconds: float
    output: Path
    output_bytes: int
    skipped: int = 0  # outputs already there (a resumed batch)
    failed: int = 0  # inputs that could not be read or written
    steady_fps: float = 0.0  # rate between the first and last frame, start-up excluded
    inputs: int = 0  # input files of a batch (folder, pattern); 0 for one file
    unit: str = "frame"  # "picture" for photos: a frame rate means nothing for them
    estimate: "Estimate | None" = None  # a dry run: what the job would cost; nothing was written
    reused: int = 0  # frames of finished segments an earlier, interrupted run left (video)
    repeats: int = 0  # frames written that repeated the previous one: its upscale was reused

    def line(self) -> str:
        if self.estimate is not None:
            return self.estimate.line(self.output)
        size = f"{self.seconds:.1f}s, {human_bytes(self.output_bytes)}"
        if self.skipped or self.failed:
            return (f"{self.output}: {_count(self.inputs, self.unit)}: {self.frames} done, {self.skipped} skipped "
                    f"(already there), {self.failed} failed; {size}")
        fps = (self.frames - self.reused) / self.seconds if self.seconds > 0 else 0.0
        rate = f" ({fps:.2f} fps)" if self.unit == "frame" else ""
        reused = f" ({self.reused} from the earlier run)" if self.reused else ""
        repeats = f" ({_count(self.repeats, 'repeat')} of the previous)" if self.repeats else ""
        return (f"{self.output}: {_count(self.frames, self.unit)}{reused}{repeats} in {self.seconds:.1f}s{rate}, "
                f"{human_bytes(self.output_bytes)}")


def _count(n: int, unit: str) -> str:
    return f"{n} {unit}{'s' * (n != 1)}"


def run_job(source_spec: str, output_spec: str, settings: JobSettings,
            upscaler: Upscaler | None = None) -> Summary:
    """Upscale `source_spec` into `output_spec`; `upscaler`: one already made for `settings`
    (`vidscale bench` times its pipeline with the engine its stages ran), else a new one."""
    kind = output_kind(output_spec)
    if settings.scale is not None and (settings.width or settings.height):
        raise UsageError("give either --scale or --width/--height, not both")
    source = open_source(source_spec, settings.recursive, settings.encoder.fps, settings.limits,
                         settings.start, settings.max_frames)
    try:
        if kind == "video":
            settings = _fit_encoder(source, Path(output_spec), settings)
        if kind == "image":
            _check_one_picture(source, Path(output_spec))
    except BaseException:
        source.close()
        raise
    try:
        upscaler = upscaler or Upscaler.for_job(settings, purpose_of(source))
        settings = with_native_scale(settings, upscaler)
        if settings.dry_run or log.isEnabledFor(logging.DEBUG):  # --verbose states the plan first
            estimate = _state_plan(source, Path(output_spec), kind, upscaler, settings)
            if estimate is not None:
                return Summary(0, 0.0, Path(output_spec), 0, estimate=estimate)
        _announce_cost(source, kind, upscaler, settings)
        return _run(source, Path(output_spec), kind, upscaler, settings)
    finally:
        source.close()


def _fit_encoder(source: Source, output: Path, settings: JobSettings) -> JobSettings:
    """Settle the encoder before any model loads or frame decodes: a preset's codec the output's
    container cannot hold gives way to the container's own (said in one line); anything else
    the container or encoder cannot take is refused here (UsageError)."""
    video, clock = source.video, source.info
    deep, pix_fmt = bool(video and video.deep), video.pix_fmt if video else None
    encoder, note = fit_container(settings.encoder, output.suffix, deep, pix_fmt)
    if note:
        log.warning("%s", note)
    time_base = (clock_for(output.suffix, clock.time_base, clock.rate or encoder.fps) if clock
                 else 1 / encoder.fps)
    choose_encoder(output.suffix, deep, pix_fmt, encoder, Fraction(time_base))
    return replace(settings, encoder=encoder)


def _check_one_picture(source: Source, output: Path) -> None:
    """A still output takes one frame: more is refused before any is decoded."""
    if wants_animation(source, output.suffix):
        return
    count = source.frame_estimate()
    if source.video and (count is None or count > 1) or (count or 0) > 1:  # a video's unknown count: many
        raise UsageError(f"{output}: one picture cannot hold {count or 'all the'} frames of the input; "
                         "write a video, a folder, a pattern like out/%04d.png, or give --frames 1")


def _state_plan(source: Source, output: Path, kind: str, upscaler: Upscaler,
                settings: JobSettings) -> "Estimate | None":
    """Log the plan; for a dry run, also the estimates of time and size (and nothing is written)."""
    from vidscale import dry_run

    sizes, count = SizeRule(settings, even=kind == "video"), source.frame_estimate()
    text = dry_run.describe(source, output, kind, upscaler, settings, sizes, source.first_size(), count)
    log.log(logging.INFO if settings.dry_run else logging.DEBUG, "%s", text)
    return dry_run.estimate(source, output, kind, upscaler, settings, sizes, count) if settings.dry_run else None


def _announce_cost(source: Source, kind: str, upscaler: Upscaler, settings: JobSettings) -> None:
    """A job expected to be long on the CPU says so, with faster choices (long_jobs.py)."""
    from vidscale import long_jobs

    if settings.quiet or not log.isEnabledFor(logging.INFO) or not long_jobs.applies(upscaler):
        return
    try:
        first = source.first_size()
    except (VidscaleError, OSError):  # a batch's unreadable first file: reported in its turn
        return
    text = long_jobs.notice(upscaler, first, SizeRule(settings, even=kind == "video")(*first),
                            source.frame_estimate(), _unit(source))
    if text:
        log.info("%s", text)


def purpose_of(source: Source) -> str:
    """Which default fits: "video" for clips and numbered frames, "photo" for the rest (photos,
    animations)."""
    return "photo" if source.photos or source.kind == "animated" else "video"


def _unit(source: Source) -> str:
    """What the summary counts: pictures for photos, frames for video and numbered frames."""
    return "picture" if source.photos else "frame"


def with_native_scale(settings: JobSettings, upscaler: Upscaler) -> JobSettings:
    """A named network without --scale/--width/--height upscales by its own factor (x4 for an x4 model)."""
    if settings.scale is not None or settings.width or settings.height:
        return settings
    native = upscaler.native_scale()
    if native is None or native <= 1:
        return settings
    if native > MAX_SCALE:
        raise UsageError(f"{settings.model} upscales x{native} in one run, above the x{MAX_SCALE:g} limit; "
                         "give --scale")
    return replace(settings, scale=float(native))


def _run(source: Source, output: Path, kind: str, upscaler: Upscaler, settings: JobSettings) -> Summary:
    inputs = list(source.paths)
    sizes = SizeRule(settings, even=kind == "video")
    if kind != "video" and source.video:  # video outputs say it in run_segmented
        hdr.warn_losses(inputs[0], source.video.color, None, output.suffix or "picture", log.warning)
    if kind in ("folder", "pattern"):
        return _run_files(source, output, kind, upscaler, sizes, inputs, settings)
    if kind == "video" and isinstance(source, VideoSource):
        frames, progress, repeats = run_segmented(source, output, upscaler, settings, source.frame_estimate())
        _warn_if_short(source, frames)
        return Summary(frames, progress.elapsed, output, _size_on_disk(output), steady_fps=progress.steady_fps,
                       reused=frames - progress.done, repeats=repeats)
    remove_stale_temps(output)
    progress = Progress(source.frame_estimate(), settings.quiet, output.name or str(output),
                        settings.on_progress, settings.cancel, _unit(source))
    try:
        with atomic_output(output, settings.overwrite, inputs) as tmp:
            sink, route = _file_sink(source, tmp, output.suffix.lower(), kind, upscaler, sizes, settings)
            repeats = run_pass(source, upscaler, sizes, sink, settings, progress, yuv=route)
    finally:
        progress.close()
    _warn_if_short(source, progress.done)
    return Summary(progress.done, progress.elapsed, output, _size_on_disk(output),
                   steady_fps=progress.steady_fps, unit=_unit(source), repeats=repeats)


def _warn_if_short(source: Source, written: int) -> None:
    """Damage is reported: fewer frames than the input declares, or decode errors on the way."""
    if source.info is None:  # pictures: a count of files, each reported as it fails
        return
    expected = source.frame_estimate()
    exact = bool(source.info.frames) and source.start is None  # a count from the header, not from duration x rate
    short = expected is not None and written < (expected if exact else expected - max(1, expected // 100))
    damage = source.damage
    if short or damage:
        of = f" of {'' if exact else 'about '}{expected} expected" if expected else ""
        log.warning("warning: %s: wrote %d frame%s%s; the input is damaged%s", source.paths[0], written,
                    "s" * (written != 1), of, f" ({damage})" if damage else "")


def _file_sink(source: Source, tmp: Path, suffix: str, kind: str, upscaler: Upscaler, sizes: SizeRule,
               settings: JobSettings) -> tuple[Sink, object]:
    """The sink for one output file (frames of an animation or stills into video, an animation,
    a picture), with its colour route."""
    if kind == "video":
        sink = VideoSink(tmp, suffix, sizes(*source.first_size()), source, settings.encoder, log.warning)
        route = yuv_route(source.video, sink.plan.pix_fmt, sink.alpha, sink.color, upscaler.device,
                          settings.device_color, settings.temporal_strength() is not None)
        return sink, route
    if wants_animation(source, suffix):
        return AnimatedSink(tmp, suffix, sizes(*source.first_size()), settings.quality, log.warning,
                            plays=source.plays), None
    return ImageFileSink(tmp, settings.quality, log.warning, settings.background), None


def _run_files(source: Source, output: Path, kind: str, upscaler: Upscaler, sizes: SizeRule,
               inputs: list[Path], settings: JobSettings) -> Summary:
    """One output file per frame: a resumable batch that survives bad inputs."""
    folder = output.parent if kind == "pattern" else output
    _check_folder(folder, source)
    require_parent(folder)  # the output folder is created, the folders above it are not
    with making_folder(folder, output):  # gone again if the run fails with it empty
        return _run_into_folder(source, output, kind, upscaler, sizes, inputs, settings)


def _run_into_folder(source: Source, output: Path, kind: str, upscaler: Upscaler, sizes: SizeRule,
                     inputs: list[Path], settings: JobSettings) -> Summary:
    sink = (PatternSink(output, settings.quality, settings.overwrite, inputs, log.warning, settings.background)
            if kind == "pattern"
            else FolderSink(output, settings.image_format, settings.quality, settings.overwrite, inputs,
                            log.warning, settings.background))
    sink.remove_stale_temps()
    if isinstance(source, ImageSource):  # a batch of pictures: resumable file by file, surviving bad ones
        done = None if settings.overwrite else lambda name, i: sink.target_for(name, i).exists()
        sink.skipped = source.batch(done)  # finished outputs are not decoded again
    estimate = source.frame_estimate()
    progress = Progress(estimate - sink.skipped if estimate else None, settings.quiet, str(output),
                        settings.on_progress, settings.cancel, _unit(source))
    try:
        run_pass(source, upscaler, sizes, sink, settings, progress)
    finally:
        progress.close()
    return Summary(progress.done, progress.elapsed, output, _size_on_disk(output), skipped=sink.skipped,
                   failed=sink.failed, inputs=len(inputs), unit=_unit(source))


def _check_folder(folder: Path, source: Source) -> None:
    if source.root and folder.resolve() == source.root.resolve():
        raise UsageError(f"{folder}: output folder is the input folder")
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{folder}: exists and is not a folder")


def _size_on_disk(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    folder = path.parent if not path.is_dir() else path
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0
