"""The page's unfinished jobs on disk, so that a server started again picks them up.

The results folder (`--out DIR`) holds a hidden folder while jobs are pending:

    .vidscale-web/lock            held (flock) by the server using the folder
    .vidscale-web/jobs/ID.json    one record per unfinished job: what the page asked for, and the
                                  result's file name once the job has started (a video's finished
                                  segments sit in the state folder beside that name)
    .vidscale-web/uploads/ID.EXT  its upload, until the job ends
    .vidscale-web/results/ID.json a finished job: its request and what it made, so that the page
                                  lists it after a restart (until the user removes its row)
    .vidscale-web/previews/ID-*   a finished job's before/after pictures (and videos)
    .vidscale-web/tmp/            zips being downloaded; emptied when a server starts

A record is written whole (a temporary file, fsync, rename) once its upload is complete. A job
that ends, done or failed or cancelled, removes its record, then its upload. A server that starts
reads the records back in the order they were submitted; an upload without a record is one that
was still arriving when the server stopped, and goes. A record that cannot be used (damaged,
foreign, from another version) is skipped with a warning and left as it is.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import shutil
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from vidscale.errors import UsageError
from vidscale.media.atomic import TMP_MARK, try_lock

log = logging.getLogger("vidscale")
FOLDER = ".vidscale-web"
FORMAT = 1  # bump when a record's fields change meaning
_ID = re.compile(r"[0-9a-f]{12}")


@dataclass(frozen=True)
class JobRequest:
    """One job as the page asked for it: enough to run it again after a restart."""

    id: str  # 12 hex digits, ours: names the record and the upload
    name: str  # the client's file name, made safe (uploads.display_name)
    suffix: str  # the upload's, lower case
    choice: str  # the page's model choice
    scale: float | None
    width: int | None
    denoise: str | None
    segment: str | None  # the server's --segment when the job was submitted
    submitted: float  # seconds since the epoch: the queue's order after a restart
    output: str | None = None  # the result's file name in the results folder, once chosen

    @property
    def size_label(self) -> str:
        return f"x{self.scale:g}" if self.scale is not None else f"w{self.width}"

    def upload_name(self) -> str:
        return f"{self.id}{self.suffix}"


class JobStore:
    """The hidden folder of one results folder; `open` it before use (it takes the lock)."""

    def __init__(self, out_dir: Path):
        self.dir = Path(out_dir) / FOLDER
        self.jobs, self.uploads = self.dir / "jobs", self.dir / "uploads"
        self.results, self.previews, self.tmp = self.dir / "results", self.dir / "previews", self.dir / "tmp"
        self._lock: int | None = None

    def open(self) -> None:
        self.dir.mkdir(mode=0o700, exist_ok=True)  # uploads are the user's files: not for other accounts
        self._lock = try_lock(self.dir / "lock", 0o600)
        if self._lock is None:
            raise UsageError(f"{self.dir.parent}: another vidscale serve keeps its results here; "
                             "stop it or give another --out")
        for folder in (self.jobs, self.uploads, self.results, self.previews, self.tmp):
            folder.mkdir(mode=0o700, exist_ok=True)
        for stray in self.tmp.iterdir():  # a killed server's half-sent zips
            _remove(stray)

    def close(self) -> None:
        """Release the folder; what is empty in it goes (all of it when no job is pending or listed)."""
        if self._lock is None:
            return
        for folder in (self.jobs, self.uploads, self.results, self.previews, self.tmp):
            with contextlib.suppress(OSError):
                folder.rmdir()
        with contextlib.suppress(OSError):
            if not any(p.name != "lock" for p in self.dir.iterdir()):
                (self.dir / "lock").unlink()
                self.dir.rmdir()
        os.close(self._lock)
        self._lock = None

    def pending(self) -> int:
        """Records on disk: the jobs a server started now would queue again (or skip)."""
        return sum(1 for _ in self.jobs.glob("*.json"))

    def upload_path(self, job_id: str, suffix: str) -> Path:
        return self.uploads / f"{job_id}{suffix}"

    def save(self, request: JobRequest) -> None:
        _write_json(self.jobs / f"{request.id}.json", {"format": FORMAT, **asdict(request)})

    def forget(self, request: JobRequest) -> None:
        """The job ended: its record goes first, so that no record outlives its upload."""
        (self.jobs / f"{request.id}.json").unlink(missing_ok=True)
        self.upload_path(request.id, request.suffix).unlink(missing_ok=True)

    def load(self) -> list[JobRequest]:
        """The unfinished jobs a stopped server left, oldest first; leftovers are cleared."""
        for stray in self.jobs.glob(f"*{TMP_MARK}*"):  # a record being written when the server died
            stray.unlink(missing_ok=True)
        requests = []
        for path in sorted(self.jobs.glob("*.json")):
            try:
                request = parse(json.loads(path.read_text(encoding="utf-8")), path.stem)
            except (OSError, ValueError, TypeError) as exc:
                log.warning("warning: %s: skipped, not a job record this version can resume (%s)", path, exc)
                continue
            if not self.upload_path(request.id, request.suffix).is_file():
                log.warning("warning: %s: skipped and removed, its upload is gone", path)
                path.unlink(missing_ok=True)
                continue
            requests.append(request)
        recorded = {p.stem for p in self.jobs.glob("*.json")}
        for upload in self.uploads.iterdir():
            if upload.name.partition(".")[0] not in recorded:  # still arriving when the server stopped
                _remove(upload)
        return sorted(requests, key=lambda r: (r.submitted, r.id))


    def preview(self, job_id: str, name: str) -> Path:
        return self.previews / f"{job_id}-{name}"

    def save_result(self, request: JobRequest, made: dict[str, Any]) -> None:
        """A finished job, listed after a restart: `made` says what it made (MADE's fields)."""
        _write_json(self.results / f"{request.id}.json", {"format": FORMAT, **asdict(request), "made": made})

    def forget_result(self, job_id: str) -> None:
        """The user removed the row: its record and previews go (the result file is the caller's)."""
        (self.results / f"{job_id}.json").unlink(missing_ok=True)
        for preview in self.previews.glob(f"{job_id}-*"):
            preview.unlink(missing_ok=True)

    def load_results(self) -> list[tuple[JobRequest, dict[str, Any]]]:
        """Finished jobs of earlier servers, oldest first; one whose result file is gone goes too."""
        found = []
        for path in sorted(self.results.glob("*.json")):
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                request, made = parse(data, path.stem), _check_made(data.get("made"))
            except (OSError, ValueError, TypeError) as exc:
                log.warning("warning: %s: skipped, not a result record this version can list (%s)", path, exc)
                continue
            if not request.output or not (self.dir.parent / request.output).is_file():
                self.forget_result(request.id)  # the user deleted or moved the result
                continue
            found.append((request, made))
        return sorted(found, key=lambda r: (r[0].submitted, r[0].id))


MADE: dict[str, tuple[type, ...]] = {  # what a finished job made, as kept in its record
    "video": (bool,), "model": (str, type(None)), "width": (int,), "height": (int,),
    "in_width": (int, type(None)), "in_height": (int, type(None)), "proxy": (bool,),
    "elapsed_s": (int, float), "reused": (int,)}


def _check_made(made: Any) -> dict[str, Any]:
    if not isinstance(made, dict) or set(made) != set(MADE):
        raise ValueError("its 'made' fields are not this version's")
    for name, kinds in MADE.items():
        value = made[name]
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            raise ValueError(f"made.{name} {value!r}: wrong type")
    return made


def parse(data: Any, stem: str) -> JobRequest:
    """A record's fields, checked: a record is a file anyone could have edited."""
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    if data.get("format") != FORMAT:
        raise ValueError(f"format {data.get('format')!r}, expected {FORMAT}")
    names = {f.name for f in fields(JobRequest)}
    missing = sorted(names - set(data) - {"output"})
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    values = {k: data[k] for k in names if k in data}
    request = JobRequest(**values)
    _check_types(request)
    if request.id != stem or not _ID.fullmatch(request.id):
        raise ValueError(f"id {request.id!r} does not name this record")
    if not re.fullmatch(r"\.[a-z0-9]{1,5}", request.suffix):
        raise ValueError(f"suffix {request.suffix!r}")
    for label, name in (("name", request.name), ("output", request.output)):
        if name is not None and (not name or name.startswith(".") or Path(name).name != name):
            raise ValueError(f"{label} {name!r} is not a plain file name")
    return request


_TYPES: dict[str, tuple[type, ...]] = {
    "id": (str,), "name": (str,), "suffix": (str,), "choice": (str,), "scale": (int, float, type(None)),
    "width": (int, type(None)), "denoise": (str, type(None)), "segment": (str, type(None)),
    "submitted": (int, float), "output": (str, type(None))}


def _check_types(request: JobRequest) -> None:
    for name, kinds in _TYPES.items():
        value = getattr(request, name)
        if not isinstance(value, kinds) or isinstance(value, bool):
            raise ValueError(f"{name} {value!r}: wrong type")
    if request.scale is not None and not math.isfinite(request.scale):
        raise ValueError(f"scale {request.scale!r}")


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Written whole or not at all, and on disk before anything relies on it."""
    tmp = path.with_name(f"{path.name}{TMP_MARK}")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
