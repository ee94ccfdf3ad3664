"""Run a user's ONNX file on the CPU, as it is: OpenVINO where installed, else onnxruntime.

`models/onnx_file.py` checks and probes the file and opens the session; the
engine takes and returns what `TorchEngine` does (NCHW float32 RGB in [0, 1]),
padding and tiling the same way. Built-in networks run here too where the CPU
computes them in bf16 (`engine/openvino_builtin.py`); in float32 they stay on
PyTorch: OpenVINO was at most 1.14x as fast as PyTorch's own best layout for them
at a 640x480 frame, onnxruntime slower (`benchmarks/cpu_runtimes.py`).

OpenVINO is a dependency (it computes the bf16 built-ins); onnxruntime is the
`vidscale[openvino]` / `vidscale[cpu]` extra. An installation without either
(OpenVINO removed by hand) makes an ONNX file a one-line error.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import spandrel
import torch

from vidscale.engine.cpu_memory import keep_freed_memory
from vidscale.engine.tiling import run_tiled
from vidscale.engine.watch import current_check, reached, watched
from vidscale.engine.torch_engine import (
    DEFAULT_OVERLAP,
    _padded_size,
    estimated_bytes_per_pixel,
    fitting_tile,
    pad_to_size,
)
from vidscale.errors import UsageError
from vidscale.models.onnx_file import OnnxModel, probe, read_onnx, session

FILE_PRECISION = "the file's own"


class OnnxEngine:
    """One ONNX graph in a CPU session (OpenVINO's or onnxruntime's), tiled like the other engines."""

    def __init__(self, model: OnnxModel, requirements: spandrel.SizeRequirements, bytes_per_px: int,
                 overlap: int, tile: int | None = None, threads: int | None = None,
                 precision: str = "fp32", align: int | None = None, compiled_cache: Path | None = None):
        keep_freed_memory()  # the conversions around the network reuse one frame's pages for the next
        self.session = session(model, threads or torch.get_num_threads(), precision=precision,
                               compiled_cache=compiled_cache)
        self._bf16 = precision == "bf16" and self.runtime == "openvino"
        self.seconds_per_px: float | None = None  # of the last call: progress within the next
        self._align = align  # where tiles start; None: on the size multiple the graph needs
        self.model = model if model.scale else probe(model, self.session)
        self.scale: int = self.model.scale
        self.device = torch.device("cpu")
        self.requirements = requirements
        fixed = self.model.fixed_size
        self.fixed_tile = min(tile or min(fixed), min(fixed)) if fixed else tile
        self.overlap = overlap
        self._bytes_per_px = bytes_per_px

    @classmethod
    def for_file(cls, path: Path, tile: int | None = None, overlap: int | None = None,
                 threads: int | None = None) -> "OnnxEngine":
        """A user's ONNX file, as it is."""
        model = read_onnx(path)
        engine = cls(model, spandrel.SizeRequirements(), 0, overlap or DEFAULT_OVERLAP, tile, threads)
        engine.requirements = spandrel.SizeRequirements(multiple_of=engine.model.multiple_of)
        engine._bytes_per_px = estimated_bytes_per_pixel(engine.model.widest, engine.scale)
        return engine

    @property
    def runtime(self) -> str:
        return getattr(self.session, "runtime", "onnxruntime")

    @property
    def align(self) -> int:
        """Tiles start on this grid: the network's window grid, else the multiple the graph needs
        (a window inside an ONNX file's graph cannot be read, so its tiles are off that grid)."""
        return self._align or max(self.requirements.multiple_of, 1)

    @property
    def precision(self) -> str:
        if self._bf16:
            return "bf16"
        return "fp16" if self.model.input_dtype == np.float16 else "fp32"

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        tile = self.fixed_tile or self.auto_tile(n, h, w)
        return run_tiled(self._infer, x, self.scale, tile, self.overlap, self.align)

    def auto_tile(self, batch: int, height: int, width: int) -> int:
        return self.fixed_tile or fitting_tile(self._bytes_per_px, self.device, batch, height, width)

    def _infer(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        size = self.model.fixed_size or _padded_size(h, w, self.requirements)
        padded = pad_to_size(x, *size).numpy().astype(self.model.input_dtype, copy=False)
        step = self.model.fixed_batch or len(padded)
        outs = [self._run({self.model.input: padded[i:i + step]}) for i in range(0, len(padded), step)]
        y = torch.from_numpy(outs[0] if len(outs) == 1 else np.concatenate(outs))
        return y[..., : h * self.scale, : w * self.scale].to(torch.float32)


    def _run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """One call of the graph. OpenVINO's is polled while it computes, for a cancel
        (`watch.between_tiles`) and, for a watcher, the fraction done: its elapsed time against
        the time per pixel of the calls before (a graph's layers cannot be watched)."""
        pixels = int(np.prod(next(iter(feeds.values())).shape[-2:]))
        start = time.perf_counter()
        if self.runtime != "openvino" or (current_check() is None and not watched()):
            out = self.session.run(None, feeds)[0]
        else:
            expected = self.seconds_per_px * pixels if self.seconds_per_px else None

            def poll() -> None:
                if expected:
                    reached(min(0.95, (time.perf_counter() - start) / expected), check=False)
                if (check := current_check()) is not None:
                    check()

            out = self.session.run(None, feeds, check=poll)[0]
        self.seconds_per_px = (time.perf_counter() - start) / pixels
        return out


def check_file_backend(backend: str, precision: str | None, name: str) -> None:
    """ONNX files run on the CPU (OpenVINO or onnxruntime), in the precision they were saved in."""
    if backend != "cpu":
        raise UsageError(f"{name}: ONNX files run on the CPU (OpenVINO or onnxruntime); use --device cpu, or give "
                         "the model's .pth or .safetensors to run it on a GPU")
    if (precision or "auto").lower() not in ("auto", "fp32"):
        raise UsageError(f"{name}: an ONNX file runs in {FILE_PRECISION} precision; drop --precision")
