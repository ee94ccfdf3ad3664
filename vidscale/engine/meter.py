"""Network work metered for an estimate (vidscale/frame_cost.py).

Within `metering`, on this thread, `run_tiled` records per pass the tiles it feeds
the network, their pixels (overlaps included) and, when they run, the seconds they
take; with `run=False` it runs nothing, only counts, and returns zeros of the
output's shape for the next pass to be counted on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

import torch

Infer = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class PassWork:
    tiles: int = 0  # network runs (a whole frame is one tile)
    pixels: int = 0  # their input pixels, overlaps included
    seconds: float = 0.0  # spent in the network (0 when only counted)
    tile: tuple[int, int] = (0, 0)  # the largest tile (height, width) fed to it

    def add(self, tile: torch.Tensor) -> None:
        n, _, h, w = tile.shape
        self.tiles += 1
        self.pixels += n * h * w
        self.tile = max(self.tile, (h, w), key=lambda t: t[0] * t[1])


@dataclass
class Meter:
    """Network work per pass. A pass is named by its input's height over the frame's
    (1 for the first, 4 after an x4 network...), which is the same for a crop and its frame."""

    height: int  # the frame's
    run: bool  # False: count the tiles, run nothing
    passes: dict[float, PassWork] = field(default_factory=dict)

    def work(self, x: torch.Tensor) -> PassWork:
        return self.passes.setdefault(round(x.shape[-2] / self.height, 4), PassWork())

    def timed(self, infer: Infer, work: PassWork) -> Infer:
        def run(tile: torch.Tensor) -> torch.Tensor:
            _sync(tile.device)  # CUDA runs asynchronously: time the kernels, not their launch
            started = time.perf_counter()
            out = infer(tile)
            _sync(tile.device)
            work.seconds += time.perf_counter() - started
            work.add(tile)
            return out
        return run


_meter: ContextVar[Meter | None] = ContextVar("vidscale_meter", default=None)


@contextmanager
def metering(height: int, run: bool = True) -> Iterator[Meter]:
    """Within the block, on this thread, `run_tiled` records its work in the meter it yields;
    `height`: the frame's (or crop's) height, which names the passes."""
    meter = Meter(height, run)
    token = _meter.set(meter)
    try:
        yield meter
    finally:
        _meter.reset(token)


def current_meter() -> Meter | None:
    return _meter.get()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
