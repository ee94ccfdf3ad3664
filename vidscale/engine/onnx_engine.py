"""Run a network with onnxruntime on the CPU, where it is clearly faster than PyTorch eager.

The network is exported to ONNX once, in memory (`onnx_export.py`, under a
second for these networks), and run by onnxruntime's CPU provider with as many
threads as torch uses. Which networks run here is measured, not guessed:
`benchmarks/cpu_runtimes.py` (results in benchmarks/results/). The engine takes
and returns what `TorchEngine` does (NCHW float32 RGB in [0, 1]); padding to
the model's size requirements and tiling are the same.

onnxruntime is an optional extra (`pip install 'vidscale[cpu]'`, about 80 MB):
without it, or for a network it does not help, `make_engine` falls back to
`TorchEngine` (`--backend torch` always does).
"""

from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path

import spandrel
import torch

from vidscale.engine.onnx_export import INPUT, export_descriptor
from vidscale.engine.tiling import run_tiled
from vidscale.engine.torch_engine import (
    DEFAULT_OVERLAP,
    OVERLAP_BY_ARCH,
    _activation_bytes_per_pixel,
    _pad_to_requirements,
    fitting_tile,
)

# (architecture id, scale) that run faster here, within 1/255 of PyTorch: see the module docstring.
ONNX_FASTER = {("Compact", 4)}


def onnxruntime_available() -> bool:
    """Installed, without importing it (that takes a while)."""
    return importlib.util.find_spec("onnxruntime") is not None


def prefers_onnx(desc: spandrel.ImageModelDescriptor) -> bool:
    return (desc.architecture.id, desc.scale) in ONNX_FASTER and onnxruntime_available()


class OnnxEngine:
    def __init__(self, desc: spandrel.ImageModelDescriptor, tile: int | None = None,
                 overlap: int | None = None, threads: int | None = None):
        import onnxruntime as ort

        self.scale: int = desc.scale
        self.device = torch.device("cpu")
        self.requirements = desc.size_requirements
        self.fixed_tile = tile
        self.overlap = overlap or OVERLAP_BY_ARCH.get(desc.architecture.id, DEFAULT_OVERLAP)
        self._bytes_per_px = _activation_bytes_per_pixel(desc.model, self.scale, torch.float32,
                                                         desc.architecture.id)
        with tempfile.TemporaryDirectory(prefix="vidscale-onnx-") as tmp:
            graph = export_descriptor(desc, Path(tmp) / "model.onnx").read_bytes()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        tile = self.fixed_tile or fitting_tile(self._bytes_per_px, self.device, n, h, w)
        return run_tiled(self._infer, x, self.scale, tile, self.overlap)

    def _infer(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        padded = _pad_to_requirements(x, self.requirements).to(torch.float32).contiguous()
        (y,) = self.session.run(None, {INPUT: padded.numpy()})
        return torch.from_numpy(y)[..., : h * self.scale, : w * self.scale]
