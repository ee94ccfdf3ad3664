"""Window-attention networks tile like the whole picture: tiles start on the network's grid,
which is read from the loaded model (`engine/tile_grid.py`), not from a table of names."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import spandrel
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from spandrel.architectures.Compact import Compact
from spandrel.architectures.DAT import DAT
from spandrel.architectures.DRCT import DRCT
from spandrel.architectures.HAT import HAT
from spandrel.architectures.SwinIR import SwinIR

from tests.conftest import SAMPLES
from vidscale.cli import main
from vidscale.engine.tensorrt_engine import tile_shape
from vidscale.engine.tile_grid import tile_grid
from vidscale.engine.tiling import longest_span, spans
from vidscale.media.image import read_image, write_image
from vidscale.models import zoo
from vidscale.models.loading import load_descriptor
from vidscale.upscaler import to_tensor


def _quietly_built(cls: type, **config: object) -> torch.nn.Module:
    torch.manual_seed(0)
    with warnings.catch_warnings():  # torch's meshgrid warning, from spandrel's code
        warnings.simplefilter("ignore")
        return cls(**config).eval()


def tiny_swinir(window: int = 8) -> torch.nn.Module:
    return _quietly_built(SwinIR, upscale=2, img_size=4 * window, window_size=window, embed_dim=24,
                          depths=[2, 2], num_heads=[2, 2], mlp_ratio=2, upsampler="pixelshuffledirect")


def tiny_drct(window: int = 8) -> torch.nn.Module:
    return _quietly_built(DRCT, upscale=2, img_size=32, window_size=window, embed_dim=24, depths=[2],
                          num_heads=[2], mlp_ratio=2, upsampler="pixelshuffle", gc=8)


def descriptor(net: torch.nn.Module) -> spandrel.ImageModelDescriptor:
    with warnings.catch_warnings():  # spandrel builds the network again
        warnings.simplefilter("ignore")
        return spandrel.ModelLoader().load_from_state_dict(net.state_dict())  # type: ignore[return-value]


def test_the_grid_is_the_networks_window() -> None:
    assert tile_grid(descriptor(tiny_swinir(8))) == 8
    assert tile_grid(descriptor(tiny_swinir(12))) == 12  # any window, no table to keep up to date
    assert tile_grid(descriptor(tiny_drct(8))) == 16  # the multiple spandrel reports for DRCT
    hat = _quietly_built(HAT, upscale=2, img_size=32, window_size=16, embed_dim=12, depths=[1], num_heads=[2],
                         compress_ratio=3, squeeze_factor=4, mlp_ratio=1, upsampler="pixelshuffle")
    assert tile_grid(descriptor(hat)) == 16
    dat = _quietly_built(DAT, upscale=2, img_size=32, split_size=[8, 16], embed_dim=12, depth=[1],
                         num_heads=[2], expansion_factor=1, upsampler="pixelshuffle")
    assert tile_grid(descriptor(dat)) == 16  # 8x16 rectangles, both ways round
    assert tile_grid(descriptor(Compact(num_feat=8, num_conv=2, upscale=2))) == 1
    assert tile_grid(load_descriptor(zoo.builtins()["realcugan-x2-conservative"].path)) == 4


def test_tiles_round_down_to_the_grid_and_keep_an_overlap() -> None:
    cases = [(117, 48, 24, 16), (117, 52, 24, 8), (100, 40, 40, 32), (60, 40, 8, 32)]
    for length, tile, overlap, align in cases:
        parts = spans(length, tile, overlap, align)
        assert parts[0][0] == 0 and parts[-1][1] == length
        assert all(s % align == 0 and (e - s) % align == 0 for s, e in parts[:-1])
        assert all(a1 - b0 >= min(overlap, align) for (_, a1), (b0, _) in zip(parts, parts[1:]))
        assert longest_span(length, tile, align) == max(e - s for s, e in parts)
    assert spans(60, 40, 8, 32) == [(0, 60)]  # two 32 px cells are longer than the picture
    # TensorRT's profile takes the longest tile run_tiled will cut (the last, on the grid)
    assert tile_shape(1, 83, 117, 48, spandrel.SizeRequirements(), 16) == (1, 51, 53)


def _direct(net: torch.nn.Module, picture: np.ndarray, multiple: int) -> np.ndarray:
    """The network's own forward on the whole picture, mirrored out to the `multiple` it needs
    (SwinIR does that itself; DRCT leaves it to the caller)."""
    x = to_tensor(picture)
    h, w = x.shape[-2:]
    padded = F.pad(x, (0, -w % multiple, 0, -h % multiple), mode="reflect")
    with torch.inference_mode():
        y = net(padded)[..., : 2 * h, : 2 * w].clamp(0, 1)
    return y[0].permute(1, 2, 0).numpy() * 255


@pytest.mark.parametrize("build, suffix, multiple",
                         [(tiny_swinir, ".pth", 1), (tiny_drct, ".safetensors", 16)])
def test_window_attention_models_tile_like_their_direct_forward(tmp_path: Path, build, suffix: str,
                                                                 multiple: int) -> None:
    net = build()
    model = tmp_path / f"user{suffix}"
    if suffix == ".pth":
        torch.save(net.state_dict(), model)
    else:
        save_file(net.state_dict(), model)
    picture = read_image(SAMPLES / "bunny.png")[100:175, 200:301]  # 75x101: no multiple of 8 or 16
    src = tmp_path / "in.png"
    write_image(src, picture)
    direct = _direct(net, picture, multiple)
    for extra, within in [((), 1.0), (("--tile", "48"), 2.0)]:
        out = tmp_path / f"out{len(extra)}.png"
        assert main([str(src), str(out), "--model", str(model), "--device", "cpu", *extra]) == 0
        error = np.abs(read_image(out).astype(np.float32) - direct)
        assert error.max() <= within, (extra, float(error.max()))


def test_the_plan_names_the_tile_it_will_use(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "swinir-w12.pth"
    torch.save(tiny_swinir(12).state_dict(), model)
    src = tmp_path / "in.png"
    write_image(src, read_image(SAMPLES / "bunny.png")[:40, :60])
    assert main([str(src), str(tmp_path / "o.png"), "-m", str(model), "--tile", "50", "--dry-run"]) == 0
    assert "tile 48 px (on the network's 12 px grid)" in capsys.readouterr().err
