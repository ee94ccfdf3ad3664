"""Repeated frames: upscaled once, the output the same as a run that upscales every frame."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch

from tests.media import pattern
from vidscale import JobSettings, run_job
from vidscale.core.settings import EncoderSettings
from vidscale.options import job_settings
from vidscale.repeats import Recent, Repeats, Reuse
from vidscale.repeats import block_means as vidscale_block_means
from vidscale.upscaler import Upscaler

# drawings held for one to three frames, as anime holds them: 24 frames, 12 of them repeats
HELD = [0, 0, 1, 1, 1, 2, 3, 3, 4, 5, 5, 5, 6, 7, 7, 8, 8, 8, 9, 10, 10, 11, 11, 11]
REPEATS = sum(a == b for a, b in zip(HELD, HELD[1:]))
SIZE = (48, 32)  # width, height


def drawing(d: int, height: int, width: int, still: bool = False) -> np.ndarray:
    """Drawing `d`: the pattern moved on, or (`still`) one still picture with fresh noise."""
    if not still:
        return pattern(3 * d, height, width)
    noise = np.random.default_rng(d).integers(-6, 7, (height, width, 3))
    return np.clip(pattern(0, height, width) + noise, 0, 255).astype(np.uint8)


def held_clip(path: Path, drawings: list[int] = HELD, nudge: set[int] = frozenset(), still: bool = False) -> Path:
    """Lossless FFV1, every frame a keyframe: decoded repeats are exact. Frames in `nudge` get
    one luma sample one level up: a near-repeat."""
    width, height = SIZE
    with av.open(str(path), "w") as out:
        v = out.add_stream("ffv1", rate=24)
        v.width, v.height, v.pix_fmt = width, height, "yuv420p"
        v.codec_context.gop_size = 1  # a segment may start at any frame
        for i, d in enumerate(drawings):
            rgb = drawing(d, height, width, still)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
            if i in nudge:
                planes = frame.to_ndarray()
                planes[height // 2, width // 2] += 1 if planes[height // 2, width // 2] < 255 else -1
                frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
            frame.pts = i
            out.mux(v.encode(frame))
        out.mux(v.encode(None))
    return path


def decoded(path: Path) -> tuple[list[int], list[np.ndarray]]:
    with av.open(str(path)) as c:
        frames = list(c.decode(video=0))
    return [f.pts for f in frames], [f.to_ndarray(format="rgb24") for f in frames]


def settings(**kw: object) -> JobSettings:
    """span-x2, or what `kw` says, into lossless H.264: frames compare exactly."""
    given = {"scale": 2, "model": "span-x2", "quiet": True, "encoder": EncoderSettings(crf=0), **kw}
    return JobSettings(**given)  # type: ignore[arg-type]


@pytest.fixture()
def frames_upscaled(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the frames that go through the network, call by call."""
    counts: list[int] = []
    original = Upscaler.upscale_channels

    def counting(self: Upscaler, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        counts.append(int(x.shape[0]))
        return original(self, x, size)

    monkeypatch.setattr(Upscaler, "upscale_channels", counting)
    return counts


def test_repeats_are_not_upscaled_and_the_output_is_the_same(tmp_path: Path,
                                                             frames_upscaled: list[int]) -> None:
    clip = held_clip(tmp_path / "held.mkv")
    plain = run_job(str(clip), str(tmp_path / "plain.mp4"), settings(skip_repeats=False))
    assert sum(frames_upscaled) == len(HELD) and plain.repeats == 0
    frames_upscaled.clear()
    skipped = run_job(str(clip), str(tmp_path / "skipped.mp4"), settings())
    assert sum(frames_upscaled) == len(HELD) - REPEATS
    assert skipped.repeats == REPEATS and f"({REPEATS} repeats of the previous)" in skipped.line()
    (pts_a, a), (pts_b, b) = decoded(tmp_path / "plain.mp4"), decoded(tmp_path / "skipped.mp4")
    assert pts_a == pts_b and len(b) == len(HELD)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_batches_mixing_new_frames_and_repeats(tmp_path: Path, frames_upscaled: list[int]) -> None:
    clip = held_clip(tmp_path / "held.mkv")
    run_job(str(clip), str(tmp_path / "plain.mp4"), settings(skip_repeats=False, batch=3))
    frames_upscaled.clear()
    summary = run_job(str(clip), str(tmp_path / "skipped.mp4"), settings(batch=3))
    assert summary.repeats == REPEATS and sum(frames_upscaled) == len(HELD) - REPEATS
    assert 0 not in frames_upscaled  # a batch of repeats alone runs no network
    _, a = decoded(tmp_path / "plain.mp4")
    _, b = decoded(tmp_path / "skipped.mp4")
    # CPU convolutions give each frame the same result whatever else is in its batch
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_with_the_temporal_pass_and_segments_the_output_is_the_same(tmp_path: Path) -> None:
    """The anti-flicker pass keeps blending on a held picture (its history moves on), so it sees
    every repeat, with the reused upscale; each segment starts with no previous frame."""
    clip = held_clip(tmp_path / "held.mkv", still=True)  # a noisy still: the pass blends throughout
    for name, skip in (("plain.mp4", False), ("skipped.mp4", True)):
        summary = run_job(str(clip), str(tmp_path / name),
                          settings(model="bicubic", skip_repeats=skip, temporal=0.7, segment="7f",
                                   workers=1))
    (pts_a, a), (pts_b, b) = decoded(tmp_path / "plain.mp4"), decoded(tmp_path / "skipped.mp4")
    assert pts_a == pts_b and len(b) == len(HELD)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    # segments begin at frames 7, 14 and 21 with the warm-up frames before them: every repeat counts
    assert summary.repeats == REPEATS
    # the pass moved on over held pictures: handing a repeat the previous *output* would differ
    assert any(not np.array_equal(a[i], a[i - 1]) for i in range(1, len(HELD)) if HELD[i] == HELD[i - 1])


def test_a_segment_starts_with_no_previous_frame(tmp_path: Path) -> None:
    clip = held_clip(tmp_path / "held.mkv")
    summary = run_job(str(clip), str(tmp_path / "out.mp4"),
                      settings(model="bicubic", segment="7f", workers=1))
    starts = (7, 14, 21)
    assert summary.repeats == REPEATS - sum(HELD[s] == HELD[s - 1] for s in starts)
    assert sum(HELD[s] == HELD[s - 1] for s in starts) > 0  # the plan cuts inside a held drawing


def test_near_repeats_only_with_a_threshold(tmp_path: Path) -> None:
    nudged = {1, 4, 7}  # the last frame of three holds: one luma sample a level up
    clip = held_clip(tmp_path / "near.mkv", nudge=nudged)
    exact = run_job(str(clip), str(tmp_path / "exact.mp4"), settings(model="bicubic"))
    assert exact.repeats == REPEATS - len(nudged)
    near = run_job(str(clip), str(tmp_path / "near.mp4"), settings(model="bicubic", repeat_threshold=3))
    assert near.repeats == REPEATS


def test_options_from_the_cli_and_the_library() -> None:
    assert JobSettings().skip_repeats is True and JobSettings().repeat_threshold == 0
    assert job_settings({"skip_repeats": False}, "out.mp4").skip_repeats is False
    assert job_settings({"repeat_threshold": "2.5"}, "out.mp4").repeat_threshold == 2.5
    from vidscale.errors import UsageError

    with pytest.raises(UsageError, match="--repeat-threshold"):
        job_settings({"repeat_threshold": 300}, "out.mp4")


def test_the_cli_flag_turns_it_off(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from vidscale.cli import cli

    clip = held_clip(tmp_path / "held.mkv")
    runner = CliRunner()
    on = runner.invoke(cli, ["upscale", str(clip), str(tmp_path / "a.mp4"), "-m", "bicubic", "--crf", "0"])
    off = runner.invoke(cli, ["upscale", str(clip), str(tmp_path / "b.mp4"), "-m", "bicubic", "--crf", "0",
                              "--no-skip-repeats"])
    assert on.exit_code == 0 and off.exit_code == 0, on.output + off.output
    assert f"({REPEATS} repeats of the previous)" in on.output and "repeat" not in off.output


def test_comparison_is_with_the_last_frame_upscaled() -> None:
    """A slow change of a level a frame (one that leaves the mean where it was) does not creep
    past the threshold."""
    base = np.full((4, 4, 3), 100, np.uint8)
    step = np.where(np.indices((4, 4)).sum(axis=0) % 2 == 0, 1, -1)[..., None].astype(np.int16)  # +1, -1 in turn
    repeats = Repeats(threshold=1)
    seen = [repeats.check((base + k * step).astype(np.uint8)) for k in range(4)]
    assert seen == [False, True, False, True]
    exact = Repeats()
    assert [exact.check(base), exact.check(base.copy()), exact.check(base + 1)] == [False, True, False]
    deep = Repeats(threshold=1)  # 16-bit samples: a level is 257
    wide = np.full((4, 4), 1000, np.int32)
    assert [deep.check((wide + k * step[..., 0]).astype(np.uint16)) for k in (0, 257, 515)] == [False, True, False]


def test_the_threshold_bounds_block_means_not_single_samples() -> None:
    """Coding noise (a few samples far off) is a near-repeat; a small change in one place is not."""
    rng = np.random.default_rng(3)
    base = rng.integers(60, 200, (64, 80, 3)).astype(np.uint8)
    noisy = base.copy()
    spots = rng.integers(0, 64, 12), rng.integers(0, 80, 12)
    noisy[spots] = np.clip(noisy[spots].astype(int) + 40, 0, 255)  # 12 samples 40 levels off
    moved = base.copy()
    moved[40:48, 70:78] = 255 - moved[40:48, 70:78]  # an 8x8 patch changes (a blink), in an edge block
    for picture, expected in ((noisy, True), (moved, False)):
        finder = Repeats(threshold=4)
        assert [finder.check(base), finder.check(picture)] == [False, expected]
    means = vidscale_block_means(np.ones((20, 36)))
    assert means.shape == (2, 3) and np.allclose(means, 1)


def test_reuse_hands_repeats_the_last_new_output() -> None:
    calls: list[int] = []

    def network(x: torch.Tensor) -> torch.Tensor:
        calls.append(x.shape[0])
        return x * 2

    reuse = Reuse()
    x = torch.arange(3.0).view(3, 1, 1, 1)
    out = reuse.run(x, [False, True, False], network)
    assert calls == [2] and out.flatten().tolist() == [0, 0, 4]
    out = reuse.run(torch.full((2, 1, 1, 1), 9.0), [True, True], network)
    assert calls == [2] and out.flatten().tolist() == [4, 4]


# ---------------------------------------------------------------- the VapourSynth filter


def held_vs_clip(nudge: set[int] = frozenset()):  # type: ignore[no-untyped-def]
    """An RGB24 VapourSynth clip of the HELD drawings; frames in `nudge` one sample a level up."""
    vs = pytest.importorskip("vapoursynth")
    width, height = SIZE
    blank = vs.core.std.BlankClip(width=width, height=height, format=vs.RGB24, length=len(HELD))

    def draw(n: int, f):  # type: ignore[no-untyped-def]
        out = f.copy()
        picture = drawing(HELD[n], height, width, still=True)
        if n in nudge:
            picture[0, 0, 1] += 1 if picture[0, 0, 1] < 255 else -1
        for p in range(3):
            np.copyto(np.asarray(out[p]), picture[..., p])
        return out

    return vs.core.std.ModifyFrame(blank, blank, draw)


@pytest.fixture()
def vs_network_frames(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    pytest.importorskip("vapoursynth")
    import vidscale.vs as vsx

    counts: list[int] = []

    class Counting(vsx.Upscaler):
        def upscale(self, x, size):  # type: ignore[no-untyped-def]
            counts.append(int(x.shape[0]))
            return super().upscale(x, size)

    monkeypatch.setattr(vsx, "Upscaler", Counting)
    return counts


def vs_frames(clip, order: list[int] | None = None) -> list[np.ndarray]:  # type: ignore[no-untyped-def]
    """The frames as HxWxC arrays: one request at a time in `order`, or all at once."""
    if order is None:
        futures = {n: clip.get_frame_async(n) for n in range(clip.num_frames)}
        got = {n: f.result() for n, f in futures.items()}
    else:
        got = {n: clip.get_frame(n) for n in order}
    return [np.stack([np.asarray(got[n][p]) for p in range(got[n].format.num_planes)], axis=-1)
            for n in range(clip.num_frames)]


@pytest.mark.parametrize("temporal", [False, 0.7], ids=["plain", "temporal"])
def test_the_vapoursynth_filter_skips_repeats_with_the_same_output(vs_network_frames: list[int],
                                                                  temporal: float | bool) -> None:
    import vapoursynth as vs

    import vidscale.vs as vsx

    def run(skip: bool, order: list[int] | None) -> list[np.ndarray]:
        out = vsx.upscale(held_vclip, model="span-x2", backend="cpu", temporal=temporal, skip_repeats=skip,
                          out_format=vs.RGBS)
        return vs_frames(out, order)

    held_vclip = held_vs_clip()
    in_order = list(range(len(HELD)))
    plain = run(False, in_order)
    assert sum(vs_network_frames) == len(HELD)
    vs_network_frames.clear()
    skipped = run(True, in_order)
    assert sum(vs_network_frames) == len(HELD) - REPEATS
    assert all(np.array_equal(a, b) for a, b in zip(plain, skipped, strict=True))
    if temporal:  # the pass moved on over held pictures: not the previous output again
        assert any(not np.array_equal(plain[i], plain[i - 1]) for i in range(1, len(HELD)) if HELD[i] == HELD[i - 1])
    else:  # from several threads at once, in any order: whatever is reused is the same
        vs.core.num_threads = 4
        assert all(np.array_equal(a, b) for a, b in zip(plain, run(True, None), strict=True))
        assert all(np.array_equal(a, b) for a, b in zip(plain, run(True, in_order[::-1]), strict=True))


@pytest.mark.parametrize("temporal", [False, 0.7], ids=["plain", "temporal"])
def test_the_vapoursynth_filter_takes_near_repeats_with_a_threshold(vs_network_frames: list[int],
                                                                   temporal: float | bool) -> None:
    import vapoursynth as vs

    import vidscale.vs as vsx

    clip = held_vs_clip(nudge={1, 4, 7})  # the last frame of three holds
    for threshold, upscaled in ((0, len(HELD) - REPEATS + 3), (2, len(HELD) - REPEATS)):
        vs_network_frames.clear()
        out = vsx.upscale(clip, model="bicubic", backend="cpu", temporal=temporal, repeat_threshold=threshold,
                          out_format=vs.RGBS)
        vs_frames(out, list(range(len(HELD))))
        assert sum(vs_network_frames) == upscaled


def test_the_vapoursynth_filter_checks_the_threshold() -> None:
    vs = pytest.importorskip("vapoursynth")
    import vidscale.vs as vsx

    with pytest.raises(vs.Error, match="--repeat-threshold"):
        vsx.upscale(held_vs_clip(), model="bicubic", repeat_threshold=-1)


def test_recent_reuses_only_the_frame_just_before() -> None:
    calls: list[int] = []

    def compute(planes: list[np.ndarray]) -> int:
        calls.append(int(planes[0][0, 0]))
        return int(planes[0][0, 0]) * 10

    recent = Recent()
    pictures = {n: [np.full((2, 2), v, np.float32)] for n, v in enumerate([1, 1, 2, 1, 1])}
    assert [recent(n, pictures[n], compute) for n in (0, 1, 2, 4, 3)] == [10, 10, 20, 10, 10]
    assert calls == [1, 2, 1, 1] and recent.repeats == 1  # 4 came before 3: computed, as 3 was


def test_photos_are_not_compared(tmp_path: Path) -> None:
    from vidscale.media.image import write_image
    from vidscale.media.opener import open_source
    from vidscale.passes import repeat_finder

    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("a.png", "b.png"):
        write_image(folder / name, pattern(0, 8, 8))
    assert repeat_finder(JobSettings(), open_source(str(folder))) is None
    assert repeat_finder(JobSettings(), open_source(str(folder / "a.png"))) is None
    frames = open_source(str(folder / "*.png"))  # a glob: frames of a sequence
    assert repeat_finder(JobSettings(), frames) is not None
    assert repeat_finder(JobSettings(skip_repeats=False), frames) is None


def test_a_fade_is_never_a_near_repeat() -> None:
    """A fade moves the whole picture's mean, coding noise does not: within the block threshold,
    a fade-in of a level a frame would otherwise stall on the darker picture (sintel_5s)."""
    rng = np.random.default_rng(5)
    base = rng.integers(20, 200, (64, 80, 3)).astype(np.uint8)
    fade = Repeats(threshold=4)
    assert [fade.check(base + k) for k in range(5)] == [False] * 5
    red = Repeats(threshold=4)  # one channel's mean moving is a change too (a tint, a UV plane)
    tinted = base.copy()
    tinted[..., 0] += 1
    assert [red.check(base), red.check(tinted)] == [False, False]
    deep = Repeats(threshold=4)  # 16-bit: a quarter level is 64
    wide = base.astype(np.uint16) * 257
    assert [deep.check(wide), deep.check(wide + 60), deep.check(wide + 70)] == [False, True, False]
