"""Run a spandrel network with PyTorch on the CPU or a CUDA GPU.

The engine takes NCHW float32 RGB in [0, 1] and returns the model's output
at `scale` times the size. Frames too large for memory are tiled; inputs a
network cannot take (its size requirements) are padded and cropped back;
a CUDA out-of-memory error retries with smaller tiles.

Weights and inputs are channels_last on every device: on CUDA it is the
layout tensor cores want (there in fp16 or bf16); on the CPU oneDNN ran every
built-in faster so, 1.11x to 2.43x at 640x480, within 0.02/255 but for SPAN x2's
few ill-conditioned pixels (benchmarks/results/2026-12-02-cpu-runtimes-640-quiet.md).
A frame decoded as an HxWxC array is channels_last already; VapourSynth's
planes and padded frames are made so here.

A shape seen a second time (video frames, not a folder of odd-sized photos)
has cuDNN time its algorithms and is replayed as a CUDA graph (`graphs.py`),
which launches a whole network's kernels at once.
"""

from __future__ import annotations

import logging
import math
import os
from collections import Counter

import spandrel
import torch
import torch.nn.functional as F

from vidscale.engine import se_sync
from vidscale.engine.cpu_features import cpu_precision
from vidscale.engine.cpu_memory import keep_freed_memory
from vidscale.engine.graphs import GraphCache
from vidscale.engine.layer_watch import LayerWatch
from vidscale.engine.onnx_export import fold_reparameterized
from vidscale.engine.outputs import image_network
from vidscale.engine.tile_grid import tile_grid
from vidscale.engine.tiling import run_tiled
from vidscale.engine.watch import part
from vidscale.errors import ModelError, UsageError, VidscaleError

log = logging.getLogger(__name__)

MIN_TILE = 64
# Low-res pixels shared by neighbouring tiles, by architecture: enough context
# that tiled output matches untiled within 1/255 on real images (measured:
# SPAN and Compact at 32; the 6-block RRDB still differs by 1.5/255 at 128; the
# 23-block x4plus by 1.83/255 at 128, 1.25 at 160, 0.43 at 192, RealSR 0.01 at 192).
# Real-CUGAN's convolutions need 48 (0.09/255 when each tile is given the exact whole-
# frame SE means). With each tile's own means it was up to 102/255 at 256 px tiles
# (854x480); se_sync.py's recorded frame means bring 20-27/255 to 5-8/255 at 128 px
# (benchmarks/tiling_se.py).
OVERLAP_BY_ARCH = {"SPAN": 32, "Compact": 32, "ESRGAN": 192, "RealCUGAN": 48}
DEFAULT_OVERLAP = 128
CPU_BUDGET_CAP = 8 << 30
# Peak fp32 activation bytes per input pixel where the formula below is far off, measured on
# the CPU (growth of the peak resident set over one forward at 160x120 and 320x240, the larger
# of the two) and given half again as margin. The formula assumes 64-channel maps at output
# size, which pixel-shuffle networks never make: Compact measured 1,666 B/px against 18,176.
MEASURED_BYTES_PER_PX = {("Compact", 4): 1666, ("SPAN", 2): 7190, ("SPAN", 4): 6226}
MEASURED_MARGIN = 1.5
PRECISIONS = ("auto", "fp16", "bf16", "fp32")
_HALF = {"fp16": torch.float16, "bf16": torch.bfloat16}


