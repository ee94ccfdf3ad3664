"""`vidscale serve` without a browser: the guards, the upload limits, the choices, the bind rule."""

from __future__ import annotations

import ast
import http.client
import json
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit

import av
import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from tests.media import VideoSpec, make_video, pattern  # noqa: E402
from vidscale.cli import main  # noqa: E402
from vidscale.core.limits import PixelLimits  # noqa: E402
from vidscale.errors import UsageError  # noqa: E402
from vidscale.media.image import write_image  # noqa: E402
from vidscale.web import choices  # noqa: E402
from vidscale.web.jobs import free_name  # noqa: E402
from vidscale.web.serve import bind_warning, running  # noqa: E402
from vidscale.web.uploads import Limits, display_name  # noqa: E402


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, object, Path]]:
    out = tmp_path / "out"
    with running(out, Limits(max_bytes=50_000, pixels=PixelLimits(input=100 * 100))) as (url, app):
        yield url, app, out


def request(url: str, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None, chunked: bool = False) -> tuple[int, dict]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.request(method, path, body=iter([body]) if chunked else body, headers=headers or {},
                     encode_chunked=chunked)
        response = conn.getresponse()
        data = response.read()
        return response.status, json.loads(data) if data.startswith(b"{") else {}
    finally:
        conn.close()


def png_bytes(tmp_path: Path, height: int = 24, width: int = 32) -> bytes:
    path = tmp_path / f"p{height}x{width}.png"
    write_image(path, pattern(0, height, width))
    return path.read_bytes()


def kept(app: object, out: Path) -> list[str]:
    """What the server keeps: files in the results folder, and its records and uploads."""
    store = app.state.store  # type: ignore[attr-defined]
    held = [f"{folder.name}/{p.name}" for folder in (store.jobs, store.uploads) for p in folder.iterdir()]
    return sorted([p.name for p in out.iterdir() if p != store.dir] + held)


def nothing_kept(app: object, out: Path) -> bool:
    return not app.state.jobs.jobs and not kept(app, out)  # type: ignore[attr-defined]


def test_cross_origin_and_foreign_host_are_refused(server: tuple, tmp_path: Path) -> None:
    url, app, out = server
    host = urlsplit(url).netloc
    body = png_bytes(tmp_path)
    query = "/api/jobs?name=a.png&choice=fast&scale=2"
    refused = [
        {"Host": host, "Origin": "http://evil.example"},  # a page on another site
        {"Host": host, "Origin": f"http://localhost:{urlsplit(url).port + 1}"},  # another local port
        {"Host": f"evil.example:{urlsplit(url).port}"},  # DNS rebinding: our address under their name
        {"Host": host, "Sec-Fetch-Site": "cross-site"},
    ]
    for headers in refused:
        status, reply = request(url, "POST", query, body, headers)
        assert status == 403, headers
        assert "refused" in reply["error"] or "not this server" in reply["error"]
    assert request(url, "GET", "/api/config", headers={"Host": "attacker.example"})[0] == 403
    for method, path in (("DELETE", "/api/jobs/0123456789ab?file=1"), ("POST", "/api/estimate?name=a.png")):
        assert request(url, method, path, b"", {"Host": host, "Origin": "http://evil.example"})[0] == 403
    assert nothing_kept(app, out)
    status, reply = request(url, "POST", query, body, {"Host": host, "Origin": f"http://{host}"})
    assert status == 201 and reply["state"] in ("queued", "running", "done")


def test_oversized_upload_is_refused_and_nothing_kept(server: tuple) -> None:
    url, app, out = server
    big = bytes(60_000)
    status, reply = request(url, "POST", "/api/jobs?name=big.png&choice=fast&scale=2", big)
    assert status == 413 and "50000-byte limit" in reply["error"]
    # without a Content-Length the server counts while it receives
    status, reply = request(url, "POST", "/api/jobs?name=big.png&choice=fast&scale=2", big, chunked=True)
    assert status == 413 and "limit" in reply["error"]
    assert nothing_kept(app, out)


