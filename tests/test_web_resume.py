"""`vidscale serve` keeps its unfinished jobs on disk: a server stopped or killed mid-job leaves them
to the next one on the same --out, which shows them and continues a video from its finished segments."""

from __future__ import annotations

import http.client
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import av
import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from tests.conftest import ROOT  # noqa: E402
from tests.media import VideoSpec, make_video  # noqa: E402
from tests.test_segments import KEYINT, make_clip  # noqa: E402
from tests.test_web_api import kept, png_bytes, request  # noqa: E402
from vidscale.core.limits import PixelLimits  # noqa: E402
from vidscale.errors import UsageError  # noqa: E402
from vidscale.segments.state import state_dir_for  # noqa: E402
from vidscale.web.jobs import Job  # noqa: E402
from vidscale.web.serve import running  # noqa: E402
from vidscale.web.store import FOLDER  # noqa: E402
from vidscale.web.uploads import Limits  # noqa: E402

SUBMIT = "/api/jobs?name=clip.mp4&choice=fast&scale=2"
FRAMES = 3 * KEYINT
SEGMENT = f"{KEYINT}f"  # 3 segments
WAIT_S = 120


def wait_until(what, message: str, timeout: float = WAIT_S):  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if value := what():
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {message}")


def first_event(url: str) -> dict:
    """The state the page gets when it opens: the first message of the event stream."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.request("GET", "/api/events")
        response = conn.getresponse()
        line = response.readline()
        return json.loads(line.decode().removeprefix("data: "))
    finally:
        conn.close()


def answers(url: str) -> bool:
    try:
        return request(url, "GET", "/api/config")[0] == 200
    except ConnectionRefusedError:
        return False


def frames_of(path: Path) -> tuple[int, tuple[int, int]]:
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
    return len(frames), (frames[0].width, frames[0].height)


def listing(out: Path) -> list[str]:
    """What the server's hidden folder holds once it has stopped."""
    return sorted(p.name for p in (out / FOLDER).iterdir())


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", FRAMES)


def stop_mid_video(clip: Path, out: Path, photo: bytes | None = None) -> None:
    """Submit the clip (and a photo queued behind it), then stop the server (as Ctrl-C does) in its
    second segment: the first is finished and recorded."""
    with running(out, segment=SEGMENT) as (url, app):
        queue, reached = app.state.jobs, threading.Event()
        plain = queue._progress

        def held(job: Job, done: int, total: int | None) -> None:
            plain(job, done, total)
            if done == KEYINT + 2:
                reached.set()
                job.cancel.wait(WAIT_S)  # the stop sets it

        queue._progress = held
        assert request(url, "POST", SUBMIT, clip.read_bytes())[0] == 201
        if photo is not None:
            assert request(url, "POST", "/api/jobs?name=still.png&choice=fast&scale=2", photo)[0] == 201
        assert reached.wait(WAIT_S)
    state = state_dir_for(out / "clip-x2.mp4")
    assert sorted(p.name for p in state.glob("0*.json")) == ["00000.json"]
    assert not (out / "clip-x2.mp4").exists()


