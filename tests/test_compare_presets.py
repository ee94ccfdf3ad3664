"""`vidscale compare` panels and the presets."""

from __future__ import annotations

import re
from pathlib import Path

import av
import numpy as np
import pytest

from tests.conftest import SAMPLES
from tests.media import VideoSpec, make_video
from vidscale.cli import main
from vidscale.compare import GAP, LABEL_BAR
from vidscale.media.image import read_picture, write_image
from vidscale.presets import builtin_presets

BUNNY = SAMPLES / "bunny.png"


def test_compare_image_makes_two_labelled_panels(tmp_path: Path) -> None:
    out = tmp_path / "cmp.png"
    assert main(["compare", str(BUNNY), str(out), "--crop", "200,100,60,40", "-m", "span-x2"]) == 0
    canvas = read_picture(out).pixels
    assert canvas.shape == (80 + LABEL_BAR, 2 * 120 + GAP, 3) or canvas.shape[:2] == (80 + LABEL_BAR, 2 * 120 + GAP)
    bar = canvas[:LABEL_BAR].astype(int)
    for x0 in (0, 120 + GAP):  # light label text on each dark bar
        assert (bar[:, x0:x0 + 120] > 200).sum() > 30
    left = canvas[LABEL_BAR:, :120].astype(int)
    right = canvas[LABEL_BAR:, 120 + GAP:].astype(int)
    assert 1 < np.abs(left - right).mean() < 40  # the same scene, upscaled two ways


def test_compare_html_is_self_contained(tmp_path: Path) -> None:
    out = tmp_path / "cmp.html"
    assert main(["compare", str(BUNNY), str(out), "-m", "lanczos"]) == 0
    page = out.read_text()
    assert page.count("data:image/png;base64,") == 2 and 'type="range"' in page
    assert not re.search(r"(src|href)=\"(http|//)", page)  # nothing fetched from elsewhere


def test_compare_video_frame_and_clip(tmp_path: Path) -> None:
    src = make_video(tmp_path / "v.mp4", VideoSpec(width=64, height=48, frames=12, audio=None))
    assert main(["compare", str(src), str(tmp_path / "f.png"), "--at", "0.2", "-m", "lanczos"]) == 0
    assert read_picture(tmp_path / "f.png").pixels.shape[:2] == (96 + LABEL_BAR, 2 * 128 + GAP)
    clip = tmp_path / "clip.mp4"
    assert main(["compare", str(src), str(clip), "--at", "0.1", "--duration", "0.2", "-m", "lanczos"]) == 0
    with av.open(str(clip)) as c:
        frames = list(c.decode(video=0))
    assert 4 <= len(frames) <= 7 and frames[0].width == 2 * 128 + GAP


def test_compare_errors(tmp_path: Path) -> None:
    assert main(["compare", str(BUNNY), str(tmp_path / "c.png"), "--crop", "300,150,100,100"]) == 2
    assert main(["compare", str(tmp_path / "none.png"), str(tmp_path / "c.png")]) == 1
    assert not list(tmp_path.iterdir())


def test_presets_are_listed(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["presets"]) == 0
    listed = capsys.readouterr().out
    for name in ("anime", "archive", "clean", "fast", "film", "photo"):
        assert re.search(rf"^{name}\s+\S", listed, re.M), name


@pytest.mark.parametrize("name", sorted(builtin_presets()))
def test_every_preset_runs(tmp_path: Path, name: str) -> None:
    if name == "photo":
        src = tmp_path / "p.jpg"
        write_image(src, read_picture(BUNNY).pixels[:24, :32])
        out = tmp_path / "o.jpg"
    else:
        src = make_video(tmp_path / "v.mkv", VideoSpec(width=32, height=24, frames=3, audio="libopus"))
        out = tmp_path / "o.mkv"
    # scale 1 keeps the networks fast; everything else comes from the preset
    assert main([str(src), str(out), "--preset", name, "--scale", "1", "-q"]) == 0
    if name == "archive":
        with av.open(str(out)) as c:
            v = c.streams.video[0].codec_context
            assert (v.name, v.format.name) == ("ffv1", "yuv444p10le")
    if name == "anime":
        with av.open(str(out)) as c:
            assert c.streams.video[0].codec_context.format.name == "yuv420p10le"


def test_flags_win_over_the_preset(tmp_path: Path) -> None:
    src = make_video(tmp_path / "v.mkv", VideoSpec(width=32, height=24, frames=2, audio=None))
    out = tmp_path / "o.mkv"
    assert main([str(src), str(out), "--preset", "anime", "--codec", "libx264", "--pix-fmt", "yuv420p",
                 "-m", "lanczos", "-q"]) == 0
    with av.open(str(out)) as c:
        v = c.streams.video[0].codec_context
        assert (v.name, v.format.name, v.width) == ("h264", "yuv420p", 64)  # the preset's scale 2 kept


def test_preset_errors(tmp_path: Path) -> None:
    src = make_video(tmp_path / "v.mp4", VideoSpec(width=32, height=24, frames=2, audio=None))
    assert main([str(src), str(tmp_path / "o.mp4"), "--preset", "archive"]) == 2  # FFV1 needs .mkv
    assert main([str(src), str(tmp_path / "o.mp4"), "--preset", "nope"]) == 2
    bad = tmp_path / "bad.toml"
    bad.write_text('scale = "big"\n')
    assert main([str(src), str(tmp_path / "o.mp4"), "--preset", str(bad)]) == 2
    bad.write_text("colour = 1\n")
    assert main([str(src), str(tmp_path / "o.mp4"), "--preset", str(bad)]) == 2
