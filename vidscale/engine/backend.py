"""Which engine runs a network (`--backend auto|tensorrt|cuda|cpu|torch`).

`auto` prefers TensorRT (when it imports and a GPU is present), then PyTorch
on CUDA, then PyTorch on the CPU (ONNX files: OpenVINO or onnxruntime);
`torch` is PyTorch on whatever `--device` picks. `pick_backend` names the concrete backend, `backend_device` the torch
device it runs on, and `make_engine` builds the engine.
"""

from __future__ import annotations

import importlib.util
from typing import Protocol

import spandrel
import torch

from vidscale.engine.cpu_features import cpu_precision
from vidscale.engine.device import pick_device
from vidscale.engine.onnx_engine import OnnxEngine, check_file_backend
from vidscale.engine.openvino_builtin import builtin_engine, runs_on_openvino
from vidscale.engine.torch_engine import TorchEngine
from vidscale.errors import UsageError
from vidscale.models import zoo
from vidscale.models.loading import load_descriptor
from vidscale.models.onnx_file import is_onnx

BACKENDS = ("auto", "tensorrt", "cuda", "cpu", "torch")


class Engine(Protocol):
    scale: int

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...


def cuda_available() -> bool:
    return torch.cuda.is_available()


def tensorrt_available() -> bool:
    """Installed, without importing it (that loads CUDA libraries and takes a while)."""
    return importlib.util.find_spec("tensorrt") is not None


def pick_backend(name: str | None, device: str | torch.device | None = None) -> str:
    """'tensorrt', 'cuda' or 'cpu' for a `--backend` and `--device` pair."""
    backend = (name or "auto").strip().lower()
    if backend not in BACKENDS:
        raise UsageError(f"--backend {name!r}: expected one of {', '.join(BACKENDS)}")
    wants = _device_type(device)
    if backend in ("auto", "torch"):
        if wants == "cpu" or (wants is None and not cuda_available()):
            return "cpu"
        return "tensorrt" if backend == "auto" and tensorrt_available() else "cuda"
    if wants is not None and wants != ("cpu" if backend == "cpu" else "cuda"):
        raise UsageError(f"--backend {backend} does not run on --device {device}")
    if backend == "tensorrt" and not tensorrt_available():
        from vidscale.engine.tensorrt_engine import MISSING
        raise UsageError(MISSING)
    if backend != "cpu" and not cuda_available():
        raise UsageError(f"--backend {backend}: no CUDA GPU is available")
    return backend


def backend_device(backend: str, device: str | torch.device | None = None) -> torch.device:
    """The torch device a concrete backend runs on (`cuda:N` from `--device` is kept)."""
    if backend == "cpu":
        return torch.device("cpu")
    if _device_type(device) == "cuda":
        return pick_device(device)
    return pick_device("cuda")  # says plainly when there is no GPU


def make_engine(model: zoo.ModelInfo | spandrel.ImageModelDescriptor, backend: str,
                device: torch.device, precision: str | None = None, tile: int | None = None,
                overlap: int | None = None, onnx: bool = True) -> Engine:
    """A `TorchEngine`, `OnnxEngine` (an ONNX file) or `TensorRTEngine` for a model file or a
    loaded model; `onnx` is false for `--backend torch`, which refuses ONNX files."""
    if isinstance(model, zoo.ModelInfo) and is_onnx(model.path):
        if not onnx:
            raise UsageError(f"{model.name}: ONNX files run on OpenVINO or onnxruntime, not --backend torch")
        check_file_backend(backend, precision, model.name)
        return OnnxEngine.for_file(model.path, tile=tile, overlap=overlap)  # type: ignore[arg-type]
    desc = model if isinstance(model, spandrel.ImageModelDescriptor) else _load(model)
    if backend == "cpu":
        return _cpu_engine(model, desc, precision, tile, overlap, onnx)
    if backend != "tensorrt":
        return TorchEngine(desc, device, precision=precision, tile=tile, overlap=overlap)
    from vidscale.engine import cache
    from vidscale.engine.tensorrt_engine import TensorRTEngine

    if isinstance(model, zoo.ModelInfo):
        name, digest = model.name, cache.file_sha256(model.path)  # type: ignore[arg-type]
    else:
        name, digest = "model", cache.state_dict_sha256(desc.model.state_dict())
    return TensorRTEngine(desc, device, precision=precision, tile=tile, overlap=overlap,
                          model_name=name, model_sha256=digest)


def _cpu_engine(model: zoo.ModelInfo | spandrel.ImageModelDescriptor, desc: spandrel.ImageModelDescriptor,
                precision: str | None, tile: int | None, overlap: int | None, openvino: bool) -> Engine:
    """A built-in in its measured CPU precision (bf16 where native and kept: on OpenVINO where
    installed, else PyTorch); anything else in PyTorch, fp32 unless bf16 was asked for."""
    measured = model.cpu_precision if isinstance(model, zoo.ModelInfo) else "fp32"
    chosen = cpu_precision(precision, measured)
    if chosen == "bf16" and openvino and isinstance(model, zoo.ModelInfo) and runs_on_openvino(desc):
        return builtin_engine(model, desc, tile, overlap)
    return TorchEngine(desc, torch.device("cpu"), precision=chosen, tile=tile, overlap=overlap)


def _load(info: zoo.ModelInfo) -> spandrel.ImageModelDescriptor:
    if not info.is_network or info.path is None:
        raise UsageError(f"{info.name} is a resizer, not a network")
    return load_descriptor(info.path)


def _device_type(device: str | torch.device | None) -> str | None:
    """'cpu' or 'cuda' when `--device` names one, None for auto."""
    if isinstance(device, torch.device):
        return device.type
    spec = (device or "auto").strip().lower()
    if spec == "auto":
        return None
    if spec == "cpu" or spec.startswith("cuda"):
        return spec[:4]
    return pick_device(spec).type  # raises its usual message for anything else
