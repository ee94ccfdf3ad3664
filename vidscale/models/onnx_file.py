"""ONNX model files that users bring: checked, then probed for what they do.

An ONNX file is a graph of standard operators and its weights: nothing in it
runs as Python, so it is safe to load. It is refused when its weights live in
separate files (an external-data path could name any file on the disk), when
neither runtime has a kernel for one of its operators, or when it is not an RGB
image-to-image network. The graph is taken to work as `vidscale models export`
writes them and as most published SR exports do: NCHW RGB in [0, 1] in and
out, float32 or float16. What the header does not say (the scale, the size
multiple a U-Net needs) is found by running it on small inputs.

Graphs run on OpenVINO where it is installed (the `openvino` extra): on our
exports of the built-ins at 640x480 it took 0.45-0.79x onnxruntime's time
(benchmarks/results/2026-12-02-cpu-runtimes-640-quiet.md). Else, and for a
graph OpenVINO cannot read or compile, onnxruntime runs it.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from vidscale.errors import FIRST_LINE_LIMIT, ModelError, UsageError, first_line

log = logging.getLogger(__name__)

ONNX_SUFFIX = ".onnx"
MAX_SCALE = 16
_MAX_BYTES = 2**31 - 1  # protobuf's own limit for one message
# Probe sizes: the first of these size multiples whose probe runs is the one the
# graph needs (1: any size). Heights and widths differ, so a transposed result shows.
_MULTIPLES = (1, 8, 16, 64)
_PROBE_SIDE = 33
_FLOAT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}
_POLL_MS = 50  # how often a cancel is looked for (and progress told) while OpenVINO computes


def is_onnx(path: Path | None) -> bool:
    return path is not None and path.suffix.lower() == ONNX_SUFFIX


@dataclass(frozen=True)
class OnnxModel:
    """A checked ONNX file: its graph, how to feed it, and what it does."""

    path: Path
    graph: bytes
    input: str
    input_dtype: type[np.generic]
    fixed_size: tuple[int, int] | None  # (height, width) when the graph takes only that size
    fixed_batch: int | None  # frames per call when the graph fixes it (nearly always 1)
    widest: int  # most output channels of any convolution, for the memory estimate
    scale: int = 0
    multiple_of: int = 1

    @property
    def name(self) -> str:
        return self.path.name


def read_onnx(path: Path) -> OnnxModel:
    """The file's graph, checked: its input, output and weights (not yet its scale: `probe`)."""
    onnx = _import("onnx")
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    if path.stat().st_size > _MAX_BYTES:
        raise ModelError(f"{path}: over 2 GiB, more than one ONNX file can hold")
    data = path.read_bytes()
    try:
        model = onnx.load_model_from_string(data)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise ModelError(f"{path}: not a readable ONNX file ({first_line(exc)})") from None
    graph = model.graph
    if any(_is_external(t) for t in graph.initializer):
        raise ModelError(f"{path}: its weights are in separate files (external data), which "
                         "vidscale does not read; save the model with its weights inside")
    weights = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in weights]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise ModelError(f"{path}: expected one input and one output image, found "
                         f"{len(inputs)} inputs and {len(graph.output)} outputs")
    dims = _dims(inputs[0])
    if len(dims) != 4 or dims[1] not in (3, None):
        raise ModelError(f"{path}: the input is {_shape_text(dims)}, not an RGB image batch (N, 3, H, W)")
    elem = inputs[0].type.tensor_type.elem_type
    dtype = {onnx.TensorProto.FLOAT: np.float32, onnx.TensorProto.FLOAT16: np.float16}.get(elem)
    if dtype is None:
        raise ModelError(f"{path}: the input is {onnx.TensorProto.DataType.Name(elem).lower()}, "
                         "not float32 or float16")
    fixed = (dims[2], dims[3]) if dims[2] and dims[3] else None
    widest = max((t.dims[0] for t in graph.initializer if len(t.dims) == 4), default=64)
    return OnnxModel(path, data, inputs[0].name, dtype, fixed, dims[0], int(widest))


