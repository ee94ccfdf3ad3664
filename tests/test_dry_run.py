"""`--verbose` states the plan before work starts; `--dry-run` prints it with estimates and writes nothing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import SAMPLES
from vidscale.cli import main
from vidscale.media.image import read_image, write_image


def _small(path: Path) -> Path:
    write_image(path, read_image(SAMPLES / "bunny.png")[100:123, 200:240])
    return path


def test_verbose_states_the_plan_before_the_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.mp4"
    assert main([str(SAMPLES / "bunny.webm"), str(out), "-m", "bicubic", "--frames", "2", "--crf", "30",
                 "--encoder-preset", "veryfast", "-v"]) == 0
    err = capsys.readouterr().err
    plan = err[err.index("plan:"):]
    assert "bicubic resize to 640x360" in plan and "backend cpu, device cpu" in plan
    assert "libx264 yuv420p crf=30 preset=veryfast" in plan
    assert plan.index("encoder:") < plan.index(f"{out}: 2 frames")  # before the summary of the work


def test_verbose_names_chain_passes_precision_and_tile(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    small = _small(tmp_path / "s.png")
    assert main([str(small), str(tmp_path / "o.png"), "-m", "span-x2", "--scale", "3", "--tile", "32", "-v"]) == 0
    err = capsys.readouterr().err
    assert "span-x2 (x2) -> span-x2 (x2): 2 passes, then bicubic from x4 to 120x69" in err
    assert "precision float32" in err and "tile 32 px" in err and "PNG images" in err


@pytest.mark.parametrize("target", ["out.mp4", "big.png", "folder/", "frames/%03d.png"])
def test_dry_run_estimates_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              target: str) -> None:
    source = SAMPLES / ("bunny.png" if target == "big.png" else "bunny.webm")
    if target == "folder/":
        (tmp_path / "in").mkdir()
        for i in range(3):
            _small(tmp_path / "in" / f"{i}.png")
        source = tmp_path / "in"
    before = sorted(tmp_path.rglob("*"))
    assert main([str(source), str(tmp_path / target), "-m", "span-x2", "--frames", "30", "--dry-run"]) == 0
    assert sorted(tmp_path.rglob("*")) == before  # nothing written, not even a folder or a temp file
    err = capsys.readouterr().err
    assert "plan:" in err
    count = {"folder/": "3 pictures", "big.png": "1 picture"}.get(target, "30 frames")
    m = re.search(rf"dry run, nothing written; estimate for {count}: about ([\d.]+) ?(?:s|min|h) and ([\d.]+) (B|KiB|MiB)",
                  err)
    assert m, err
    assert float(m.group(1)) >= 0 and float(m.group(2)) > 0
