"""Which networks run: defaults by kind of input, a model's own scale, --denoise,
chains of models, and networks that return more than the image."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from spandrel.architectures.FBCNN import FBCNN, FBCNNArch

from tests.conftest import SAMPLES
from vidscale.cli import main
from vidscale.engine.backend import make_engine
from vidscale.errors import UsageError
from vidscale.job import purpose_of
from vidscale.media.image import read_image, write_image
from vidscale.media.opener import open_source
from vidscale.models import zoo
from vidscale.upscaler import Upscaler

BUNNY = SAMPLES / "bunny.png"
BUNNY_CLIP = SAMPLES / "bunny.webm"
CPU = torch.device("cpu")


def names(chain: list[zoo.ModelInfo]) -> list[str]:
    return [m.name for m in chain]


def run(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str]:
    code = main([str(a) for a in args] + ["--quiet"])
    return code, capsys.readouterr().err


def one_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    return lines[0]


def small_photo(path: Path, height: int = 24, width: int = 32) -> Path:
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x * 255 // width, y * 255 // height, (x + y) % 256], axis=-1).astype(np.uint8)
    write_image(path, rgb)
    return path


# --- defaults -----------------------------------------------------------------

def test_the_kind_of_input_chooses_the_default(tmp_path: Path) -> None:
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(3):
        small_photo(frames / f"{i:03d}.png")
    cases = {str(BUNNY): "photo", str(frames): "photo", str(frames / "%03d.png"): "video",
             str(BUNNY_CLIP): "video"}
    for spec, purpose in cases.items():
        source = open_source(spec, False, Fraction(24))
        try:
            assert purpose_of(source) == purpose, spec
        finally:
            source.close()


@pytest.mark.parametrize("purpose", zoo.PURPOSES)
def test_default_is_a_real_world_model_for_photos_and_video(purpose: str) -> None:
    up = Upscaler(None, "cpu", purpose=purpose)
    main_model = zoo.builtins()[zoo.DEFAULT_MODEL[purpose]]
    assert main_model.use == "photo"  # trained on real-world damage, not clean bicubic
    for factor in (1.5, 2, 3, 4):
        assert names(up.networks_for(factor)) == [main_model.name]
    # above its own x4, the clean x2 finishes on its already clean output
    assert names(up.networks_for(8)) == [main_model.name, zoo.FINISHER]


def test_default_photo_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = small_photo(tmp_path / "in.png")
    out = tmp_path / "out.png"
    code, err = run(capsys, src, out)
    assert code == 0, err
    assert read_image(out).shape == (48, 64, 3)  # x2 by default


# --- a model's own scale --------------------------------------------------------

@pytest.mark.parametrize(("model", "shape"), [("span-x4", (96, 128, 3)), ("span-x2", (48, 64, 3)),
                                              ("lanczos", (48, 64, 3))])
def test_named_model_upscales_by_its_own_factor(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                model: str, shape: tuple[int, int, int]) -> None:
    src = small_photo(tmp_path / "in.png")
    out = tmp_path / "out.png"
    code, err = run(capsys, src, out, "-m", model)
    assert code == 0, err
    assert read_image(out).shape == shape  # a resizer has no factor of its own: x2


def test_explicit_scale_still_wins_over_the_native_one(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    src = small_photo(tmp_path / "in.png")
    out = tmp_path / "out.png"
    code, err = run(capsys, src, out, "-m", "span-x4", "--scale", "2")
    assert code == 0, err
    assert read_image(out).shape == (48, 64, 3)


# --- --denoise ------------------------------------------------------------------

def test_denoise_picks_the_variant_of_a_family() -> None:
    assert names(Upscaler("realcugan", "cpu").networks_for(2)) == ["realcugan-x2-conservative"]
    assert names(Upscaler("realcugan", "cpu", denoise="3").networks_for(2)) == ["realcugan-x2-denoise3x"]
    assert names(Upscaler("realcugan", "cpu", denoise="none").networks_for(3)) == ["realcugan-x3-no-denoise"]
    assert names(Upscaler("realcugan", "cpu", denoise="1").networks_for(1.5)) == ["realcugan-x2-denoise1x"]
    assert names(Upscaler("realcugan", "cpu", denoise="conservative").networks_for(4)) == \
        ["realcugan-x4-conservative"]
    assert names(Upscaler("realcugan-pro", "cpu", denoise="3").networks_for(3)) == ["realcugan-pro-x3-denoise3x"]
    # a named variant keeps its scale and takes the asked level
    assert names(Upscaler("realcugan-x2-no-denoise", "cpu", denoise="2").networks_for(2)) == \
        ["realcugan-x2-denoise2x"]
    assert names(Upscaler("realcugan-x2-denoise1x", "cpu").networks_for(4)) == ["realcugan-x2-denoise1x"] * 2


def test_denoise_level_missing_at_a_scale_names_the_ones_there() -> None:
    up = Upscaler("realcugan", "cpu", denoise="2")
    with pytest.raises(UsageError, match="realcugan x3 has the levels") as info:
        up.networks_for(3)
    assert "conservative" in str(info.value) and "none" in str(info.value)


@pytest.mark.parametrize("model", ["span-x2", None])
def test_denoise_without_variants_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                    model: str | None) -> None:
    src = small_photo(tmp_path / "in.png")
    out = tmp_path / "out.png"
    code, err = run(capsys, src, out, "--denoise", "2", *(["-m", model] if model else []))
    assert code == 2
    line = one_line(err)
    assert "no denoise variants" in line and "realcugan" in line
    assert not out.exists()


def test_unknown_denoise_level(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = small_photo(tmp_path / "in.png")
    code, err = run(capsys, src, tmp_path / "out.png", "-m", "realcugan", "--denoise", "7")
    assert code == 2
    assert "none, conservative, 1, 2 or 3" in one_line(err)


def test_denoise_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = small_photo(tmp_path / "in.png", 40, 40)  # Real-CUGAN's minimum input is 32 px
    outs = {}
    for level in ("none", "3"):
        outs[level] = tmp_path / f"out-{level}.png"
        code, err = run(capsys, src, outs[level], "-m", "realcugan", "--denoise", level)
        assert code == 0, err
    a, b = (read_image(p) for p in outs.values())
    assert a.shape == b.shape == (80, 80, 3)
    assert np.abs(a.astype(int) - b.astype(int)).max() > 0  # a different network ran


# --- chains and tuple outputs ---------------------------------------------------

def test_chain_plans_in_order_and_repeats_the_last_upscaler() -> None:
    assert names(Upscaler("span-x2+span-x4", "cpu").networks_for(8)) == ["span-x2", "span-x4"]
    assert names(Upscaler("span-x4+span-x2", "cpu").networks_for(16 / 2)) == ["span-x4", "span-x2"]
    assert names(Upscaler("span-x2+span-x2", "cpu").networks_for(8)) == ["span-x2"] * 3
    assert Upscaler("span-x2+span-x4", "cpu").native_scale() == 8


@pytest.mark.parametrize("spec", ["span-x2+", "+span-x2", "span-x2+bicubic", "span-x2+nosuch"])
def test_malformed_chains_are_refused(spec: str) -> None:
    with pytest.raises(UsageError):
        Upscaler(spec, "cpu")


@pytest.fixture(scope="module")
def fbcnn_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random FBCNN (JPEG artefact removal, x1): its forward returns (image, quality)."""
    torch.manual_seed(0)
    net = FBCNN(in_nc=3, out_nc=3, nc=[8, 16, 32, 512], nb=2)  # 512: FBCNN's quality head is fixed
    path = tmp_path_factory.mktemp("fbcnn") / "fbcnn.safetensors"
    save_file({k: v.half().contiguous() for k, v in net.state_dict().items()}, str(path))
    return path


