"""The VapourSynth filter `vidscale.vs.upscale`: formats, properties, threads, vspipe."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT
from tests.media import VideoSpec, make_video, pattern
from vidscale.api import upscale_image
from vidscale.media.color import RgbConverter
from vidscale.media.frames import Frame
from vidscale.media.source import VideoSource

vs = pytest.importorskip("vapoursynth")
import vidscale.vs as vsx  # noqa: E402  (needs vapoursynth)

core = vs.core
H, W, FRAMES = 24, 32, 6


@pytest.fixture(autouse=True)
def four_threads() -> None:
    core.num_threads = 4


def rgb24_clip(frames: int = FRAMES, height: int = H, width: int = W) -> vs.VideoNode:
    """An RGB24 clip whose frame n is `media.pattern(n)`: pictures the tests know."""
    blank = core.std.BlankClip(width=width, height=height, format=vs.RGB24, length=frames,
                               fpsnum=24000, fpsden=1001)

    def draw(n: int, f: vs.VideoFrame) -> vs.VideoFrame:
        out = f.copy()
        picture = pattern(n, height, width)
        for p in range(3):
            np.copyto(np.asarray(out[p]), picture[..., p])
        return out

    return core.std.ModifyFrame(blank, blank, draw)


def planes(frame: vs.VideoFrame) -> np.ndarray:
    """HxWxC array of a frame's planes."""
    return np.stack([np.asarray(frame[p]) for p in range(frame.format.num_planes)], axis=-1)


def frames_of(clip: vs.VideoNode) -> list[np.ndarray]:
    return [planes(f) for f in clip.frames()]


def library(picture: np.ndarray, model: str = "bicubic") -> np.ndarray:
    return upscale_image(picture, scale=2, model=model, device="cpu")


# ---------------------------------------------------------------- input formats


def test_rgb24_out_format_rgbs_is_the_library() -> None:
    out = vsx.upscale(rgb24_clip(), model="bicubic", out_format=vs.RGBS)
    assert (out.format.id, out.width, out.height, out.num_frames) == (vs.RGBS, 2 * W, 2 * H, FRAMES)
    assert out.fps == vs.core.std.BlankClip(fpsnum=24000, fpsden=1001).fps
    for n, got in enumerate(frames_of(out)):
        expected = library(pattern(n, H, W).astype(np.float32) / 255)
        np.testing.assert_allclose(got, expected, atol=1e-5)


def test_rgb24_gives_rgb24_the_library_in_uint8() -> None:
    out = vsx.upscale(rgb24_clip(), model="lanczos")  # the input's format, as VS filters do
    assert out.format.id == vs.RGB24
    for n, got in enumerate(frames_of(out)):
        expected = library(pattern(n, H, W), "lanczos")
        assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1


@pytest.mark.parametrize("fmt, atol", [(vs.RGBS, 1e-5), (vs.RGBH, 2e-3)], ids=["RGBS", "RGBH"])
def test_float_rgb_inputs(fmt: int, atol: float) -> None:
    clip = core.resize.Point(rgb24_clip(), format=fmt)
    out = vsx.upscale(clip, model="bicubic")
    assert out.format.id == fmt
    for n, got in enumerate(frames_of(out)):
        expected = library(pattern(n, H, W).astype(np.float32) / 255)
        np.testing.assert_allclose(got, expected, atol=atol)


def test_fp16_with_rgbh_out() -> None:
    out = vsx.upscale(rgb24_clip(2), model="bicubic", fp16=True, backend="cpu", out_format=vs.RGBH)
    assert out.format.id == vs.RGBH
    got = planes(out.get_frame(1))
    assert got.dtype == np.float16
    np.testing.assert_allclose(got, library(pattern(1, H, W).astype(np.float32) / 255), atol=2e-3)


def yuv_of(clip: vs.VideoNode, fmt: int, matrix: str) -> vs.VideoNode:
    """`clip` in a YUV format, untagged: as a source without colour tags hands it out."""
    yuv = core.resize.Bicubic(clip, format=fmt, matrix_s=matrix)
    return core.std.RemoveFrameProps(yuv, ["_Matrix", "_Range", "_ChromaLocation"])


