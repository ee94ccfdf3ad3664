"""The library calls: `vidscale.upscale` with the CLI's option names, `vidscale.upscale_image` on PIL images."""

from __future__ import annotations

import threading
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

import vidscale
from tests.conftest import SAMPLES
from vidscale import upscaler as upscaler_module
from vidscale.options import job_settings


@pytest.fixture(scope="module")
def small(bunny: np.ndarray) -> np.ndarray:
    return bunny[110:150, 220:280]


def test_pil_images_come_back_as_pil_images(small: np.ndarray) -> None:
    rgb = Image.fromarray(small)
    rgb.info["dpi"] = (300, 300)
    out = vidscale.upscale_image(rgb, scale=2, model="lanczos")
    assert isinstance(out, Image.Image) and (out.mode, out.size) == ("RGB", (120, 80))
    assert out.info["dpi"] == (300, 300)
    expected = vidscale.upscale_image(small, scale=2, model="lanczos")
    assert np.array_equal(np.asarray(out), expected)  # the same pixels as the array path
    for mode, want in (("L", "L"), ("RGBA", "RGBA"), ("LA", "LA"), ("P", "RGB"), ("CMYK", "RGB"), ("1", "1")):
        picture = rgb.convert(mode)
        out = vidscale.upscale_image(picture, width=90, model="bicubic")
        assert (out.mode, out.size) == (want, (90, 60)), mode
    deep = Image.fromarray(small[..., 0].astype(np.uint16) * 257)
    assert deep.mode == "I;16"
    out = vidscale.upscale_image(deep, scale=2, model="lanczos")
    assert out.mode == "I;16" and np.asarray(out).max() > 255


def test_scale_with_a_size_is_refused(small: np.ndarray) -> None:
    with pytest.raises(vidscale.UsageError, match="not both"):
        vidscale.upscale_image(small, scale=2, width=100, model="bicubic")


def test_a_named_model_without_a_size_runs_at_its_own_scale(small: np.ndarray) -> None:
    assert vidscale.upscale_image(small, model="span-x2").shape == (80, 120, 3)
    assert vidscale.upscale_image(small, model="bicubic").shape == (80, 120, 3)  # the default x2


def test_the_model_is_loaded_once_for_repeated_calls(small: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    loads: list[str] = []
    real = upscaler_module.make_engine

    def counting(info, *args, **kwargs):  # type: ignore[no-untyped-def]
        loads.append(info.name)
        return real(info, *args, **kwargs)

    monkeypatch.setattr(upscaler_module, "make_engine", counting)
    first = vidscale.upscale_image(small, scale=2, model="span-x2", device="cpu")
    second = vidscale.upscale_image(small, scale=2, model="span-x2", device="cpu")
    assert np.array_equal(first, second)
    assert loads == ["span-x2"]


def test_option_names_are_the_clis() -> None:
    settings = job_settings({"frames": 5, "crf": 16, "encoder_preset": "slow", "codec": "libx265",
                             "pix_fmt": "yuv420p10le", "encoder_opt": {"g": 12}, "format": "jpg", "fps": "30000/1001",
                             "scale": 3}, "out.mp4")
    assert (settings.max_frames, settings.image_format, settings.scale) == (5, ".jpg", 3.0)
    enc = settings.encoder
    assert (enc.codec, enc.crf, enc.preset, enc.pix_fmt, enc.options) == ("libx265", 16, "slow", "yuv420p10le",
                                                                          {"g": "12"})
    assert enc.fps.numerator == 30000
    assert job_settings({"encoder_opt": ("g=12", "bf=0")}, "o.mp4").encoder.options == {"g": "12", "bf": "0"}


def test_the_library_checks_what_the_cli_checks() -> None:
    for bad in ({"tile": 16}, {"batch": 0}, {"quality": 101}, {"backend": "opencl"}, {"fps": "0"},
                {"encoder_opt": ["nonsense"]}):
        with pytest.raises(vidscale.UsageError):
            job_settings(bad, "out.mp4")
    with pytest.raises(vidscale.UsageError, match="Invalid value for '--tile'"):  # the CLI's words
        job_settings({"tile": 16}, "out.mp4")
    assert job_settings({"background": "black"}, "o.jpg").background == (0, 0, 0)
    with pytest.raises(TypeError, match="max_frames"):
        job_settings({"max_frames": 3}, "out.mp4")


def test_a_preset_fills_what_is_not_given() -> None:
    settings = job_settings({"preset": "anime", "crf": 30}, "out.mkv")
    assert settings.encoder.crf == 30  # given: kept
    assert settings.encoder.codec == "libx265" and settings.model == "realcugan"  # from the preset


def test_upscale_takes_cli_names_reports_progress_and_cancels(tmp_path: Path) -> None:
    seen: list[tuple[int, int | None]] = []
    out = tmp_path / "out.mp4"
    summary = vidscale.upscale(SAMPLES / "bunny.webm", out, model="bicubic", scale=1, frames=3, crf=40,
                               encoder_preset="ultrafast", encoder_opt={"g": "1"},
                               on_progress=lambda done, total: seen.append((done, total)))
    assert isinstance(summary, vidscale.Summary) and summary.frames == 3
    assert seen == [(1, 3), (2, 3), (3, 3)]
    with av.open(str(out)) as container:
        packets = [p for p in container.demux(video=0) if p.size]
    assert len(packets) == 3 and all(p.is_keyframe for p in packets)  # g=1 reached the encoder

    stop = threading.Event()
    with pytest.raises(vidscale.Cancelled):
        vidscale.upscale(SAMPLES / "bunny.webm", tmp_path / "stopped.mp4", model="bicubic", scale=1, frames=8,
                         on_progress=lambda done, total: stop.set() if done == 2 else None, cancel=stop)
    assert not (tmp_path / "stopped.mp4").exists()