def test_tuple_output_network_runs() -> None:
    torch.manual_seed(0)
    desc = FBCNNArch().load(FBCNN(in_nc=3, out_nc=3, nc=[8, 16, 32, 512], nb=2).state_dict())
    assert isinstance(desc.model(torch.rand(1, 3, 16, 16)), tuple)
    engine = make_engine(desc, "cpu", CPU)
    x = torch.rand(1, 3, 24, 40)
    y = engine(x)
    assert y.shape == x.shape
    with torch.no_grad():
        assert torch.allclose(y, desc.model(x)[0], atol=1e-5)


def test_chain_of_a_1x_cleanup_model_and_an_upscaler(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     fbcnn_file: Path) -> None:
    up = Upscaler(f"{fbcnn_file}+span-x2", "cpu")
    assert names(up.networks_for(2)) == ["fbcnn.safetensors", "span-x2"]
    assert up.native_scale() == 2
    src = small_photo(tmp_path / "in.png")
    out = tmp_path / "out.png"
    code, err = run(capsys, src, out, "-m", f"{fbcnn_file}+span-x2")
    assert code == 0, err
    chained = read_image(out)
    assert chained.shape == (48, 64, 3)  # the chain's own factor: x1 * x2
    plain = tmp_path / "plain.png"
    assert run(capsys, src, plain, "-m", "span-x2")[0] == 0
    assert np.abs(chained.astype(int) - read_image(plain).astype(int)).max() > 0  # cleanup ran first


def test_a_family_without_denoise_levels_picks_by_scale_and_refuses_denoise() -> None:
    assert names(Upscaler("span", "cpu").networks_for(2)) == ["span-x2"]
    assert names(Upscaler("span", "cpu").networks_for(3)) == ["span-x4"]
    with pytest.raises(UsageError, match="span has no denoise variants"):
        Upscaler("span", "cpu", denoise="1")


def test_clean_preset_keeps_a_way_to_span(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = small_photo(tmp_path / "in.png")
    out, direct = tmp_path / "out.png", tmp_path / "direct.png"
    code, err = run(capsys, src, out, "--preset", "clean", "--scale", "4")
    assert code == 0, err
    assert run(capsys, src, direct, "-m", "span-x4")[0] == 0
    assert np.array_equal(read_image(out), read_image(direct))  # x4 from the clean preset is span-x4
