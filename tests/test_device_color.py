"""Colour conversion on the inference device (GPU runs' default), forced on here on the CPU:
a job through the decoder's YUV planes gives what the swscale path gives, within one code
value of the output format, end to end through the network."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from tests.conftest import SAMPLES, need_shared
from vidscale.core.settings import EncoderSettings, JobSettings
from vidscale.job import run_job
from vidscale.media import sinks, yuv


def lossless_10_bit_clip(path: Path, frames: int = 2) -> Path:
    """Hard edges, a ramp and noise in every channel: where chroma filters and rounding differ."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:72, 0:128]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx265", rate=24, options={"x265-params": "log-level=error:lossless=1"})
        stream.width, stream.height, stream.pix_fmt = 128, 72, "yuv420p10le"
        for i in range(frames):
            rgb = np.stack([(np.sin((x + 5 * i) / 7) > 0) * 50000 + 8000, (y * 900) % 65535,
                            rng.integers(0, 65535, (72, 128))], -1).astype(np.uint16)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb48le").reformat(format="yuv420p10le")
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def planes_of(path: Path) -> list[yuv.YuvImage]:
    with av.open(str(path)) as container:
        return [yuv.from_frame(f) for f in container.decode(video=0)]


def run_both(source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
             frames: int = 2) -> tuple[list[yuv.YuvImage], list[yuv.YuvImage]]:
    """The same job through swscale and through device conversion (lossless FFV1 output)."""
    to_frame_calls = []
    real = yuv.to_frame
    monkeypatch.setattr(sinks.yuv, "to_frame", lambda image: to_frame_calls.append(1) or real(image))
    outputs = {}
    for device_color in (False, True):
        out = tmp_path / f"out-{device_color}.mkv"
        settings = JobSettings(scale=2, model="span-x2", device="cpu", max_frames=frames, quiet=True,
                               device_color=device_color, encoder=EncoderSettings(codec="ffv1"))
        run_job(str(source), str(out), settings)
        outputs[device_color] = planes_of(out)
        assert len(to_frame_calls) == (frames if device_color else 0)  # really took that route
    return outputs[False], outputs[True]


def assert_within_one_code(host: list[yuv.YuvImage], device: list[yuv.YuvImage]) -> None:
    assert len(host) == len(device) > 0
    for a, b in zip(host, device):
        assert a.pix_fmt == b.pix_fmt
        for p, q in zip(a.planes, b.planes, strict=True):
            diff = np.abs(p.astype(np.int32) - q.astype(np.int32))
            assert diff.max() <= 1
            assert (diff > 0).mean() < 0.2  # mostly identical, not systematically off by one


def test_sample_clip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert_within_one_code(*run_both(SAMPLES / "bunny.webm", tmp_path, monkeypatch))


def test_10_bit_source_and_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    host, device = run_both(lossless_10_bit_clip(tmp_path / "deep.mkv"), tmp_path, monkeypatch)
    assert host[0].pix_fmt == "yuv420p10le"
    assert_within_one_code(host, device)


def test_grainy_film_stays_within_one_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """chaplin.mp4 (H.264, left-sited chroma, film grain): the network amplifies input
    differences, so the device path must round where the host path rounds."""
    assert_within_one_code(*run_both(need_shared("video", "chaplin.mp4"), tmp_path, monkeypatch, frames=1))


def test_alpha_and_temporal_keep_the_host_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr(sinks.yuv, "to_frame", lambda image: calls.append(1))
    settings = JobSettings(scale=2, model="bicubic", device="cpu", max_frames=2, quiet=True,
                           device_color=True, temporal=0.5)
    run_job(str(SAMPLES / "bunny.webm"), str(tmp_path / "t.mp4"), settings)
    assert calls == []  # the temporal pass reads RGB frames on the host


def test_cli_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vidscale.cli import main

    calls = []
    real = yuv.to_frame
    monkeypatch.setattr(sinks.yuv, "to_frame", lambda image: calls.append(1) or real(image))
    source = str(SAMPLES / "bunny.webm")
    assert main([source, str(tmp_path / "a.mkv"), "-m", "bicubic", "--frames", "2", "--device-color", "-q"]) == 0
    assert len(calls) == 2
    assert main([source, str(tmp_path / "b.mkv"), "-m", "bicubic", "--frames", "2", "--host-color", "-q"]) == 0
    assert len(calls) == 2
