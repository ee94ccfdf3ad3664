"""Run a network with onnxruntime on the CPU: a built-in's cached export, or a user's ONNX file.

For the architectures in ONNX_FASTER onnxruntime's CPU provider is clearly
faster than PyTorch eager at the same numbers (measured, not guessed:
`benchmarks/cpu_runtimes.py`, results in benchmarks/results/). Their export
is made once per model file, opset and torch version and kept in the user
cache (`engine/cache.py`), so later runs load it at once. A user's `.onnx`
file runs here as it is (`models/onnx_file.py` checks and probes it). The
engine takes and returns what `TorchEngine` does (NCHW float32 RGB in [0, 1]);
padding to the model's size needs and tiling work the same way.

onnxruntime is an optional extra (`pip install 'vidscale[cpu]'`, about 80 MB):
without it `make_engine` falls back to `TorchEngine` for built-ins (`--backend
torch` always does), and an ONNX file is a one-line error.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np
import spandrel
import torch

from vidscale.engine import cache
from vidscale.engine.cpu_memory import keep_freed_memory
from vidscale.engine.onnx_export import DEFAULT_OPSET, INPUT, export_descriptor
from vidscale.engine.tiling import run_tiled
from vidscale.engine.torch_engine import (
    DEFAULT_OVERLAP,
    OVERLAP_BY_ARCH,
    _activation_bytes_per_pixel,
    _padded_size,
    estimated_bytes_per_pixel,
    fitting_tile,
    pad_to_size,
)
from vidscale.errors import UsageError
from vidscale.models.onnx_file import OnnxModel, onnxruntime_available, probe, read_onnx, session

log = logging.getLogger("vidscale")

# (architecture id, scale) that run faster here, within 1/255 of PyTorch: see the module docstring.
ONNX_FASTER = {("Compact", 4)}
FILE_PRECISION = "the file's own"


def prefers_onnx(desc: spandrel.ImageModelDescriptor) -> bool:
    return (desc.architecture.id, desc.scale) in ONNX_FASTER and onnxruntime_available()


class OnnxEngine:
    """One ONNX graph in an onnxruntime CPU session, tiled like the other engines."""

    def __init__(self, model: OnnxModel, requirements: spandrel.SizeRequirements, bytes_per_px: int,
                 overlap: int, tile: int | None = None, threads: int | None = None):
        keep_freed_memory()  # the conversions around the network reuse one frame's pages for the next
        self.session = session(model, threads or torch.get_num_threads())
        self.model = model if model.scale else probe(model, self.session)
        self.scale: int = self.model.scale
        self.device = torch.device("cpu")
        self.requirements = requirements
        fixed = self.model.fixed_size
        self.fixed_tile = min(tile or min(fixed), min(fixed)) if fixed else tile
        self.overlap = overlap
        self._bytes_per_px = bytes_per_px

    @classmethod
    def for_network(cls, desc: spandrel.ImageModelDescriptor, name: str, sha256: str,
                    tile: int | None = None, overlap: int | None = None,
                    threads: int | None = None) -> "OnnxEngine":
        """A built-in (or any loaded network) through its cached export."""
        graph = OnnxModel(Path(f"{name}.onnx"), cached_export(desc, name, sha256), INPUT, np.float32,
                          fixed_size=None, fixed_batch=None, widest=0, scale=desc.scale)
        arch = desc.architecture.id
        return cls(graph, desc.size_requirements,
                   _activation_bytes_per_pixel(desc.model, desc.scale, torch.float32, arch),
                   overlap or OVERLAP_BY_ARCH.get(arch, DEFAULT_OVERLAP), tile, threads)

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
    def precision(self) -> str:
        return "fp16" if self.model.input_dtype == np.float16 else "fp32"

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        tile = self.fixed_tile or self.auto_tile(n, h, w)
        return run_tiled(self._infer, x, self.scale, tile, self.overlap)

    def auto_tile(self, batch: int, height: int, width: int) -> int:
        return self.fixed_tile or fitting_tile(self._bytes_per_px, self.device, batch, height, width)

    def _infer(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        size = self.model.fixed_size or _padded_size(h, w, self.requirements)
        padded = pad_to_size(x, *size).numpy().astype(self.model.input_dtype, copy=False)
        step = self.model.fixed_batch or len(padded)
        outs = [self.session.run(None, {self.model.input: padded[i:i + step]})[0]
                for i in range(0, len(padded), step)]
        y = torch.from_numpy(outs[0] if len(outs) == 1 else np.concatenate(outs))
        return y[..., : h * self.scale, : w * self.scale].to(torch.float32)


def cached_export(desc: spandrel.ImageModelDescriptor, name: str, sha256: str) -> bytes:
    """The network's ONNX graph: from the cache, else exported once (seconds) and stored."""
    key = cache.export_key(name, sha256, DEFAULT_OPSET)
    if (graph := cache.load(key)) is not None:
        return graph
    log.info("%s: preparing it for onnxruntime (once; kept in %s)", name, cache.path_for(key).parent)
    with tempfile.TemporaryDirectory(prefix="vidscale-onnx-") as tmp:
        graph = export_descriptor(desc, Path(tmp) / "model.onnx").read_bytes()
    try:
        cache.store(key, graph)
    except OSError as exc:  # a read-only or full cache: this run still works
        log.warning("could not keep the ONNX export of %s (%s)", name, exc)
    return graph


def check_file_backend(backend: str, precision: str | None, name: str) -> None:
    """ONNX files run on the CPU through onnxruntime, in the precision they were saved in."""
    if backend != "cpu":
        raise UsageError(f"{name}: ONNX files run on the CPU (onnxruntime); use --device cpu, or give "
                         "the model's .pth or .safetensors to run it on a GPU")
    if (precision or "auto").lower() not in ("auto", "fp32"):
        raise UsageError(f"{name}: an ONNX file runs in {FILE_PRECISION} precision; drop --precision")
