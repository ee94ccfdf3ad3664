"""Make docs/web-page.png: the page after two real pictures ran, one in the before/after view.

    python scripts/web_screenshot.py [OUT.png]

Needs the web and test extras, Chromium and ../shared/media (realesrgan_inputs).
It runs `anime` x2 on 0030.jpg, then `photo` x2 on ADE_val_00000114.jpg (Real-ESRGAN:
a minute or two on a CPU), and shows the photo's result with the divide in the middle.
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

from tests.test_web_page import chromium, states, wait_for  # noqa: E402
from vidscale.web.serve import running  # noqa: E402

MEDIA = ROOT.parent / "shared" / "media" / "realesrgan_inputs"
JOBS = (("anime", MEDIA / "0030.jpg"), ("photo", MEDIA / "ADE_val_00000114.jpg"))


def main() -> None:
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "web-page.png"
    with tempfile.TemporaryDirectory() as tmp, running(Path(tmp) / "results") as (url, _), \
            chromium(Path(tmp), width=1100, height=1400) as browser:
        browser.get(url)
        wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#choice option"), "the page")
        for choice, path in JOBS:
            Select(browser.find_element(By.ID, "choice")).select_by_value(choice)
            browser.find_element(By.ID, "files").send_keys(str(path))
            browser.find_element(By.ID, "start").click()
            time.sleep(1)
        wait_for(lambda: states(browser) == ["done", "done"], "both results", timeout=900)
        browser.execute_script("document.getElementById('divide').value = 50; "
                               "document.getElementById('divide').dispatchEvent(new Event('input'))")
        wait_for(lambda: browser.execute_script(
            "return [...document.querySelectorAll('#stack img')].every(i => i.complete && i.naturalWidth)"),
            "the pictures")
        time.sleep(0.5)
        browser.save_screenshot(str(target))
    print(target)


if __name__ == "__main__":
    main()
