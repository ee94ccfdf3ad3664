"""A dry run costs a bounded sample, whatever the frame size: a large frame's tiles are counted
and a centre crop is timed (vidscale/frame_cost.py)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.media import VideoSpec, make_video, pattern
from vidscale.cli import main
from vidscale.engine import torch_engine
from vidscale.engine.meter import metering
from vidscale.frame_cost import SIDE, count_work
from vidscale.media.image import write_image
from vidscale.upscaler import Upscaler, to_tensor

TILE = 128


def _tiles(h: int, w: int) -> int:
    """Tiles of span-x2's real run at --tile TILE (counting matches it: the test below)."""
    return count_work(Upscaler("span-x2", "cpu", tile=TILE), (h, w), (2 * h, 2 * w)).passes[1.0].tiles


def test_counting_records_what_the_networks_are_fed() -> None:
    """Two passes (x3 from span-x2), tiled: the count matches a real run pass by pass."""
    upscaler = Upscaler("span-x2", "cpu", tile=96)
    picture = pattern(0, 90, 130)
    with metering(90) as ran:
        upscaler.upscale(to_tensor(picture), (270, 390))
    counted = count_work(upscaler, (90, 130), (270, 390))
    assert list(counted.passes) == list(ran.passes) == [1.0, 2.0]
    for key, work in counted.passes.items():
        assert (work.tiles, work.pixels, work.tile) == (ran.passes[key].tiles, ran.passes[key].pixels,
                                                       ran.passes[key].tile)
        assert ran.passes[key].seconds > 0 and work.seconds == 0
    assert counted.passes[1.0].tiles == 2  # 90 rows fit a tile; 130 columns take two


@pytest.fixture
def fed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Pixels given to the network, tile by tile."""
    sizes: list[int] = []
    real = torch_engine.TorchEngine._infer

    def counting(self: torch_engine.TorchEngine, x: torch.Tensor) -> torch.Tensor:
        sizes.append(x.shape[0] * x.shape[2] * x.shape[3])
        return real(self, x)

    monkeypatch.setattr(torch_engine.TorchEngine, "_infer", counting)
    return sizes


def _estimate_line(err: str) -> str:
    line = next((x for x in err.splitlines() if "dry run, nothing written" in x), None)
    assert line, err
    return line


def test_a_large_pictures_dry_run_upscales_a_bounded_number_of_pixels(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], fed: list[int]) -> None:
    h, w = 1500, 2000
    picture = tmp_path / "big.jpg"
    rng = np.random.default_rng(1)
    write_image(picture, np.clip(pattern(0, h, w).astype(np.int16) + rng.integers(-20, 20, (h, w, 3)),
                                 0, 255).astype(np.uint8))
    assert main([str(picture), str(tmp_path / "out.jpg"), "-m", "span-x2", "--tile", str(TILE),
                 "--dry-run"]) == 0
    crop_work = _tiles(SIDE, SIDE) * TILE * TILE
    assert 0 < sum(fed) <= crop_work + (SIDE // 2) ** 2  # the crop and a warm-up on a quarter: not 3 MP
    line = _estimate_line(capsys.readouterr().err)
    tiles = f"{_tiles(h, w)} tiles of {TILE}x{TILE}"
    assert f"a {SIDE}x{SIDE} centre crop timed, extrapolated to {w}x{h} (3.0 MP) in {tiles}" in line
    m = re.search(r"estimate for 1 picture: about [\d.]+ ?(s|min|h) and ([\d.]+) (KiB|MiB)", line)
    assert m, line
    megabytes = float(m.group(2)) / (1024 if m.group(3) == "KiB" else 1)
    assert 0.3 < megabytes < 30  # a 4000x3000 JPEG of a textured picture, extrapolated from the crop
    assert not (tmp_path / "out.jpg").exists()


def test_a_large_videos_dry_run_times_crops_of_its_frames(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], fed: list[int]) -> None:
    h, w = 360, 640
    clip = make_video(tmp_path / "hd.mp4", VideoSpec(width=w, height=h, frames=4, audio=None))
    assert main([str(clip), str(tmp_path / "out.mp4"), "-m", "span-x2", "--tile", str(TILE),
                 "--dry-run"]) == 0
    crops = 3 * _tiles(SIDE, SIDE) * TILE * TILE + (SIDE // 2) ** 2  # and the warm-up
    assert 0 < sum(fed) <= crops  # not 3 whole frames
    line = _estimate_line(capsys.readouterr().err)
    assert "estimate for 4 frames" in line and "from 3 sample frames" in line
    assert f"extrapolated to {w}x{h} (0.2 MP) in {_tiles(h, w)} tiles" in line