def openvino_installed() -> bool:
    """Without importing it (its libraries take a while to load)."""
    return importlib.util.find_spec("openvino") is not None


def import_openvino() -> Any:
    """OpenVINO without its telemetry: `import openvino` sends a usage event to Google Analytics
    from a forked process unless the user opted out (and the fork, from a process with threads,
    has hung a test run at exit). Without the module, OpenVINO uses its own no-op stand-in."""
    sys.modules.setdefault("openvino_telemetry", None)  # type: ignore[arg-type]
    import openvino

    return openvino


def session(model: OnnxModel, threads: int, runtime: str = "auto", precision: str = "fp32",
            compiled_cache: Path | None = None) -> Any:
    """A CPU session for the graph with onnxruntime's `run(None, feeds)`: OpenVINO's where it is
    installed and takes the graph (`runtime` "auto"), else onnxruntime's. `precision` "bf16" has
    OpenVINO compute float32 graphs in bf16 (the caller checks the CPU has it)."""
    if runtime in ("auto", "openvino") and openvino_installed():
        try:
            return OpenVinoSession(model, threads, precision, compiled_cache)
        except ModelError as exc:
            if runtime == "openvino" or importlib.util.find_spec("onnxruntime") is None:
                raise
            log.debug("%s; running it on onnxruntime", exc)
    return _onnxruntime_session(model, threads)


class OpenVinoSession:
    """A graph compiled by OpenVINO for the CPU, with any input size its graph allows."""

    runtime = "openvino"

    def __init__(self, model: OnnxModel, threads: int, precision: str = "fp32", compiled_cache: Path | None = None):
        ov = import_openvino()
        from openvino import properties
        from openvino.properties import hint, intel_cpu

        config = {
            properties.inference_num_threads(): threads,
            # Always said: its default on CPUs with bf16 is bf16, which moved the RRDB's output
            # by 31/255; vidscale takes bf16 only for the built-ins measured to keep the picture.
            hint.inference_precision(): ov.Type.bf16 if precision == "bf16" else ov.Type.f32,
            hint.enable_cpu_pinning(): False,  # PyTorch's threads share these cores (resizes, chains)
            intel_cpu.denormals_optimization(): True,  # flushed to zero, as TorchEngine does
        }
        core = ov.Core()
        if compiled_cache is not None:  # OpenVINO keys its compiled blobs by graph, device and settings
            core.set_property({"CACHE_DIR": str(compiled_cache)})
        try:
            graph = core.read_model(model.graph)
            self._compiled = core.compile_model(graph, "CPU", config)
            self._left: list[Any] = []  # infer requests cancelled while they ran
        except Exception as exc:  # OpenVINO raises RuntimeError and its own types for bad graphs
            raise ModelError(f"{model.path}: OpenVINO cannot run it ({_openvino_reason(exc)})") from None

    def run(self, _outputs: None, feeds: dict[str, np.ndarray],
            check: Callable[[], None] | None = None) -> list[np.ndarray]:
        """The output; `check` is called every 50 ms while OpenVINO computes, and an exception it
        raises (a cancel) stops the computation there."""
        for left in self._left:  # a cancelled call runs on: OpenVINO's CPU plugin cannot stop one
            left.wait()
        self._left.clear()
        if check is None:
            return [self._compiled(feeds)[0]]  # a copy: the request's own buffer is reused next call
        request = self._compiled.create_infer_request()
        request.start_async(feeds)
        while not request.wait_for(_POLL_MS):
            try:
                check()
            except BaseException:
                self._left.append(request)  # waited for by the next call, not by the one cancelling
                raise
        return [request.get_output_tensor(0).data.copy()]