def rgbs_as_decoded(yuv: vs.VideoNode, matrix: str) -> list[np.ndarray]:
    return frames_of(core.resize.Bicubic(yuv, format=vs.RGBS, matrix_in_s=matrix))


@pytest.mark.parametrize("fmt", [vs.YUV420P8, vs.YUV420P10], ids=["YUV420P8", "YUV420P10"])
def test_untagged_yuv_is_read_as_bt601_below_hd(fmt: int) -> None:
    yuv = yuv_of(rgb24_clip(), fmt, "170m")
    out = vsx.upscale(yuv, model="bicubic", out_format=vs.RGBS)
    assert out.format.id == vs.RGBS
    for got, decoded in zip(frames_of(out), rgbs_as_decoded(yuv, "170m"), strict=True):
        np.testing.assert_allclose(got, library(decoded), atol=1e-5)


def test_yuv_tags_of_the_frames_are_used() -> None:
    untagged = yuv_of(rgb24_clip(2), vs.YUV420P8, "709")
    yuv = core.std.SetFrameProps(untagged, _Matrix=1)
    got = planes(vsx.upscale(yuv, model="bicubic", out_format=vs.RGBS).get_frame(1))
    np.testing.assert_allclose(got, library(rgbs_as_decoded(untagged, "709")[1]), atol=1e-5)
    wrong = library(rgbs_as_decoded(untagged, "170m")[1])
    assert np.abs(got - wrong).max() > 0.01  # the guess would have been visibly different


@pytest.mark.parametrize("fmt", [vs.YUV420P8, vs.YUV420P10], ids=["YUV420P8", "YUV420P10"])
def test_yuv_gives_the_same_yuv(fmt: int) -> None:
    yuv = yuv_of(rgb24_clip(), fmt, "170m")
    out = vsx.upscale(yuv, model="bicubic")  # no out_format: the input's, so y4m can take it
    assert (out.format.id, out.width, out.height) == (fmt, 2 * W, 2 * H)
    props = out.get_frame(0).props
    assert props["_Matrix"] == vs.MATRIX_ST170_M and props["_Range"] == vs.RANGE_LIMITED
    # the same as upscaling the decoded RGB and coding it back as BT.601 limited
    rgb = vsx.upscale(yuv, model="bicubic", out_format=vs.RGBS)
    back = core.resize.Bicubic(rgb, format=fmt, matrix_s="170m", range_s="limited")
    for got, expected in zip(out.frames(), back.frames(), strict=True):
        for p in range(3):
            assert np.array_equal(np.asarray(got[p]), np.asarray(expected[p]))


def test_gray_input() -> None:
    gray = core.std.SetFrameProps(core.std.ShufflePlanes(rgb24_clip(), 1, vs.GRAY), _Range=1)
    out = vsx.upscale(gray, model="bicubic", out_format=vs.RGBS)
    assert out.format.id == vs.RGBS
    same = vsx.upscale(gray, model="bicubic")
    assert same.format.id == vs.GRAY8
    for n, (rgb, got) in enumerate(zip(frames_of(out), frames_of(same), strict=True)):
        picture = pattern(n, H, W)[..., 1]
        expected = library(np.repeat(picture[..., None].astype(np.float32) / 255, 3, axis=-1))
        np.testing.assert_allclose(rgb, expected, atol=1e-5)
        assert np.abs(got[..., 0].astype(int) - library(picture).astype(int)).max() <= 1


def test_colour_defaults_follow_the_size_and_the_tags() -> None:
    def tags(width: int, height: int, fmt: int, **props: int) -> vsx.ColorTags:
        clip = core.std.BlankClip(width=width, height=height, format=fmt, length=1)
        return vsx._color_tags(core.std.SetFrameProps(clip, **props), (2 * height, 2 * width))

    assert tags(640, 360, vs.YUV420P8) == vsx.ColorTags(vs.MATRIX_ST170_M, vs.RANGE_LIMITED, 0)
    assert tags(1280, 720, vs.YUV420P8).matrix == vs.MATRIX_BT709
    assert tags(640, 360, vs.YUV420P8, _Matrix=9, _Range=1, _ChromaLocation=2) == vsx.ColorTags(
        vs.MATRIX_BT2020_NCL, vs.RANGE_FULL, 2)
    # RGB coded to YUV: the matrix of the output's size, full range as it came
    assert tags(640, 360, vs.RGB24) == vsx.ColorTags(vs.MATRIX_BT709, vs.RANGE_FULL, 0)


