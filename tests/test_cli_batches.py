"""Batches from the command line: `--frames` on sequences and globs, and summaries that count right."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vidscale.cli import main
from vidscale.media.image import write_image


def _pictures(folder: Path, n: int, name: str = "p{}.png") -> None:
    folder.mkdir(exist_ok=True)
    for i in range(n):
        write_image(folder / name.format(i), np.full((8, 10, 3), 20 * i, np.uint8))


def _summary(err: str) -> str:
    return [line for line in err.splitlines() if "done" in line or " in " in line][-1]


@pytest.mark.parametrize("spec", ["f%03d.png", "f*.png"])
def test_frames_limits_numbered_sequences_and_globs(tmp_path: Path, spec: str) -> None:
    _pictures(tmp_path / "in", 5, "f{:03d}.png")
    out = tmp_path / "out"
    assert main([str(tmp_path / "in" / spec), str(out / "%03d.png"), "-m", "bicubic", "--frames", "2", "-q"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["001.png", "002.png"]  # a pattern output counts from 1


def test_folder_summary_counts_inputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    _pictures(src, 9)
    (src / "p9.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    assert main([str(src), str(out), "-m", "bicubic"]) == 1
    capsys.readouterr()
    assert main([str(src), str(out), "-m", "bicubic"]) == 1  # the nine are there now
    err = capsys.readouterr().err
    assert "10 pictures: 0 done, 9 skipped (already there), 1 failed" in _summary(err)
    assert "vidscale: error: 1 of 10 inputs failed" in err


def test_photos_are_counted_as_pictures_without_a_frame_rate(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    _pictures(tmp_path / "in", 3)
    assert main([str(tmp_path / "in"), str(tmp_path / "out"), "-m", "bicubic"]) == 0
    line = _summary(capsys.readouterr().err)
    assert ": 3 pictures in " in line and "fps" not in line and "frame" not in line
    assert main([str(tmp_path / "in" / "p0.png"), str(tmp_path / "big.png"), "-m", "bicubic"]) == 0
    assert ": 1 picture in " in _summary(capsys.readouterr().err)
    # numbered frames are a clip: frames and a rate
    assert main([str(tmp_path / "in" / "p%d.png"), str(tmp_path / "o" / "%d.png"), "-m", "bicubic"]) == 0
    line = _summary(capsys.readouterr().err)
    assert ": 3 frames in " in line and "fps" in line
