"""The page's unfinished jobs on disk, so that a server started again picks them up.

The results folder (`--out DIR`) holds a hidden folder while jobs are pending:

    .vidscale-web/lock            held (flock) by the server using the folder
    .vidscale-web/jobs/ID.json    one record per unfinished job: what the page asked for, and the
                                  result's file name once the job has started (a video's finished
                                  segments sit in the state folder beside that name)
    .vidscale-web/uploads/ID.EXT  its upload, until the job ends

A record is written whole (a temporary file, fsync, rename) once its upload is complete. A job
that ends, done or failed or cancelled, removes its record, then its upload. A server that starts
reads the records back in the order they were submitted; an upload without a record is one that
was still arriving when the server stopped, and goes. A record that cannot be used (damaged,
foreign, from another version) is skipped with a warning and left as it is.
"""

from __future__ import annotations

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
        self._lock: int | None = None

    def open(self) -> None:
        for folder in (self.dir, self.jobs, self.uploads):
            folder.mkdir(mode=0o700, exist_ok=True)  # uploads are the user's files: not for other accounts
        self._lock = try_lock(self.dir / "lock", 0o600)
        if self._lock is None:
            raise UsageError(f"{self.dir.parent}: another vidscale serve keeps its results here; "
                             "stop it or give another --out")

    def close(self) -> None:
        """Release the folder; it goes when no job is pending in it."""
        if self._lock is None:
            return
        try:
            self.jobs.rmdir()
            self.uploads.rmdir()
            (self.dir / "lock").unlink()
            self.dir.rmdir()
        except OSError:  # a pending job (or something of the user's) is in it: it stays
            pass
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
