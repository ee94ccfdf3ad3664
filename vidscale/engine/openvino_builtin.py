"""Built-in networks in bf16 on OpenVINO, on CPUs that compute bf16 natively.

On such a CPU OpenVINO's bf16 convolutions ran the RRDB networks several times as fast as PyTorch's
float32 (benchmarks/results/2026-12-08-cpu-precision.md), where PyTorch's own bf16 gained less. The
network is exported to ONNX once, into the cache under a key of its weights, the opset and the
torch and vidscale versions (`cache.export_key`, like TensorRT's plans); OpenVINO compiles the
export at each start (0.2 s from its own cache of compiled blobs, ~/.cache/vidscale/openvino/; 0.7 s
without). The engine is `OnnxEngine`, tiled and padded as the network needs, its tiles on the
network's grid.
"""

from __future__ import annotations

import importlib.util
import logging
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import spandrel
import torch

from vidscale.engine import cache
from vidscale.engine.onnx_engine import OnnxEngine
from vidscale.engine.onnx_export import DEFAULT_OPSET, INPUT, export_descriptor
from vidscale.engine.tile_grid import tile_grid
from vidscale.engine.torch_engine import DEFAULT_OVERLAP, OVERLAP_BY_ARCH, activation_bytes_per_pixel
from vidscale.models import zoo
from vidscale.models.onnx_file import OnnxModel, openvino_installed, read_onnx

log = logging.getLogger(__name__)


# Networks whose code depends on the input size, so that an export is right at one size only
# (onnx_export refuses them after tracing): they compute bf16 in PyTorch.
NO_EXPORT = frozenset({"RealCUGAN"})


def openvino_ready() -> bool:
    """OpenVINO and the ONNX exporter are installed (the `openvino` extra)."""
    return openvino_installed() and importlib.util.find_spec("onnx") is not None


def runs_on_openvino(desc: spandrel.ImageModelDescriptor) -> bool:
    return desc.architecture.id not in NO_EXPORT and openvino_ready()


def builtin_engine(info: zoo.ModelInfo, desc: spandrel.ImageModelDescriptor, tile: int | None = None,
                   overlap: int | None = None) -> OnnxEngine:
    """`info`'s network computing in bf16 on OpenVINO (the caller checked the CPU has bf16)."""
    arch = desc.architecture.id
    model = replace(_exported(info, desc), scale=desc.scale,
                    multiple_of=max(desc.size_requirements.multiple_of, 1))
    bytes_per_px = activation_bytes_per_pixel(desc.model, desc.scale, torch.float32, arch)
    engine = OnnxEngine(model, desc.size_requirements, bytes_per_px, overlap or OVERLAP_BY_ARCH.get(arch, DEFAULT_OVERLAP),
                        tile, precision="bf16", align=tile_grid(desc), compiled_cache=cache.cache_dir() / "openvino")
    engine(torch.zeros(1, 3, 32, 32))  # warms it up and times a pixel, for progress within the first frame
    return engine


def _exported(info: zoo.ModelInfo, desc: spandrel.ImageModelDescriptor) -> OnnxModel:
    """The network's ONNX export, from the cache or made now (and cached where the cache can be written)."""
    key = cache.export_key(info.name, cache.file_sha256(info.path), DEFAULT_OPSET)  # type: ignore[arg-type]
    path = cache.path_for(key)
    if path.is_file():  # our own export, as `export_descriptor` writes them: not parsed again (0.5 s)
        return OnnxModel(path, path.read_bytes(), INPUT, np.float32, None, None, widest=64)
    log.info("exporting %s for OpenVINO (once)", info.name)
    with tempfile.TemporaryDirectory(prefix="vidscale-export-") as tmp:
        made = export_descriptor(desc, Path(tmp) / "model.onnx")
        model = read_onnx(made)
    stored = cache.store(key, model.graph)
    return replace(model, path=stored) if stored else model
