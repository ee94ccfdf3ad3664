"""The web app: one static page, a small JSON API and a server-sent event stream.

    GET  /                          the page (static/index.html, app.js, style.css)
    GET  /api/config                model choices, sizes, limits, accepted types, the results folder
    POST /api/jobs?name=&choice=&scale=|width=&denoise=   body: the file; queues one job
    POST /api/jobs/{id}/cancel
    GET  /api/events                job states and progress (text/event-stream)
    GET  /api/jobs/{id}/result      the result file, as a download
    GET  /api/jobs/{id}/before.png  bicubic at the result's size; after.png: the result's first frame
    GET  /api/results.zip?ids=a,b   the results named (default: every finished one) in one zip
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import tempfile
import zipfile
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from vidscale.errors import UsageError, VidscaleError
from vidscale.web import choices, uploads
from vidscale.web.events import Broadcaster
from vidscale.web.guard import OriginGuard
from vidscale.web.jobs import Job, JobQueue
from vidscale.web.uploads import Limits, TooLarge

STATIC = Path(__file__).resolve().parent / "static"
SCALES = (2, 3, 4)


def create_app(out_dir: Path, limits: Limits = Limits(), extra_hosts: Iterable[str] = (),
               any_ip: bool = False) -> Starlette:
    """The app; results go to `out_dir`, uploads and previews to a private folder removed on shutdown."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="vidscale-web-"))
    (work / "uploads").mkdir()
    (work / "previews").mkdir()
    events = Broadcaster()
    jobs = JobQueue(out_dir, work / "previews", events.publish)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        events.bind(asyncio.get_running_loop())
        try:
            yield
        finally:
            events.close()
            await asyncio.to_thread(jobs.close)
            shutil.rmtree(work, ignore_errors=True)

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"cache-control": "no-store"})

    async def config(request: Request) -> Response:
        return JSONResponse({"choices": choices.describe(), "scales": list(SCALES), "limits": limits.public(),
                             "accepted": list(uploads.ACCEPTED_SUFFIXES), "out_dir": str(out_dir.resolve())})

    async def submit(request: Request) -> Response:
        q = request.query_params
        name = q.get("name", "")
        try:
            suffix = uploads.suffix_of(name)
            video = uploads.is_video(suffix)
            scale, width = _number(q.get("scale"), float), _number(q.get("width"), int)
            choice = q.get("choice", "photo")
            settings = choices.job_settings(choice, video, scale, width, q.get("denoise") or None)
        except VidscaleError as exc:
            return _error(400, exc)
        job_id = secrets.token_hex(6)
        upload = work / "uploads" / f"{job_id}{suffix}"
        declared = request.headers.get("content-length", "")
        try:
            await uploads.receive(request.stream(), upload, limits, int(declared) if declared.isdigit() else None)
            await asyncio.to_thread(uploads.check_frame_size, upload, name, limits, scale, width)
        except TooLarge as exc:
            return _error(413, exc)
        except VidscaleError as exc:
            upload.unlink(missing_ok=True)
            return _error(400 if isinstance(exc, UsageError) else 415, exc)
        size_label = f"x{scale:g}" if scale is not None else f"w{width}"
        job = Job(job_id, uploads.display_name(name), video, upload, settings, size_label, choice)
        jobs.submit(job)
        return JSONResponse(job.public(), status_code=201)

    def find(request: Request) -> Job:
        job = jobs.get(request.path_params["id"])
        if job is None:
            raise _NotFound()
        return job

    async def cancel(request: Request) -> Response:
        job = jobs.cancel(request.path_params["id"])
        return JSONResponse(job.public()) if job else _not_found()

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
        path = jobs.preview(job, which)
        if which not in ("before", "after") or job.state != "done" or not path.is_file():
            return _not_found()
        return FileResponse(path, media_type="image/png")

    async def zipped(request: Request) -> Response:
        wanted = request.query_params.get("ids")
        picked = [jobs.get(i) for i in wanted.split(",")] if wanted else jobs.all()
        files = [j.output for j in picked if j and j.state == "done" and j.output and j.output.is_file()]
        if not files:
            return _not_found("no finished results to download")
        archive = work / f"results-{secrets.token_hex(4)}.zip"
        await asyncio.to_thread(_write_zip, archive, files)
        return FileResponse(archive, filename="vidscale-results.zip", media_type="application/zip",
                            background=BackgroundTask(archive.unlink, missing_ok=True))

    async def not_found(request: Request, exc: Exception) -> Response:
        return _not_found()

    routes = [
        Route("/", index),
        Route("/api/config", config),
        Route("/api/jobs", submit, methods=["POST"]),
        Route("/api/jobs/{id}/cancel", cancel, methods=["POST"]),
        Route("/api/events", stream),
        Route("/api/jobs/{id}/result", result),
        Route("/api/jobs/{id}/{which:str}.png", preview),
        Route("/api/results.zip", zipped),
        Mount("/static", StaticFiles(directory=STATIC)),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={_NotFound: not_found},
                    middleware=[Middleware(OriginGuard, extra_hosts=extra_hosts, any_ip=any_ip)])
    app.state.jobs, app.state.events, app.state.work_dir, app.state.out_dir = jobs, events, work, out_dir
    return app


class _NotFound(Exception):
    pass


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
