"""The grid a network's tiles must start on for tiled output to match the whole frame.

A network that groups pixels in fixed blocks (the attention windows of SwinIR,
Swin2SR, HAT, DAT, DRCT, ...; the strides of a UNet) computes a block from the
pixels that fall in it. Blocks start at the input's top-left corner, so a tile
starting off the frame's grid groups other pixels than the whole frame does:
40-46/255 across whole tiles for a SwinIR or DRCT model at 48 px tiles.

The window is read from the loaded network, not from a table of architecture
names: any module's `window_size` or `split_size` (DAT's and RGT's rectangles),
and the multiple a network pads its input to (`pad_size`, `padder_size`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import spandrel
import torch

# Sizes a network divides its input into, under the names spandrel's architectures give them.
GRID_ATTRIBUTES = ("window_size", "split_size", "pad_size", "padder_size")
# Real-CUGAN's UNet downsamples twice (x3: by 4 overall) with no window attribute to read,
# and spandrel reports that multiple for only one of its variants.
ALIGN_BY_ARCH = {"RealCUGAN": 4}


def tile_grid(desc: spandrel.ImageModelDescriptor) -> int:
    """Low-res pixels that tile starts and sizes must be a multiple of for `desc`'s network."""
    sizes = [max(desc.size_requirements.multiple_of, 1), ALIGN_BY_ARCH.get(desc.architecture.id, 1)]
    sizes += network_grid_sizes(desc.model)
    return math.lcm(*sizes)


def network_grid_sizes(model: torch.nn.Module) -> list[int]:
    """Every block size the network's modules declare (a window of 8 or 8x32 gives 8 and 32)."""
    return sorted({size for module in model.modules() for size in _declared(module)})


def _declared(module: torch.nn.Module) -> Iterator[int]:
    for name in GRID_ATTRIBUTES:
        value = getattr(module, name, None)
        values = value if isinstance(value, (tuple, list)) else (value,)
        for v in values:
            if isinstance(v, int) and not isinstance(v, bool) and v > 0:
                yield v