def _openvino_reason(exc: BaseException) -> str:
    """The line of an OpenVINO error that says what is wrong: its first lines name source files."""
    noise = ("Exception from", "Check '", "Summary", "To facilitate", "FrontEnd API failed")
    lines = [ln.strip().lstrip("- ") for ln in str(exc).splitlines()]
    said = [ln for ln in lines if ln and not ln.startswith(noise)]
    return said[-1][:FIRST_LINE_LIMIT] if said else first_line(exc)


def _onnxruntime_session(model: OnnxModel, threads: int) -> Any:
    """An onnxruntime CPU session for the graph; operators it lacks are a ModelError."""
    ort = _import("onnxruntime")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # its warnings are for the graph's author, not our user
    options.add_session_config_entry("session.set_denormal_as_zero", "1")  # as TorchEngine flushes them
    try:
        return ort.InferenceSession(model.graph, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for bad graphs
        raise ModelError(f"{model.path}: onnxruntime cannot run it ({first_line(exc)})") from None


def probe(model: OnnxModel, sess: Any) -> OnnxModel:
    """`model` with its scale and size multiple, found by running it on small inputs."""
    candidates = [(1, model.fixed_size)] if model.fixed_size else \
        [(m, (_round_up(_PROBE_SIDE, m), _round_up(_PROBE_SIDE, m) + m)) for m in _MULTIPLES]
    failure = "no output"
    for multiple, (h, w) in candidates:
        x = np.random.default_rng(0).random((model.fixed_batch or 1, 3, h, w)).astype(model.input_dtype)
        try:
            (y,) = sess.run(None, {model.input: x})
        except Exception as exc:  # a size the graph cannot take: try the next multiple
            failure = first_line(exc)
            continue
        scale = _scale_of(model.path, x.shape, np.shape(y))
        if not np.isfinite(np.asarray(y, np.float32)).all():
            raise ModelError(f"{model.path}: gives non-finite numbers for an ordinary image")
        return replace(model, scale=scale, multiple_of=multiple)
    raise ModelError(f"{model.path}: did not run on a small RGB image ({failure})")


def _scale_of(path: Path, shape_in: tuple[int, ...], shape_out: tuple[int, ...]) -> int:
    n, _, h, w = shape_in
    if len(shape_out) != 4 or shape_out[0] != n or shape_out[1] != 3:
        raise ModelError(f"{path}: gives {_shape_text(list(shape_out))} for a {n}x3x{h}x{w} input, "
                         "not an RGB image")
    sh, sw = shape_out[2] / h, shape_out[3] / w
    if sh != sw or sh != int(sh) or not 1 <= sh <= MAX_SCALE:
        raise ModelError(f"{path}: turns {w}x{h} into {shape_out[3]}x{shape_out[2]}, "
                         f"not a whole scale from 1 to {MAX_SCALE}")
    return int(sh)


def _dims(value_info: Any) -> list[int | None]:
    """A value's shape; None for a named (dynamic) dimension."""
    shape = value_info.type.tensor_type.shape
    return [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in shape.dim]


def _is_external(tensor: Any) -> bool:
    return tensor.data_location == 1  # TensorProto.EXTERNAL


def _shape_text(dims: list[int | None]) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in dims) + ")"


def _round_up(n: int, multiple: int) -> int:
    return math.ceil(n / multiple) * multiple


def _import(name: str) -> Any:
    try:
        return __import__(name)
    except ImportError:
        raise UsageError("ONNX model files need onnx and a runtime: pip install 'vidscale[openvino]' "
                         "(or 'vidscale[cpu]', onnxruntime alone)") from None


def checked(path: Path, threads: int = 1) -> OnnxModel:
    """Read, open and probe a file: what `models import` and `models` need to know of it."""
    model = read_onnx(path)
    return probe(model, session(model, threads))


def parameter_count(model: OnnxModel) -> int:
    onnx = _import("onnx")
    return sum(math.prod(t.dims) for t in onnx.load_model_from_string(model.graph).graph.initializer)
