"""Whole-frame squeeze-excitation for tiled networks (Real-CUGAN).

An SE block scales its channels by a function of their mean over the whole
image. Run tile by tile, each tile uses its own means, and seams and colour
shifts appear (measured on a real anime frame: up to 102/255 with 256 px
tiles). So a tiled run goes twice: the first pass records each SE block's
channel means over every tile, the second uses those frame means everywhere.
The first pass's means are themselves computed with per-tile means upstream,
so this is close to, not exactly, the untiled result.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F


def se_blocks(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The SE blocks (spandrel's RealCUGAN SEBlock: conv1, conv2 on the channel means)."""
    return [m for m in model.modules() if type(m).__name__ == "SEBlock" and hasattr(m, "conv2")]


def _excite(block: torch.nn.Module, x: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    w = torch.sigmoid(block.conv2(F.relu(block.conv1(mean.to(x.dtype)))))
    return x * w


class _Means:
    def __init__(self) -> None:
        self.sums: dict[int, torch.Tensor] = {}
        self.counts: dict[int, int] = {}

    def add(self, i: int, x: torch.Tensor) -> None:
        s = x.float().sum(dim=(2, 3), keepdim=True)
        self.sums[i] = self.sums[i] + s if i in self.sums else s
        self.counts[i] = self.counts.get(i, 0) + x.shape[2] * x.shape[3]

    def mean(self, i: int) -> torch.Tensor:
        return self.sums[i] / self.counts[i]


@contextmanager
def _patched(blocks: list[torch.nn.Module], forward) -> Iterator[None]:  # type: ignore[no-untyped-def]
    for i, block in enumerate(blocks):
        block.forward = lambda x, i=i, block=block: forward(i, block, x)  # type: ignore[method-assign]
    try:
        yield
    finally:
        for block in blocks:
            del block.forward  # back to the class's own


@contextmanager
def recording(blocks: list[torch.nn.Module]) -> Iterator[_Means]:
    """Blocks run as usual (per-tile means) and add their input to the frame's means."""
    means = _Means()

    def forward(i: int, block: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        means.add(i, x)
        return _excite(block, x, x.float().mean(dim=(2, 3), keepdim=True))

    with _patched(blocks, forward):
        yield means


@contextmanager
def frame_means(blocks: list[torch.nn.Module], means: _Means) -> Iterator[None]:
    """Blocks use the recorded frame means instead of their tile's."""
    def forward(i: int, block: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        return _excite(block, x, means.mean(i))

    with _patched(blocks, forward):
        yield