class TorchEngine:
    def __init__(
        self,
        desc: spandrel.ImageModelDescriptor,
        device: torch.device,
        precision: str | None = None,
        tile: int | None = None,
        overlap: int | None = None,
        graphs: bool = True,
        channels_last: bool = True,
    ):
        self.scale: int = desc.scale
        self.device = device
        self.dtype = pick_dtype(desc, device, precision)
        # fold SPAN-style re-parameterised convs once (fp32), not on every forward
        model = image_network(fold_reparameterized(desc.model)).to(device=device, dtype=self.dtype).eval()
        self.channels_last = channels_last  # False: plain NCHW, the benchmarks' reference
        self._layout = torch.channels_last if channels_last else torch.contiguous_format
        model = model.to(memory_format=self._layout)
        if device.type != "cuda":
            keep_freed_memory()  # reuse one frame's activation pages for the next
            # Tiny activations (black borders, flat areas) become denormal floats, which x86 computes
            # in microcode: span-x2 took 3x as long on such a frame. Flushed, they are zero, as on GPUs.
            torch.set_flush_denormal(True)
        self.model = model
        self.layers = LayerWatch(model)  # cancel checks and progress within a frame
        self.requirements = desc.size_requirements
        self.fixed_tile = tile
        self.overlap = overlap or OVERLAP_BY_ARCH.get(desc.architecture.id, DEFAULT_OVERLAP)
        self._bytes_per_px = activation_bytes_per_pixel(self.model, self.scale, self.dtype,
                                                         desc.architecture.id)
        self._tiles: dict[tuple[int, int, int], int] = {}  # free memory is asked once per shape
        self._uses: Counter[tuple[int, ...]] = Counter()  # network input shapes seen
        self.graphs = GraphCache(self.model) if graphs and device.type == "cuda" else None
        self.se_blocks = se_sync.se_blocks(self.model)
        self.align = tile_grid(desc)  # tiles start on the network's window grid
        self._eager = False

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Upscale an NCHW float batch already on `self.device`."""
        n, _, h, w = x.shape
        tile = self.fixed_tile or self._tiles.get((n, h, w)) or self.auto_tile(n, h, w)
        self.layers.prepare(self._probe)
        while True:
            try:
                out = self._tiled(x, tile)
                self._tiles[n, h, w] = tile
                return out
            except torch.OutOfMemoryError:
                tile = self._after_oom(tile, h, w)

    def _tiled(self, x: torch.Tensor, tile: int) -> torch.Tensor:
        """Tile by tile; SE networks twice, the second time with the frame's SE means (se_sync.py)."""
        if not self.se_blocks or (max(x.shape[-2:]) <= tile):
            return run_tiled(self._infer, x, self.scale, tile, self.overlap, self.align)
        self._eager = True  # patched forwards: a captured CUDA graph would not see them
        try:
            with se_sync.recording(self.se_blocks) as means, part(0, 2):
                run_tiled(self._infer, x, self.scale, tile, self.overlap, self.align)
            with se_sync.frame_means(self.se_blocks, means), part(1, 2):
                return run_tiled(self._infer, x, self.scale, tile, self.overlap, self.align)
        finally:
            self._eager = False

    def _after_oom(self, tile: int, h: int, w: int) -> int:
        if tile <= MIN_TILE:
            raise VidscaleError(f"out of memory on {self.device} even with {tile} px tiles") from None
        tile = max(MIN_TILE, min(tile, max(h, w)) // 2)
        log.warning("out of memory: retrying with %d px tiles", tile)
        if self.graphs is not None:
            self.graphs.clear()  # their memory pools are the first thing to give back
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        if self.fixed_tile:
            self.fixed_tile = tile
        return tile

    def auto_tile(self, batch: int, height: int, width: int) -> int:
        return fitting_tile(self._bytes_per_px, self.device, batch, height, width)

    def _probe(self) -> None:
        """One forward on a small input (LayerWatch measures each layer's share of the work)."""
        x = torch.zeros(1, 3, 32, 32, device=self.device, dtype=self.dtype)
        with torch.inference_mode():
            self.model(_pad_to_requirements(x, self.requirements).contiguous(memory_format=self._layout))

    def _infer(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        padded = _pad_to_requirements(x, self.requirements).to(self.dtype)
        padded = padded.contiguous(memory_format=self._layout)
        key = tuple(padded.shape)
        self._uses[key] += 1
        repeated = self._uses[key] > 1
        if self.device.type == "cuda":  # timing algorithms pays off only for shapes that recur
            torch.backends.cudnn.benchmark = repeated
        with torch.inference_mode():
            self.layers.start()
            if self.graphs is not None and repeated and not self._eager:  # output is the graph's own buffer: copied below
                y = self.graphs.run(padded)
            else:
                y = self.model(padded)
        y = y[..., : h * self.scale, : w * self.scale]
        # a graph's output is its own buffer, rewritten by the next replay: copy it (elsewhere,
        # copying a full-size output would only add a frame-sized allocation)
        return y.to(torch.float32, copy=self.graphs is not None)


def fitting_tile(bytes_per_px: float, device: torch.device, batch: int, height: int, width: int) -> int:
    """The largest tile whose activations fit the memory budget."""
    pixels = _memory_budget(device) / (bytes_per_px * batch)
    side = int(math.sqrt(pixels)) // 16 * 16
    if side * side >= height * width and side >= min(height, width):
        return max(height, width)  # whole frame fits: no tiling
    return max(MIN_TILE, side)


def pick_dtype(desc: spandrel.ImageModelDescriptor, device: torch.device,
               precision: str | None) -> torch.dtype:
    """The compute type: fp16 on CUDA unless the model cannot take it; on the CPU fp32, or bf16
    where asked for and native (`cpu_features.cpu_precision`; a built-in's `auto` is decided
    before, in `backend.make_engine`).

    An explicit fp16/bf16 the model or device cannot do is an error, not a silent fp32.
    """
    wanted = (precision or "auto").lower()
    if wanted not in PRECISIONS:
        raise UsageError(f"precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    if device.type != "cuda":
        wanted = cpu_precision(wanted)
    if wanted == "fp32":
        return torch.float32
    if wanted == "auto":
        return torch.float16 if desc.supports_half else torch.float32
    supported = desc.supports_half if wanted == "fp16" else desc.supports_bfloat16
    if not supported:
        raise ModelError(f"{desc.architecture.name} does not support {wanted}")
    if wanted == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise UsageError(f"--precision bf16: {torch.cuda.get_device_name(device)} has no bf16")
    return _HALF[wanted]


def _pad_to_requirements(x: torch.Tensor, req: spandrel.SizeRequirements) -> torch.Tensor:
    return pad_to_size(x, *_padded_size(*x.shape[-2:], req))


def pad_to_size(x: torch.Tensor, th: int, tw: int) -> torch.Tensor:
    """`x` padded at the bottom and right to `th` x `tw` (mirrored where it is long enough)."""
    h, w = x.shape[-2:]
    if (th, tw) == (h, w):
        return x
    mode = "reflect" if th - h < h and tw - w < w else "replicate"
    return F.pad(x, (0, tw - w, 0, th - h), mode=mode)


def _padded_size(h: int, w: int, req: spandrel.SizeRequirements) -> tuple[int, int]:
    m = max(req.multiple_of, 1)
    th = max(math.ceil(h / m) * m, req.minimum)
    tw = max(math.ceil(w / m) * m, req.minimum)
    if req.square:
        th = tw = max(th, tw)
    return th, tw


def activation_bytes_per_pixel(model: torch.nn.Module, scale: int, dtype: torch.dtype,
                                arch: str | None = None) -> int:
    """A deliberately generous estimate of peak activation bytes per input pixel:
    measured for the architectures in MEASURED_BYTES_PER_PX, else a few feature
    maps of the widest layer plus the upsampled tail."""
    item = torch.finfo(dtype).bits // 8
    measured = MEASURED_BYTES_PER_PX.get((arch, scale)) if arch else None
    if measured is not None:
        return int(measured * MEASURED_MARGIN * item / 4)
    widest = max((p.shape[0] for p in model.parameters() if p.dim() == 4), default=64)
    return estimated_bytes_per_pixel(widest, scale, item)


def estimated_bytes_per_pixel(widest: int, scale: int, item: int = 4) -> int:
    """A few feature maps of the widest layer (`widest` channels) plus the upsampled tail."""
    return item * (6 * widest + 4 * 64 * scale * scale) + 16 * scale * scale


def _memory_budget(device: torch.device) -> float:
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return 0.6 * free
    return min(0.3 * available_memory(), CPU_BUDGET_CAP)


def available_memory() -> int:
    """Bytes the system can give without swapping: MemAvailable, which counts the page cache
    it would drop. MemFree alone (SC_AVPHYS_PAGES) read a third lower here and tiled a
    640x480 frame in two."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return 4 << 30