def test_untagged_gray_is_limited_range_like_the_resizer_reads_it() -> None:
    gray = core.std.BlankClip(width=W, height=H, format=vs.GRAY8, color=[235], length=1)
    assert planes(vsx.upscale(gray, model="bicubic", out_format=vs.RGBS).get_frame(0)).min() > 0.999
    back = vsx.upscale(gray, model="bicubic").get_frame(0)
    assert np.all(planes(back) == 235) and back.props["_Range"] == vs.RANGE_LIMITED


def test_real_network_matches_the_library() -> None:
    clip = rgb24_clip(2, 12, 16)
    out = vsx.upscale(clip, model="span-x2", batch=2, out_format=vs.RGBS)
    for n, got in enumerate(frames_of(out)):
        expected = library(pattern(n, 12, 16).astype(np.float32) / 255, "span-x2")
        np.testing.assert_allclose(got, expected, atol=1e-4)


# ---------------------------------------------------------------- properties and errors


def test_frame_properties_are_kept_and_updated() -> None:
    clip = core.std.SetFrameProps(yuv_of(rgb24_clip(2), vs.YUV420P8, "709"), _Matrix=1,
                                  _SARNum=4, _SARDen=3, _AbsoluteTime=1.5, Note="kept",
                                  _ChromaLocation=0)
    clip = core.std.SetFrameProps(clip, _Alpha=core.std.BlankClip(clip, format=vs.GRAY8).get_frame(0))
    rgb = vsx.upscale(clip, model="bicubic", out_format=vs.RGBS).get_frame(1).props
    assert rgb["_Matrix"] == vs.MATRIX_RGB and rgb["_Range"] == vs.RANGE_FULL
    assert (rgb["_SARNum"], rgb["_SARDen"], rgb["_AbsoluteTime"], rgb["Note"]) == (4, 3, 1.5, "kept")
    assert (rgb["_DurationNum"], rgb["_DurationDen"]) == (1001, 24000)
    assert "_Alpha" not in rgb  # a picture of the old size
    yuv = vsx.upscale(clip, model="bicubic", out_format=vs.YUV444P16).get_frame(0).props
    assert yuv["_Matrix"] == vs.MATRIX_BT709 and yuv["_SARNum"] == 4 and yuv["Note"] == "kept"


def test_unknown_model_fails_at_load() -> None:
    with pytest.raises(vs.Error, match="unknown model 'no-such-model'"):
        vsx.upscale(rgb24_clip(), model="no-such-model")


def cli_error(*args: str) -> str:
    """The message the CLI prints for these arguments (without its "Error: " prefix)."""
    from click.testing import CliRunner

    from vidscale.cli import cli

    result = CliRunner().invoke(cli, ["upscale", "in.png", "out.png", *args])
    assert result.exit_code == 2
    return result.output.strip().splitlines()[-1].removeprefix("Error: ").removeprefix("vidscale: error: ")


@pytest.mark.parametrize("args, kwargs", [
    (["--tile", "16"], {"tile": 16}),
    (["--batch", "0"], {"batch": 0}),
    (["--temporal", "1.5"], {"temporal": 1.5}),
    (["--backend", "nope"], {"backend": "nope"}),
], ids=["tile", "batch", "temporal", "backend"])
def test_arguments_are_refused_as_the_cli_refuses_them(args: list[str], kwargs: dict) -> None:
    expected = cli_error(*args)
    with pytest.raises(vs.Error) as caught:
        vsx.upscale(rgb24_clip(), model="bicubic", **kwargs)
    assert str(caught.value) == expected