def test_a_stopped_server_resumes_its_jobs(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    stop_mid_video(clip, out, photo=png_bytes(tmp_path))
    records = sorted((out / FOLDER / "jobs").iterdir())
    assert len(records) == 2 and len(list((out / FOLDER / "uploads").iterdir())) == 2

    # another --segment and --max-pixels: the jobs keep the length they were submitted with, and the
    # pixel limits (which change no frame) do not make the segments stale
    with running(out, Limits(pixels=PixelLimits(200_000_000)), segment="20s") as (url, app):
        jobs = first_event(url)["jobs"]
        assert [(j["name"], j["resumed"]) for j in jobs] == [("clip.mp4", True), ("still.png", True)]
        assert all(j["state"] in ("queued", "running") for j in jobs)
        video, photo = app.state.jobs.all()
        wait_until(lambda: photo.state == "done", "both jobs")
        assert (video.state, video.output, video.reused) == ("done", out / "clip-x2.mp4", KEYINT)
        assert video.total == FRAMES - KEYINT  # this run did the others
        assert video.public()["reused"] == KEYINT and photo.output == out / "still-x2.png"
        assert kept(app, out) == ["clip-x2.mp4", "still-x2.png"]  # no record, upload or segments left
    assert frames_of(out / "clip-x2.mp4") == (FRAMES, (128, 96))
    assert sorted(p.name for p in out.iterdir()) == [FOLDER, "clip-x2.mp4", "still-x2.png"]
    assert listing(out) == ["lock", "previews", "results"]  # the unfinished jobs' folders went


def test_a_resumed_job_cancelled_leaves_nothing(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    stop_mid_video(clip, out)
    with running(out, segment=SEGMENT) as (url, app):
        (job,) = app.state.jobs.all()
        assert job.resumed
        app.state.jobs.cancel(job.id)
        wait_until(lambda: job.state == "cancelled", "the cancel")
        assert kept(app, out) == []
    assert list(out.iterdir()) == []


def test_a_result_finished_before_the_stop_is_taken_as_done(clip: Path, tmp_path: Path) -> None:
    """Killed between the result's rename and the end of its record: the result is complete (it
    appears in one rename), so the next server only makes its previews."""
    out = tmp_path / "out"
    stop_mid_video(clip, out)
    make_video(out / "clip-x2.mp4", VideoSpec(width=128, height=96, frames=3, audio=None))
    with running(out, segment=SEGMENT) as (url, app):
        (job,) = app.state.jobs.all()
        wait_until(lambda: job.state in ("done", "failed"), "the job")
        assert (job.state, job.output, job.result_size, job.reused) == ("done", out / "clip-x2.mp4", (128, 96), 0)
        assert kept(app, out) == ["clip-x2.mp4"]  # the segments went with the record
    assert frames_of(out / "clip-x2.mp4") == (3, (128, 96))  # left as it was


def test_a_killed_server_resumes_its_video(clip: Path, tmp_path: Path) -> None:
    """kill -9 in the middle of the job: the records written as it went are all the next server has."""
    out = tmp_path / "out"
    server = subprocess.Popen([sys.executable, "-m", "vidscale", "serve", "--port", "0", "--out", str(out),
                               "--segment", SEGMENT], stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})  # this checkout, installed or not
    try:
        said = server.stderr.readline  # type: ignore[union-attr]
        line = wait_until(lambda: "serving" in (text := said()) and text, "the server's address")
        url = re.search(r"http://\S+/", line).group(0)  # type: ignore[union-attr]
        wait_until(lambda: answers(url), "the server to listen")
        assert request(url, "POST", SUBMIT, clip.read_bytes())[0] == 201
        wait_until((state_dir_for(out / "clip-x2.mp4") / "00000.json").is_file, "the first segment")
        os.kill(server.pid, signal.SIGKILL)
    finally:
        server.kill()
        server.wait()
        server.stderr.close()  # type: ignore[union-attr]
    assert not (out / "clip-x2.mp4").exists()
    with running(out) as (url, app):
        (job,) = app.state.jobs.all()
        wait_until(lambda: job.state in ("done", "failed"), "the resumed job")
        assert job.state == "done" and job.output == out / "clip-x2.mp4"
        assert KEYINT <= job.reused < FRAMES
    assert frames_of(out / "clip-x2.mp4") == (FRAMES, (128, 96))
    assert sorted(p.name for p in out.iterdir()) == [FOLDER, "clip-x2.mp4"]
    assert listing(out) == ["lock", "previews", "results"]


def test_unusable_records_are_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "out"
    jobs, uploads = out / FOLDER / "jobs", out / FOLDER / "uploads"
    jobs.mkdir(parents=True)
    uploads.mkdir()
    good = {"format": 1, "id": "0123456789ab", "name": "a.png", "suffix": ".png", "choice": "fast",
            "scale": 2, "width": None, "denoise": None, "segment": None, "submitted": 1.0, "output": None}
    bad = {
        "aaaaaaaaaaaa": "{not json",
        "bbbbbbbbbbbb": json.dumps({**good, "id": "bbbbbbbbbbbb", "format": 99}),  # another version's
        "cccccccccccc": json.dumps({**good, "id": "cccccccccccc", "output": "../../escape.png"}),
        "dddddddddddd": json.dumps({**good, "id": "ffffffffffff"}),  # names another record
        "eeeeeeeeeeee": json.dumps({**good, "id": "eeeeeeeeeeee", "scale": "2"}),
        "999999999999": json.dumps({**good, "id": "999999999999", "choice": "nope"}),
    }
    for stem, text in bad.items():
        (jobs / f"{stem}.json").write_text(text)
        (uploads / f"{stem}.png").write_bytes(png_bytes(tmp_path))
    (jobs / "777777777777.json").write_text(json.dumps({**good, "id": "777777777777"}))  # its upload is gone
    (uploads / "888888888888.png").write_bytes(b"half an upl")  # arriving when the server died
    with caplog.at_level(logging.WARNING, logger="vidscale"), running(out) as (url, app):
        assert app.state.jobs.all() == []
        assert request(url, "GET", "/api/config")[0] == 200
    warnings = "\n".join(r.getMessage() for r in caplog.records)
    for stem in bad:
        assert f"{stem}.json" in warnings or f"job {stem} skipped" in warnings, stem
    assert "777777777777.json: skipped and removed, its upload is gone" in warnings
    for reason in ("not a plain file name", "format 99", "does not name this record", "wrong type",
                   "unknown model choice"):
        assert reason in warnings, reason
    assert sorted(p.stem for p in jobs.iterdir()) == sorted(bad)  # left as they were
    assert sorted(p.stem for p in uploads.iterdir()) == sorted(bad)  # the half upload went


def test_one_server_per_results_folder(tmp_path: Path) -> None:
    with running(tmp_path / "out"):
        with pytest.raises(UsageError, match="another vidscale serve keeps its results here"):
            with running(tmp_path / "out"):
                pass
    with pytest.raises(UsageError, match="--segment 'soon'"):
        with running(tmp_path / "out", segment="soon"):
            pass


def test_results_are_listed_after_a_restart_until_their_row_is_removed(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with running(out) as (url, app):
        ids = []
        for name in ("a.png", "b.png"):
            status, reply = request(url, "POST", f"/api/jobs?name={name}&choice=fast&scale=2", png_bytes(tmp_path))
            ids.append(reply["id"])
        wait_until(lambda: all(app.state.jobs.get(i).state == "done" for i in ids), "both results")
    with running(out) as (url, app):
        jobs = first_event(url)["jobs"]
        assert [(j["id"], j["state"], j["result"], j["choice"], j["model"]) for j in jobs] == \
            [(ids[0], "done", "a-x2.png", "fast", "span-x2"), (ids[1], "done", "b-x2.png", "fast", "span-x2")]
        assert (jobs[0]["in_width"], jobs[0]["in_height"], jobs[0]["width"], jobs[0]["height"]) == (32, 24, 64, 48)
        parts = urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        conn.request("GET", f"/api/jobs/{ids[0]}/after.png")
        assert conn.getresponse().status == 200
        conn.close()
        assert request(url, "DELETE", f"/api/jobs/{ids[0]}")[0] == 200  # the row: the file stays
        assert request(url, "DELETE", f"/api/jobs/{ids[1]}?file=1")[0] == 200  # the row and the file
        assert request(url, "DELETE", f"/api/jobs/{ids[1]}")[0] == 404
    assert sorted(p.name for p in out.iterdir()) == ["a-x2.png"]  # the hidden folder went with the last row
    with running(out) as (url, app):
        assert first_event(url)["jobs"] == []


def test_a_queued_or_running_row_cannot_be_removed(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    stop_mid_video(clip, out)
    with running(out, segment=SEGMENT) as (url, app):
        (job,) = app.state.jobs.all()
        status, reply = request(url, "DELETE", f"/api/jobs/{job.id}")
        assert status == 409 and "cancel it first" in reply["error"]
        app.state.jobs.cancel(job.id)
        wait_until(lambda: job.state == "cancelled", "the cancel")
        assert request(url, "DELETE", f"/api/jobs/{job.id}")[0] == 200
        assert first_event(url)["jobs"] == []


def test_a_stop_does_not_wait_for_the_picture_in_hand(tmp_path: Path) -> None:
    """A stop (Ctrl-C) in the middle of a picture's one frame ends it within a layer of the network:
    the frame is never finished, and the job waits on disk for the next server."""
    out = tmp_path / "out"
    parts: list[float] = []
    with running(out) as (url, app):
        queue, under_way = app.state.jobs, threading.Event()
        plain = queue._part

        def watched(job: Job, fraction: float) -> None:
            plain(job, fraction)
            parts.append(fraction)
            if fraction > 0.05:
                under_way.set()

        queue._part = watched
        status, reply = request(url, "POST", "/api/jobs?name=a.png&choice=photo&scale=2", png_bytes(tmp_path, 144, 192))
        assert status == 201 and under_way.wait(WAIT_S)
        job = queue.get(reply["id"])
    assert job.state == "interrupted" and job.done == 0
    assert max(parts) < 0.9  # a stop that waited for the frame would have reported it to the end
    assert [p.stem for p in (out / FOLDER / "jobs").iterdir()] == [job.id]
