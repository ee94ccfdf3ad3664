"""`vidscale bench` reports every stage, the pipeline and the efficiency."""

from __future__ import annotations

import json

import pytest

from tests.conftest import SAMPLES
from vidscale.cli import main


def test_bench_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--synthetic", "64x48", "--frames", "6", "-m", "lanczos", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {"decode", "upload", "infer", "download", "encode"} <= set(report["stages"])
    assert all(v > 0 for v in report["stages"].values())
    assert report["pipeline_fps"] > 0 and report["frames"] == 6
    slowest = min(report["stages"].values())
    assert report["efficiency"] == pytest.approx(report["pipeline_fps"] / slowest, rel=0.01)
    assert report["output"] == [128, 96]
    assert report["color"] == "host"  # the CPU keeps swscale unless told otherwise


def test_bench_with_colour_conversion_on_the_device(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--synthetic", "64x48", "--frames", "4", "-m", "bicubic", "--device-color",
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["color"] == "device"
    assert all(v > 0 for v in report["stages"].values()) and report["pipeline_fps"] > 0


def test_bench_times_the_temporal_pass(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--synthetic", "64x48", "--frames", "6", "-m", "lanczos", "--temporal", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["stages"]["temporal"] > 0 and report["pipeline_fps"] > 0


def test_bench_table_on_a_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", str(SAMPLES / "bunny.webm"), "--frames", "4", "-m", "bicubic"]) == 0
    out = capsys.readouterr().out
    assert "slowest" in out and "efficiency" in out and "320x180 -> 640x360" in out


def test_bench_needs_a_source(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench"]) == 2
    assert main(["bench", "--synthetic", "big"]) == 2