def test_bad_arguments_fail_at_load_as_vapoursynth_errors() -> None:
    clip = rgb24_clip()
    with pytest.raises(vs.Error, match="--backend cpu does not run on --device cuda"):
        vsx.upscale(clip, model="bicubic", backend="cpu", device="cuda")
    with pytest.raises(vs.Error, match="scale 9 is impossible"):
        vsx.upscale(clip, scale=9, model="bicubic")
    with pytest.raises(vs.Error, match="out_format"):
        vsx.upscale(clip, model="bicubic", out_format=12345)
    with pytest.raises(vs.Error, match="needs a video clip"):
        vsx.upscale("not a clip", model="bicubic")  # type: ignore[arg-type]


def test_variable_size_clips_are_refused() -> None:
    mixed = core.std.Splice([core.std.BlankClip(width=32, height=24, length=2),
                             core.std.BlankClip(width=16, height=24, length=2)], mismatch=True)
    with pytest.raises(vs.Error, match="variable-size"):
        vsx.upscale(mixed, model="bicubic")


# ---------------------------------------------------------------- threads and batching


def test_concurrent_requests_are_batched_and_correct(monkeypatch: pytest.MonkeyPatch) -> None:
    sizes: list[int] = []

    class Counting(vsx.Upscaler):
        def upscale(self, x, size):  # type: ignore[no-untyped-def]
            sizes.append(x.shape[0])
            return super().upscale(x, size)

    monkeypatch.setattr(vsx, "Upscaler", Counting)
    monkeypatch.setattr(vsx, "GATHER_S", 0.5)  # a slow test machine still fills batches
    frames = 16
    out = vsx.upscale(rgb24_clip(frames), model="bicubic", batch=4, out_format=vs.RGBS)
    order = list(range(frames))[::-1]  # out of order, all at once, from 4 VS threads
    futures = {n: out.get_frame_async(n) for n in order}
    for n, future in futures.items():
        expected = library(pattern(n, H, W).astype(np.float32) / 255)
        np.testing.assert_allclose(planes(future.result()), expected, atol=1e-5)
    assert sum(sizes) == frames and max(sizes) > 1


