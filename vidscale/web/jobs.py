"""The page's job queue: one job at a time on the engine, through the CLI's own `run_job`.

Each uploaded file is a job. A worker thread takes them in order; progress and
state changes go to `publish` (the server-sent event stream). Cancelling a
queued job drops it; cancelling the running one sets its cancel event, and
`run_job` stops after the frame in hand and removes its partial output. A job
that ends in any way other than done removes its upload too: it leaves nothing.
"""

from __future__ import annotations

import logging
import queue
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from vidscale.errors import Cancelled, VidscaleError
from vidscale.job import JobSettings, run_job
from vidscale.segments.state import state_dir_for
from vidscale.web.previews import make_previews

log = logging.getLogger("vidscale")
EVENT_INTERVAL_S = 0.25  # progress events per job at most this often (the last frame always)


@dataclass
class Job:
    id: str
    name: str  # the client's file name, made safe
    video: bool
    upload: Path
    settings: JobSettings
    size_label: str  # "x2" or "w1920", for the result's name
    choice: str  # the page's model choice ("photo", "anime"...)
    state: str = "queued"  # queued, running, done, failed, cancelled
    done: int = 0
    total: int | None = None
    fps: float | None = None
    eta_s: float | None = None
    error: str | None = None
    output: Path | None = None
    result_size: tuple[int, int] | None = None  # (width, height) of the result
    cancel: threading.Event = field(default_factory=threading.Event)
    first_frame_at: float | None = None
    last_event_at: float = 0.0

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "video": self.video, "choice": self.choice,
                "model": self.settings.model, "state": self.state,
                "done": self.done, "total": self.total, "fps": self.fps, "eta_s": self.eta_s,
                "error": self.error, "result": self.output.name if self.output else None,
                "width": self.result_size[0] if self.result_size else None,
                "height": self.result_size[1] if self.result_size else None}


class JobQueue:
    def __init__(self, out_dir: Path, preview_dir: Path, publish: Callable[[dict[str, Any]], None]):
        self.out_dir, self.preview_dir, self.publish = out_dir, preview_dir, publish
        self.jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._pending: queue.Queue[Job | None] = queue.Queue()
        self._worker = threading.Thread(target=self._work, name="vidscale-web-jobs", daemon=True)
        self._worker.start()

    def submit(self, job: Job) -> None:
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
        job.cancel.set()
        with self._lock:
            dropped = job.state == "queued"
            if dropped:
                job.state = "cancelled"
        if dropped:
            job.upload.unlink(missing_ok=True)
            self._announce(job)
        return job

    def close(self) -> None:
        """Stop the running job (its partial output is removed) and the worker."""
        for job in self.all():
            if job.state in ("queued", "running"):
                self.cancel(job.id)
        self._pending.put(None)
        self._worker.join()

    def preview(self, job: Job, which: str) -> Path:
        return self.preview_dir / f"{job.id}-{which}.png"

    def _work(self) -> None:
        while (job := self._pending.get()) is not None:
            with self._lock:
                if job.state != "queued":  # cancelled while it waited
                    continue
                job.state = "running"
            self._announce(job)
            try:
                self._run(job)
            except Cancelled:
                job.state = "cancelled"
            except VidscaleError as exc:
                job.state, job.error = "failed", str(exc)
            except Exception as exc:  # a bug: the page shows it, the server carries on
                log.exception("job %s (%s) failed", job.id, job.name)
                job.state, job.error = "failed", f"internal error: {type(exc).__name__}: {exc}"
            finally:
                job.upload.unlink(missing_ok=True)
            self._announce(job)

    def _run(self, job: Job) -> None:
        output = free_name(self.out_dir, job.name, job.size_label, job.upload.suffix)
        settings = replace(job.settings, on_progress=lambda done, total: self._progress(job, done, total),
                           cancel=job.cancel)
        try:
            run_job(str(job.upload), str(output), settings)
        except BaseException:  # the upload goes with the job, so a video's finished segments cannot resume
            shutil.rmtree(state_dir_for(output), ignore_errors=True)
            raise
        try:
            job.result_size = make_previews(job.upload, output, self.preview(job, "before"),
                                            self.preview(job, "after"))
        except BaseException:  # a result without its comparison is not a result the page can show
            output.unlink(missing_ok=True)
            raise
        job.output, job.state = output, "done"

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


def free_name(folder: Path, name: str, size_label: str, suffix: str) -> Path:
    """`photo-x2.jpg` in `folder`, or `photo-x2-2.jpg`... when that is taken (never replaced)."""
    stem = Path(name).stem or "upload"
    candidate = folder / f"{stem}-{size_label}{suffix}"
    n = 2
    while candidate.exists():
        candidate = folder / f"{stem}-{size_label}-{n}{suffix}"
        n += 1
    return candidate