def test_uploads_are_checked_like_cli_inputs(server: tuple, tmp_path: Path) -> None:
    url, app, out = server
    cases = [
        ("/api/jobs?name=notes.txt&choice=fast&scale=2", b"hello", 400, "not a picture or video type"),
        ("/api/jobs?name=fake.png&choice=fast&scale=2", b"not a png at all", 415, "fake.png"),
        ("/api/jobs?name=a.png&choice=fast&scale=2", png_bytes(tmp_path, 120, 100), 413, "above the limit"),
        ("/api/jobs?name=a.png&choice=fast&scale=9", png_bytes(tmp_path), 400, "between 1 and 8"),
        ("/api/jobs?name=a.png&choice=fast&width=1920", png_bytes(tmp_path), 400,
         "a.png: a width of 1920 px is 60x its 32 px; choose between 32 and 256 px for it"),
        ("/api/jobs?name=a.png&choice=nope&scale=2", png_bytes(tmp_path), 400, "unknown model choice"),
        ("/api/jobs?name=a.png&choice=photo&scale=2&denoise=3", png_bytes(tmp_path), 400, "no denoise"),
        ("/api/jobs?name=a.png&choice=fast&scale=2", b"", 415, "empty"),
    ]
    for path, body, status, text in cases:
        got, reply = request(url, "POST", path, body)
        assert (got, text in reply["error"]) == (status, True), (path, reply)
    assert nothing_kept(app, out)


def test_choices_run_the_presets() -> None:
    anime = choices.job_settings("anime", video=True, scale=2, width=None, denoise=None)
    assert (anime.model, anime.denoise, anime.temporal, anime.encoder.codec) == ("realcugan", None, 0.5,
                                                                               "libx265")
    assert anime.encoder.preferred == {"codec", "crf", "preset", "pix_fmt"}  # a WebM output takes its own
    assert choices.job_settings("anime", False, 2, None, "3").denoise == "3"
    assert choices.job_settings("anime", False, 2, None, None).temporal is None  # no motion in a still
    photo = choices.job_settings("photo", video=False, scale=None, width=800, denoise=None)
    assert (photo.model, photo.quality, photo.scale, photo.width) == ("realesrgan-x4plus", 95, None, 800)
    film = choices.job_settings("photo", video=True, scale=3, width=None, denoise=None)
    assert (film.model, film.temporal, film.encoder.options) == ("realesrgan-x4plus", 0.6, {"tune": "film"})
    assert choices.denoise_levels("anime")[:2] == ["none", "conservative"]
    assert choices.denoise_levels("fast") == []
    with pytest.raises(UsageError, match="scale or a width"):
        choices.job_settings("fast", False, None, None, None)


def test_result_names_never_replace(tmp_path: Path) -> None:
    assert free_name(tmp_path, "cat.jpg", "x2", ".jpg") == tmp_path / "cat-x2.jpg"
    (tmp_path / "cat-x2.jpg").touch()
    (tmp_path / "cat-x2-2.jpg").touch()
    assert free_name(tmp_path, "cat.jpg", "x2", ".jpg") == tmp_path / "cat-x2-3.jpg"
    (tmp_path / ".cat-x2-3.jpg.vidscale-job").mkdir()  # an unfinished video's segments: kept for that name
    assert free_name(tmp_path, "cat.jpg", "x2", ".jpg", taken={"cat-x2-4.jpg"}) == tmp_path / "cat-x2-5.jpg"
    assert display_name("../../etc/pass wd?.png") == "pass wd_.png"
    assert display_name("C:\\Users\\x\\..") == "upload"


def test_remote_bind_needs_allow_remote(capsys: pytest.CaptureFixture[str]) -> None:
    assert bind_warning("127.0.0.1", False) is None and bind_warning("::1", False) is None
    assert bind_warning("localhost", False) is None
    with pytest.raises(UsageError, match="--allow-remote"):
        bind_warning("0.0.0.0", False)
    assert "reachable from other machines" in bind_warning("192.168.1.5", True)  # type: ignore[operator]
    assert main(["serve", "--host", "0.0.0.0", "--port", "0"]) == 2
    assert "vidscale: error: --host 0.0.0.0 would let other machines reach" in capsys.readouterr().err


