"""Reader for ncnn's text `.param` graph and binary `.bin` weights.

Only what super-resolution networks use is understood; anything else is
reported as an error, never guessed. The reader never executes anything
from the files: it parses text and reads numbers.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vidscale.errors import ModelError

PARAM_MAGIC = 7767517
FP16_TAG = 0x01306B47  # tagged fp16 weight blob
FP32_TAG = 0x00000000  # tagged raw fp32 weight blob
MAX_LAYERS = 100_000


@dataclass
class Layer:
    type: str
    name: str
    inputs: list[str]
    outputs: list[str]
    params: dict[int, float | int | list[float]]
    weights: dict[str, np.ndarray] = field(default_factory=dict)

    def p(self, key: int, default: float | int = 0) -> float | int:
        value = self.params.get(key, default)
        if isinstance(value, list):
            raise ModelError(f"ncnn layer {self.name}: param {key} is an array")
        return value


# ncnn stores params as 32-bit ints and floats: anything beyond is not a real model.
_INT32 = range(-2**31, 2**31)
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _parse_value(text: str) -> float | int:
    """One param value; infinities, NaN and numbers past 32 bits are refused (ValueError)."""
    if any(c in text.lower() for c in ".en"):  # "n": nan, inf
        value = float(text)
        if not math.isfinite(value) or abs(value) > _FLOAT32_MAX:
            raise ValueError(f"{text}: not a finite 32-bit float")
        return value
    number = int(text)
    if number not in _INT32:
        raise ValueError(f"{text}: beyond 32 bits")
    return number


def _parse_params(tokens: list[str], where: str) -> dict[int, float | int | list[float]]:
    params: dict[int, float | int | list[float]] = {}
    for tok in tokens:
        key_s, sep, val = tok.partition("=")
        if not sep:
            raise ModelError(f"{where}: malformed parameter {tok!r}")
        try:
            key = int(key_s)
            if key <= -23300:  # array parameter: -23300 - id = count,v1,v2...
                items = val.split(",")
                params[-key - 23300] = [float(_parse_value(v)) for v in items[1:]]
            else:
                params[key] = _parse_value(val)
        except ValueError as exc:
            raise ModelError(f"{where}: malformed parameter {tok!r}") from exc
    return params


def parse_param(path: Path) -> list[Layer]:
    """Parse a text .param file into layers (weights not yet attached)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path}: cannot read ncnn param file ({exc})") from exc
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines or lines[0].strip() != str(PARAM_MAGIC):
        raise ModelError(f"{path}: not an ncnn text .param file (bad magic)")
    try:
        layer_count, _blob_count = (int(v) for v in lines[1].split())
    except (IndexError, ValueError) as exc:
        raise ModelError(f"{path}: malformed layer/blob count line") from exc
    if not 0 < layer_count <= MAX_LAYERS or len(lines) - 2 != layer_count:
        raise ModelError(f"{path}: declares {layer_count} layers but has {len(lines) - 2}")
    layers = []
    for lineno, line in enumerate(lines[2:], start=3):
        where = f"{path}:{lineno}"
        tok = line.split()
        try:
            ltype, name, n_in, n_out = tok[0], tok[1], int(tok[2]), int(tok[3])
        except (IndexError, ValueError) as exc:
            raise ModelError(f"{where}: malformed layer line") from exc
        if len(tok) < 4 + n_in + n_out:
            raise ModelError(f"{where}: layer {name} lists too few blobs")
        inputs = tok[4 : 4 + n_in]
        outputs = tok[4 + n_in : 4 + n_in + n_out]
        params = _parse_params(tok[4 + n_in + n_out :], where)
        layers.append(Layer(ltype, name, inputs, outputs, params))
    return layers


class _BinReader:
    def __init__(self, data: bytes, path: Path):
        self.data, self.pos, self.path = data, 0, path

    def _take(self, nbytes: int) -> bytes:
        if nbytes < 0 or self.pos + nbytes > len(self.data):
            raise ModelError(f"{self.path}: weight file is truncated or does not match the .param")
        chunk = self.data[self.pos : self.pos + nbytes]
        self.pos += nbytes
        return chunk

    def raw_fp32(self, count: int) -> np.ndarray:
        return np.frombuffer(self._take(4 * count), dtype="<f4").astype(np.float32)

    def tagged(self, count: int) -> np.ndarray:
        (tag,) = struct.unpack("<I", self._take(4))
        if tag == FP16_TAG:
            nbytes = 2 * count
            values = np.frombuffer(self._take(nbytes), dtype="<f2").astype(np.float32)
            self._take((4 - nbytes % 4) % 4)  # fp16 blobs are padded to 4 bytes
            return values
        if tag == FP32_TAG:
            return self.raw_fp32(count)
        raise ModelError(f"{self.path}: unsupported weight encoding tag 0x{tag:08x} (quantized?)")


