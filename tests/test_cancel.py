"""A job reports progress to its caller and stops cleanly when the caller cancels it."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from vidscale import JobSettings, run_job
from vidscale.errors import Cancelled
from tests.conftest import SAMPLES


def test_progress_reaches_the_listener(tmp_path: Path) -> None:
    seen: list[tuple[int, int | None]] = []
    settings = JobSettings(scale=2, model="bicubic", max_frames=4, quiet=True,
                           on_progress=lambda done, total: seen.append((done, total)))
    run_job(str(SAMPLES / "bunny.webm"), str(tmp_path / "out.mp4"), settings)
    assert [d for d, _ in seen] == [1, 2, 3, 4]
    assert all(total == 4 for _, total in seen)


def test_cancel_stops_the_job_and_leaves_nothing(tmp_path: Path) -> None:
    cancel = threading.Event()

    def listener(done: int, total: int | None) -> None:
        if done == 2:
            cancel.set()

    settings = JobSettings(scale=2, model="bicubic", max_frames=8, quiet=True, on_progress=listener, cancel=cancel)
    with pytest.raises(Cancelled):
        run_job(str(SAMPLES / "bunny.webm"), str(tmp_path / "out.mp4"), settings)
    assert list(tmp_path.iterdir()) == []