def test_cli_module_does_not_import_the_web_stack() -> None:
    """Only `serve` loads Starlette and uvicorn: every other command starts without them."""
    import vidscale.cli

    tree = ast.parse(Path(vidscale.cli.__file__).read_text(encoding="utf-8"))
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    names = [a.name for n in top if isinstance(n, ast.Import) for a in n.names]
    names += [n.module or "" for n in top if isinstance(n, ast.ImportFrom)]
    assert names and not [m for m in names if m.split(".")[0] in ("starlette", "uvicorn")
                          or m.startswith("vidscale.web")]


def cli_error(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """What `vidscale ARGS` says when it refuses them."""
    capsys.readouterr()
    assert main(list(args)) != 0
    return capsys.readouterr().err.strip().removeprefix("vidscale: error: ")


def test_pixel_limits_are_the_clis(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--max-pixels IN,OUT as the CLI reads it; an upload over either limit is refused in the CLI's words."""
    picture = tmp_path / "a.png"
    picture.write_bytes(png_bytes(tmp_path, 100, 120))
    limits = Limits(pixels=PixelLimits(10_000, 40_000))
    with running(tmp_path / "out", limits) as (url, app):
        status, reply = request(url, "POST", "/api/jobs?name=a.png&choice=fast&scale=2", picture.read_bytes())
        too_big = cli_error(capsys, str(picture), str(tmp_path / "b.png"), "-m", "bicubic", "--scale", "2",
                            "--max-pixels", "10000,40000")
        assert (status, reply["error"]) == (413, too_big.replace(str(picture), "a.png"))
        assert reply["error"] == ("a.png: 120x100 is 12000 pixels per frame, above the limit of 10000 pixels "
                                  "(raise it with --max-pixels)")

        small = png_bytes(tmp_path, 80, 100)  # 8000 pixels in; x3 is 72000 out
        (tmp_path / "small.png").write_bytes(small)
        status, reply = request(url, "POST", "/api/jobs?name=small.png&choice=fast&scale=3", small)
        too_big = cli_error(capsys, str(tmp_path / "small.png"), str(tmp_path / "c.png"), "-m", "bicubic",
                            "--scale", "3", "--max-pixels", "10000,40000")
        assert (status, reply["error"]) == (413, too_big)
        assert "output would be 300x240 (72000 pixels per frame), above the limit of 40000 pixels" in too_big
        assert nothing_kept(app, tmp_path / "out")

        # within both: the job runs with the server's limits in its settings
        status, reply = request(url, "POST", "/api/jobs?name=small.png&choice=fast&scale=2", small)
        assert status == 201
        job = app.state.jobs.get(reply["id"])  # type: ignore[attr-defined]
        assert job.settings.limits == PixelLimits(10_000, 40_000)
        status, config = request(url, "GET", "/api/config")
        assert config["limits"] == {"max_bytes": limits.max_bytes, "max_input_pixels": 10_000,
                                    "max_output_pixels": 40_000}


def test_a_video_is_checked_at_its_even_output_size(tmp_path: Path) -> None:
    """Video frames are rounded down to even sizes, as the job rounds them: width 199 writes 198x198."""
    clip = make_video(tmp_path / "odd.mp4", VideoSpec(width=100, height=100, frames=2, audio=None))
    with running(tmp_path / "out", Limits(pixels=PixelLimits(10_000, 199 * 199 - 1))) as (url, app):
        status, reply = request(url, "POST", "/api/jobs?name=odd.mp4&choice=fast&width=199",
                                clip.read_bytes())
        assert status == 201, reply  # 199x199 would be over; the job writes 198x198
        app.state.jobs.cancel(reply["id"])  # type: ignore[attr-defined]


def test_serve_takes_max_pixels_and_segment(monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    import vidscale.web.serve

    seen: dict[str, object] = {}
    monkeypatch.setattr(vidscale.web.serve, "serve", lambda *a, **kw: seen.update(kw))
    assert main(["serve", "--max-pixels", "200M", "--segment", "12f"]) == 0
    assert seen["limits"] == Limits(pixels=PixelLimits(200_000_000, 800_000_000)) and seen["segment"] == "12f"
    assert main(["serve"]) == 0
    assert seen["limits"] == Limits() and seen["segment"] is None
    assert main(["serve", "--max-pixels", "lots"]) == 2
    assert "--max-pixels lots: expected pixel counts such as 100M" in capsys.readouterr().err


def test_a_picture_is_measured_from_its_header_before_ffmpeg_opens_it(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A small PNG that claims 108 MP: refused from its header, as the CLI refuses it."""
    import vidscale.web.uploads
    from tests.test_hostile import png_bytes as claiming

    def not_opened(*args: object) -> None:
        raise AssertionError("FFmpeg opened a picture over the limit")

    monkeypatch.setattr(vidscale.web.uploads, "probe_size", not_opened)
    body = claiming(12_000, 9_000)
    assert len(body) < 200_000
    with running(tmp_path / "out") as (url, app):
        status, reply = request(url, "POST", "/api/jobs?name=bomb.png&choice=fast&scale=2", body)
        assert (status, reply["error"]) == (413, "bomb.png: 12000x9000 is 108 MP per frame, above the limit of "
                                                 "100 MP (raise it with --max-pixels)")
        assert nothing_kept(app, tmp_path / "out")


WAIT_S = 300  # a job on a loaded 2-core machine


def wait_done(app: object, job_id: str, timeout: float = WAIT_S) -> object:
    job = app.state.jobs.get(job_id)  # type: ignore[attr-defined]
    end = time.monotonic() + timeout
    while job.state not in ("done", "failed", "cancelled") and time.monotonic() < end:
        time.sleep(0.05)
    return job


def get_bytes(url: str, path: str) -> tuple[int, str, bytes]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.getheader("content-type") or "", response.read()
    finally:
        conn.close()


def test_a_long_cjk_name_makes_a_result(tmp_path: Path) -> None:
    """120 CJK characters are 360 bytes of UTF-8, over the 255-byte limit on file names."""
    name = "猫" * 120 + ".png"
    with running(tmp_path / "out") as (url, app):
        status, reply = request(url, "POST", f"/api/jobs?name={quote(name)}&choice=fast&scale=2", png_bytes(tmp_path))
        assert status == 201 and reply["name"].startswith("猫" * 40)
        job = wait_done(app, reply["id"])
        assert job.state == "done", job.error
        assert job.output.is_file() and len(job.output.name.encode()) <= 255
        assert job.output.name == "猫" * 40 + "-x2.png"


def test_a_loopback_address_other_than_localhost_is_served(tmp_path: Path) -> None:
    with running(tmp_path / "out", host="127.0.0.2") as (url, app):
        assert urlsplit(url).hostname == "127.0.0.2"
        assert request(url, "GET", "/api/config")[0] == 200
        assert request(url, "GET", "/api/config", headers={"Host": "evil.example"})[0] == 403


def test_the_pillow_limit_is_restored_under_concurrent_checks(tmp_path: Path) -> None:
    """header_size switches Pillow's process-wide bomb limit off for a moment: never left off."""
    from PIL import Image

    from vidscale.media.limits import header_size

    picture = tmp_path / "a.png"
    picture.write_bytes(png_bytes(tmp_path))
    default = Image.MAX_IMAGE_PIXELS
    for _ in range(200):
        threads = [threading.Thread(target=header_size, args=(picture,)) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert Image.MAX_IMAGE_PIXELS == default


def test_nothing_goes_to_the_system_temp_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A killed server could never clean a folder of its own there: previews and zips are kept in the
    results folder's hidden folder, and a zip a killed server left goes when the next one starts."""
    system_tmp = tmp_path / "system-tmp"
    system_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(system_tmp))
    out = tmp_path / "out"
    (out / ".vidscale-web" / "tmp").mkdir(parents=True)
    (out / ".vidscale-web" / "tmp" / "results-dead.zip").write_bytes(b"half")
    with running(out) as (url, app):
        assert list((out / ".vidscale-web" / "tmp").iterdir()) == []
        status, reply = request(url, "POST", "/api/jobs?name=a.png&choice=fast&scale=2", png_bytes(tmp_path))
        assert wait_done(app, reply["id"]).state == "done"
        status, kind, body = get_bytes(url, "/api/results.zip")
        assert status == 200 and body.startswith(b"PK")
        assert sorted(p.name for p in (out / ".vidscale-web" / "previews").iterdir()) == \
            [f"{reply['id']}-after.png", f"{reply['id']}-before.png"]
    assert list(system_tmp.iterdir()) == []


def test_a_running_picture_reports_its_progress_and_says_cancelling(tmp_path: Path) -> None:
    """Progress inside the one frame of a picture (its layers), elapsed time and ETA; a cancel shows
    at once, and the job stops within a layer."""
    events: list[dict] = []
    with running(tmp_path / "out") as (url, app):
        app.state.jobs.publish = lambda e, plain=app.state.jobs.publish: (events.append(e), plain(e))
        status, reply = request(url, "POST", "/api/jobs?name=a.png&choice=photo&scale=2",
                                png_bytes(tmp_path, 144, 192))  # Real-ESRGAN (bf16 on OpenVINO where the CPU has it): a second or more, several events
        job = wait_done(app, reply["id"])
        assert job.state == "done"
        parts = [e["job"] for e in events if "job" in e and e["job"]["state"] == "running" and e["job"]["part"]]
        assert len(parts) >= 2 and [p["part"] for p in parts] == sorted(p["part"] for p in parts)
        assert all(p["elapsed_s"] > 0 for p in parts) and any(p["eta_s"] is not None for p in parts)
        assert (events[-1]["job"]["in_width"], events[-1]["job"]["width"]) == (192, 384)

        cancel_at = threading.Event()
        plain = app.state.jobs._part

        def held(job: object, fraction: float) -> None:  # a third of the way: wait for the cancel
            plain(job, fraction)
            if fraction > 0.3 and not cancel_at.is_set():
                cancel_at.set()
                job.cancel.wait(30)  # type: ignore[attr-defined]

        app.state.jobs._part = held
        status, reply = request(url, "POST", "/api/jobs?name=b.png&choice=clean&scale=4",
                                png_bytes(tmp_path, 96, 128))
        assert cancel_at.wait(WAIT_S)
        status, cancelled = request(url, "POST", f"/api/jobs/{reply['id']}/cancel")
        assert cancelled["state"] == "cancelling"
        job = wait_done(app, reply["id"])
        assert job.state == "cancelled" and job.part < 0.9


def test_idle_queue_gives_memory_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import vidscale.web.jobs

    released = threading.Event()
    monkeypatch.setattr(vidscale.web.jobs, "release_freed_memory", released.set)
    with running(tmp_path / "out", release_after_s=0.3) as (url, app):
        assert not released.wait(0.6)  # nothing ran: nothing to give back
        status, reply = request(url, "POST", "/api/jobs?name=a.png&choice=fast&scale=2", png_bytes(tmp_path))
        assert wait_done(app, reply["id"]).state == "done"
        assert released.wait(10)


def video_info(data: bytes, tmp_path: Path, name: str) -> tuple[str, str, int, tuple[int, int]]:
    path = tmp_path / name
    path.write_bytes(data)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        return stream.codec_context.name, stream.codec_context.pix_fmt, len(frames), (frames[0].width,
                                                                                      frames[0].height)


def test_video_results_play_in_a_browser_with_a_bicubic_before(tmp_path: Path) -> None:
    """An H.264 8-bit MP4 result plays as it is; a 10-bit HEVC one (anime's) gets an H.264 stand-in;
    both get a bicubic "before" video of the same size."""
    clip = make_video(tmp_path / "clip.mp4", VideoSpec(width=64, height=48, frames=4, audio=None))
    with running(tmp_path / "out") as (url, app):
        for choice, proxy in (("fast", False), ("anime", True)):
            status, reply = request(url, "POST", f"/api/jobs?name=clip.mp4&choice={choice}&scale=2",
                                    clip.read_bytes())
            job = wait_done(app, reply["id"])
            assert (job.state, job.proxy) == ("done", proxy), job.error
            status, kind, after = get_bytes(url, f"/api/jobs/{job.id}/video/after")
            assert (status, kind) == (200, "video/mp4")
            if not proxy:
                assert after == job.output.read_bytes()
            else:
                assert video_info(after, tmp_path, "after.mp4") == ("h264", "yuv420p", 4, (128, 96))
            status, kind, before = get_bytes(url, f"/api/jobs/{job.id}/video/before")
            assert video_info(before, tmp_path, "before.mp4") == ("h264", "yuv420p", 4, (128, 96))
        assert get_bytes(url, f"/api/jobs/{job.id}/video/other")[0] == 404


def test_a_running_video_shows_its_latest_frame_beside_the_source(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from PIL import Image

    import vidscale.web.jobs
    from vidscale.web.live import LiveLook

    monkeypatch.setattr(vidscale.web.jobs, "LiveLook", lambda: LiveLook(interval_s=0.0))
    clip = make_video(tmp_path / "clip.mp4", VideoSpec(width=64, height=48, frames=12, audio=None))
    with running(tmp_path / "out") as (url, app):
        queue, reached, go_on = app.state.jobs, threading.Event(), threading.Event()
        plain = queue._progress

        def held(job: object, done: int, total: int | None) -> None:
            plain(job, done, total)
            if done == 6:
                reached.set()
                go_on.wait(30)

        queue._progress = held
        status, reply = request(url, "POST", "/api/jobs?name=clip.mp4&choice=fast&scale=2", clip.read_bytes())
        assert reached.wait(60)
        try:
            assert queue.get(reply["id"]).public()["live"] is not None
            sizes = {}
            for which in ("before", "after"):
                status, kind, body = get_bytes(url, f"/api/jobs/{reply['id']}/live/{which}.jpg")
                assert (status, kind) == (200, "image/jpeg")
                sizes[which] = Image.open(io.BytesIO(body)).size
            assert sizes == {"before": (64, 48), "after": (128, 96)}
        finally:
            go_on.set()
        assert wait_done(app, reply["id"]).state == "done"
        assert get_bytes(url, f"/api/jobs/{reply['id']}/live/after.jpg")[0] == 404


def test_the_estimate_times_the_chosen_model_and_keeps_nothing(tmp_path: Path) -> None:
    with running(tmp_path / "out") as (url, app):
        status, reply = request(url, "POST", "/api/estimate?name=a.png&choice=fast&scale=2", png_bytes(tmp_path))
        assert status == 200, reply
        assert (reply["name"], reply["model"], reply["frames"]) == ("a.png", "span-x2", 1)
        assert reply["seconds"] == reply["seconds_per_frame"] > 0
        status, reply = request(url, "POST", "/api/estimate?name=a.png&choice=fast&scale=9", png_bytes(tmp_path))
        assert status == 400 and "between 1 and 8" in reply["error"]
        assert nothing_kept(app, tmp_path / "out")
        assert list(app.state.store.tmp.iterdir()) == []  # type: ignore[attr-defined]


def test_a_cancel_stops_the_preview_video_too(tmp_path: Path) -> None:
    """Making a long video's previews takes a while after the upscaling: a cancel stops it as well."""
    from vidscale.errors import Cancelled
    from vidscale.web.previews import write_proxy

    clip = make_video(tmp_path / "clip.mp4", VideoSpec(width=64, height=48, frames=4, audio=None))
    stop = threading.Event()
    write_proxy(clip, tmp_path / "whole.mp4", (64, 48), stop)
    stop.set()
    with pytest.raises(Cancelled):
        write_proxy(clip, tmp_path / "cut.mp4", (64, 48), stop)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "whole.mp4"]
