"""The web app: one static page, a small JSON API and a server-sent event stream.

    GET  /                          the page (static/index.html, app.js, style.css)
    GET  /api/config                model choices, sizes, limits, accepted types, the results folder
    POST /api/jobs?name=&choice=&scale=|width=&denoise=   body: the file; queues one job
    POST /api/estimate?name=&choice=&scale=|width=&denoise=   body: the file; the dry run's time estimate
    POST /api/jobs/{id}/cancel
    DELETE /api/jobs/{id}?file=1    an ended job's row off the page (file=1: its result off the disk)
    GET  /api/events                job states and progress (text/event-stream)
    GET  /api/jobs/{id}/result      the result file, as a download
    GET  /api/jobs/{id}/before.png  bicubic at the result's size; after.png: the result's first frame
    GET  /api/jobs/{id}/video/before   a video's bicubic preview; video/after: the result, or a
                                    stand-in of it where browsers cannot play it
    GET  /api/jobs/{id}/live/before.jpg  a running video's latest source frame; live/after.jpg: its result
    GET  /api/results.zip?ids=a,b   the results named (default: every finished one) in one zip
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
import zipfile
from collections.abc import AsyncIterator, Iterable
from dataclasses import replace
from pathlib import Path

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from vidscale.errors import UsageError, VidscaleError
from vidscale.job import run_job
from vidscale.media.atomic import make_folder
from vidscale.segments.plan import SegmentLength
from vidscale.web import choices, uploads
from vidscale.web.events import Broadcaster
from vidscale.web.guard import OriginGuard
from vidscale.web.jobs import RELEASE_AFTER_S, Busy, Job, JobQueue
from vidscale.web.store import JobRequest, JobStore
from vidscale.web.uploads import Limits, TooLarge

log = logging.getLogger("vidscale")
STATIC = Path(__file__).resolve().parent / "static"
SCALES = (2, 3, 4)
VIDEO_TYPES = {".mp4": "video/mp4", ".m4v": "video/mp4", ".webm": "video/webm"}


def create_app(out_dir: Path, limits: Limits = Limits(), extra_hosts: Iterable[str] = (),
               any_ip: bool = False, segment: str | None = None,
               release_after_s: float = RELEASE_AFTER_S) -> Starlette:
    """The app; results go to `out_dir`, with the unfinished jobs and their uploads, the finished
    ones' listing and previews in a hidden folder there (`store.py`; the jobs a stopped server left
    are queued again, the results it finished listed). `segment`: video jobs' segment length
    (JobSettings.segment); `release_after_s`: idle time before freed memory goes back."""
    out_dir = Path(out_dir)
    make_folder(out_dir, out_dir, parents=True)
    if segment is not None:
        SegmentLength.parse(segment)  # refused now, not in every job
    store = JobStore(out_dir)
    store.open()
    events = Broadcaster()
    estimating = asyncio.Lock()
    jobs = JobQueue(out_dir, store, events.publish, release_after_s)
    _list_results(store, jobs, limits)
    _queue_unfinished(store, jobs, limits)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        events.bind(asyncio.get_running_loop())
        try:
            yield
        finally:
            events.close()
            await asyncio.to_thread(jobs.close)
            if left := store.pending():
                log.info("vidscale: %d unfinished job%s kept in %s; `vidscale serve --out %s` continues %s",
                         left, "s" * (left != 1), store.dir, out_dir, "them" if left != 1 else "it")
            store.close()

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"cache-control": "no-store"})

    async def favicon(request: Request) -> Response:
        return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")

    async def config(request: Request) -> Response:
        return JSONResponse({"choices": choices.describe(), "scales": list(SCALES), "limits": limits.public(),
                             "accepted": list(uploads.ACCEPTED_SUFFIXES), "out_dir": str(out_dir.resolve())})

    async def asked_job(request: Request, upload: Path | None = None) -> Job | Response:
        """The job a request asks for, its upload received and checked; else the refusal."""
        q = request.query_params
        name = q.get("name", "")
        try:
            suffix = uploads.suffix_of(name)
            asked = JobRequest(secrets.token_hex(6), uploads.display_name(name), suffix,
                               q.get("choice", "photo"), _number(q.get("scale"), float),
                               _number(q.get("width"), int), q.get("denoise") or None, segment, time.time())
            job = _job(asked, store, limits)
        except VidscaleError as exc:
            return _error(400, exc)
        if upload is not None:
            job.upload = upload.with_name(f"{upload.name}-{asked.id}{suffix}")
        declared = request.headers.get("content-length", "")
        try:
            await uploads.receive(request.stream(), job.upload, limits,
                                  int(declared) if declared.isdigit() else None)
            job.source_size, job.planned_size = await asyncio.to_thread(
                uploads.check_frame_size, job.upload, name, limits, asked.scale, asked.width, job.video)
        except VidscaleError as exc:
            job.upload.unlink(missing_ok=True)
            status = 413 if isinstance(exc, TooLarge) else 400 if isinstance(exc, UsageError) else 415
            return _error(status, exc)
        return job

    async def estimate(request: Request) -> Response:
        """The dry run's estimate of the time a job would take (`vidscale --dry-run`): its upload is
        timed on a few frames (a big picture by a centre crop) and dropped. One at a time."""
        job = await asked_job(request, store.tmp / "estimate")
        if not isinstance(job, Job):
            return job
        try:
            async with estimating:
                summary = await asyncio.to_thread(run_job, str(job.upload), str(job.upload.with_stem("out")),
                                                  replace(job.settings, dry_run=True))
        except VidscaleError as exc:
            return _error(400, exc)
        finally:
            job.upload.unlink(missing_ok=True)
        guess = summary.estimate
        assert guess is not None
        return JSONResponse({"name": job.name, "choice": job.request.choice, "model": job.settings.model,
                             "frames": guess.frames, "seconds_per_frame": guess.seconds_per_frame,
                             "seconds": guess.seconds_per_frame * guess.frames if guess.frames else None,
                             "busy": any(j.state == "running" for j in jobs.all())})

    async def submit(request: Request) -> Response:
        job = await asked_job(request)
        if not isinstance(job, Job):
            return job
        asked, name = job.request, request.query_params.get("name", "")
        try:
            await asyncio.to_thread(jobs.submit, job)
        except OSError as exc:  # the record could not be written (a full disk...)
            store.forget(asked)
            return _error(507, VidscaleError(f"{name}: cannot keep the job in {store.dir}: "
                                             f"{exc.strerror or exc}"))
        return JSONResponse(job.public(), status_code=201)

    def find(request: Request) -> Job:
        job = jobs.get(request.path_params["id"])
        if job is None:
            raise _NotFound()
        return job

    async def cancel(request: Request) -> Response:
        job = jobs.cancel(request.path_params["id"])
        return JSONResponse(job.public()) if job else _not_found()

    async def remove(request: Request) -> Response:
        try:
            job = await asyncio.to_thread(jobs.remove, request.path_params["id"],
                                          request.query_params.get("file") == "1")
        except Busy as exc:
            return _error(409, exc)
        return JSONResponse({"removed": job.id}) if job else _not_found()

    async def stream(request: Request) -> Response:
        return StreamingResponse(events.stream(jobs.snapshot), media_type="text/event-stream",
                                 headers={"cache-control": "no-store"})

    async def result(request: Request) -> Response:
        job = find(request)
        if job.state != "done" or job.output is None or not job.output.is_file():
            return _not_found()
        return FileResponse(job.output, filename=job.output.name)

    async def preview(request: Request) -> Response:
        job, which = find(request), request.path_params["which"]
        if which not in ("before", "after") or job.state != "done":
            return _not_found()
        path = jobs.preview(job, f"{which}.png")
        return FileResponse(path, media_type="image/png") if path.is_file() else _not_found()

    async def video(request: Request) -> Response:
        job, which = find(request), request.path_params["which"]
        if which not in ("before", "after") or job.state != "done" or not job.video or job.output is None:
            return _not_found()
        path = job.output if which == "after" and not job.proxy else jobs.preview(job, f"{which}.mp4")
        if not path.is_file():
            return _not_found()
        return FileResponse(path, media_type=VIDEO_TYPES.get(path.suffix.lower(), "video/mp4"))

    async def live(request: Request) -> Response:
        job, which = find(request), request.path_params["which"]
        look = job.live
        picture = await asyncio.to_thread(look.jpeg, which) if look and which in ("before", "after") else None
        if picture is None:
            return _not_found("no frame yet")
        return Response(picture, media_type="image/jpeg", headers={"cache-control": "no-store"})

    async def zipped(request: Request) -> Response:
        wanted = request.query_params.get("ids")
        picked = [jobs.get(i) for i in wanted.split(",")] if wanted else jobs.all()
        files = [j.output for j in picked if j and j.state == "done" and j.output and j.output.is_file()]
        if not files:
            return _not_found("no finished results to download")
        archive = store.tmp / f"results-{secrets.token_hex(4)}.zip"
        await asyncio.to_thread(_write_zip, archive, files)
        return FileResponse(archive, filename="vidscale-results.zip", media_type="application/zip",
                            background=BackgroundTask(archive.unlink, missing_ok=True))

    async def not_found(request: Request, exc: Exception) -> Response:
        return _not_found()

    routes = [
        Route("/", index),
        Route("/favicon.ico", favicon),
        Route("/api/config", config),
        Route("/api/jobs", submit, methods=["POST"]),
        Route("/api/estimate", estimate, methods=["POST"]),
        Route("/api/jobs/{id}/cancel", cancel, methods=["POST"]),
        Route("/api/jobs/{id}", remove, methods=["DELETE"]),
        Route("/api/events", stream),
        Route("/api/jobs/{id}/result", result),
        Route("/api/jobs/{id}/{which:str}.png", preview),
        Route("/api/jobs/{id}/video/{which:str}", video),
        Route("/api/jobs/{id}/live/{which:str}.jpg", live),
        Route("/api/results.zip", zipped),
        Mount("/static", StaticFiles(directory=STATIC)),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={_NotFound: not_found},
                    middleware=[Middleware(OriginGuard, extra_hosts=extra_hosts, any_ip=any_ip)])
    app.state.jobs, app.state.events, app.state.out_dir = jobs, events, out_dir
    app.state.store = store
    return app


class _NotFound(Exception):
    pass


def _list_results(store: JobStore, jobs: JobQueue, limits: Limits) -> None:
    """The results earlier servers finished, as done rows."""
    for request, made in store.load_results():
        try:
            job = _job(request, store, limits)
        except VidscaleError as exc:  # a choice this version no longer has
            log.warning("warning: %s: result %s not listed (%s)", store.results, request.id, exc)
            continue
        job.state, job.output, job.proxy, job.reused = "done", store.dir.parent / request.output, \
            made["proxy"], made["reused"]
        job.result_size, job.elapsed_s = (made["width"], made["height"]), made["elapsed_s"]
        if made["in_width"] is not None and made["in_height"] is not None:
            job.source_size = (made["in_width"], made["in_height"])
        job.settings = replace(job.settings, model=made["model"])
        jobs.add_finished(job)


def _queue_unfinished(store: JobStore, jobs: JobQueue, limits: Limits) -> None:
    """The jobs a stopped server left, queued again."""
    queued = 0
    for left in store.load():
        try:
            job = _job(left, store, limits, resumed=True)
            job.source_size, job.planned_size = uploads.check_frame_size(
                job.upload, left.name, limits, left.scale, left.width, job.video)
            jobs.submit(job)
            queued += 1
        except VidscaleError as exc:  # a record naming a choice or size this version refuses
            log.warning("warning: %s: job %s skipped (%s)", store.jobs, left.id, exc)
    if queued:
        log.info("vidscale: %d unfinished job%s from the last run queued again", queued, "s" * (queued != 1))


def _job(request: JobRequest, store: JobStore, limits: Limits, resumed: bool = False) -> Job:
    """The job a request asks for: the choice's preset with the page's size and denoise level, the
    server's pixel limits (the CLI's --max-pixels) and the segment length it was submitted with."""
    video = uploads.is_video(request.suffix)
    settings = choices.job_settings(request.choice, video, request.scale, request.width, request.denoise)
    settings = replace(settings, limits=limits.pixels, segment=request.segment)
    return Job(request, video, store.upload_path(request.id, request.suffix), settings, resumed=resumed)


def _number(text: str | None, kind: type) -> float | int | None:
    if not text:
        return None
    try:
        return kind(text)
    except ValueError:
        raise UsageError(f"{text!r} is not a number") from None


def _error(status: int, exc: Exception) -> JSONResponse:
    return JSONResponse({"error": str(exc)}, status_code=status)


def _not_found(text: str = "no such result") -> JSONResponse:
    return JSONResponse({"error": text}, status_code=404)


def _write_zip(archive: Path, files: list[Path]) -> None:
    """Stored, not deflated: pictures and video are compressed already."""
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as zf:
        for path in files:
            zf.write(path, arcname=path.name)
