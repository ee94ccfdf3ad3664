"""Make docs/web-page.png: the page after a video ran, its result playing in the before/after view.

    python scripts/web_screenshot.py [OUT.png]

Needs the web and test extras and Chromium. It runs `anime` x2 on samples/bunny.webm (Real-CUGAN:
about a minute on a CPU), opens the result in the compare view, seeks both videos to 4 s and
leaves the divide in the middle.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402

from tests.test_web_page import chromium, states, video_plays, wait_for  # noqa: E402
from vidscale.web.serve import running  # noqa: E402

CLIP = ROOT / "samples" / "bunny.webm"
AT_S = 4.0

SEEK = f"""
const [before, after] = [document.getElementById('before-video'), document.getElementById('after-video')];
before.currentTime = after.currentTime = {AT_S};
"""
SEEKED = f"""
const vs = [document.getElementById('before-video'), document.getElementById('after-video')];
return vs.every(v => Math.abs(v.currentTime - {AT_S}) < 0.05 && !v.seeking && v.readyState >= 2);
"""


def main() -> None:
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "web-page.png"
    with tempfile.TemporaryDirectory() as tmp, running(Path(tmp) / "results") as (url, _), \
            chromium(Path(tmp), width=1280, height=1400) as browser:
        browser.get(url)
        wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#choice option"), "the page")
        Select(browser.find_element(By.ID, "choice")).select_by_value("anime")
        browser.find_element(By.ID, "files").send_keys(str(CLIP))
        browser.find_element(By.ID, "start").click()
        wait_for(lambda: states(browser) == ["done"], "the result", timeout=900)
        wait_for(lambda: video_plays(browser), "the videos")
        browser.execute_script(SEEK)
        wait_for(lambda: browser.execute_script(SEEKED), "both videos at the same frame")
        time.sleep(0.5)
        browser.save_screenshot(str(target))
    print(target)


if __name__ == "__main__":
    main()
