"""Run a network as a TensorRT 10 engine (written to the documented API; never run here).

The engine is built on first use from our ONNX export, for an optimization
profile that fits the job's batch and frame (or tile) size, and cached under
the user cache dir (see `cache.py`); a timing cache shared by all models
shortens later builds. fp16 runs as a strongly typed network built from an
export that computes in half with float32 input/output, so it matches
`TorchEngine`'s fp16 path, and it is the only fp16 route TensorRT 11 keeps
(it removed `BuilderFlag.FP16`).

Buffers and streams are torch's: the frames are already CUDA tensors, the
caching allocator supplies every buffer (`data_ptr()` is what TensorRT wants)
and `torch.cuda.Stream.cuda_stream` is a plain `cudaStream_t`, so no second
CUDA binding or manual free is needed. Two slots, each an execution context
with its own stream, take tiles in turn: one tile's padding and inference
overlap the previous tile's, and the caller's stream waits on each result.

Everything above the `tensorrt` import (profiles, tiles) is plain Python and
is tested without TensorRT.
"""

from __future__ import annotations

import logging
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import spandrel
import torch

from vidscale.engine import cache
from vidscale.engine.onnx_export import DEFAULT_OPSET, INPUT, OUTPUT, export_descriptor
from vidscale.engine.tile_grid import tile_grid
from vidscale.engine.tiling import longest_span, run_tiled
from vidscale.engine.torch_engine import (
    DEFAULT_OVERLAP,
    MIN_TILE,
    OVERLAP_BY_ARCH,
    activation_bytes_per_pixel,
    _memory_budget,
    _pad_to_requirements,
    _padded_size,
    pick_dtype,
)
from vidscale.errors import ModelError, UsageError, VidscaleError

log = logging.getLogger(__name__)

MISSING = ("--backend tensorrt needs TensorRT 10 (pip install 'vidscale[tensorrt]' "
           "on a machine with an NVIDIA GPU)")
SLOTS = 2
Shape = tuple[int, int, int]  # batch, height, width


@dataclass(frozen=True)
class ShapeProfile:
    """An optimization profile: the smallest, tuned-for and largest input shapes."""

    min: Shape
    opt: Shape
    max: Shape

    def covers(self, shape: Shape) -> bool:
        return all(lo <= v <= hi for lo, v, hi in zip(self.min, shape, self.max, strict=True))

    def nchw(self) -> tuple[tuple[int, ...], ...]:
        return tuple((s[0], 3, s[1], s[2]) for s in (self.min, self.opt, self.max))

    def describe(self) -> dict[str, list[int]]:
        return {"min": list(self.min), "opt": list(self.opt), "max": list(self.max)}


def tile_shape(batch: int, height: int, width: int, tile: int,
               req: spandrel.SizeRequirements, align: int = 1) -> Shape:
    """The largest input shape the network sees for a frame cut into `tile`-sized tiles
    on a grid of `align` (`run_tiled`'s cut: the last tile may be longer)."""
    return (batch, *_padded_size(longest_span(height, tile, align), longest_span(width, tile, align), req))


def profile_for(shape: Shape, req: spandrel.SizeRequirements,
                current: ShapeProfile | None = None) -> ShapeProfile:
    """`current` if it takes `shape`, else a profile tuned for `shape` that also
    takes everything `current` did (a batch can be short, frames can shrink)."""
    if current is not None and current.covers(shape):
        return current
    smallest = (1, *_padded_size(1, 1, req))
    largest = shape if current is None else tuple(map(max, shape, current.max))
    return ShapeProfile(smallest, shape, largest)  # type: ignore[arg-type]


def tile_side(budget: float, bytes_per_px: int, batch: int, height: int, width: int) -> int:
    """The largest tile whose activations fit `budget` (TorchEngine's rule)."""
    side = int(math.sqrt(budget / (bytes_per_px * batch))) // 16 * 16
    if side * side >= height * width and side >= min(height, width):
        return max(height, width)
    return max(MIN_TILE, side)


