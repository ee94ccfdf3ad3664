"""A video file job as segments: plan, resume what is finished, run the rest, join.

The same plan runs in this process, in local worker processes (`workers`) or
on Ray (`ray`); each executor runs `encode_segment`, which writes a segment's
file and record, so a finished segment is kept whoever ran it.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterator
from dataclasses import fields
from fractions import Fraction
from pathlib import Path

from vidscale.core.settings import JobSettings, Product
from vidscale.core.version import __version__
from vidscale.encoding import choose_encoder
from vidscale.errors import VidscaleError
from vidscale.media import hdr
from vidscale.media.atomic import atomic_output, check_target, remove_stale_temps
from vidscale.media.frames import VideoInfo
from vidscale.media.source import VideoSource
from vidscale.media.window import Cut
from vidscale.progress import Progress
from vidscale.segments.assemble import assemble
from vidscale.segments.encode import SegmentJob, encode_segment
from vidscale.segments.plan import Segment, SegmentLength, SegmentPlan, plan_segments
from vidscale.segments.state import JobState, Record
from vidscale.upscaler import Upscaler

log = logging.getLogger("vidscale")


def run_segmented(source: VideoSource, output: Path, upscaler: Upscaler, settings: JobSettings,
                  estimate: int | None) -> tuple[int, Progress, int]:
    """Write `output` from `source`; returns the frames written, this run's progress, and how
    many of the frames were repeats."""
    check_target(output, settings.overwrite, [source.path])
    remove_stale_temps(output)
    with JobState(output) as state:
        try:
            frames, progress, repeats = _run(state, source, output, upscaler, settings, estimate)
        except VidscaleError as exc:
            _keep_or_drop(state)
            raise _naming_target(exc, state, output) from None
        except BaseException:
            _keep_or_drop(state)
            raise
        state.remove()
    return frames, progress, repeats


def _run(state: JobState, source: VideoSource, output: Path, upscaler: Upscaler, settings: JobSettings,
         estimate: int | None) -> tuple[int, Progress, int]:
    length = SegmentLength.parse(settings.segment) if settings.segment else SegmentLength()
    warmup = _temporal_warmup() if settings.temporal_strength() is not None else 0
    plan, dropped = state.start(_fingerprint(source.path, output, settings, upscaler),
                                lambda: plan_segments(source.path, length, settings.max_frames, warmup,
                                                      settings.start),
                                settings.fresh, _setting_defaults())
    if dropped:
        log.info("%s: an unfinished earlier run was discarded (%s): starting afresh", output, dropped)
    job = SegmentJob.of(source, output, settings, plan)
    codec = choose_encoder(output.suffix, source.info.deep, source.info.pix_fmt, settings.encoder).codec
    hdr.warn_losses(source.path, source.info.color, codec, output.suffix, log.warning)
    done = _finished(state, job)
    todo = [s for s in plan.segments if s.index not in done]
    progress = Progress(_remaining(plan, todo, estimate), settings.quiet, output.name,
                        settings.on_progress, settings.cancel)
    try:
        for record in _execute(job, todo, upscaler, settings, progress):
            done[record.index] = record
    finally:
        progress.close()
    with atomic_output(output, settings.overwrite, [source.path]) as tmp:
        assemble(source.path, [job.segment_path(i) for i in sorted(done)], tmp, log.warning,
                 _cut(plan, done, source.info, settings))
    return sum(r.frames for r in done.values()), progress, sum(r.repeats for r in done.values())


def _cut(plan: SegmentPlan, done: dict[int, Record], info: VideoInfo, settings: JobSettings) -> Cut | None:
    """What of the other streams goes with the video: from the first frame written (with
    --start) to the end of the plan (where --frames ends it)."""
    first, last = done[min(done)], done[max(done)]
    start = first.first_pts * info.time_base if settings.start is not None and first.first_pts is not None else None
    end = plan.segments[-1].end * info.time_base if plan.segments[-1].end is not None else None
    if end is None and not plan.scanned and last.frames == settings.max_frames and last.last_pts is not None \
            and info.rate:  # decoded without a scan: the last frame's time, plus one frame at the rate
        end = last.last_pts * info.time_base + 1 / info.rate
    if start is None and end is None:
        return None
    return Cut(start, end)


def _naming_target(exc: VidscaleError, state: JobState, output: Path) -> VidscaleError:
    """A write fault in a segment file (a full disk...) is reported against the output, and
    a folder it cannot write into as the output's."""
    text = re.sub(re.escape(str(state.dir)) + r"/[^:\s]+", str(output), str(exc))
    text = text.replace(f"'{state.dir.absolute()}'", f"'{output.absolute().parent}'")
    return exc if text == str(exc) else type(exc)(text)


