"""Export a network to ONNX: float32 NCHW RGB in [0, 1], dynamic batch/height/width.

The graph holds the network only: callers pad frames to the model's size
requirements (`TorchEngine` and `TensorRTEngine` both do) and crop the
output. Exports use PyTorch's TorchScript exporter (`dynamo=False`): it
needs no package beyond `onnx` and takes well under a second for these
networks; the torch.export-based exporter needs `onnxscript` and took ~30x
longer here, for the same graph.
"""

from __future__ import annotations

import copy
import types
import warnings
from pathlib import Path

import spandrel
import torch
import torch.nn.functional as F

from vidscale.engine.outputs import image_network
from vidscale.errors import ModelError, UsageError, first_line
from vidscale.media.atomic import atomic_output
from vidscale.models import zoo
from vidscale.models.loading import load_descriptor

INPUT, OUTPUT = "input", "output"
DEFAULT_OPSET = 17  # TensorRT 10's parser and onnxruntime both take it
_TRACE_SIDE = 32
_AXES = {INPUT: {0: "batch", 2: "height", 3: "width"},
         OUTPUT: {0: "batch", 2: "out_height", 3: "out_width"}}


def fold_reparameterized(model: torch.nn.Module) -> torch.nn.Module:
    """Fold re-parameterised blocks (SPAN's Conv3XC) into their `eval_conv`, once.

    Conv3XC recomputes `eval_conv` from its training branches on every
    forward; after folding, forward is that single 3x3 conv (plus the
    block's optional leaky ReLU), so inference skips the recomputation and
    exports hold only the folded convs. Fold in float32, before any cast to
    half, so the folded weights are exact. In place and idempotent; returns `model`.
    """
    for module in model.modules():
        if hasattr(module, "eval_conv") and hasattr(module, "update_params") \
                and not _is_folded(module):
            with torch.no_grad():
                module.update_params()
            # A bound method (not a closure) so deepcopy rebinds it to the copy.
            module.forward = types.MethodType(_folded_forward, module)
    return model


def _is_folded(module: torch.nn.Module) -> bool:
    forward = module.__dict__.get("forward")
    return getattr(forward, "__func__", None) is _folded_forward


def _folded_forward(self: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = self.eval_conv(x)
    return F.leaky_relu(out, negative_slope=0.05) if getattr(self, "has_relu", False) else out


def export_onnx(model: zoo.ModelInfo | Path | str, out: Path, opset: int = DEFAULT_OPSET,
                fp16: bool = False, overwrite: bool = False) -> Path:
    """Export a model (name, ModelInfo or file) to `out`, written atomically."""
    info = model if isinstance(model, zoo.ModelInfo) else zoo.resolve(str(model))
    if not info.is_network or info.path is None:
        raise UsageError(f"{info.name} is a resizer, not a network: nothing to export")
    return export_descriptor(load_descriptor(info.path), Path(out), opset, fp16, overwrite)


def export_descriptor(desc: spandrel.ImageModelDescriptor, out: Path, opset: int = DEFAULT_OPSET,
                      fp16: bool = False, overwrite: bool = False) -> Path:
    """Export a loaded model; `fp16` computes in half inside, with float32 input and output."""
    onnx = _import_onnx()
    if fp16 and not desc.supports_half:
        raise ModelError(f"{desc.architecture.name} does not support fp16")
    # A folded float32 CPU copy: the caller's model is left as it was.
    model = fold_reparameterized(copy.deepcopy(desc.model).to("cpu", torch.float32)).eval()
    network = _ExportWrapper(image_network(model), fp16)
    dummy = torch.rand(1, 3, *_trace_size(desc.size_requirements))
    with atomic_output(out, overwrite=overwrite) as tmp:
        _trace_to_file(network, dummy, tmp, opset, desc.architecture.name)
        onnx.checker.check_model(str(tmp), full_check=True)
    return out


class _ExportWrapper(torch.nn.Module):
    """Keeps the graph's input and output float32 whatever it computes in."""

    def __init__(self, model: torch.nn.Module, fp16: bool):
        super().__init__()
        self.model = model.half() if fp16 else model
        self.fp16 = fp16

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.half()).float() if self.fp16 else self.model(x)


def _trace_to_file(network: torch.nn.Module, dummy: torch.Tensor, path: Path, opset: int,
                   arch: str) -> None:
    with warnings.catch_warnings(record=True) as caught, torch.no_grad():
        warnings.simplefilter("always")
        try:
            torch.onnx.export(network, (dummy,), str(path), dynamo=False, opset_version=opset,
                              input_names=[INPUT], output_names=[OUTPUT], dynamic_axes=_AXES)
        except Exception as exc:  # unsupported operators, opsets... (many exception types)
            raise ModelError(f"{arch}: ONNX export failed ({first_line(exc)})") from exc
    # A tracer warning means Python code depended on a tensor's size or value:
    # the graph would then be right only at the traced size.
    if any(issubclass(w.category, torch.jit.TracerWarning) for w in caught):
        raise ModelError(f"{arch}: the network's code depends on the input size, so its ONNX "
                         "export would only work at one size")


def _trace_size(req: spandrel.SizeRequirements) -> tuple[int, int]:
    m = max(req.multiple_of, 1)
    side = max(-(-_TRACE_SIDE // m) * m, req.minimum)
    return side, side


def _import_onnx():  # type: ignore[no-untyped-def]
    try:
        import onnx
    except ImportError:
        raise UsageError("ONNX export needs the onnx package (pip install onnx)") from None
    return onnx
