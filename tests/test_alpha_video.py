"""Video with alpha (VP9 in WebM): the transparency survives when the output can carry it."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from tests.media import frame_times
from vidscale.cli import main

SHARED_VIDEO = Path(__file__).resolve().parents[2] / "shared" / "media" / "video"
W, H, FRAMES, SIDE = 64, 48, 6, 16


def square_at(index: int) -> tuple[int, int]:
    """Top-left corner of the opaque square in frame `index` (x, y)."""
    return 4 + 6 * index, 12 + 2 * index


def make_alpha_webm(path: Path) -> Path:
    """A red square moving over a transparent background, VP9 with alpha."""
    with av.open(str(path), "w") as out:
        v = out.add_stream("libvpx-vp9", rate=24)
        v.width, v.height, v.pix_fmt = W, H, "yuva420p"
        v.codec_context.options = {"crf": "20", "cpu-used": "8", "deadline": "realtime"}
        v.codec_context.bit_rate = 0
        for i in range(FRAMES):
            rgba = np.zeros((H, W, 4), np.uint8)
            x, y = square_at(i)
            rgba[y:y + SIDE, x:x + SIDE] = (220, 30, 30, 255)
            frame = av.VideoFrame.from_ndarray(rgba, format="rgba").reformat(format="yuva420p")
            frame.pts, frame.time_base = i, Fraction(1, 24)
            out.mux(v.encode(frame))
        out.mux(v.encode(None))
    return path


def alpha_frames(path: Path) -> tuple[list[np.ndarray], str]:
    """RGBA frames decoded with libvpx (FFmpeg's own VP9 decoder drops alpha), and the alpha_mode tag."""
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        ctx = av.CodecContext.create("libvpx-vp9", "r")
        frames = []
        for packet in c.demux(stream):
            for frame in ctx.decode(packet):
                assert frame.format.name == "yuva420p"
                frames.append(frame.to_ndarray(format="rgba"))
        return frames, stream.metadata.get("alpha_mode", "")


def run(*args: object) -> int:
    return main([str(a) for a in args])


def test_webm_keeps_alpha_in_the_right_places(tmp_path: Path) -> None:
    src = make_alpha_webm(tmp_path / "in.webm")
    out = tmp_path / "out.webm"
    assert run(src, out, "--scale", "2", "--model", "lanczos", "--quiet") == 0
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.name == "vp9"  # not AV1: it has no alpha
    frames, alpha_mode = alpha_frames(out)
    assert alpha_mode == "1"
    assert len(frames) == FRAMES
    assert frame_times(out) == pytest.approx(frame_times(src), abs=1e-3)
    for i, rgba in enumerate(frames):
        assert rgba.shape == (2 * H, 2 * W, 4)
        x, y = (2 * v for v in square_at(i))
        inside = rgba[y + 6:y + 2 * SIDE - 6, x + 6:x + 2 * SIDE - 6]  # away from filter ringing
        assert inside[..., 3].min() > 235
        assert inside[..., 0].mean() > 180 and inside[..., 1].mean() < 70  # still red
        outside = np.ones(rgba.shape[:2], bool)
        outside[max(y - 6, 0):y + 2 * SIDE + 6, max(x - 6, 0):x + 2 * SIDE + 6] = False
        assert rgba[..., 3][outside].max() < 20


def test_mp4_drops_alpha_with_a_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = make_alpha_webm(tmp_path / "in.webm")
    out = tmp_path / "out.mp4"
    assert run(src, out, "--scale", "2", "--model", "lanczos") == 0
    assert "alpha dropped" in capsys.readouterr().err
    with av.open(str(out)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        assert "alpha_mode" not in c.streams.video[0].metadata
    assert len(frames) == FRAMES and frames[0].shape == (2 * H, 2 * W, 3)
    x, y = (2 * v for v in square_at(0))
    assert frames[0][y + 8:y + 24, x + 8:x + 24, 0].mean() > 180  # the square, now on black


def test_real_transparent_webm_keeps_alpha(tmp_path: Path) -> None:
    src = SHARED_VIDEO / "transparent.webm"
    if not src.exists():
        pytest.skip(f"shared media not present: {src}")
    out = tmp_path / "out.webm"
    assert run(src, out, "--scale", "2", "--model", "lanczos", "--frames", "8", "--quiet") == 0
    frames, alpha_mode = alpha_frames(out)
    assert alpha_mode == "1" and len(frames) == 8
    with av.open(str(src)) as c:
        w, h = c.streams.video[0].codec_context.width, c.streams.video[0].codec_context.height
    for rgba in frames:
        assert rgba.shape == (2 * h, 2 * w, 4)
        alpha = rgba[..., 3]
        assert (alpha == 0).mean() > 0.9  # mostly transparent background...
        dot = alpha > 200
        assert dot.any()  # ...with an opaque red dot
        assert rgba[dot][:, 0].mean() > 180 and rgba[dot][:, 1:3].mean() < 60
