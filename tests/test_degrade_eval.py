"""`vidscale eval --degrade`: realistic inputs, perceptual scores, JPEG blockiness."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vidscale.degrade import (PRESETS, Degradation, gaussian_blur, image_rng, jpeg_bytes, jpeg_roundtrip,
                              parse_degradation)
from vidscale.cli import main
from vidscale.errors import UsageError
from vidscale.media.image import write_image
from vidscale.metrics import blockiness, grid_step_ratio, haarpsi, ms_ssim, ms_ssim_scales, rgb_to_y


def texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Smooth colour waves plus fine grain: edges and texture, no grid of its own."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    waves = np.stack([128 + 70 * np.sin(x / 5.3 + y / 7.1), 128 + 60 * np.cos(x / 3.7 - y / 9.2),
                      110 + 50 * np.sin(y / 4.3)], axis=-1)
    return np.clip(waves + rng.normal(0, 6, waves.shape), 0, 255).astype(np.uint8)


def high_freq_energy(rgb: np.ndarray) -> float:
    """Mean squared discrete Laplacian of luma, away from the edges (an FFT would see the wrap-around)."""
    y = rgb_to_y(rgb)
    lap = 4 * y[1:-1, 1:-1] - y[:-2, 1:-1] - y[2:, 1:-1] - y[1:-1, :-2] - y[1:-1, 2:]
    return float(np.mean(lap[4:-4, 4:-4] ** 2))


def with_grid(rgb: np.ndarray, period: int, step: int) -> np.ndarray:
    """Add `step` levels to alternate `period`-px cells (a checkerboard): a step on every grid line."""
    y, x = np.mgrid[0 : rgb.shape[0], 0 : rgb.shape[1]]
    board = ((y // period + x // period) % 2 * step)[..., None]
    return np.clip(rgb.astype(int) + board, 0, 255).astype(np.uint8)


def run(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("vidscale: error: "), err
    return lines[0]


# --- parsing ---------------------------------------------------------------------------------

def test_spec_parsing() -> None:
    assert parse_degradation("blur=0.8,noise=3,jpeg=50") == Degradation(0.8, 3.0, 50)
    assert parse_degradation(" Web ") == PRESETS["web"]
    assert PRESETS["web"].jpeg == 50 and 0 < PRESETS["web"].noise <= 3 and PRESETS["web"].blur == 0
    assert parse_degradation("web,jpeg=30") == Degradation(0.0, PRESETS["web"].noise, 30)
    assert parse_degradation("mild").spec == "blur=0.5,noise=1,jpeg=85"
    assert parse_degradation("none").spec == "none"


@pytest.mark.parametrize("spec,words", [
    ("sharpen=1", "unknown key 'sharpen'"), ("blur=-1", ">= 0"), ("noise=nan", ">= 0"),
    ("jpeg=0", "1-100"), ("jpeg=101", "1-100"), ("jpeg=5.5", "integer"), ("blur=soft", "number"),
    ("", "empty"), ("blur=1,blur=2", "twice"), ("vintage", "neither a preset"), ("jpeg=50,web", "first"),
])
def test_bad_specs(spec: str, words: str) -> None:
    with pytest.raises(UsageError, match=words) as err:
        parse_degradation(spec)
    assert "\n" not in str(err.value)


# --- each degradation does what it says ------------------------------------------------------

def test_blur_lowers_high_frequencies() -> None:
    img = texture(64, 64)
    blurred = Degradation(blur=1.0).apply(img, image_rng(0, "x"))
    assert high_freq_energy(blurred) < 0.15 * high_freq_energy(img)
    assert abs(float(blurred.mean()) - float(img.mean())) < 1.0  # blur moves no mass
    assert np.array_equal(Degradation().apply(img, image_rng(0, "x")), img)  # nothing asked, nothing done
    softer = gaussian_blur(img.astype(np.float32), 0.5)
    softer_energy = high_freq_energy(np.rint(softer).astype(np.uint8))
    assert high_freq_energy(blurred) < softer_energy < high_freq_energy(img)


def test_noise_has_the_asked_std_and_is_reproducible() -> None:
    grey = np.full((96, 96, 3), 128, np.uint8)
    noisy = Degradation(noise=5.0).apply(grey, image_rng(0, "grey"))
    diff = noisy.astype(np.float64) - 128
    assert diff.std() == pytest.approx(5.0, rel=0.05)  # rounding adds 1/12 level² of variance
    assert abs(diff.mean()) < 0.2
    again = Degradation(noise=5.0).apply(grey, image_rng(0, "grey"))
    assert np.array_equal(noisy, again)
    assert not np.array_equal(noisy, Degradation(noise=5.0).apply(grey, image_rng(1, "grey")))
    assert not np.array_equal(noisy, Degradation(noise=5.0).apply(grey, image_rng(0, "other")))


def test_jpeg_is_420_and_blocky() -> None:
    img = texture(64, 80)
    data = jpeg_bytes(img, 20)
    sof = data.index(b"\xff\xc0")  # baseline frame header: 3 components, luma sampled 2x2
    assert data[sof + 9] == 3 and data[sof + 11] == 0x22 and data[sof + 14] == 0x11
    out = jpeg_roundtrip(img, 20)
    assert out.shape == img.shape and out.dtype == np.uint8
    assert grid_step_ratio(img, 8) < 1.1
    assert grid_step_ratio(out, 8) > 1.3
    assert blockiness(out, img, scale=1) > 1.3


# --- blockiness --------------------------------------------------------------------------------

@pytest.mark.parametrize("scale", [1, 2, 3])
def test_blockiness_sees_a_synthetic_grid(scale: int) -> None:
    truth = texture(48 * scale, 40 * scale)
    assert blockiness(truth, truth, scale) == 1.0
    assert grid_step_ratio(truth, 8 * scale, scale) == pytest.approx(1.0, abs=0.15)
    gridded = with_grid(truth, 8 * scale, 6)  # 6 RGB levels: about 5 luma levels
    assert blockiness(gridded, truth, scale, crop=scale) > 1.15
    assert blockiness(with_grid(truth, 8 * scale, 12), truth, scale) > blockiness(gridded, truth, scale)
    # the same step off the grid (shifted by one input pixel) is not blockiness
    shifted = np.roll(gridded, scale, axis=(0, 1))
    assert blockiness(shifted, np.roll(truth, scale, axis=(0, 1)), scale) < 1.1


def test_blockiness_of_tiny_images_is_none() -> None:
    assert blockiness(texture(6, 6), texture(6, 6), 1) is None


# --- perceptual scores -------------------------------------------------------------------------

def test_perceptual_scores() -> None:
    img = texture(180, 176)
    damaged = Degradation(blur=1.0, noise=4, jpeg=30).apply(img, image_rng(0, "t"))
    assert ms_ssim(img, img, 2) == pytest.approx(1.0, abs=1e-5)
    assert haarpsi(img, img, 2) == pytest.approx(1.0, abs=1e-5)
    lightly = Degradation(noise=4).apply(img, image_rng(0, "t"))
    assert ms_ssim(damaged, img, 2) < ms_ssim(lightly, img, 2) < 0.998  # type: ignore[operator]
    assert haarpsi(damaged, img, 2) < haarpsi(lightly, img, 2) < 0.995  # type: ignore[operator]


def test_small_images_get_fewer_ms_ssim_scales() -> None:
    assert ms_ssim_scales(176, 200) == 5 and ms_ssim_scales(160, 400) == 4 and ms_ssim_scales(10, 10) == 0
    img = texture(40, 44)
    noisy = Degradation(noise=8).apply(img, image_rng(0, "s"))
    assert ms_ssim(img, img) == pytest.approx(1.0, abs=1e-5)
    assert 0 < ms_ssim(noisy, img) < 1  # type: ignore[operator]
    assert ms_ssim(img[:8, :8], img[:8, :8]) is None and haarpsi(img[:12], img[:12]) is None


# --- the command line --------------------------------------------------------------------------

@pytest.fixture
def folder(tmp_path: Path) -> Path:
    hr = tmp_path / "hr"
    hr.mkdir()
    write_image(hr / "waves.png", texture(72, 64, seed=1))
    write_image(hr / "grain.png", texture(48, 56, seed=2))
    return hr


def test_library_call(folder: Path) -> None:
    from vidscale.evaluate import Evaluation, Metrics, evaluate, pair_images
    from vidscale.upscaler import Upscaler

    result = evaluate(pair_images(folder, None, 2), 2, Upscaler("bicubic", "cpu"), degrade=PRESETS["web"], seed=3)
    assert isinstance(result, Evaluation) and isinstance(result.mean("model"), Metrics)
    assert [s.name for s in result.scores] == ["grain", "waves"] and result.seed == 3
    assert all(s.ms_ssim_scales < 5 and s.model.haarpsi is not None for s in result.scores)


def test_cli_json(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "eval", folder, "-s", "2", "-m", "bicubic", "--degrade", "web", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["degradation"]["spec"] == PRESETS["web"].spec and data["seed"] == 0 and data["scale"] == 2
    assert data["model"] == "bicubic" and [i["name"] for i in data["images"]] == ["grain", "waves"]
    mean = data["mean"]
    assert set(mean["model"]) == {"psnr", "ssim", "ms_ssim", "haarpsi", "blockiness"}
    assert mean["model"] == mean["bicubic"]  # -m bicubic is the bicubic column
    assert mean["bicubic"]["blockiness"] > 1.05  # quality 50 shows at output scale
    code, out, err = run(capsys, "eval", folder, "--scale", "2", "-m", "bicubic", "--json")
    clean = json.loads(out)
    assert clean["degradation"] is None and clean["mean"]["bicubic"]["psnr"] > mean["bicubic"]["psnr"]


def test_cli_table(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "eval", folder, "-s", "2", "-m", "bicubic", "--degrade", "blur=0.8,jpeg=40")
    assert code == 0, err
    lines = out.splitlines()
    assert "blur=0.8,jpeg=40 (seed 0)" in lines[0]
    assert all(len(ln) <= 110 for ln in lines)
    assert sum(ln.startswith("mean") for ln in lines) == 1
    assert "MS-SSIM on fewer than 5 scales" in out


def test_cli_degrade_is_deterministic(folder: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    def saved(name: str, *extra: str) -> dict[str, bytes]:
        out = tmp_path / name
        code, _, err = run(capsys, "eval", folder, "-s", "2", "-m", "bicubic", "--degrade", "noise=3,jpeg=60",
                           "--save-lr", out, *extra)
        assert code == 0, err
        return {p.name: p.read_bytes() for p in sorted(out.iterdir())}

    first = saved("a")
    assert set(first) == {"grain.png", "waves.png"}
    assert saved("b") == first
    other = saved("c", "--seed", "7")
    assert all(other[k] != first[k] for k in first)
    # an existing saved input is not replaced without --overwrite
    code, _, err = run(capsys, "eval", folder, "-s", "2", "-m", "bicubic", "--degrade", "web", "--save-lr",
                       tmp_path / "a")
    assert code == 2 and "--overwrite" in one_line_error(err)


def test_saved_inputs_score_the_same_through_lr(folder: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    lr = tmp_path / "lr"
    code, out, err = run(capsys, "eval", folder, "-s", "2", "-m", "bicubic", "--degrade", "mild", "--json",
                         "--save-lr", lr)
    assert code == 0, err
    made = json.loads(out)
    code, out, err = run(capsys, "eval", folder, "-s", "2", "-m", "bicubic", "--lr", lr, "--json")
    assert code == 0, err
    given = json.loads(out)
    assert given["inputs"] == "given" and given["images"] == made["images"]


@pytest.mark.parametrize("args,words", [
    (["--degrade", "jpeg=500"], "1-100"),
    (["--degrade", "fog=2"], "unknown key"),
    (["--degrade", "web", "--lr", "."], "cannot be used with --lr"),
    (["--save-lr", "x", "--lr", "."], "cannot be used with --lr"),
])
def test_cli_usage_errors(folder: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                          words: str) -> None:
    code, _, err = run(capsys, "eval", folder, "-s", "2", "-m", "bicubic", *args)
    assert code == 2 and words in one_line_error(err)
