"""The temporal pass: less flicker, no blending across cuts, no ghosts, one output per frame."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from vidscale import flicker
from vidscale.resample import resize
from vidscale.temporal import TemporalFilter
from vidscale.upscaler import from_tensor, to_tensor

H, W = 48, 64


def texture(seed: int) -> np.ndarray:
    """A smooth, contrasty HxWx3 float picture in [0, 1] (something for the flow to hold on to)."""
    noise = np.random.default_rng(seed).random((H, W, 3)).astype(np.float32)
    return np.clip(cv2.GaussianBlur(noise, (0, 0), 2) * 2.5 - 0.75, 0, 1)


def to_uint8(img: np.ndarray, rng: np.random.Generator, noise: float = 3) -> np.ndarray:
    """Quantise with per-frame Gaussian noise (`noise` in 8-bit levels), like a coded source."""
    noisy = img + rng.normal(0, noise / 255, img.shape)
    return np.clip(np.rint(noisy * 255), 0, 255).astype(np.uint8)


def upscale(lr: np.ndarray) -> torch.Tensor:
    return resize(to_tensor(lr), (2 * lr.shape[0], 2 * lr.shape[1])).clamp(0, 1)


def run(frames: list[np.ndarray], filt: TemporalFilter) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(plain upscales, filtered outputs) of a clip."""
    plain = [upscale(f) for f in frames]
    return plain, [filt.apply(f, sr) for f, sr in zip(frames, plain)]


def temporal_variance(frames: list[torch.Tensor]) -> float:
    return float(torch.stack(frames).var(dim=0).mean())


def moving_square(t: int, background: np.ndarray) -> tuple[np.ndarray, int]:
    img = background.copy()
    x = 8 + 3 * t
    img[18:30, x:x + 12] = (1.0, 0.9, 0.2)
    return img, x


def test_static_noisy_scene_flickers_much_less() -> None:
    rng, scene = np.random.default_rng(0), texture(1)
    frames = [to_uint8(scene, rng) for _ in range(20)]
    plain, out = run(frames, TemporalFilter())
    # Skip the warm-up: the recursive average needs a few frames of history.
    assert temporal_variance(out[5:]) < 0.35 * temporal_variance(plain[5:])


def test_stronger_means_less_flicker() -> None:
    rng, scene = np.random.default_rng(0), texture(1)
    frames = [to_uint8(scene, rng) for _ in range(15)]
    variances = [temporal_variance(run(frames, TemporalFilter(s))[1][5:]) for s in (0.3, 0.6, 0.9)]
    assert variances[0] > variances[1] > variances[2]


def test_warping_error_drops_on_a_pan() -> None:
    rng, wide = np.random.default_rng(0), np.random.default_rng(2).random((H, W + 40, 3)).astype(np.float32)
    wide = np.clip(cv2.GaussianBlur(wide, (0, 0), 2) * 2.5 - 0.75, 0, 1)
    truth = [wide[:, 2 * t:2 * t + W] for t in range(12)]  # a pan, 2 px per frame
    plain, out = run([to_uint8(f, rng) for f in truth], TemporalFilter())
    hr_truth = [from_tensor(upscale(np.rint(f * 255).astype(np.uint8)), np.uint8) for f in truth]
    motion = flicker.truth_motion(hr_truth)
    e_plain = flicker.warping_error([from_tensor(p, np.uint8) for p in plain], motion, crop=8)
    e_out = flicker.warping_error([from_tensor(o, np.uint8) for o in out], motion, crop=8)
    assert e_out < 0.5 * e_plain


def _fade_lag(filt: TemporalFilter) -> float:
    """Worst gap, in 8-bit levels, between the mean brightness of output and plain upscale."""
    rng, scene = np.random.default_rng(0), texture(1)
    frames = [to_uint8(scene * (1 - 0.6 * t / 19), rng) for t in range(20)]  # about 3 levels a frame
    plain, out = run(frames, filt)
    return max(abs(float(o.mean() - p.mean())) * 255 for p, o in zip(plain, out))


def test_a_fade_does_not_lag() -> None:
    assert _fade_lag(TemporalFilter()) < 0.5


def test_without_relighting_a_fade_would_lag() -> None:
    # Guards the test above: the fade is gentle enough to keep the confidence high.
    assert _fade_lag(TemporalFilter(relight=0)) > 2


def test_first_frame_after_a_cut_is_the_plain_output() -> None:
    rng = np.random.default_rng(0)
    scene_a, scene_b = texture(1), texture(2)
    frames = [to_uint8(scene_a, rng) for _ in range(5)] + [to_uint8(scene_b, rng) for _ in range(5)]
    filt = TemporalFilter()
    plain, out = run(frames, filt)
    assert filt.cuts == 1
    assert torch.equal(out[5], plain[5])
    assert not torch.equal(out[6], plain[6])  # blending resumes within the new scene