def _temporal_warmup() -> int:
    """Frames a segment first runs through the temporal filter, as the VapourSynth filter does
    after a seek (imported here: only --temporal jobs need OpenCV)."""
    from vidscale.temporal import WARMUP

    return WARMUP


def _keep_or_drop(state: JobState) -> None:
    """After a failure or an interruption: finished segments stay for the next run; a state
    folder with none goes."""
    kept = state.records()
    if not kept:
        state.remove()
    else:
        log.warning("%s: %d finished segment%s kept in %s; run the same command to resume",
                    state.output, kept, "s" * (kept != 1), state.dir.name)


def _finished(state: JobState, job: SegmentJob) -> dict[int, Record]:
    """Segments an earlier run finished (checked against their records); torn ones are removed."""
    done: dict[int, Record] = {}
    for segment in job.plan.segments:
        record = state.finished(segment.index, job.suffix)
        if record is None:
            state.forget(segment.index, job.suffix)
        else:
            done[segment.index] = record
    if done:
        frames = sum(r.frames for r in done.values())
        log.info("%s: resuming: %d of %d segments (%d frames) already done", job.output, len(done),
                 len(job.plan.segments), frames)
    return done


def _remaining(plan: SegmentPlan, todo: list[Segment], estimate: int | None) -> int | None:
    if len(plan.segments) == 1:
        return estimate if todo else 0
    return sum(s.frames for s in todo)


def _execute(job: SegmentJob, todo: list[Segment], upscaler: Upscaler, settings: JobSettings,
             progress: Progress) -> Iterator[Record]:
    if settings.ray is not None:
        from vidscale.segments.on_ray import run_on_ray

        yield from run_on_ray(job, todo, progress, settings.ray or None, settings.workers)
    elif (workers := settings.workers or _default_workers(upscaler)) > 1 and len(todo) > 1:
        from vidscale.segments.workers import run_in_workers

        yield from run_in_workers(job, todo, progress, workers, upscaler.device)
    else:
        for segment in todo:
            yield encode_segment(job, segment, upscaler, progress)


def _default_workers(upscaler: Upscaler) -> int:
    """One worker per GPU when the job may use them all; on the CPU one (the engine's threads
    use the cores: see benchmarks/results/*-segments-cpu.md)."""
    import torch

    if upscaler.device.type == "cuda" and upscaler.device.index is None:
        return max(1, torch.cuda.device_count())
    return 1


def _fingerprint(source: Path, output: Path, settings: JobSettings, upscaler: Upscaler) -> dict:
    """What the output depends on: the source file and what to produce (`settings.product`,
    whole; the backend and device as resolved, so "auto" and what it picks are the same)."""
    stat = source.stat()
    values = _plain_fields(settings.product)
    values.update(backend=upscaler.backend, device=str(upscaler.device),
                  precision=None if settings.precision in (None, "auto") else settings.precision)
    return {"source": [str(source.resolve()), stat.st_size, stat.st_mtime_ns, _edges(source)],
            "output": output.suffix.lower(), "version": __version__,
            "model_files": _model_files(settings.model), **values}


def _setting_defaults() -> dict:
    """What to produce at its defaults, as the fingerprint writes it."""
    return _plain_fields(Product())


def _edges(path: Path, size: int = 1 << 20) -> str:
    """A digest of the file's first and last MiB: catches a replaced file of the same size."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        digest.update(f.read(size))
        f.seek(max(0, path.stat().st_size - size))
        digest.update(f.read(size))
    return digest.hexdigest()


def _model_files(model: str | None) -> list:
    files = [Path(p) for p in (model or "").split("+") if p and Path(p).is_file()]
    return [[str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns] for p in files]


def _plain_fields(value: object) -> dict:
    """A dataclass's fields, JSON-ready."""
    return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}  # type: ignore[arg-type]


def _plain(value: object) -> object:
    """JSON-ready, for comparing with the saved fingerprint."""
    if hasattr(value, "__dataclass_fields__"):
        return _plain_fields(value)
    if isinstance(value, Fraction):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in sorted(value.items())}
    if isinstance(value, (set, frozenset)):
        return sorted(_plain(v) for v in value)  # type: ignore[type-var]
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]  # JSON has lists only
    return value