# Layer types that carry no weights and that the supported graphs use. Any other
# type is refused: an unknown layer may own weights, and skipping them would
# shift every later read.
WEIGHTLESS = frozenset({
    "Input", "Split", "Concat", "Eltwise", "BinaryOp", "Interp", "PixelShuffle",
    "Sigmoid", "Swish", "ReLU", "Crop", "Pooling",
})


def _checked_weight_count(layer: Layer, kernel_area: int) -> int:
    """weight_data_size (param 6 or 2), checked to be whole kernels per output
    channel, so that a malformed size is reported instead of misread."""
    count = int(layer.p(2 if layer.type == "InnerProduct" else 6))
    out_ch = int(layer.p(0))
    if out_ch <= 0 or kernel_area <= 0 or count <= 0 or count % (out_ch * kernel_area):
        raise ModelError(f"ncnn layer {layer.name}: weight size {count} does not fit "
                         f"{out_ch} outputs of kernel area {kernel_area}")
    return count


def _kernel_area(layer: Layer) -> int:
    kw = int(layer.p(1))
    return kw * int(layer.p(11, kw))  # kernel_h (11) defaults to kernel_w


DYNAMIC_WEIGHT_KEY = {"Convolution": 19, "Deconvolution": 28}


def _load_conv(layer: Layer, rd: _BinReader) -> None:
    """Convolution and Deconvolution: tagged weights, then fp32 bias if bias_term (5)."""
    if layer.type == "Convolution" and layer.p(8):
        raise ModelError(f"ncnn layer {layer.name}: int8 convolutions are not supported")
    if layer.p(DYNAMIC_WEIGHT_KEY[layer.type]):  # weights come as a second input, not from .bin
        raise ModelError(f"ncnn layer {layer.name}: dynamic-weight convolutions are not supported")
    layer.weights["weight"] = rd.tagged(_checked_weight_count(layer, _kernel_area(layer)))
    if layer.p(5):
        layer.weights["bias"] = rd.raw_fp32(int(layer.p(0)))


def _load_inner_product(layer: Layer, rd: _BinReader) -> None:
    """InnerProduct: tagged [out][in] weights, then fp32 bias if bias_term (1)."""
    if layer.p(8):
        raise ModelError(f"ncnn layer {layer.name}: int8 inner products are not supported")
    layer.weights["weight"] = rd.tagged(_checked_weight_count(layer, 1))
    if layer.p(1):
        layer.weights["bias"] = rd.raw_fp32(int(layer.p(0)))


def _load_weights(layer: Layer, rd: _BinReader) -> None:
    if layer.type in ("Convolution", "Deconvolution"):
        _load_conv(layer, rd)
    elif layer.type == "InnerProduct":
        _load_inner_product(layer, rd)
    elif layer.type == "PReLU":
        layer.weights["slope"] = rd.raw_fp32(int(layer.p(0)))
    elif layer.type == "MemoryData":
        w, h, c = int(layer.p(0)), int(layer.p(1)), int(layer.p(2))
        layer.weights["data"] = rd.raw_fp32(max(w, 1) * max(h, 1) * max(c, 1))
    elif layer.type not in WEIGHTLESS:
        raise ModelError(f"ncnn layer {layer.name}: layer type {layer.type} is not supported")


def io_blobs(layers: list[Layer]) -> tuple[str, str]:
    """(input, output) blob names: the one Input layer's blob, and the one blob
    that is produced but never consumed. Converters name them differently
    (data/output, in0/out0), so callers must not assume either."""
    inputs = [l.outputs[0] for l in layers if l.type == "Input" and l.outputs]
    consumed = {b for l in layers for b in l.inputs}
    outputs = [b for l in layers for b in l.outputs if b not in consumed]
    if len(inputs) != 1 or len(outputs) != 1:
        raise ModelError(f"ncnn graph has {len(inputs)} inputs and {len(outputs)} outputs, expected one each")
    return inputs[0], outputs[0]


def read_ncnn(param_path: Path, bin_path: Path) -> list[Layer]:
    """Parse an ncnn model pair and attach each layer's weights as float32 arrays."""
    layers = parse_param(param_path)
    try:
        data = bin_path.read_bytes()
    except OSError as exc:
        raise ModelError(f"{bin_path}: cannot read ncnn weights ({exc})") from exc
    rd = _BinReader(data, bin_path)
    for layer in layers:
        _load_weights(layer, rd)
        for key, values in layer.weights.items():
            if not np.isfinite(values).all():
                raise ModelError(f"{bin_path}: layer {layer.name} has non-finite {key} values")
    if rd.pos != len(data):
        raise ModelError(f"{bin_path}: {len(data) - rd.pos} unexpected trailing bytes")
    return layers
