"""What upscaling one frame costs, found from a bounded sample.

An estimate must not cost what the job does: a 12 MP photo through
realesrgan-x4plus is tens of minutes on a 2-core CPU. So a frame larger than
a sample is never upscaled whole:

- its work is counted: a stand-in of the frame's shape goes through the
  networks with `tiling.metering(run=False)`, which runs no tile but records
  the pixels each pass would feed its network, with the tile size, overlaps and
  repeated runs (Real-CUGAN's two) that the engines choose for the real frame;
- a centre crop is timed: upscaled for real, its seconds and network pixels
  recorded per pass. Each pass's seconds per pixel times the frame's pixels for
  that pass, plus the rest of the crop's time (colour conversion, the final
  resize) scaled by output pixels, is the frame's time.

The crop also gives the pixels whose encoded size, scaled by the same share,
estimates the output's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from vidscale.engine.meter import Meter, metering
from vidscale.upscaler import Upscaler, from_tensor, to_tensor

# The timed crop's side in input pixels: about 6 s of realesrgan-x4plus on a 2-core CPU,
# and a few times the pixels of a network's receptive field, so its edges weigh little.
SIDE = 256


@dataclass
class FrameCost:
    seconds: float  # the whole frame's upscale
    sample: np.ndarray  # upscaled pixels: the whole frame's, or the centre crop's
    share: float  # the sample's share of the output frame's pixels (1.0: the whole frame)
    basis: str  # how the time was found, for the dry run's line


def frame_cost(upscaler: Upscaler, pixels: np.ndarray, size: tuple[int, int], side: int = SIDE) -> FrameCost:
    """The cost of upscaling `pixels` (HxWxC) to `size` (height, width): timed whole when
    it is no more than about two crops, else from a centre crop of `side` x `side`."""
    h, w = pixels.shape[:2]
    if h * w <= 2 * side * side:
        started = time.perf_counter()
        out = from_tensor(upscaler.upscale_channels(to_tensor(pixels), size), pixels.dtype)
        return FrameCost(time.perf_counter() - started, out, 1.0, f"{w}x{h} timed whole")
    crop = centre_crop(pixels, side)
    return cost_from_crop(upscaler, pixels.shape, crop, size, network_runs(pixels))


def warm_up(upscaler: Upscaler, shape: tuple[int, ...], crop: np.ndarray, size: tuple[int, int]) -> None:
    """Pay the one-off set-up (the networks' first run, allocation) on a quarter of `crop`, a
    crop of a frame of `shape` going to `size`, so that timing `crop` then measures the steady
    rate: half the cost of timing it twice."""
    count_work(upscaler, shape[:2], size)  # first, as in `cost_from_crop`
    quarter = centre_crop(crop, max(crop.shape[:2]) // 2)
    upscaler.upscale_channels(to_tensor(quarter), _scaled(quarter.shape, shape, size))


def cost_from_crop(upscaler: Upscaler, shape: tuple[int, ...], crop: np.ndarray, size: tuple[int, int],
                   runs: int = 1) -> FrameCost:
    """A frame of `shape` from its `crop`'s timing; `runs`: the frame's network runs per pass."""
    (h, w), (ch, cw) = shape[:2], crop.shape[:2]
    crop_size = _scaled(crop.shape, shape, size)
    # counted first: a TensorRT engine is then built for the frame's tiles, which the real
    # run needs too, and its profile also takes the crop (crop first would build twice)
    counted = count_work(upscaler, (h, w), size)
    with metering(ch) as timed:
        started = time.perf_counter()
        out = from_tensor(upscaler.upscale_channels(to_tensor(crop), crop_size), crop.dtype)
        total = time.perf_counter() - started
    share = crop_size[0] * crop_size[1] / (size[0] * size[1])
    seconds = _extrapolate(timed, total, counted, runs, share)
    return FrameCost(seconds, out, share, f"a {cw}x{ch} centre crop timed, extrapolated to {w}x{h} "
                     f"({h * w / 1e6:.1f} MP){_tiles(counted)}")


def count_work(upscaler: Upscaler, shape: tuple[int, int], size: tuple[int, int]) -> Meter:
    """The network work of one frame of `shape` (height, width) to `size`, counted, not run."""
    h, w = shape
    x = torch.zeros((), device=upscaler.device).expand(1, 3, h, w)  # takes no memory
    with metering(h, run=False) as meter:
        for info in upscaler.networks_for(max(size[0] / h, size[1] / w)):  # as `Upscaler.upscale` runs them
            x = upscaler.engine(info)(x)
    return meter


def centre_crop(pixels: np.ndarray, side: int) -> np.ndarray:
    h, w = pixels.shape[:2]
    ch, cw = min(side, h), min(side, w)
    top, left = (h - ch) // 2, (w - cw) // 2
    return pixels[top:top + ch, left:left + cw]


def network_runs(pixels: np.ndarray) -> int:
    """Runs of each network per frame: two for RGBA whose alpha varies (`Upscaler.upscale_channels`)."""
    if pixels.ndim == 3 and pixels.shape[2] == 4:
        alpha = pixels[..., 3]
        return 1 + int(alpha.min() != alpha.max())
    return 1


def _extrapolate(timed: Meter, total: float, counted: Meter, runs: int, share: float) -> float:
    network = sum(p.seconds for p in timed.passes.values())
    pixels = sum(p.pixels for p in timed.passes.values())
    seconds = max(0.0, total - network) / share  # the rest goes with output pixels
    for key, work in counted.passes.items():
        done = timed.passes.get(key)
        rate = done.seconds / done.pixels if done and done.pixels else network / max(pixels, 1)
        seconds += rate * work.pixels * runs
    return seconds


def _tiles(counted: Meter) -> str:
    """The first pass's tiling, as the real run would do it."""
    if not counted.passes:
        return ""
    first = next(iter(counted.passes.values()))
    if first.tiles <= 1:
        return ", untiled"
    th, tw = first.tile
    return f" in {first.tiles} tiles of {tw}x{th}"


def _scaled(crop: tuple[int, ...], frame: tuple[int, ...], size: tuple[int, int]) -> tuple[int, int]:
    """A crop's output size, at the frame's scale (even, for video's 4:2:0 chroma)."""
    return _even(crop[0] * size[0] / frame[0]), _even(crop[1] * size[1] / frame[1])


def _even(value: float) -> int:
    return max(2, round(value / 2) * 2)
