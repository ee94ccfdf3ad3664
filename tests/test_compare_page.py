"""`vidscale compare`: what it prints, and a slider page that stays loadable for large results."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import SAMPLES
from vidscale.cli import main
from vidscale.compare import _encode, bicubic_panel
from vidscale.media.image import write_image


def test_compare_says_what_it_wrote(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cmp.png"
    assert main(["compare", str(SAMPLES / "bunny.png"), str(out), "--models", "lanczos,bicubic",
                 "--crop", "0,0,64,48"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{out}: side-by-side panels of bicubic, lanczos, bicubic at x2 (")
    assert line.endswith("MiB)")


def test_large_results_are_embedded_as_jpeg(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    noisy = tmp_path / "noise.png"
    pixels = np.random.default_rng(0).integers(0, 256, (500, 700, 3), dtype=np.uint8)
    write_image(noisy, pixels)
    out = tmp_path / "cmp.html"
    assert main(["compare", str(noisy), str(out), "-m", "lanczos", "--scale", "3"]) == 0
    page = out.read_text()
    assert page.count("data:image/jpeg;base64,") == 2 and "data:image/png" not in page
    png = len(_encode(bicubic_panel(pixels, 3), "png", "rgb24", {"pred": "mixed"}))
    assert len(page) < 0.75 * 2 * png  # smaller than the two PNGs, even before base64's third
    assert "slider page of bicubic, lanczos" in capsys.readouterr().out
    assert 'class="line"' in page and "pos.style.width" in page  # the divide; the slider spans the picture
