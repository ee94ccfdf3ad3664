"""Run one segment: decode it from its keyframe, upscale, encode it into its own file."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from vidscale.core.settings import EncoderSettings, Execution, JobSettings, Product
from vidscale.encoding import has_alpha, choose_encoder
from vidscale.media.atomic import atomic_output
from vidscale.media.containers import clock_for, muxer_of, segment_store
from vidscale.media.sinks import VideoSink
from vidscale.media.source import VideoSource
from vidscale.passes import SizeRule, run_pass
from vidscale.progress import Progress
from vidscale.segments.plan import Segment, SegmentPlan
from vidscale.segments.state import Record, file_digest, save_record, segment_file, state_dir_for
from vidscale.transfer import yuv_route
from vidscale.upscaler import Upscaler

log = logging.getLogger("vidscale")


@dataclass(frozen=True)
class SegmentJob:
    """Everything a worker needs to run any segment of a job; picklable, so local worker
    processes and Ray actors get the same description. The settings' callbacks are not part of
    it: they stay with the caller (and a video reads none of the `Pictures` settings)."""

    source: Path
    output: Path
    product: Product
    execution: Execution
    plan: SegmentPlan

    suffix: str  # the segment files' container

    @property
    def settings(self) -> JobSettings:
        return JobSettings(self.product, execution=self.execution)

    def segment_path(self, index: int) -> Path:
        return segment_file(state_dir_for(self.output), index, self.suffix)

    @classmethod
    def of(cls, source: VideoSource, output: Path, settings: JobSettings, plan: SegmentPlan) -> "SegmentJob":
        return cls(source.path, output, settings.product, settings.execution, plan,
                   segment_suffix(source, output.suffix.lower(), settings.encoder))


def segment_suffix(source: VideoSource, suffix: str, encoder: EncoderSettings) -> str:
    """QuickTime (or MP4, for what QuickTime refuses) for the segments where it takes the
    codec and joins into the output's container: it stores every packet's decode time, which
    Matroska does not (the join needs them). Alpha (VP9's rides in Matroska side data) keeps
    the output's container."""
    time_base = clock_for(suffix, source.info.time_base, source.info.rate or encoder.fps)
    plan = choose_encoder(suffix, source.info.deep, source.info.pix_fmt, encoder, time_base)
    if has_alpha(plan.pix_fmt):
        return suffix
    store = segment_store(plan.codec, plan.pix_fmt, plan.options, time_base, muxer_of(suffix))
    return store or suffix


def make_upscaler(settings: JobSettings, device: str | None = None) -> Upscaler:
    """A worker's own upscaler for the job (on `device` when given)."""
    return Upscaler.for_job(settings, "video", device)


def encode_segment(job: SegmentJob, segment: Segment, upscaler: Upscaler, progress: Progress) -> Record:
    """Write segment `segment` of `job` into its file (complete or not at all) and describe it."""
    settings = job.settings
    whole = len(job.plan.segments) == 1 and segment.first_frame == 0  # the clip from its first frame
    start = None if job.plan.scanned else settings.start  # unscanned: decoded up to it
    window = (start, settings.max_frames) if whole else (None, None)
    source = VideoSource(job.source, settings.limits, *window)
    try:
        sizes = SizeRule(settings, even=True)
        target = job.segment_path(segment.index)
        with atomic_output(target, overwrite=True) as tmp:
            sink = VideoSink(tmp, job.output.suffix.lower(), sizes(source.info.height, source.info.width), source,
                             settings.encoder, log.warning, carry=False)
            route = yuv_route(source.info, sink.plan.pix_fmt, sink.alpha, sink.color, upscaler.device,
                              settings.device_color, settings.temporal_strength() is not None)
            planes = route is not None  # formats the device cannot convert still come as RGB
            items = source.items(planes=planes) if whole else source.window(
                segment.start, segment.end, segment.first_frame,
                segment.warmup_from if settings.temporal_strength() is not None else None, planes)
            repeats = run_pass(source, upscaler, sizes, sink, settings, progress, yuv=route, items=items)
        if source.damage:
            log.warning("warning: %s: segment %d: %s", job.source, segment.index, source.damage)
    finally:
        source.close()
    record = Record(segment.index, sink.frames, sink.first_pts, sink.last_pts, target.stat().st_size,
                    file_digest(target), repeats)
    save_record(target.parent, record)  # by the worker: a finished segment survives its driver
    return record
