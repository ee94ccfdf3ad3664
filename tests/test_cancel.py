"""A job reports progress to its caller and stops cleanly when the caller cancels it."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import pytest

from vidscale import JobSettings, run_job
from vidscale.errors import Cancelled
from tests.conftest import SAMPLES


def test_progress_reaches_the_listener(tmp_path: Path) -> None:
    seen: list[tuple[int, int | None]] = []
    settings = JobSettings(scale=2, model="bicubic", max_frames=4, quiet=True,
                           on_progress=lambda done, total: seen.append((done, total)))
    run_job(str(SAMPLES / "bunny.webm"), str(tmp_path / "out.mp4"), settings)
    assert [d for d, _ in seen] == [1, 2, 3, 4]
    assert all(total == 4 for _, total in seen)


def test_cancel_stops_the_job_and_leaves_nothing(tmp_path: Path) -> None:
    cancel = threading.Event()

    def listener(done: int, total: int | None) -> None:
        if done == 2:
            cancel.set()

    settings = JobSettings(scale=2, model="bicubic", max_frames=8, quiet=True, on_progress=listener, cancel=cancel)
    with pytest.raises(Cancelled):
        run_job(str(SAMPLES / "bunny.webm"), str(tmp_path / "out.mp4"), settings)
    assert list(tmp_path.iterdir()) == []


def test_cancel_stops_a_tiled_picture_between_tiles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A large picture on the CPU is one frame of many tiles: a cancel ends it at the next tile."""
    from vidscale.engine.torch_engine import TorchEngine
    from vidscale.media.image import write_image
    from tests.media import pattern

    picture = tmp_path / "big.png"
    write_image(picture, pattern(0, 192, 192))
    tiles: list[int] = []
    cancel = threading.Event()
    plain = TorchEngine._infer

    def counted(self: TorchEngine, x: object) -> object:
        tiles.append(1)
        if len(tiles) == 3:
            cancel.set()
        return plain(self, x)

    monkeypatch.setattr(TorchEngine, "_infer", counted)
    settings = JobSettings(scale=2, model="span-x2", backend="torch", tile=64, quiet=True)
    run_job(str(picture), str(tmp_path / "whole.png"), settings)
    assert len(tiles) == 25  # 5 x 5 tiles of 64 px, overlapping by 32
    tiles.clear()
    cancel.clear()
    with pytest.raises(Cancelled):
        run_job(str(picture), str(tmp_path / "out.png"), replace(settings, cancel=cancel))
    assert len(tiles) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.png", "whole.png"]


def test_between_tiles_is_called_before_each_tile_but_the_first() -> None:
    import torch

    from vidscale.engine.tiling import between_tiles, run_tiled

    calls: list[str] = []

    def infer(x: torch.Tensor) -> torch.Tensor:
        calls.append("tile")
        return x.repeat_interleave(2, -1).repeat_interleave(2, -2)

    x = torch.rand(1, 3, 40, 40)
    with between_tiles(lambda: calls.append("check")):
        run_tiled(infer, x, 2, 24, 8)
    assert calls == ["tile"] + ["check", "tile"] * 3
    calls.clear()
    run_tiled(infer, x, 2, 24, 8)  # outside the block: no checks
    assert calls == ["tile"] * 4


def test_cancel_stops_an_untiled_picture_within_a_layer(tmp_path: Path) -> None:
    """One frame in one piece: the cancel is seen after the next convolution, not after the frame."""
    from vidscale.engine.watch import reporting
    from vidscale.media.image import write_image
    from tests.media import pattern

    picture = tmp_path / "small.png"
    write_image(picture, pattern(0, 64, 64))
    cancel = threading.Event()
    seen: list[float] = []

    def report(fraction: float) -> None:
        seen.append(fraction)
        if fraction > 0.2:
            cancel.set()

    settings = JobSettings(scale=2, model="span-x2", backend="torch", quiet=True, cancel=cancel)
    with reporting(report), pytest.raises(Cancelled):
        run_job(str(picture), str(tmp_path / "out.png"), settings)
    assert seen[-2] <= 0.2 < seen[-1] < 0.6  # stopped at the first layer past a fifth of the work
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.png"]


def test_progress_within_a_frame_counts_tiles_and_both_se_passes(tmp_path: Path) -> None:
    """Real-CUGAN tiled: the first pass (recording the frame's SE means) is the first half."""
    from vidscale.engine.watch import reporting
    from vidscale.media.image import write_image
    from tests.media import pattern

    picture = tmp_path / "p.png"
    write_image(picture, pattern(0, 96, 96))
    seen: list[float] = []
    settings = JobSettings(scale=2, model="realcugan", backend="torch", tile=64, quiet=True)
    with reporting(seen.append):
        run_job(str(picture), str(tmp_path / "out.png"), settings)
    assert seen == sorted(seen) and seen[-1] == pytest.approx(1.0)
    assert any(0.45 < f <= 0.5 for f in seen) and any(0.5 < f < 0.55 for f in seen)
    assert len(seen) > 50  # layers, not just tiles
