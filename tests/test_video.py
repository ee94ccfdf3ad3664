"""Video through the streaming pipeline: same frames, times, streams and tags, bigger."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

import vidscale
from tests.conftest import ROOT, SAMPLES, need_shared
from tests.media import VideoSpec, frame_times, make_video, packets, pattern
from vidscale.cli import main
from vidscale.media.image import read_image, write_image


def run(*args: object) -> int:
    return main([str(a) for a in args] + ["--quiet"])


def video_stream(path: Path) -> av.VideoStream:
    return av.open(str(path)).streams.video[0]


def first_frame(path: Path) -> av.VideoFrame:
    with av.open(str(path)) as c:
        return next(c.decode(video=0))


def assert_same_times(src: Path, out: Path, tick: float) -> None:
    a, b = frame_times(src), frame_times(out)
    assert len(a) == len(b)
    assert np.allclose(a, b, atol=tick / 2 + 1e-9), (a, b)


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".mov"])
def test_constant_rate_video_doubles_and_keeps_every_timestamp(tmp_path: Path, suffix: str) -> None:
    src = make_video(tmp_path / f"in{suffix}", VideoSpec(frames=8))
    out = tmp_path / f"out{suffix}"
    assert run(src, out, "--scale", "2", "--model", "lanczos") == 0
    ctx = video_stream(out).codec_context
    assert (ctx.width, ctx.height) == (128, 96)
    assert_same_times(src, out, tick=1e-3 if suffix == ".mkv" else 1 / 90000)
    assert packets(src, "audio") == packets(out, "audio")  # copied byte for byte
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([src.name, out.name])


def test_variable_frame_rate_stays_variable(tmp_path: Path) -> None:
    pts = [0, 3000, 9000, 10000, 25000, 26000, 40000]  # 1/90000 s: irregular spacing
    src = make_video(tmp_path / "vfr.mp4", VideoSpec(pts=pts))
    out = tmp_path / "out.mp4"
    assert run(src, out, "--model", "lanczos", "--batch", "3") == 0
    assert_same_times(src, out, tick=1 / 90000)
    assert len(set(np.diff(frame_times(out)).round(4))) > 2


def test_network_upscale_of_video(tmp_path: Path) -> None:
    src = make_video(tmp_path / "in.mkv", VideoSpec(frames=3, audio="libopus"))
    out = tmp_path / "out.mkv"
    assert run(src, out, "--model", "span-x2", "--batch", "2") == 0
    frame = first_frame(out).to_ndarray(format="rgb24").astype(int)
    source = first_frame(src).to_ndarray(format="rgb24")
    bicubic = vidscale.upscale_image(source, scale=2, model="bicubic").astype(int)
    assert np.abs(frame - bicubic).mean() < 6  # the same picture, upscaled


def test_ten_bit_stays_ten_bit(tmp_path: Path) -> None:
    src = make_video(tmp_path / "in10.mkv", VideoSpec(codec="libx265", pix_fmt="yuv420p10le", frames=3, audio=None))
    out = tmp_path / "out10.mkv"
    assert run(src, out, "--model", "lanczos") == 0
    frame = first_frame(out)
    assert frame.format.name == "yuv420p10le"
    assert video_stream(out).codec_context.name == "hevc"
    ref = first_frame(src).to_ndarray(format="rgb48le").astype(int)
    got = frame.to_ndarray(format="rgb48le")[::2, ::2].astype(int)
    assert np.abs(got - ref).mean() < 1500  # the same picture, on the 16-bit scale
    assert np.any(got % 256 != got[..., :1] % 256)  # low bits carry detail, not 8-bit steps


def test_color_tags_rotation_and_aspect_are_kept(tmp_path: Path) -> None:
    spec = VideoSpec(frames=3, colorspace=9, color_range=1, primaries=9, transfer=14, rotation=90,
                     sar=Fraction(2, 1), stream_metadata={"language": "fra", "title": "Main"},
                     metadata={"title": "Holiday", "comment": "kept"})
    src = make_video(tmp_path / "in.mp4", spec)
    out = tmp_path / "out.mp4"
    assert run(src, out, "--model", "lanczos") == 0
    frame = first_frame(out)
    assert (frame.colorspace, frame.color_range, frame.color_primaries, frame.color_trc) == (9, 1, 9, 14)
    assert frame.rotation == 90
    stream = video_stream(out)
    assert stream.sample_aspect_ratio == Fraction(2, 1)
    assert stream.metadata.get("language") == "fra"
    with av.open(str(out)) as c:
        assert c.metadata.get("title") == "Holiday" and c.metadata.get("comment") == "kept"


def test_colors_convert_with_the_source_matrix(tmp_path: Path) -> None:
    """A BT.601-tagged source must not come out tinted as if it were BT.709."""
    src = make_video(tmp_path / "in.mkv", VideoSpec(frames=2, colorspace=6, color_range=1, audio=None))
    out = tmp_path / "out.mkv"
    assert run(src, out, "--model", "lanczos") == 0
    want = pattern(0, 48, 64).astype(int)
    got = first_frame(out).reformat(format="rgb24", src_colorspace="smpte170m").to_ndarray()[::2, ::2]
    assert np.abs(got.astype(int) - want).mean() < 4


def test_images_into_a_video_and_a_video_into_frames(tmp_path: Path) -> None:
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(5):
        write_image(frames / f"f{i + 1}.png", pattern(i, 40, 60))
    video = tmp_path / "seq.mp4"
    assert run(frames / "f%d.png", video, "--fps", "10", "--model", "lanczos") == 0
    assert np.allclose(frame_times(video), [0, 0.1, 0.2, 0.3, 0.4])
    assert (video_stream(video).codec_context.width, video_stream(video).codec_context.height) == (120, 80)
    out = tmp_path / "back" / "%03d.png"
    assert run(video, out, "--model", "lanczos", "--scale", "1") == 0
    assert sorted(p.name for p in out.parent.iterdir()) == [f"{i:03d}.png" for i in range(1, 6)]


def test_folder_with_mixed_sizes_and_subfolders(tmp_path: Path) -> None:
    src = tmp_path / "photos"
    (src / "sub").mkdir(parents=True)
    write_image(src / "a.png", pattern(0, 30, 40))
    write_image(src / "b.jpg", pattern(1, 50, 20))
    write_image(src / "sub" / "c.png", pattern(2, 16, 16))
    out = tmp_path / "big"
    assert run(src, out, "--model", "lanczos", "--recursive", "--batch", "4") == 0
    assert read_image(out / "a.png").shape == (60, 80, 3)
    assert read_image(out / "b.jpg").shape == (100, 40, 3)
    assert read_image(out / "sub" / "c.png").shape == (32, 32, 3)
    flat = tmp_path / "flat"
    assert run(src, flat, "--model", "lanczos", "--format", "webp") == 0
    assert sorted(p.name for p in flat.iterdir()) == ["a.webp", "b.webp"]


def test_glob_input(tmp_path: Path) -> None:
    for i in (10, 2, 1):
        write_image(tmp_path / f"shot{i}.png", pattern(i, 20, 20))
    video = tmp_path / "g.mkv"
    assert run(str(tmp_path / "shot*.png"), video, "--model", "lanczos", "--fps", "5") == 0
    assert len(frame_times(video)) == 3


@pytest.mark.parametrize("make,message", [
    (lambda p: None, "no such file"),
    (lambda p: p.write_bytes(b""), "empty"),
    (lambda p: p.write_text("hello, not a video"), "not a readable media file"),
])
def test_bad_inputs(tmp_path: Path, capsys: pytest.CaptureFixture[str], make, message: str) -> None:
    src = tmp_path / "in.mp4"
    make(src)
    assert main([str(src), str(tmp_path / "out.mp4")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err and "in.mp4" in err
    assert not (tmp_path / "out.mp4").exists()


def test_undecodable_stream(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.mkv"
    with av.open(str(broken), "w") as out:  # an MJPEG track whose packets are noise
        stream = out.add_mux_stream("mjpeg", width=32, height=32)
        stream.time_base = Fraction(1, 25)
        for i in range(3):
            packet = av.Packet(np.random.default_rng(i).integers(0, 256, 500, dtype=np.uint8).tobytes())
            packet.stream, packet.pts, packet.dts, packet.time_base = stream, i, i, stream.time_base
            out.mux(packet)
    assert main([str(broken), str(tmp_path / "out.mkv"), "-m", "lanczos"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "broken.mkv" in err and "decode" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.mkv"]


def test_verbose_shows_the_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "none.mp4"), str(tmp_path / "o.mp4"), "--verbose"]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_progress_lines_and_summary_when_not_a_terminal(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("vidscale.progress.PLAIN_INTERVAL_S", 0.0)
    src = make_video(tmp_path / "in.mp4", VideoSpec(frames=4, audio=None))
    assert main([str(src), str(tmp_path / "o.mp4"), "-m", "lanczos"]) == 0
    err = capsys.readouterr().err
    assert "o.mp4: 1/" in err or "o.mp4: 2/" in err  # periodic plain progress lines
    summary = err.strip().splitlines()[-1]
    assert "4 frames in" in summary and "fps" in summary and "KiB" in summary


def test_output_rules(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = make_video(tmp_path / "in.mp4", VideoSpec(frames=2, audio=None))
    out = tmp_path / "out.mp4"
    out.write_bytes(b"precious")
    assert main([str(src), str(out), "-m", "lanczos"]) == 2
    assert out.read_bytes() == b"precious"
    assert main([str(src), str(src), "-m", "lanczos", "--overwrite"]) == 2
    assert main([str(src), str(tmp_path / "out.xyz")]) == 2
    assert main([str(src), str(tmp_path / "one.png"), "-m", "lanczos"]) == 2  # 2 frames, 1 image: refused up front
    assert not (tmp_path / "one.png").exists()
    capsys.readouterr()


def test_ctrl_c_removes_the_partial_output(tmp_path: Path) -> None:
    src = make_video(tmp_path / "long.mp4", VideoSpec(width=160, height=120, frames=240, audio=None))
    out = tmp_path / "out.mp4"
    proc = subprocess.Popen([sys.executable, "-m", "vidscale", str(src), str(out), "-m", "span-x4", "-q"],
                            cwd=ROOT, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not any(p.name.startswith(".out.mp4") for p in tmp_path.iterdir()):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.1)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.mp4"]


def test_bundled_sample_clip(tmp_path: Path) -> None:
    src = SAMPLES / "bunny.webm"
    out = tmp_path / "bunny.mp4"
    assert run(src, out, "--model", "lanczos") == 0
    assert len(frame_times(out)) == len(frame_times(src)) == 120
    assert [s.type for s in av.open(str(out)).streams] == ["video", "audio"]


@pytest.mark.parametrize("name,suffix", [("fire2.mp4", ".mp4"), ("rotate-buck-bunny.mp4", ".mp4"),
                                         ("sar_2x1.mp4", ".mkv"), ("test-mkv-multi.mkv", ".mkv"),
                                         ("no_duration.webm", ".webm")])
def test_real_clips_keep_their_frames(tmp_path: Path, name: str, suffix: str) -> None:
    src = need_shared("video", name)
    out = tmp_path / f"out{suffix}"
    assert run(src, out, "--model", "bicubic", "--scale", "1") == 0
    a, b = frame_times(src), frame_times(out)
    assert len(a) == len(b) and np.allclose(a, b, atol=1e-3)
    assert [s.type for s in av.open(str(out)).streams] == [s.type for s in av.open(str(src)).streams]


def test_library_call(tmp_path: Path) -> None:
    src = make_video(tmp_path / "in.mp4", VideoSpec(frames=3, audio=None))
    summary = vidscale.upscale(src, tmp_path / "out.mkv", model="lanczos", scale=1.5, quiet=True)
    assert summary.frames == 3 and summary.output_bytes > 0
    assert (video_stream(tmp_path / "out.mkv").codec_context.width, video_stream(tmp_path / "out.mkv").codec_context.height) == (96, 72)


def test_temporal_pass_keeps_frames_and_times_and_steadies_a_static_scene(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    base = pattern(0, 48, 64).astype(int)
    frames = tmp_path / "noisy"
    frames.mkdir()
    for i in range(8):  # a still scene with fresh noise in every frame, like grainy footage
        write_image(frames / f"{i:02d}.png", np.clip(base + rng.integers(-8, 9, base.shape), 0, 255).astype(np.uint8))
    plain, steady = tmp_path / "plain.mkv", tmp_path / "steady.mkv"
    assert run(frames / "%02d.png", plain, "-m", "lanczos", "--codec", "ffv1", "--fps", "12") == 0
    assert run(frames / "%02d.png", steady, "-m", "lanczos", "--codec", "ffv1", "--fps", "12", "--temporal") == 0
    assert frame_times(plain) == frame_times(steady) and len(frame_times(steady)) == 8

    def flicker(path: Path) -> float:
        with av.open(str(path)) as c:
            stack = np.stack([f.to_ndarray(format="rgb24").astype(float) for f in c.decode(video=0)])
        return float(np.abs(np.diff(stack[2:], axis=0)).mean())

    assert flicker(steady) < 0.6 * flicker(plain)
