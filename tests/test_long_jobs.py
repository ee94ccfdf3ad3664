"""A long CPU job says what it will cost, and what is faster, before its first frame
(vidscale/long_jobs.py). The measured rate is injected: tests never time."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.media import pattern
from vidscale import long_jobs
from vidscale.cli import main
from vidscale.media.image import write_image
from vidscale.upscaler import Upscaler


def _rate(monkeypatch: pytest.MonkeyPatch, seconds: float | None) -> list[int]:
    """Each frame takes `seconds` (None: measuring is an error); returns the sides sampled."""
    sides: list[int] = []

    def measured(upscaler: Upscaler, shape: tuple[int, int], size: tuple[int, int], side: int) -> float:
        if seconds is None:
            raise AssertionError("a job too small to be long was sampled")
        sides.append(side)
        return seconds

    monkeypatch.setattr(long_jobs, "frame_seconds", measured)
    return sides


@pytest.fixture
def picture(tmp_path: Path) -> Path:
    """Large enough to be sampled (100 crops of 64x64), quick for span-x2 to really run."""
    path = tmp_path / "in.png"
    write_image(path, pattern(0, 600, 700))
    return path


def _run(capsys: pytest.CaptureFixture[str], picture: Path, *extra: str) -> str:
    assert main([str(picture), str(picture.with_name("out.png")), "-m", "span-x2", *extra]) == 0
    assert picture.with_name("out.png").exists()
    return capsys.readouterr().err


def test_a_long_job_says_so_before_its_first_frame(monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str],
                                                     picture: Path) -> None:
    sides = _rate(monkeypatch, 400.0)
    err = _run(capsys, picture)
    lines = err.splitlines()
    first = next(i for i, line in enumerate(lines)
                 if "this job takes about 7 min on the CPU (span-x2)" in line)
    assert "faster: a machine with a CUDA GPU" in lines[first + 1]  # span-x2 is what --preset fast runs
    assert first < next(i for i, line in enumerate(lines) if "out.png: 1 picture in" in line)
    assert sides == [64]  # 1% of the job's pixels


@pytest.mark.parametrize("seconds, extra", [(100.0, ()), (400.0, ("--quiet",))])
def test_a_short_job_or_quiet_says_nothing(monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str], picture: Path,
                                           seconds: float, extra: tuple[str, ...]) -> None:
    sides = _rate(monkeypatch, seconds)
    assert "this job takes" not in _run(capsys, picture, *extra)
    assert sides == ([] if extra else [64])  # --quiet does not even measure


def test_a_job_too_small_to_be_long_is_not_measured(monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str],
                                                    tmp_path: Path) -> None:
    _rate(monkeypatch, None)
    small = tmp_path / "small.png"
    write_image(small, pattern(0, 120, 160))
    assert "this job takes" not in _run(capsys, small)


def test_the_notice_offers_the_fast_presets_for_slow_models(monkeypatch: pytest.MonkeyPatch) -> None:
    _rate(monkeypatch, 20.0)
    text = long_jobs.notice(Upscaler("realesrgan-x4plus", "cpu"), (480, 640), (960, 1280), 250)
    assert text is not None and len(text.splitlines()) == 2
    assert "about 83 min on the CPU (realesrgan-x4plus, about 20s a frame for 250 frames)" in text
    assert ("faster: --preset fast, or --preset clean for clean sources (SPAN), "
            "or a machine with a CUDA GPU") in text


def test_the_sample_holds_at_most_a_hundredth_of_the_job() -> None:
    assert long_jobs.sample_side((3000, 4000), 1) == 256  # at most the dry run's crop
    assert long_jobs.sample_side((480, 640), 10) == 160
    assert long_jobs.sample_side((480, 640), 1) is None  # 100 x 64x64 is more than the whole job


def test_the_rate_is_measured_on_a_crop() -> None:
    seconds = long_jobs.frame_seconds(Upscaler("span-x2", "cpu", tile=64), (300, 400), (600, 800), 64)
    assert seconds > 0


def test_a_batch_whose_first_file_is_broken_still_runs(capsys: pytest.CaptureFixture[str],
                                                       tmp_path: Path) -> None:
    """The notice reads the first picture's size; a file that cannot be read is the batch's to report."""
    src = tmp_path / "in"
    src.mkdir()
    (src / "a-broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    write_image(src / "b.png", pattern(0, 20, 24))
    assert main([str(src), str(tmp_path / "out"), "-m", "span-x2"]) == 1
    assert "1 done, 0 skipped (already there), 1 failed" in capsys.readouterr().err
