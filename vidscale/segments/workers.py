"""Segments in local worker processes: one per GPU, or a split of the CPU's cores.

Workers are spawned (not forked: torch's threads do not survive a fork), each
loads the model once, takes segments from a queue and reports frames as they
are written. A worker dies with the driver (PR_SET_PDEATHSIG), and stops
cleanly (its segment's temporary file removed) when the driver is stopped.
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import queue
import signal
from collections.abc import Iterator

import torch

from vidscale.errors import VidscaleError
from vidscale.progress import Progress
from vidscale.segments.encode import SegmentJob, encode_segment, make_upscaler
from vidscale.segments.plan import Segment
from vidscale.segments.state import Record

_POLL_S = 0.5
_STOP_WAIT_S = 20.0


def run_in_workers(job: SegmentJob, todo: list[Segment], progress: Progress, workers: int,
                   device: torch.device) -> Iterator[Record]:
    """Run `todo` in `workers` processes; yields each segment's record as it finishes."""
    ctx = mp.get_context("spawn")
    tasks, results = ctx.Queue(), ctx.Queue()
    for segment in todo:
        tasks.put(segment)
    count = min(workers, len(todo))
    for _ in range(count):
        tasks.put(None)
    threads = max(1, (os.cpu_count() or 1) // count)
    procs = [ctx.Process(target=_work, args=(job, _device_of(device, i), threads, tasks, results),
                         name=f"vidscale-worker-{i}", daemon=True) for i in range(count)]
    for p in procs:
        p.start()
    try:
        left = len(todo)
        while left:
            kind, payload = _next(results, procs)
            if kind == "frames":
                progress.update(payload)  # type: ignore[arg-type]
            elif kind == "done":
                left -= 1
                yield payload  # type: ignore[misc]
            else:
                raise VidscaleError(str(payload))
    finally:
        _stop(procs)


def _device_of(device: torch.device, worker: int) -> str:
    """Worker i's device: the i-th GPU when the job runs on CUDA (several GPUs), else the job's."""
    if device.type == "cuda" and device.index is None and torch.cuda.device_count() > 1:
        return f"cuda:{worker % torch.cuda.device_count()}"
    return str(device)


def _next(results: mp.Queue, procs: list[mp.Process]) -> tuple[str, object]:
    while True:
        try:
            return results.get(timeout=_POLL_S)
        except queue.Empty:
            dead = [p for p in procs if p.exitcode not in (None, 0)]
            if dead:
                raise VidscaleError(f"a worker process died (exit code {dead[0].exitcode})") from None


def _stop(procs: list[mp.Process]) -> None:
    """SIGTERM each live worker (it cleans up as for Ctrl-C), then wait; SIGKILL stragglers."""
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        p.join(_STOP_WAIT_S)
        if p.is_alive():
            p.kill()
            p.join()


class _Reporter:
    """Progress in a worker: frame counts go to the driver, a few at a time."""

    def __init__(self, results: mp.Queue):
        self.results = results

    def update(self, n: int = 1) -> None:
        self.results.put(("frames", n))

    def check(self) -> None:
        """Nothing to ask between tiles: a worker is stopped by SIGTERM (Terminated)."""


def _work(job: SegmentJob, device: str, threads: int, tasks: mp.Queue, results: mp.Queue) -> None:
    _die_with_parent()
    from vidscale.signals import stop_on_sigterm

    stop_on_sigterm()
    torch.set_num_threads(threads)
    try:
        upscaler = make_upscaler(job.settings, device)
        while (segment := tasks.get()) is not None:
            results.put(("done", encode_segment(job, segment, upscaler, _Reporter(results))))  # type: ignore[arg-type]
    except KeyboardInterrupt:
        return  # stopped by the driver: the segment's temporary file is already gone
    except VidscaleError as exc:
        results.put(("error", str(exc)))
    except Exception as exc:  # a bug: the driver reports it as one line
        results.put(("error", f"internal error in a worker: {type(exc).__name__}: {exc}"))


def _die_with_parent() -> None:
    """Linux: the kernel sends this process SIGKILL when the driver dies (even by kill -9)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # elsewhere a worker ends when its queue's driver is gone