def test_batcher_hands_each_caller_its_own_result_and_errors() -> None:
    seen: list[list[int]] = []

    def double(items: list[int]) -> list[int]:
        seen.append(list(items))
        if 13 in items:
            raise RuntimeError("unlucky")
        time.sleep(0.01)
        return [2 * i for i in items]

    batcher = vsx.Batcher(double, max_batch=3, gather_s=0.05)
    results: dict[int, object] = {}

    def call(i: int) -> None:
        try:
            results[i] = batcher(i)
        except RuntimeError as exc:
            results[i] = exc

    threads = [threading.Thread(target=call, args=(i,)) for i in range(10, 20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert all(not t.is_alive() for t in threads)
    failed = next(batch for batch in seen if 13 in batch)
    for i in range(10, 20):
        if i in failed:
            assert isinstance(results[i], RuntimeError)
        else:
            assert results[i] == 2 * i
    assert max(len(b) for b in seen) <= 3 and sorted(i for b in seen for i in b) == list(range(10, 20))


# ---------------------------------------------------------------- temporal pass


def noisy_clip(frames: int, moving: bool = False, noise: int = 8) -> vs.VideoNode:
    """RGB24 frames of `pattern` (still unless `moving`) with +-`noise` levels of fresh noise each."""
    rng = np.random.default_rng(1)
    pictures = [np.clip(pattern(n if moving else 0, H, W).astype(int)
                        + rng.integers(-noise, noise + 1, (H, W, 3)), 0, 255).astype(np.uint8)
                for n in range(frames)]
    blank = core.std.BlankClip(width=W, height=H, format=vs.RGB24, length=frames)

    def draw(n: int, f: vs.VideoFrame) -> vs.VideoFrame:
        out = f.copy()
        for p in range(3):
            np.copyto(np.asarray(out[p]), pictures[n][..., p])
        return out

    return core.std.ModifyFrame(blank, blank, draw)


def sequential_temporal(clip: vs.VideoNode, strength: float = 0.7) -> list[np.ndarray]:
    """The library's plain upscales through one TemporalFilter, frame after frame."""
    import torch

    from vidscale.temporal import TemporalFilter

    pass_, outs = TemporalFilter(strength, "cpu"), []
    for picture in frames_of(clip):
        sr = library(picture.astype(np.float32) / 255, "lanczos")
        lr = picture.astype(np.uint16) * 257
        out = pass_.apply(lr, torch.from_numpy(sr).permute(2, 0, 1)[None])
        outs.append(out[0].permute(1, 2, 0).numpy())
    return outs


@pytest.mark.parametrize("moving, noise", [(False, 8), (True, 2)], ids=["still", "moving"])
def test_temporal_in_order_equals_the_filter_run_in_order(moving: bool, noise: int) -> None:
    # the tiny frames' motion is followed only with little noise: more reads as a cut
    clip = noisy_clip(12, moving, noise)
    out = vsx.upscale(clip, model="lanczos", backend="cpu", temporal=True, out_format=vs.RGBS)
    expected = sequential_temporal(clip)
    for n in range(clip.num_frames):  # one at a time, in order
        np.testing.assert_allclose(planes(out.get_frame(n)), expected[n], atol=1e-5)
    plain = library(frames_of(clip)[-1].astype(np.float32) / 255, "lanczos")
    assert np.abs(expected[-1] - plain).mean() > 0.001  # the pass did blend


def test_temporal_out_of_order_is_close_to_in_order() -> None:
    frames = 30
    clip = noisy_clip(frames)  # still: every frame blends, so missing history shows most
    expected = sequential_temporal(clip, 0.9)
    out = vsx.upscale(clip, model="lanczos", backend="cpu", temporal=0.9, out_format=vs.RGBS)
    order = list(np.random.default_rng(7).permutation(frames))  # jumps back and forth
    futures = {int(n): out.get_frame_async(int(n)) for n in order}  # from 4 VS threads at once
    worst = 0.0
    for n, future in futures.items():
        worst = max(worst, float(np.abs(planes(future.result()) - expected[n]).max()))
    # After a jump 8 frames rebuild the history; what is missing weighs at most 0.9^8 ~ 0.43
    # of a history-to-frame difference, which the confidence gate keeps to a few noise levels:
    # measured 0.007 (about 2 of 255 levels; 0.0007 at the default 0.7).
    assert worst < 0.02


def test_temporal_strength_is_checked_at_load() -> None:
    clip = rgb24_clip()
    assert vsx.upscale(clip, model="bicubic", temporal=0.3).num_frames == FRAMES
    for bad in (-0.1, 1.5):
        with pytest.raises(vs.Error, match="is not in the range 0<=x<=1"):
            vsx.upscale(clip, model="bicubic", temporal=bad)


def flicker(clip: vs.VideoNode) -> float:
    frames = frames_of(clip)
    return float(np.mean([np.abs(b - a).mean() for a, b in zip(frames, frames[1:])]))


def test_temporal_flickers_less_on_a_still_noisy_clip() -> None:
    clip = noisy_clip(16)
    plain = flicker(vsx.upscale(clip, model="lanczos", backend="cpu", out_format=vs.RGBS))
    steady = flicker(vsx.upscale(clip, model="lanczos", backend="cpu", temporal=True, out_format=vs.RGBS))
    assert steady < 0.6 * plain  # measured 0.46


def test_sequential_runner_fills_gaps_and_warms_up_after_jumps() -> None:
    seen: list[int] = []
    resets: list[int] = []

    def step(planes: list[np.ndarray]) -> int:
        seen.append(int(planes[0]))
        return int(planes[0])

    runner = vsx.SequentialRunner(step, lambda: resets.append(len(seen)), warmup=2)
    source = lambda k: [np.array(k)]  # noqa: E731
    assert [runner(n, source) for n in (1, 0, 2, 9, 4, 5)] == [1, 0, 2, 9, 4, 5]
    # 1 fills 0 (kept for its request); 9 jumps: 7, 8 warm up; 4 goes back: 2, 3 warm up
    assert seen == [0, 1, 2, 7, 8, 9, 2, 3, 4, 5] and resets == [3, 6]


# ---------------------------------------------------------------- vspipe


def vspipe() -> str:
    found = shutil.which("vspipe", path=str(Path(sys.executable).parent)) or shutil.which("vspipe")
    if not found:
        pytest.skip("vspipe is not installed")
    return found


def run_vspipe(script: Path, out: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([vspipe(), *args, str(script), str(out)], capture_output=True, env=env,
                          cwd=ROOT, timeout=120, check=False)


SCRIPT = """\
import vapoursynth as vs
import vidscale.vs
core = vs.core
core.num_threads = 4
clip = core.bs.VideoSource(source={source!r}, cachemode=0)
clip = vidscale.vs.upscale(clip, scale=2, model={model!r}, batch=2)  # the input's YUV back
clip.set_output()
"""


def read_y4m(path: Path) -> tuple[str, list[list[np.ndarray]]]:
    """The header and each frame's Y, U, V planes of an 8-bit 4:2:0 y4m file."""
    data = path.read_bytes()
    header, _, body = data.partition(b"\n")
    fields = {f[:1].decode(): f[1:].decode() for f in header.split()[1:]}
    w, h = int(fields["W"]), int(fields["H"])
    sizes = [(h, w), (h // 2, w // 2), (h // 2, w // 2)]
    frames, pos = [], 0
    while pos < len(body):
        assert body[pos:pos + 6] == b"FRAME\n"
        pos += 6
        frame = []
        for ph, pw in sizes:
            frame.append(np.frombuffer(body, np.uint8, ph * pw, pos).reshape(ph, pw))
            pos += ph * pw
        frames.append(frame)
    return header.decode(), frames


def need_bestsource() -> None:
    if not hasattr(core, "bs"):
        pytest.skip("vapoursynth-bestsource is not installed")


def test_vspipe_bestsource_to_y4m_matches_the_library(tmp_path: Path) -> None:
    need_bestsource()
    video = make_video(tmp_path / "in.mkv", VideoSpec(width=64, height=48, frames=8, audio=None))
    script = tmp_path / "up.vpy"
    script.write_text(SCRIPT.format(source=str(video), model="bicubic"))
    out = tmp_path / "out.y4m"
    done = run_vspipe(script, out, "-c", "y4m", "-r", "4")
    assert done.returncode == 0, done.stderr.decode()
    header, frames = read_y4m(out)
    assert " W128 H96 " in header and len(frames) == 8

    source = VideoSource(video)
    converter = RgbConverter()
    try:
        decoded = [item for item in source.items() if isinstance(item, Frame)]
    finally:
        source.close()
    assert len(decoded) == 8
    for frame, got in zip(decoded, frames, strict=True):
        big = library(frame.pixels)
        expected = converter.from_rgb(big, "yuv420p", frame.color).to_ndarray()
        # swscale (the library's video path) and zimg (VapourSynth's) differ in rounding and
        # chroma filters: measured luma max 1 / mean 0.18, chroma max 3 / mean 0.6
        luma = np.abs(got[0].astype(int) - expected[:96].astype(int))
        assert luma.max() <= 2 and luma.mean() < 0.35
        chroma = np.concatenate([got[1].ravel(), got[2].ravel()]).astype(int)
        chroma_diff = np.abs(chroma - expected[96:].ravel().astype(int))
        assert chroma_diff.max() <= 5 and chroma_diff.mean() < 1.0


def test_vspipe_reports_an_unknown_model(tmp_path: Path) -> None:
    need_bestsource()
    video = make_video(tmp_path / "in.mkv", VideoSpec(frames=2, audio=None))
    script = tmp_path / "bad.vpy"
    script.write_text(SCRIPT.format(source=str(video), model="no-such-model"))
    done = run_vspipe(script, tmp_path / "out.y4m", "-c", "y4m")
    assert done.returncode != 0
    assert "unknown model 'no-such-model'" in done.stderr.decode()