def smaller_tile(tile: int, height: int, width: int) -> int | None:
    """The next tile to try after a failed build or allocation; None at the floor."""
    if tile <= MIN_TILE:
        return None
    return max(MIN_TILE, min(tile, max(height, width)) // 2)


def import_tensorrt() -> ModuleType:
    try:
        import tensorrt
    except ImportError:
        raise UsageError(MISSING) from None
    return tensorrt


class _NoRoom(Exception):
    """The build or an execution context did not fit in GPU memory."""


class _Slot:
    def __init__(self, context: object, device: torch.device):
        self.context = context
        self.stream = torch.cuda.Stream(device)


class TensorRTEngine:
    def __init__(
        self,
        desc: spandrel.ImageModelDescriptor,
        device: torch.device,
        precision: str | None = None,
        tile: int | None = None,
        overlap: int | None = None,
        *,
        model_name: str,
        model_sha256: str,
    ):
        self.trt = import_tensorrt()
        if device.type != "cuda":
            raise UsageError("--backend tensorrt runs on a CUDA GPU only")
        self.desc, self.device, self.scale = desc, device, desc.scale
        self.model_name, self.model_sha256 = model_name, model_sha256
        if (precision or "").lower() == "bf16":  # our ONNX export computes in fp16 or fp32 only
            raise UsageError("--backend tensorrt builds fp16 or fp32 engines, not bf16")
        self.precision = "fp16" if pick_dtype(desc, device, precision) == torch.float16 else "fp32"
        self.requirements = desc.size_requirements
        self.fixed_tile = tile
        self.overlap = overlap or OVERLAP_BY_ARCH.get(desc.architecture.id, DEFAULT_OVERLAP)
        self.align = tile_grid(desc)  # tiles start on the network's window grid
        self._bytes_per_px = activation_bytes_per_pixel(desc.model, self.scale, torch.float16)
        self._logger = self.trt.Logger(self.trt.Logger.WARNING)
        self._runtime = self.trt.Runtime(self._logger)  # must outlive the engines it loads
        self._profile: ShapeProfile | None = None
        self._engine: object | None = None
        self._slots: list[_Slot] = []
        self._turn = 0
        self._budget: float | None = None
        self._tile_cap: int | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Upscale an NCHW float32 batch already on `self.device`."""
        n, _, h, w = x.shape
        tile = self._tile(n, h, w)
        ready = torch.cuda.Event()
        ready.record(torch.cuda.current_stream(self.device))  # x is complete from here on
        while True:
            try:
                self._prepare(profile_for(tile_shape(n, h, w, tile, self.requirements, self.align),
                                          self.requirements, self._profile))
                return run_tiled(lambda t: self._infer(t, ready), x, self.scale, tile, self.overlap,
                                 self.align)
            except (_NoRoom, torch.OutOfMemoryError):
                tile = self._shrink(tile, h, w)

    def _tile(self, n: int, h: int, w: int) -> int:
        if self._budget is None:  # measured once, before our own contexts hold memory
            self._budget = _memory_budget(self.device) / SLOTS
        tile = self.fixed_tile or tile_side(self._budget, self._bytes_per_px, n, h, w)
        return min(tile, self._tile_cap or tile)

    def _shrink(self, tile: int, h: int, w: int) -> int:
        smaller = smaller_tile(tile, h, w)
        if smaller is None:
            raise VidscaleError(f"TensorRT: no engine fits on {self.device} even with {tile} px "
                                "tiles (TensorRT's log above says why)")
        log.warning("TensorRT: out of memory: retrying with %d px tiles", smaller)
        self._release()
        self._tile_cap = smaller  # builds take minutes: never retry the size that failed
        return smaller

    def _infer(self, x: torch.Tensor, ready: torch.cuda.Event) -> torch.Tensor:
        h, w = x.shape[-2:]
        slot = self._slots[self._turn]
        self._turn = (self._turn + 1) % len(self._slots)
        with torch.cuda.stream(slot.stream):
            slot.stream.wait_event(ready)
            x.record_stream(slot.stream)  # read here; keeps its memory until this stream is done
            padded = _pad_to_requirements(x, self.requirements).float().contiguous()
            out = self._execute(slot, padded)
        consumer = torch.cuda.current_stream(self.device)
        consumer.wait_stream(slot.stream)
        out.record_stream(consumer)
        return out[..., : h * self.scale, : w * self.scale]

    def _execute(self, slot: _Slot, x: torch.Tensor) -> torch.Tensor:
        ctx = slot.context
        if not ctx.set_input_shape(INPUT, tuple(x.shape)):
            raise VidscaleError(f"TensorRT: input {tuple(x.shape)} is outside {self._profile}")
        out = torch.empty(tuple(ctx.get_tensor_shape(OUTPUT)), device=self.device)
        ctx.set_tensor_address(INPUT, x.data_ptr())
        ctx.set_tensor_address(OUTPUT, out.data_ptr())
        if not ctx.execute_async_v3(slot.stream.cuda_stream):
            raise VidscaleError(f"TensorRT: inference failed for {self.model_name} (see the log)")
        return out

    # -- building and loading ---------------------------------------------------------

    def _prepare(self, profile: ShapeProfile) -> None:
        if profile == self._profile and self._slots:
            return
        self._release()
        with torch.cuda.device(self.device):
            engine = self._load(profile)
            contexts = [engine.create_execution_context() for _ in range(SLOTS)]
        if any(c is None for c in contexts):
            raise _NoRoom
        self._engine, self._profile = engine, profile
        self._slots = [_Slot(c, self.device) for c in contexts]

    def _release(self) -> None:
        torch.cuda.synchronize(self.device)  # nothing may still run in the old contexts
        self._slots, self._engine = [], None
        torch.cuda.empty_cache()  # TensorRT allocates outside torch's cache: hand memory back

    def _load(self, profile: ShapeProfile) -> object:
        key = self._plan_key(profile)
        plan = cache.load(key)
        engine = self._runtime.deserialize_cuda_engine(plan) if plan else None
        if engine is None:  # not cached, or stale/corrupt: build it
            log.info("TensorRT: building %s for %s (minutes, once)", self.model_name, profile.describe())
            plan = self._build(profile)
            cache.store(key, plan)
            engine = self._runtime.deserialize_cuda_engine(plan)
        if engine is None:
            raise VidscaleError(f"TensorRT: cannot load the engine built for {self.model_name}")
        return engine

    def _plan_key(self, profile: ShapeProfile) -> cache.CacheKey:
        return cache.plan_key(
            self.model_name, self.model_sha256, profile.describe(), self.precision,
            torch.cuda.get_device_name(self.device), self.trt.__version__,
            opset=DEFAULT_OPSET, torch=torch.__version__)

    def _build(self, profile: ShapeProfile) -> bytes:
        trt = self.trt
        builder = trt.Builder(self._logger)
        # Strongly typed: precision comes from the ONNX graph (required in TensorRT 11).
        network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
        parser = trt.OnnxParser(network, self._logger)
        if not parser.parse(self._onnx_bytes()):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise ModelError(f"TensorRT cannot parse {self.model_name}'s ONNX export: {errors}")
        config = builder.create_builder_config()
        trt_profile = builder.create_optimization_profile()
        trt_profile.set_shape(INPUT, *profile.nchw())
        config.add_optimization_profile(trt_profile)
        timing = self._timing_key()
        config.set_timing_cache(config.create_timing_cache(cache.load(timing) or b""), False)
        plan = builder.build_serialized_network(network, config)
        if plan is None:  # TensorRT logs why; running out of memory is the usual cause
            raise _NoRoom
        cache.store(timing, bytes(config.get_timing_cache().serialize()))
        return bytes(plan)

    def _timing_key(self) -> cache.CacheKey:
        return cache.timing_key(torch.cuda.get_device_name(self.device), self.trt.__version__)

    def _onnx_bytes(self) -> bytes:
        with tempfile.TemporaryDirectory(prefix="vidscale-onnx-") as tmp:
            path = Path(tmp) / "model.onnx"
            export_descriptor(self.desc, path, DEFAULT_OPSET, fp16=self.precision == "fp16")
            return path.read_bytes()
