"""The page's job queue: one job at a time on the engine, through the CLI's own `run_job`.

Each uploaded file is a job. A worker thread takes them in order; progress and
state changes go to `publish` (the server-sent event stream). Every job is kept
on disk (`store.py`) until it ends, so a server that stops (Ctrl-C, a kill, a
power cut) leaves its unfinished jobs for the next one on the same results
folder, which runs them again: a video continues from its finished segments
under the same result name. A stop interrupts the running job after the frame
(or tile) in hand. Cancelling is the user's: a queued job is dropped, the
running one stops as at a stop, and either leaves nothing: no partial result,
no segments, no upload, no record. A failed job leaves nothing either; a
finished one leaves its result, its previews and a record that lists it after a
restart, until the user removes its row.

While a job runs the page sees its frames done, the fraction of the current frame
(layers and tiles: `engine.watch`), elapsed time and ETA, and for a video the
latest upscaled frame beside its source (`live.py`). Once the queue has been
idle for `release_after_s`, freed memory goes back to the system.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import shutil
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from vidscale.core.settings import JobSettings
from vidscale.engine.cpu_memory import release_freed_memory
from vidscale.engine.watch import reporting
from vidscale.errors import Cancelled, VidscaleError
from vidscale.job import run_job
from vidscale.passes import tapping
from vidscale.segments.state import state_dir_for
from vidscale.web.live import LiveLook
from vidscale.web.previews import make_previews, make_video_previews
from vidscale.web.store import JobRequest, JobStore

log = logging.getLogger("vidscale")
EVENT_INTERVAL_S = 0.25  # progress events per job at most this often (the last frame always)
RELEASE_AFTER_S = 60.0  # idle this long, the server gives freed memory back
ENDED = ("done", "failed", "cancelled", "interrupted")

Size = tuple[int, int]  # (width, height)


@dataclass
class Job:
    request: JobRequest  # what the page asked for, as kept on disk
    video: bool
    upload: Path
    settings: JobSettings
    resumed: bool = False  # left unfinished by a server that stopped; this one runs it again
    # queued, running, cancelling, done, failed, cancelled; interrupted: left for the next server
    state: str = "queued"
    stage: str | None = None  # what a running job does besides upscaling ("making the preview")
    source_size: Size | None = None
    planned_size: Size | None = None  # the result's, as the job will make it
    done: int = 0
    total: int | None = None
    part: float = 0.0  # of the frame in hand
    fps: float | None = None
    eta_s: float | None = None
    error: str | None = None
    output: Path | None = None
    result_size: Size | None = None
    proxy: bool = False  # the page plays a stand-in: browsers cannot play the result itself
    reused: int = 0  # frames of segments finished before a restart
    cancel: threading.Event = field(default_factory=threading.Event)
    dropped: bool = False  # the user cancelled it (a stop of the server sets `cancel` alone)
    live: LiveLook | None = None
    started_at: float | None = None  # monotonic
    elapsed_s: float | None = None  # once ended
    first_frame_at: float | None = None
    last_event_at: float = 0.0

    @property
    def id(self) -> str:
        return self.request.id

    @property
    def name(self) -> str:
        return self.request.name

    def elapsed(self) -> float | None:
        if self.elapsed_s is not None or self.started_at is None:
            return self.elapsed_s
        return time.monotonic() - self.started_at

    def public(self) -> dict[str, Any]:
        size = self.result_size or self.planned_size
        src = self.source_size
        return {"id": self.id, "name": self.name, "video": self.video, "choice": self.request.choice,
                "model": self.settings.model, "state": self.state, "stage": self.stage, "resumed": self.resumed,
                "done": self.done, "total": self.total, "part": round(self.part, 4), "fps": self.fps,
                "eta_s": self.eta_s, "elapsed_s": self.elapsed(), "error": self.error,
                "result": self.output.name if self.output else None,
                "width": size[0] if size else None, "height": size[1] if size else None,
                "in_width": src[0] if src else None, "in_height": src[1] if src else None,
                "reused": self.reused, "proxy": self.proxy, "live": self.live.index if self.live else None}

    def made(self) -> dict[str, Any]:
        """What a finished job keeps in its record (store.MADE)."""
        assert self.result_size is not None
        src = self.source_size or (None, None)
        return {"video": self.video, "model": self.settings.model, "width": self.result_size[0],
                "height": self.result_size[1], "in_width": src[0], "in_height": src[1], "proxy": self.proxy,
                "elapsed_s": round(self.elapsed() or 0.0, 3), "reused": self.reused}


class Busy(VidscaleError):
    """A row that cannot be removed yet: its job is queued or running."""


class JobQueue:
    def __init__(self, out_dir: Path, store: JobStore, publish: Callable[[dict[str, Any]], None],
                 release_after_s: float = RELEASE_AFTER_S):
        self.out_dir, self.store, self.publish = out_dir, store, publish
        self.release_after_s = release_after_s
        self.jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._closing = False
        self._pending: queue.Queue[Job | None] = queue.Queue()
        self._worker = threading.Thread(target=self._work, name="vidscale-web-jobs", daemon=True)
        self._worker.start()

    def submit(self, job: Job) -> None:
        """Queue a job; a new one (not `resumed`) is recorded on disk first."""
        if not job.resumed:
            self.store.save(job.request)
        with self._lock:
            self.jobs[job.id] = job
        self._pending.put(job)
        self._announce(job)

    def add_finished(self, job: Job) -> None:
        """A result an earlier server finished: listed, not run."""
        with self._lock:
            self.jobs[job.id] = job

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"jobs": [j.public() for j in self.jobs.values()]}

    def all(self) -> list[Job]:
        with self._lock:
            return list(self.jobs.values())

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self.jobs.get(job_id)

    def cancel(self, job_id: str) -> Job | None:
        """A queued job is dropped at once; a running one says "cancelling" until it has stopped."""
        job = self.get(job_id)
        if job is None:
            return None
        with self._lock:
            if job.state not in ("queued", "running"):
                return job
            job.dropped = True
            job.cancel.set()
            job.state = "cancelled" if job.state == "queued" else "cancelling"
        if job.state == "cancelled":
            self.store.forget(job.request)
        self._announce(job)
        return job

    def remove(self, job_id: str, delete_file: bool = False) -> Job | None:
        """Take an ended job's row off the page (and its result file off the disk, if asked)."""
        with self._lock:
            job = self.jobs.get(job_id)
            if job is None:
                return None
            if job.state not in ENDED:
                raise Busy(f"{job.name}: still {job.state}; cancel it first")
            del self.jobs[job_id]
        self.store.forget_result(job.id)
        if delete_file and job.state == "done" and job.output is not None:
            job.output.unlink(missing_ok=True)
        self.publish({"removed": job.id})
        return job

    def close(self) -> None:
        """The server is stopping: the running job stops after the layer or tile in hand, and it
        and the queued ones stay on disk for the next server."""
        with self._lock:
            self._closing = True
            for job in self.jobs.values():
                if job.state in ("running", "cancelling"):
                    job.cancel.set()
        self._pending.put(None)
        self._worker.join()

    def preview(self, job: Job, name: str) -> Path:
        return self.store.preview(job.id, name)

    def _work(self) -> None:
        released = True
        while True:
            try:
                job = self._pending.get(timeout=None if released else self.release_after_s)
            except queue.Empty:  # idle: what the last job freed goes back to the system
                release_freed_memory()
                released = True
                continue
            if job is None:
                return
            with self._lock:
                if job.state != "queued" or self._closing:  # cancelled while it waited, or left for later
                    continue
                job.state, job.started_at = "running", time.monotonic()
            released = False
            self._announce(job)
            end = self._end_of(job)
            try:
                self._settle(job, end)
            finally:
                job.elapsed_s, job.live = job.elapsed(), None
                job.state, job.stage = end, None  # once what it leaves is settled
            self._announce(job)

    def _end_of(self, job: Job) -> str:
        """Run the job; how it ended."""
        try:
            self._run(job)
            return "done"
        except Cancelled:
            return "cancelled" if job.dropped else "interrupted"
        except VidscaleError as exc:
            job.error = str(exc)
        except Exception as exc:  # a bug: the page shows it, the server carries on
            log.exception("job %s (%s) failed", job.id, job.name)
            job.error = f"internal error: {type(exc).__name__}: {exc}"
        return "failed"

    def _settle(self, job: Job, end: str) -> None:
        """What a job leaves when it ends: its result and its listing if done, nothing if it failed or
        was cancelled."""
        if end == "interrupted":
            return  # record, upload and finished segments wait for the next server
        if end == "done":
            job.elapsed_s = job.elapsed()
            self.store.save_result(job.request, job.made())
        elif job.request.output:
            # without its upload the segments could never be resumed
            shutil.rmtree(state_dir_for(self.out_dir / job.request.output), ignore_errors=True)
        self.store.forget(job.request)

    def _run(self, job: Job) -> None:
        output = self._target(job)
        settings = replace(job.settings, on_progress=lambda done, total: self._progress(job, done, total),
                           cancel=job.cancel)
        if job.resumed and output.is_file():
            # complete before the stop (results appear in one rename), but not yet marked done
            shutil.rmtree(state_dir_for(output), ignore_errors=True)
        else:
            job.live = LiveLook() if job.video else None
            with reporting(lambda fraction: self._part(job, fraction)), \
                    tapping(job.live) if job.live else contextlib.nullcontext():
                job.reused = run_job(str(job.upload), str(output), settings).reused
        job.live = None
        try:
            self._previews(job, output)
        except BaseException:  # a result without its comparison is not a result the page can show
            output.unlink(missing_ok=True)
            for made in self.store.previews.glob(f"{job.id}-*"):
                made.unlink(missing_ok=True)
            raise
        job.output = output

    def _previews(self, job: Job, output: Path) -> None:
        job.stage = "making the preview"
        self._announce(job)
        job.result_size = make_previews(job.upload, output, self.preview(job, "before.png"),
                                        self.preview(job, "after.png"))
        if job.video:
            job.proxy = make_video_previews(job.upload, output, self.preview(job, "before.mp4"),
                                            self.preview(job, "after.mp4"), job.cancel)

    def _target(self, job: Job) -> Path:
        """The result's path: the one recorded when the job first started, else a free name,
        recorded before anything is written under it."""
        if job.request.output:
            return self.out_dir / job.request.output
        with self._lock:
            taken = {j.request.output for j in self.jobs.values() if j.request.output}
        output = free_name(self.out_dir, job.name, job.request.size_label, job.request.suffix, taken)
        job.request = replace(job.request, output=output.name)
        self.store.save(job.request)
        return output

    def _progress(self, job: Job, done: int, total: int | None) -> None:
        now = time.monotonic()
        job.done, job.total, job.part = done, total, 0.0
        if job.first_frame_at is None:  # the first frame includes loading the model: rates start after it
            job.first_frame_at = now
            if not job.video:
                job.eta_s = self._picture_eta(job)
        elif done > 1:
            job.fps = (done - 1) / max(now - job.first_frame_at, 1e-6)
            job.eta_s = (total - done) / job.fps if total else None
        if now - job.last_event_at >= EVENT_INTERVAL_S or done == total:
            job.last_event_at = now
            self._announce(job)

    def _part(self, job: Job, fraction: float) -> None:
        """Progress inside a frame (a picture's only progress): the ETA from the work done so far."""
        job.part = fraction
        if not job.video:
            job.eta_s = self._picture_eta(job)
        now = time.monotonic()
        if now - job.last_event_at >= EVENT_INTERVAL_S:
            job.last_event_at = now
            self._announce(job)

    @staticmethod
    def _picture_eta(job: Job) -> float | None:
        total, elapsed = job.total or 1, job.elapsed() or 0.0
        done = (job.done + job.part) / total
        return elapsed * (1 - done) / done if done > 0.02 else None

    def _announce(self, job: Job) -> None:
        self.publish({"job": job.public()})


def free_name(folder: Path, name: str, size_label: str, suffix: str, taken: Collection[str] = ()) -> Path:
    """`photo-x2.jpg` in `folder`, or `photo-x2-2.jpg`... when that is taken (never replaced): a file
    is there, a video's unfinished segments are kept for it, or `taken` holds it (another job's)."""
    stem = Path(name).stem or "upload"
    candidate = folder / f"{stem}-{size_label}{suffix}"
    n = 2
    while candidate.exists() or state_dir_for(candidate).exists() or candidate.name in taken:
        candidate = folder / f"{stem}-{size_label}-{n}{suffix}"
        n += 1
    return candidate
