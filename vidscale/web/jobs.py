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
finished one leaves its result.
"""

from __future__ import annotations

import logging
import queue
import shutil
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from vidscale.errors import Cancelled, VidscaleError
from vidscale.job import JobSettings, run_job
from vidscale.segments.state import state_dir_for
from vidscale.web.previews import make_previews
from vidscale.web.store import JobRequest, JobStore

log = logging.getLogger("vidscale")
EVENT_INTERVAL_S = 0.25  # progress events per job at most this often (the last frame always)


@dataclass
class Job:
    request: JobRequest  # what the page asked for, as kept on disk
    video: bool
    upload: Path
    settings: JobSettings
    resumed: bool = False  # left unfinished by a server that stopped; this one runs it again
    state: str = "queued"  # queued, running, done, failed, cancelled; interrupted: left for the next server
    done: int = 0
    total: int | None = None
    fps: float | None = None
    eta_s: float | None = None
    error: str | None = None
    output: Path | None = None
    result_size: tuple[int, int] | None = None  # (width, height) of the result
    reused: int = 0  # frames of segments finished before a restart
    cancel: threading.Event = field(default_factory=threading.Event)
    dropped: bool = False  # the user cancelled it (a stop of the server sets `cancel` alone)
    first_frame_at: float | None = None
    last_event_at: float = 0.0

    @property
    def id(self) -> str:
        return self.request.id

    @property
    def name(self) -> str:
        return self.request.name

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "video": self.video, "choice": self.request.choice,
                "model": self.settings.model, "state": self.state, "resumed": self.resumed,
                "done": self.done, "total": self.total, "fps": self.fps, "eta_s": self.eta_s,
                "error": self.error, "result": self.output.name if self.output else None,
                "width": self.result_size[0] if self.result_size else None,
                "height": self.result_size[1] if self.result_size else None, "reused": self.reused}


class JobQueue:
    def __init__(self, out_dir: Path, preview_dir: Path, store: JobStore,
                 publish: Callable[[dict[str, Any]], None]):
        self.out_dir, self.preview_dir, self.store, self.publish = out_dir, preview_dir, store, publish
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
        job = self.get(job_id)
        if job is None:
            return None
        with self._lock:
            if job.state not in ("queued", "running"):
                return job
            job.dropped = True
            job.cancel.set()
            dropped = job.state == "queued"
            if dropped:
                job.state = "cancelled"
        if dropped:
            self.store.forget(job.request)
            self._announce(job)
        return job

    def close(self) -> None:
        """The server is stopping: the running job stops after the frame or tile in hand, and it
        and the queued ones stay on disk for the next server."""
        with self._lock:
            self._closing = True
            for job in self.jobs.values():
                if job.state == "running":
                    job.cancel.set()
        self._pending.put(None)
        self._worker.join()

    def preview(self, job: Job, which: str) -> Path:
        return self.preview_dir / f"{job.id}-{which}.png"

    def _work(self) -> None:
        while (job := self._pending.get()) is not None:
            with self._lock:
                if job.state != "queued" or self._closing:  # cancelled while it waited, or left for later
                    continue
                job.state = "running"
            self._announce(job)
            end = "failed"
            try:
                self._run(job)
                end = "done"
            except Cancelled:
                end = "cancelled" if job.dropped else "interrupted"
            except VidscaleError as exc:
                job.error = str(exc)
            except Exception as exc:  # a bug: the page shows it, the server carries on
                log.exception("job %s (%s) failed", job.id, job.name)
                job.error = f"internal error: {type(exc).__name__}: {exc}"
            finally:
                self._settle(job, end)
                job.state = end  # once what it leaves is settled
            self._announce(job)

    def _settle(self, job: Job, end: str) -> None:
        """What a job leaves when it ends: its result if done, nothing if it failed or was cancelled."""
        if end == "interrupted":
            return  # record, upload and finished segments wait for the next server
        if end != "done" and job.request.output:
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
            job.reused = run_job(str(job.upload), str(output), settings).reused
        try:
            job.result_size = make_previews(job.upload, output, self.preview(job, "before"),
                                            self.preview(job, "after"))
        except BaseException:  # a result without its comparison is not a result the page can show
            output.unlink(missing_ok=True)
            raise
        job.output = output

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
        job.done, job.total = done, total
        if job.first_frame_at is None:  # the first frame includes loading the model: rates start after it
            job.first_frame_at = now
        elif done > 1:
            job.fps = (done - 1) / max(now - job.first_frame_at, 1e-6)
            job.eta_s = (total - done) / job.fps if total else None
        if now - job.last_event_at >= EVENT_INTERVAL_S or done == total:
            job.last_event_at = now
            self._announce(job)

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
