"""A segmented job's state on disk: what lets a run resume after any interruption.

The state lives in a hidden folder beside the output (`.NAME.vidscale-job/`):

    job.json       the plan and the fingerprint of the source and the settings
    lock           held (flock) by the run using the folder
    00003.mp4      a finished segment, renamed into place once complete
    00003.json     its record: frames, timestamps, size and SHA-256; written last

A segment counts as finished only when its record exists and the file
matches it; anything else (a torn file, a stray temporary) is redone.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from contextlib import suppress
from dataclasses import asdict, dataclass
from pathlib import Path

from vidscale.errors import VidscaleError
from vidscale.media.atomic import TMP_MARK, try_lock, write_error
from vidscale.segments.plan import SegmentPlan

STATE_SUFFIX = ".vidscale-job"
_FORMAT = 1  # bump when the folder's layout changes


@dataclass(frozen=True)
class Record:
    """A finished segment, as written."""

    index: int
    frames: int
    first_pts: int | None
    last_pts: int | None
    bytes: int
    sha256: str
    repeats: int = 0  # frames that repeated the previous one (their upscale was reused)


def segment_file(state_dir: Path, index: int, suffix: str) -> Path:
    """A segment's file in the state folder (`suffix` is its container's)."""
    return state_dir / f"{index:05d}{suffix}"


def record_file(state_dir: Path, index: int) -> Path:
    return segment_file(state_dir, index, ".json")


def state_dir_for(output: Path) -> Path:
    """The hidden folder beside `output`; its name fits the 255-byte limit whatever the output's."""
    name = output.name.encode("utf-8", "surrogateescape")[:200].decode("utf-8", "ignore")
    return output.with_name(f".{name}{STATE_SUFFIX}")


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class JobState:
    """The state folder of one output; use as a context manager (it holds the lock)."""

    def __init__(self, output: Path):
        self.output = output
        self.dir = state_dir_for(output)
        self._lock: int | None = None

    def __enter__(self) -> "JobState":
        made = not self.dir.exists()
        try:
            self.dir.mkdir(exist_ok=True)
            self._lock = try_lock(self.dir / "lock", 0o644)
            if self._lock is None:
                raise VidscaleError(f"{self.output}: another vidscale run is writing it")
            for stray in self.dir.glob(f"*{TMP_MARK}*"):  # from a killed run: never complete
                stray.unlink(missing_ok=True)
        except OSError as e:  # a read-only or full folder: the output cannot be written
            self.__exit__()
            if made:
                self.remove()
            raise write_error(self.output, e) from None
        return self

    def __exit__(self, *exc: object) -> None:
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def start(self, fingerprint: dict, plan_of: Callable[[], SegmentPlan], fresh: bool,
              defaults: dict | None = None) -> tuple[SegmentPlan, str | None]:
        """The job's plan: the saved one when the fingerprint matches, else a new one (the old
        segments deleted). Also says why an earlier state was dropped, if it was. A setting
        missing from the saved fingerprint counts as its value in `defaults`: a run from an
        older vidscale, which did not have it, resumes when it is left at its default."""
        saved = _read_json(self.dir / "job.json")
        reason = None
        old = with_defaults(saved.get("fingerprint", {}), defaults or {}) if saved is not None else None
        if saved is not None and saved.get("format") == _FORMAT and old == fingerprint and not fresh:
            return SegmentPlan.from_json(saved["plan"]), None
        if saved is not None:
            reason = "--fresh" if fresh else _what_changed(old or {}, fingerprint)
        try:
            self.clear_segments()
        except OSError as e:
            raise write_error(self.output, e) from None
        plan = plan_of()
        _write_json(self.dir / "job.json", {"format": _FORMAT, "fingerprint": fingerprint,
                                                  "plan": plan.to_json()})
        return plan, reason

    def finished(self, index: int, suffix: str) -> Record | None:
        """The segment's record, when its file is there and matches it."""
        data = _read_json(record_file(self.dir, index))
        path = segment_file(self.dir, index, suffix)
        if data is None or not path.is_file():
            return None
        try:
            record = Record(**data)
        except TypeError:
            return None
        if path.stat().st_size != record.bytes or file_digest(path) != record.sha256:
            return None
        return record

    def forget(self, index: int, suffix: str) -> None:
        record_file(self.dir, index).unlink(missing_ok=True)
        segment_file(self.dir, index, suffix).unlink(missing_ok=True)

    def records(self) -> int:
        """How many segments have a record (finished, unless checked otherwise)."""
        return sum(1 for _ in self.dir.glob("[0-9]*.json"))

    def clear_segments(self) -> None:
        for path in self.dir.iterdir():
            if path.name != "lock":
                path.unlink(missing_ok=True)

    def remove(self) -> None:
        """The job is done: the folder goes (the lock with it)."""
        shutil.rmtree(self.dir, ignore_errors=True)


def save_record(state_dir: Path, record: Record) -> None:
    """Marks a segment finished; its file must be complete and in place before."""
    _write_json(record_file(state_dir, record.index), asdict(record))


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_json(path: Path, data: dict) -> None:
    """Written whole or not at all, and on disk before anything that relies on it."""
    tmp = path.with_name(f"{path.name}{TMP_MARK}")
    try:
        with open(tmp, "w") as f:
            json.dump(data, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:  # named as the state file: the job reports it against its output
        with suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise write_error(path, e) from None


def with_defaults(saved: object, defaults: dict) -> dict:
    """`saved` with each key it lacks taken from `defaults`, one level of nesting deep (the
    encoder's settings)."""
    if not isinstance(saved, dict):
        return {}
    filled = {**defaults, **saved}
    for key, value in defaults.items():
        if isinstance(value, dict) and isinstance(filled.get(key), dict):
            filled[key] = {**value, **filled[key]}
    return filled


def _what_changed(old: dict, new: dict) -> str:
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return "the source changed" if "source" in keys else f"the settings changed ({', '.join(keys)})"

