"""Segments on Ray: one actor per GPU (CPU actors where there is none), each holding its model.

Every node reads the source and writes the segments through the same paths,
so input and output must be on storage all nodes share. An actor that dies
is restarted and its segment retried by Ray; a finished segment's file and
record are on disk, so a job whose driver dies resumes like any other.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from vidscale.errors import UsageError, VidscaleError
from vidscale.progress import Progress
from vidscale.segments.encode import SegmentJob, encode_segment, make_upscaler
from vidscale.segments.plan import Segment
from vidscale.segments.state import Record

_RETRIES = 3


class SegmentActor:
    """Holds one upscaler; runs segments of one job."""

    def __init__(self, job: SegmentJob, threads: int):
        import torch

        torch.set_num_threads(threads)
        self.job = job
        self.upscaler = make_upscaler(job.settings, "cuda" if torch.cuda.is_available() else "cpu")

    def run(self, segment: Segment) -> Record:
        return encode_segment(self.job, segment, self.upscaler, _Silent())


class _Silent:
    """Progress in an actor: the driver counts finished segments; Ray cancels by killing the actor."""

    def update(self, n: int = 1) -> None:
        pass

    def check(self) -> None:
        pass


def run_on_ray(job: SegmentJob, todo: list[Segment], progress: Progress, address: str | None,
               workers: int | None) -> Iterator[Record]:
    """Run `todo` on the Ray instance at `address` (None: start one here); yields records."""
    ray = _import_ray()
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 configure_logging=False, runtime_env=_runtime_env())
    try:
        actors = _actors(ray, job, len(todo), workers)
        pool = ray.util.ActorPool(actors)
        try:
            for record in pool.map_unordered(lambda actor, seg: actor.run.remote(seg), todo):
                progress.update(record.frames)
                yield record
        except ray.exceptions.RayTaskError as exc:
            cause = exc.cause if isinstance(getattr(exc, "cause", None), VidscaleError) else None
            raise VidscaleError(str(cause) if cause else f"a Ray worker failed: {exc}") from None
    finally:
        if started:
            ray.shutdown()


def _actors(ray, job: SegmentJob, segments: int, workers: int | None) -> list:  # type: ignore[no-untyped-def]
    resources = ray.cluster_resources()
    gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 1))
    if gpus:
        count, per = min(workers or gpus, gpus, segments), {"num_gpus": 1, "num_cpus": 1}
        threads = 1
    else:
        count = min(workers or 1, cpus, segments)
        threads = max(1, cpus // count)
        per = {"num_cpus": threads}
    remote = ray.remote(max_restarts=_RETRIES, max_task_retries=_RETRIES, **per)(SegmentActor)
    return [remote.remote(job, threads) for _ in range(count)]


def _runtime_env() -> dict:
    """Workers import this same vidscale (a source checkout need not be installed)."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
    return {"env_vars": {"PYTHONPATH": path}}


def _import_ray():  # type: ignore[no-untyped-def]
    try:
        import ray
        import ray.util
    except ImportError:
        raise UsageError("--ray needs Ray: pip install 'vidscale[ray]'") from None
    return ray
