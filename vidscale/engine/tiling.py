"""Split a frame into overlapping tiles and blend the results seamlessly.

Each tile's weight is zero within `margin` low-res pixels of an edge that
touches a neighbour (pixels there lack context), then ramps linearly to one.
Where two tiles overlap by `overlap` pixels the ramps are complementary, so
every output pixel is a convex mix of pixels computed with context.

A caller may ask to be called between tiles (`watch.between_tiles`): a large
picture on the CPU is minutes in one frame, and a cancel should not wait for all
of it. Each tile is a `watch.part` of the frame, for the caller's progress.
An estimate may meter the tiles, or only count them (`meter.metering`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from vidscale.engine.meter import PassWork, current_meter
from vidscale.engine.watch import between_tiles, current_check, part, reached

__all__ = ["between_tiles", "run_tiled", "spans"]
Infer = Callable[[torch.Tensor], torch.Tensor]


def spans(length: int, tile: int, overlap: int, align: int = 1) -> list[tuple[int, int]]:
    """Start/end of tiles of size `tile` covering `length`, overlapping >= `overlap`.

    Starts and sizes fall on multiples of `align` (`tile_grid.py`): networks that
    downsample or attend within windows give other results for content shifted
    off that grid. A length that fits `tile` is one tile; else the tile is rounded
    down to the grid (two cells at least, so neighbours can overlap) and the last
    tile is up to `align - 1` pixels longer.
    """
    tile = aligned_tile(tile, align) if length > tile else tile
    if length <= tile:  # also where the grid's two cells are the whole length
        return [(0, length)]
    step = max(align, (tile - overlap) // align * align)
    last = (length - tile) // align * align
    starts = list(range(0, last, step)) + [last]
    return [(s, s + tile) for s in starts[:-1]] + [(last, length)]


def aligned_tile(tile: int, align: int) -> int:
    """`tile` rounded down to a multiple of `align`, and at least two: one cell of overlap."""
    return max(2 * align, tile // align * align)


def longest_span(length: int, tile: int, align: int = 1) -> int:
    """The longest tile `spans` cuts from `length` (its last one: up to `align - 1` longer)."""
    start, end = spans(length, tile, 0, align)[-1]
    return end - start


def _ramp(start: int, end: int, length: int, scale: int, overlap: int, margin: int,
          device: torch.device) -> torch.Tensor:
    """Blend weights along one axis for the output samples of tile [start, end)."""
    pos = (torch.arange((end - start) * scale, device=device) + 0.5) / scale
    w = torch.ones_like(pos)
    width = overlap - 2 * margin
    if start > 0:
        w = torch.minimum(w, ((pos - margin) / width).clamp(0, 1))
    if end < length:
        w = torch.minimum(w, ((end - start - pos - margin) / width).clamp(0, 1))
    return w


def run_tiled(infer: Infer, x: torch.Tensor, scale: int, tile: int, overlap: int,
              align: int = 1) -> torch.Tensor:
    """Apply `infer` (NCHW -> NCH*sW*s) to `x` tile by tile and blend."""
    meter = current_meter()
    if meter is not None:
        if not meter.run:
            return _counted(meter.work(x), x, scale, tile, overlap, align)
        infer = meter.timed(infer, meter.work(x))
    n, _, h, w = x.shape
    if h <= tile and w <= tile:
        return infer(x)
    overlap = _overlap(tile, overlap, align)
    margin = overlap // 4
    check = current_check()
    out: torch.Tensor | None = None
    norm = torch.zeros(1, 1, h * scale, w * scale, device=x.device)
    rows, cols = spans(h, tile, overlap, align), spans(w, tile, overlap, align)
    count = len(rows) * len(cols)
    for i, ((y0, y1), (x0, x1)) in enumerate((r, c) for r in rows for c in cols):
        wy = _ramp(y0, y1, h, scale, overlap, margin, x.device)
        wx = _ramp(x0, x1, w, scale, overlap, margin, x.device)
        if check is not None and out is not None:
            check()
        with part(i, count):
            piece = infer(x[:, :, y0:y1, x0:x1])
        if out is None:
            out = torch.zeros(n, piece.shape[1], h * scale, w * scale, device=x.device)
        weight = wy[:, None] * wx[None, :]
        region = (slice(None), slice(None), slice(y0 * scale, y1 * scale), slice(x0 * scale, x1 * scale))
        out[region] += piece.float() * weight
        norm[region] += weight
        reached((i + 1) / count, check=False)
    assert out is not None
    return out / norm


def _overlap(tile: int, overlap: int, align: int) -> int:
    # at least a grid cell (an attention window): less cuts even the first layer's context
    return min(max(overlap, align), aligned_tile(tile, align) // 2)


def _counted(work: PassWork, x: torch.Tensor, scale: int, tile: int, overlap: int,
             align: int) -> torch.Tensor:
    """The tiles `run_tiled` would feed the network, recorded, and a stand-in output of the
    right shape (zeros that take no memory) for the next pass to be counted on."""
    n, c, h, w = x.shape
    if h <= tile and w <= tile:
        work.add(x)
    else:
        overlap = _overlap(tile, overlap, align)
        for y0, y1 in spans(h, tile, overlap, align):
            for x0, x1 in spans(w, tile, overlap, align):
                work.add(x[:, :, y0:y1, x0:x1])
    return torch.zeros((), device=x.device).expand(n, c, h * scale, w * scale)
