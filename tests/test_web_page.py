"""The page in a real Chromium (Debian's chromium and chromium-driver, through Selenium).

scripts/test.sh installs both; without them these tests skip.
"""

from __future__ import annotations

import base64
import http.server
import shutil
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import av
import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
webdriver = pytest.importorskip("selenium.webdriver")

from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402

from vidscale.media.image import read_picture, write_image  # noqa: E402
from vidscale.web.serve import running  # noqa: E402
from vidscale.web.uploads import Limits  # noqa: E402
from tests.media import VideoSpec, make_video, pattern  # noqa: E402

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="chromium and chromedriver not installed "
                                "(scripts/test.sh installs them)")
HEADLESS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WAIT_S = 90


@contextmanager
def chromium(downloads: Path, width: int = 1280, height: int = 1000) -> Iterator[webdriver.Chrome]:
    """A headless Chromium with a fresh profile that saves downloads into `downloads`."""
    profile = tempfile.mkdtemp(prefix="vidscale-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM  # type: ignore[assignment]
    for flag in (*HEADLESS, f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def downloads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def browser(downloads: Path) -> Iterator[webdriver.Chrome]:
    with chromium(downloads) as driver:
        yield driver


def wait_for(what: Callable[[], object], message: str, timeout: float = WAIT_S) -> object:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if value := what():
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {message}")


def states(browser: webdriver.Chrome) -> list[str]:
    return browser.execute_script("return [...document.querySelectorAll('#queue tr')].map(r => r.dataset.state)")


def cancel_row(browser: webdriver.Chrome, index: int) -> None:
    browser.find_elements(By.CSS_SELECTOR, "#queue tr")[index].find_element(By.CSS_SELECTOR, "button.cancel").click()


def open_page(browser: webdriver.Chrome, url: str, choice: str = "fast") -> None:
    browser.get(url)
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#choice option"), "the model menu")
    Select(browser.find_element(By.ID, "choice")).select_by_value(choice)


def start(browser: webdriver.Chrome, *files: Path) -> None:
    browser.find_element(By.ID, "files").send_keys("\n".join(str(f) for f in files))
    browser.find_element(By.ID, "start").click()


def leftovers(app: object, out: Path) -> list[str]:
    """Files in the results folder, and the server's job records and uploads."""
    store = app.state.store  # type: ignore[attr-defined]
    return sorted([p.name for p in out.iterdir() if p != store.dir]
                  + [p.name for folder in (store.jobs, store.uploads) for p in folder.iterdir()])


def test_two_photos_at_2x_compare_and_zip(browser: webdriver.Chrome, downloads: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "garden.png", tmp_path / "street.jpg"
    write_image(a, pattern(0, 48, 64))
    write_image(b, pattern(5, 30, 40))
    with running(tmp_path / "out") as (url, app):
        open_page(browser, url)
        start(browser, a, b)
        wait_for(lambda: states(browser) == ["done", "done"], "both results")
        assert leftovers(app, tmp_path / "out") == ["garden-x2.png", "street-x2.jpg"]

        # the first result is in the before/after view (a later one does not take its place), its two
        # pictures loaded at the result's size
        stack = browser.find_element(By.ID, "stack")
        wait_for(lambda: browser.execute_script(
            "return [...arguments[0].querySelectorAll('img')].every(i => i.complete && i.naturalWidth)", stack),
            "the before/after pictures")
        sizes = browser.execute_script(
            "return [...arguments[0].querySelectorAll('img')].map(i => [i.naturalWidth, i.naturalHeight])", stack)
        assert sizes == [[128, 96], [128, 96]]

        # drag on the picture: the divide follows the pointer
        ActionChains(browser).move_to_element_with_offset(stack, -stack.size["width"] // 4, 0) \
            .click_and_hold().move_by_offset(-5, 0).release().perform()
        divide = float(browser.find_element(By.ID, "divide").get_attribute("value"))
        assert 20 < divide < 25
        clip = browser.execute_script("return getComputedStyle(document.getElementById('after')).clipPath")
        assert clip.startswith("inset(0px 0px 0px ") and abs(float(clip.split()[-1][:-2]) - divide) <= 0.05
        # fit enlarges the small result to the view; a double-click shows it at 1:1
        assert stack.size["width"] > 600
        ActionChains(browser).double_click(stack).perform()
        assert stack.size["width"] == 128 and "native" in stack.get_attribute("class")

        browser.find_element(By.ID, "zip").click()
        archive = downloads / "vidscale-results.zip"
        wait_for(lambda: archive.is_file() and not list(downloads.glob("*.crdownload")), "the zip download")
        with zipfile.ZipFile(archive) as zf:
            assert sorted(zf.namelist()) == ["garden-x2.png", "street-x2.jpg"]
            zf.extractall(tmp_path / "unzipped")
        assert read_picture(tmp_path / "unzipped" / "garden-x2.png").pixels.shape == (96, 128, 3)
        assert read_picture(tmp_path / "unzipped" / "street-x2.jpg").pixels.shape == (60, 80, 3)


LISTEN = """
window.seen = [];
const events = new EventSource('/api/events');
events.onmessage = e => { const d = JSON.parse(e.data); if (d.job) window.seen.push(d.job); };
"""


def test_video_progress_arrives_as_events(browser: webdriver.Chrome, tmp_path: Path) -> None:
    clip = make_video(tmp_path / "clip.mp4", VideoSpec(width=64, height=48, frames=6, audio=None))
    with running(tmp_path / "out") as (url, app):
        open_page(browser, url)
        browser.execute_script(LISTEN)
        start(browser, clip)
        wait_for(lambda: states(browser) == ["done"], "the video result")
        seen = browser.execute_script("return window.seen")
        running_events = [e for e in seen if e["state"] == "running"]
        assert running_events[0]["done"] == 0 and running_events[-1]["done"] == 6
        assert all(e["total"] == 6 for e in running_events if e["done"])
        assert running_events[-1]["fps"] > 0 and running_events[-1]["eta_s"] == 0
        assert [e["done"] for e in running_events] == sorted(e["done"] for e in running_events)
        assert seen[-1]["state"] == "done" and (seen[-1]["width"], seen[-1]["height"]) == (128, 96)
        with av.open(str(tmp_path / "out" / "clip-x2.mp4")) as container:
            frames = list(container.decode(video=0))
        assert len(frames) == 6 and (frames[0].width, frames[0].height) == (128, 96)
        assert leftovers(app, tmp_path / "out") == ["clip-x2.mp4"]  # only the result


LIVE_LOADED = """
const pictures = [document.getElementById('live-before'), document.getElementById('live-after')];
return !document.getElementById('live').hidden && pictures.every(i => i.complete && i.naturalWidth)
    && pictures.map(i => [i.naturalWidth, i.naturalHeight]);
"""


def test_cancelled_jobs_leave_nothing(browser: webdriver.Chrome, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import vidscale.web.jobs
    from vidscale.web.live import LiveLook

    monkeypatch.setattr(vidscale.web.jobs, "LiveLook", lambda: LiveLook(interval_s=0.2))
    long_clip = make_video(tmp_path / "long.mp4", VideoSpec(width=64, height=48, frames=400, audio=None))
    second = make_video(tmp_path / "next.mp4", VideoSpec(width=64, height=48, frames=4, audio=None))
    with running(tmp_path / "out") as (url, app):
        open_page(browser, url)
        browser.execute_script(LISTEN)
        start(browser, long_clip, second)
        wait_for(lambda: browser.execute_script("return window.seen.some(j => j.state === 'running' && j.done > 0)"),
                 "the first frames")
        assert states(browser) == ["running", "queued"]
        wait_for(lambda: any(p.name.startswith(".long-x2.mp4") for p in (tmp_path / "out").iterdir()),
                 "the partial output")  # written as it goes, under a temporary name
        # the live look: the latest upscaled frame beside its source
        assert wait_for(lambda: browser.execute_script(LIVE_LOADED), "the live look") == [[64, 48], [128, 96]]
        cancel_row(browser, 1)  # the queued one
        wait_for(lambda: states(browser) == ["running", "cancelled"], "the queued job cancelled")
        cancel_row(browser, 0)
        wait_for(lambda: states(browser) == ["cancelled", "cancelled"], "the running job cancelled")
        assert leftovers(app, tmp_path / "out") == []


def test_jobs_left_by_a_stopped_server_show_and_finish(browser: webdriver.Chrome, tmp_path: Path) -> None:
    from tests.test_segments import KEYINT, make_clip
    from tests.test_web_resume import FRAMES, stop_mid_video

    out = tmp_path / "out"
    stop_mid_video(make_clip(tmp_path / "clip.mp4", FRAMES), out)
    with running(out) as (url, app):
        open_page(browser, url)
        wait_for(lambda: states(browser) == ["done"], "the resumed job")
        details = browser.find_element(By.CSS_SELECTOR, "#queue tr .details").text
        assert details.startswith("clip-x2.mp4, in ") and details.endswith(
            f" s; {KEYINT} frames reused from before the restart")
        assert leftovers(app, out) == ["clip-x2.mp4"]


EVIL_PAGE = """<!doctype html><script>
fetch("{target}api/jobs?name=x.png&choice=fast&scale=2", {{method: "POST", mode: "no-cors", body: "x"}})
  .finally(() => {{ document.title = "sent"; }});
</script>"""


def test_oversized_upload_and_other_sites_are_refused(browser: webdriver.Chrome, tmp_path: Path) -> None:
    big = tmp_path / "big.png"
    write_image(big, np.random.default_rng(0).integers(0, 256, (300, 300, 3), dtype=np.uint8))  # noise: ~270 KB
    assert big.stat().st_size > 200_000
    with running(tmp_path / "out", Limits(max_bytes=200_000)) as (url, app):
        open_page(browser, url)
        start(browser, big)
        message = wait_for(lambda: browser.find_element(By.ID, "message").text, "the refusal")
        assert "big.png" in message and "200000-byte limit" in message
        assert states(browser) == []

        # a page from another origin (another port on this machine) posts to the server: refused
        (tmp_path / "evil").mkdir()
        (tmp_path / "evil" / "index.html").write_text(EVIL_PAGE.format(target=url))
        with _static_site(tmp_path / "evil") as evil_url:
            browser.get(evil_url)
            wait_for(lambda: browser.title == "sent", "the other site's request")
        assert app.state.jobs.jobs == {}  # type: ignore[attr-defined]
        assert leftovers(app, tmp_path / "out") == []


@contextmanager
def _static_site(folder: Path) -> Iterator[str]:
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(folder))  # noqa: E731
    site = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=site.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{site.server_address[1]}/index.html"
    finally:
        site.shutdown()
        site.server_close()


def video_plays(browser: webdriver.Chrome) -> bool:
    """The compare view's result video has a frame to show and no media error."""
    return browser.execute_script(
        "const v = document.getElementById('after-video');"
        "return !v.hidden && v.error === null && v.readyState >= 2 && "
        "document.getElementById('before-video').readyState >= 2")


def row_of(browser: webdriver.Chrome, name: str) -> object:
    return browser.find_element(By.XPATH, f"//tr[td[@class='name' and @title='{name}']]")


CHOICES = ("fast", "clean", "anime", "photo")


@pytest.mark.parametrize("container", [".mp4", ".webm"])
def test_videos_of_every_choice_play_in_the_page(browser: webdriver.Chrome, tmp_path: Path, container: str) -> None:
    """Each model choice on a tiny clip: the job completes and its result plays in the page's video
    element beside the bicubic one (an H.264 stand-in where Chromium cannot play the result)."""
    spec = VideoSpec(width=32, height=24, frames=3, audio=None,
                     codec="libx264" if container == ".mp4" else "libvpx-vp9")
    with running(tmp_path / "out") as (url, app):
        for choice in CHOICES:
            clip = make_video(tmp_path / f"{choice}{container}", spec)
            open_page(browser, url, choice)
            start(browser, clip)
            wait_for(lambda: len(states(browser)) == CHOICES.index(choice) + 1, "the row")
        wait_for(lambda: all(s in ("done", "failed") for s in states(browser)), "every result", 600)
        errors = {j.name: j.error for j in app.state.jobs.all() if j.state != "done"}  # type: ignore[attr-defined]
        assert errors == {}
        for choice in CHOICES:
            row_of(browser, f"{choice}{container}").find_element(By.CSS_SELECTOR, "button.compare").click()
            wait_for(lambda: video_plays(browser), f"the {choice} result playing")
            assert browser.find_element(By.ID, "compare-name").text.startswith(f"{choice}-x2")


def test_a_running_photo_is_cancelled_within_seconds(browser: webdriver.Chrome, tmp_path: Path) -> None:
    """The photo choice at 4x runs a picture in one piece on the CPU (no tiles): the cancel is seen
    between the network's layers."""
    picture = tmp_path / "portrait.png"
    write_image(picture, pattern(0, 192, 160))
    with running(tmp_path / "out") as (url, app):
        open_page(browser, url, "photo")
        browser.find_element(By.CSS_SELECTOR, "input[name=size][value='4']").click()
        browser.execute_script(LISTEN)
        start(browser, picture)
        wait_for(lambda: browser.execute_script("return window.seen.some(j => j.part > 0.05)"), "the work under way")
        cancel_row(browser, 0)
        clicked = time.monotonic()
        assert states(browser)[0] in ("cancelling", "cancelled")  # at once, before the job has stopped
        wait_for(lambda: states(browser) == ["cancelled"], "the cancel", timeout=10)
        assert time.monotonic() - clicked < 3
        assert leftovers(app, tmp_path / "out") == []
        bar = browser.find_element(By.CSS_SELECTOR, "#queue tr progress")
        assert not bar.is_displayed()  # a cancelled row shows no bar, let alone a full one


def test_a_picture_shows_its_progress(browser: webdriver.Chrome, tmp_path: Path) -> None:
    picture = tmp_path / "cat.png"
    write_image(picture, pattern(3, 144, 192))  # Real-ESRGAN (bf16 where the CPU has it): a second or more, several events
    with running(tmp_path / "out") as (url, app):
        open_page(browser, url, "photo")
        browser.execute_script(LISTEN)
        start(browser, picture)
        wait_for(lambda: states(browser) == ["done"], "the result")
        seen = browser.execute_script("return window.seen.filter(j => j.state === 'running' && j.part > 0)")
        parts = [j["part"] for j in seen]
        assert len(parts) >= 2 and parts == sorted(parts) and all(j["elapsed_s"] > 0 for j in seen)
        what = browser.find_element(By.CSS_SELECTOR, "#queue tr .what").text
        assert what == "192\u00d7144 \u2192 384\u00d7288, Photo or live action (realesrgan-x4plus)"


LONG_NAME_UPLOAD = """
const bytes = Uint8Array.from(atob(arguments[0]), c => c.charCodeAt(0));
pick([new File([bytes], arguments[1], {type: 'image/png'})]);
start();
"""


def test_a_long_cjk_file_name_makes_a_result(browser: webdriver.Chrome, tmp_path: Path) -> None:
    """120 CJK characters: 360 bytes of UTF-8, more than a file name may have here (the page gets
    such a name from another system's files, by a drop)."""
    picture = tmp_path / "a.png"
    write_image(picture, pattern(0, 24, 32))
    name = "夏の庭" * 40 + ".png"
    with running(tmp_path / "out") as (url, app):
        open_page(browser, url)
        browser.execute_script(LONG_NAME_UPLOAD, base64.b64encode(picture.read_bytes()).decode(), name)
        wait_for(lambda: states(browser) == ["done"], "the result")
        (result,) = leftovers(app, tmp_path / "out")
        assert result.startswith("夏の庭" * 13) and result.endswith("-x2.png")


def test_a_300_character_name_keeps_the_buttons_on_screen(browser: webdriver.Chrome, tmp_path: Path) -> None:
    """In a 1280 px window (no file on disk can have such a name: the page gets one by a drop)."""
    picture = tmp_path / "a.png"
    write_image(picture, pattern(0, 24, 32))
    name = "a-very-long-name-" * 17 + "x" * 11 + ".png"
    assert len(name) == 304
    with running(tmp_path / "out") as (url, app):
        open_page(browser, url)
        browser.execute_script(LONG_NAME_UPLOAD, base64.b64encode(picture.read_bytes()).decode(), name)
        wait_for(lambda: states(browser) == ["done"], "the result")
        width = browser.execute_script("return window.innerWidth")
        assert browser.execute_script("return document.documentElement.scrollWidth") <= width
        row = browser.find_element(By.CSS_SELECTOR, "#queue tr")
        for button in row.find_elements(By.CSS_SELECTOR, "button"):
            right = browser.execute_script("return arguments[0].getBoundingClientRect().right", button)
            assert button.is_displayed() and right <= width, button.text
        cell = row.find_element(By.CSS_SELECTOR, ".name")  # cut to fit; the whole name (as kept) on hover
        assert cell.get_attribute("title") == name[:120] + ".png"
        assert browser.execute_script("return arguments[0].scrollWidth > arguments[0].clientWidth", cell)


def test_results_are_listed_after_a_restart_and_keys_work(browser: webdriver.Chrome, tmp_path: Path) -> None:
    a, b = tmp_path / "garden.png", tmp_path / "street.png"
    write_image(a, pattern(0, 24, 32))
    write_image(b, pattern(4, 24, 32))
    with running(tmp_path / "out") as (url, app):
        open_page(browser, url)
        start(browser, a, b)
        wait_for(lambda: states(browser) == ["done", "done"], "the results")
        browser.find_elements(By.CSS_SELECTOR, "#queue tr button.compare")[1].click()
        # the last compared result comes back with the page
        browser.refresh()
        wait_for(lambda: states(browser) == ["done", "done"], "the queue after a reload")
        wait_for(lambda: browser.find_element(By.ID, "compare-name").text == "street-x2.png", "the compare view")
    with running(tmp_path / "out") as (url, app):
        open_page(browser, url)
        wait_for(lambda: states(browser) == ["done", "done"], "the earlier results")
        # the drop zone opens the file picker from the keyboard
        browser.execute_script("document.getElementById('files').click = () => { window.opened = true; }")
        browser.find_element(By.ID, "drop").send_keys(Keys.ENTER)
        assert browser.execute_script("return window.opened === true")
        # the row goes; its file stays
        browser.find_element(By.CSS_SELECTOR, "#queue tr button.remove").click()
        wait_for(lambda: states(browser) == ["done"], "the row removed")
        assert leftovers(app, tmp_path / "out") == ["garden-x2.png", "street-x2.png"]


def test_zip_of_the_ticked_rows_and_steady_controls(browser: webdriver.Chrome, downloads: Path,
                                                    tmp_path: Path) -> None:
    a, b = tmp_path / "left.png", tmp_path / "right.png"
    transparent = np.zeros((24, 32, 4), np.uint8)
    transparent[..., 0], transparent[4:20, 4:28, 3] = 255, 255  # red under the clear border: never shown
    write_image(a, transparent)
    write_image(b, pattern(1, 24, 32))
    with running(tmp_path / "out") as (url, app):
        open_page(browser, url, "fast")
        start_at = browser.find_element(By.ID, "start").location
        Select(browser.find_element(By.ID, "choice")).select_by_value("anime")  # its noise removal box shows
        assert browser.find_element(By.ID, "denoise").is_displayed()
        assert browser.find_element(By.ID, "start").location == start_at  # Start does not jump
        Select(browser.find_element(By.ID, "choice")).select_by_value("fast")
        start(browser, a, b)
        wait_for(lambda: states(browser) == ["done", "done"], "both results")
        # transparency over a checkerboard on both sides
        for side in ("before", "after"):
            assert "conic-gradient" in browser.execute_script(
                f"return getComputedStyle(document.getElementById('{side}')).backgroundImage")
        browser.find_elements(By.CSS_SELECTOR, "#queue input.pick-row")[1].click()
        assert browser.find_element(By.ID, "zip").text == "Download selected (1, zip)"
        for old in downloads.glob("vidscale-results*.zip"):
            old.unlink()
        browser.find_element(By.ID, "zip").click()
        archive = downloads / "vidscale-results.zip"
        wait_for(lambda: archive.is_file() and not list(downloads.glob("*.crdownload")), "the zip download")
        with zipfile.ZipFile(archive) as zf:
            assert zf.namelist() == ["right-x2.png"]
        status = browser.execute_script("return fetch('/favicon.ico').then(r => r.status + ' ' + "
                                        "r.headers.get('content-type'))")
        assert status == "200 image/svg+xml"


def test_the_time_is_estimated_before_starting(browser: webdriver.Chrome, tmp_path: Path) -> None:
    picture = tmp_path / "big-batch-1.png"
    write_image(picture, pattern(2, 48, 64))
    with running(tmp_path / "out") as (url, app):
        open_page(browser, url, "fast")
        browser.find_element(By.ID, "files").send_keys(str(picture))
        browser.find_element(By.ID, "estimate").click()
        guess = browser.find_element(By.CSS_SELECTOR, "#picked li .guess")
        wait_for(lambda: guess.text.startswith("about "), "the estimate")
        assert guess.text.endswith(" with Fast: a quick look")
        assert states(browser) == [] and leftovers(app, tmp_path / "out") == []  # nothing ran, nothing kept