def test_reset_and_size_change_start_over() -> None:
    rng, scene = np.random.default_rng(0), texture(1)
    filt = TemporalFilter()
    frames = [to_uint8(scene, rng) for _ in range(3)]
    _, out = run(frames, filt)
    assert not torch.equal(out[2], upscale(frames[2]))
    filt.reset()
    assert torch.equal(filt.apply(frames[0], upscale(frames[0])), upscale(frames[0]))
    small = frames[1][:32, :40]
    assert torch.equal(filt.apply(small, upscale(small)), upscale(small))


def _ghost_error(filt: TemporalFilter) -> tuple[float, float]:
    """Worst (mean, max) difference from the plain output on the square and the trail behind it."""
    rng, background = np.random.default_rng(0), texture(3)
    worst_mean = worst_max = 0.0
    for t in range(12):
        img, x = moving_square(t, background)
        lr = to_uint8(img, rng)
        sr = upscale(lr)
        diff = (filt.apply(lr, sr) - sr).abs()[0].amax(dim=0)
        region = diff[32:64, max(0, 2 * (x - 9)):2 * (x + 14)]  # rows and columns the square swept
        worst_mean, worst_max = max(worst_mean, float(region.mean())), max(worst_max, float(region.max()))
    return worst_mean, worst_max


def test_moving_object_leaves_no_ghost_trail() -> None:
    mean, peak = _ghost_error(TemporalFilter())
    assert mean < 0.03 and peak < 0.15


def test_without_the_confidence_a_ghost_would_show() -> None:
    # Guards the test above: blending everywhere (confidence ~1) does leave a trail.
    mean, peak = _ghost_error(TemporalFilter(sigma=1e3))
    assert peak > 0.3


def test_one_output_per_frame_same_shape_dtype_device() -> None:
    rng = np.random.default_rng(0)
    frames = [to_uint8(moving_square(t, texture(4))[0], rng) for t in range(7)]
    plain, out = run(frames, TemporalFilter())
    assert len(out) == len(frames)
    for p, o in zip(plain, out):
        assert o.shape == p.shape and o.dtype == p.dtype and o.device == p.device
        assert float(o.min()) >= 0 and float(o.max()) <= 1


def test_inputs_are_not_modified() -> None:
    rng, scene = np.random.default_rng(0), texture(1)
    filt = TemporalFilter()
    for lr in (to_uint8(scene, rng) for _ in range(3)):
        sr = upscale(lr)
        kept = sr.clone()
        filt.apply(lr, sr)
        assert torch.equal(sr, kept)


def test_sixteen_bit_frames() -> None:
    rng, scene = np.random.default_rng(0), texture(1)
    frames = [(to_uint8(scene, rng).astype(np.uint16) * 257) for _ in range(8)]
    sr = [resize(to_tensor(f), (2 * H, 2 * W)).clamp(0, 1) for f in frames]
    filt = TemporalFilter()
    out = [filt.apply(f, s) for f, s in zip(frames, sr)]
    assert filt.cuts == 0
    assert temporal_variance(out[4:]) < 0.5 * temporal_variance(sr[4:])


def test_strength_zero_is_the_plain_output() -> None:
    rng, scene = np.random.default_rng(0), texture(1)
    plain, out = run([to_uint8(scene, rng) for _ in range(4)], TemporalFilter(0))
    assert all(torch.equal(p, o) for p, o in zip(plain, out))


@pytest.mark.parametrize("strength", [-0.1, 1.5])
def test_strength_out_of_range(strength: float) -> None:
    with pytest.raises(ValueError, match="0-1"):
        TemporalFilter(strength)


def test_warping_error_is_zero_for_a_perfectly_consistent_output() -> None:
    scene = np.rint(texture(5) * 255).astype(np.uint8)
    motion = flicker.truth_motion([scene, scene, scene])
    assert flicker.warping_error([scene] * 3, motion) == pytest.approx(0, abs=1e-9)
    flicker_frames = [scene, np.clip(scene.astype(int) + 20, 0, 255).astype(np.uint8), scene]
    assert flicker.warping_error(flicker_frames, motion) > 1e-3


def test_cli_flag_alone_means_the_default_strength() -> None:
    from vidscale.cli import cli
    from vidscale.temporal import DEFAULT_STRENGTH

    command = cli.commands["upscale"]
    ctx = command.make_context("upscale", ["in.mp4", "out.mp4", "--temporal"])
    assert ctx.params["temporal"] == DEFAULT_STRENGTH
