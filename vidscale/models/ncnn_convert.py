"""Turn an ncnn super-resolution graph into a state dict spandrel loads.

Each supported architecture is recognised by the layer types in the graph
and its convolutions are mapped, in topological order, onto the key names
that spandrel's own architecture (SPAN, Compact, ESRGAN) expects. There is
then one loading path for built-in models, ncnn imports and user files.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import torch

from vidscale.errors import ModelError
from vidscale.models.ncnn import Layer, read_ncnn

StateDict = dict[str, torch.Tensor]

# spandrel's SPAN hard-codes its input normalisation; an ncnn SPAN must match it.
SPAN_RGB_MEAN = (0.4488, 0.4371, 0.4040)
SPAN_IMG_RANGE = 255.0


def _conv_tensors(layer: Layer, in_ch: int) -> tuple[torch.Tensor, torch.Tensor]:
    out_ch, k = int(layer.p(0)), int(layer.p(1))
    stride, dilation = int(layer.p(3, 1)), int(layer.p(2, 1))
    if stride != 1 or dilation != 1 or int(layer.p(7, 1)) != 1:
        raise ModelError(f"ncnn layer {layer.name}: strided, dilated or grouped conv unsupported")
    w = layer.weights["weight"]
    if w.size != out_ch * in_ch * k * k:
        raise ModelError(f"ncnn layer {layer.name}: weight size does not match its shape")
    bias = layer.weights.get("bias", np.zeros(out_ch, np.float32))
    return torch.from_numpy(w.reshape(out_ch, in_ch, k, k).copy()), torch.from_numpy(bias.copy())


def _convs_with_inputs(layers: list[Layer]) -> list[tuple[Layer, int]]:
    """Each Convolution with its input channel count (derived from weight size)."""
    out = []
    for layer in layers:
        if layer.type != "Convolution":
            continue
        out_ch, k = int(layer.p(0)), int(layer.p(1))
        if out_ch <= 0 or k <= 0 or layer.weights["weight"].size % (out_ch * k * k):
            raise ModelError(f"ncnn layer {layer.name}: inconsistent convolution shape")
        out.append((layer, layer.weights["weight"].size // (out_ch * k * k)))
    return out


def _pixel_shuffle_factor(layers: list[Layer]) -> int:
    factors = [int(l.p(0)) for l in layers if l.type == "PixelShuffle"]
    if len(factors) != 1:
        raise ModelError("expected exactly one PixelShuffle layer")
    return factors[0]


def _fused_conv3xc(prefix: str, w: torch.Tensor, b: torch.Tensor) -> StateDict:
    """Spandrel's SPAN rebuilds each re-parameterised conv from its training
    branches on every forward, so the branches are set to reproduce `w`, `b`
    exactly: identity 1x1 convs around a 3x3 holding `w`, and a zero skip."""
    c_out, c_in = w.shape[:2]
    conv1 = torch.zeros(2 * c_in, c_in, 1, 1)
    conv1[:c_in, :, 0, 0] = torch.eye(c_in)
    conv2 = torch.zeros(2 * c_out, 2 * c_in, 3, 3)
    conv2[:c_out, :c_in] = w
    bias2 = torch.zeros(2 * c_out)
    bias2[:c_out] = b
    conv3 = torch.zeros(c_out, 2 * c_out, 1, 1)
    conv3[:, :c_out, 0, 0] = torch.eye(c_out)
    return {
        f"{prefix}.sk.weight": torch.zeros(c_out, c_in, 1, 1),
        f"{prefix}.sk.bias": torch.zeros(c_out),
        f"{prefix}.conv.0.weight": conv1,
        f"{prefix}.conv.0.bias": torch.zeros(2 * c_in),
        f"{prefix}.conv.1.weight": conv2,
        f"{prefix}.conv.1.bias": bias2,
        f"{prefix}.conv.2.weight": conv3,
        f"{prefix}.conv.2.bias": torch.zeros(c_out),
        f"{prefix}.eval_conv.weight": w.clone(),
        f"{prefix}.eval_conv.bias": b.clone(),
    }


def _span(layers: list[Layer]) -> StateDict:
    convs = _convs_with_inputs(layers)
    one_by_one = [c for c in convs if int(c[0].p(1)) == 1]
    if len(convs) != 22 or len(one_by_one) != 1:
        raise ModelError(f"SPAN graph has {len(convs)} convolutions, expected 22")
    cat = one_by_one[0]
    up = convs[-1]
    chain = [c for c in convs if c is not cat and c is not up]
    names = ["conv_1"] + [f"block_{b}.c{i}_r" for b in range(1, 7) for i in (1, 2, 3)] + ["conv_2"]
    sd: StateDict = {}
    for name, (layer, in_ch) in zip(names, chain):
        sd.update(_fused_conv3xc(name, *_conv_tensors(layer, in_ch)))
    sd["conv_cat.weight"], sd["conv_cat.bias"] = _conv_tensors(*cat)
    sd["upsampler.0.weight"], sd["upsampler.0.bias"] = _conv_tensors(*up)
    means = [l for l in layers if l.type == "MemoryData"]
    if not means:
        sd["no_norm"] = torch.zeros(1)
        return sd
    mean = means[0].weights["data"]
    scales = [float(l.p(2)) for l in layers if l.type == "BinaryOp" and int(l.p(0)) == 2 and l.p(1)]
    if not np.allclose(mean, SPAN_RGB_MEAN, atol=1e-4) or scales[:1] != [SPAN_IMG_RANGE]:
        raise ModelError("SPAN graph normalises its input differently from spandrel's SPAN")
    return sd


def _compact(layers: list[Layer]) -> StateDict:
    convs = _convs_with_inputs(layers)
    prelus = [l for l in layers if l.type == "PReLU"]
    if len(prelus) != len(convs) - 1:
        raise ModelError("Compact graph: expected a PReLU after every convolution but the last")
    sd: StateDict = {}
    for i, (layer, in_ch) in enumerate(convs):
        sd[f"body.{2 * i}.weight"], sd[f"body.{2 * i}.bias"] = _conv_tensors(layer, in_ch)
        if i < len(prelus):
            sd[f"body.{2 * i + 1}.weight"] = torch.from_numpy(prelus[i].weights["slope"].copy())
    return sd


def _esrgan(layers: list[Layer]) -> StateDict:
    convs = _convs_with_inputs(layers)
    n_up = sum(1 for l in layers if l.type == "Interp")
    n_blocks, rest = divmod(len(convs) - 4 - n_up, 15)
    if rest or n_blocks < 1 or n_up not in (1, 2):
        raise ModelError(f"ESRGAN graph has {len(convs)} convolutions: not an RRDB network")
    names = ["conv_first"]
    names += [f"body.{b}.rdb{r}.conv{c}" for b in range(n_blocks) for r in (1, 2, 3) for c in range(1, 6)]
    names += ["conv_body"] + [f"conv_up{i + 1}" for i in range(n_up)] + ["conv_hr", "conv_last"]
    sd: StateDict = {}
    for name, (layer, in_ch) in zip(names, convs):
        sd[f"{name}.weight"], sd[f"{name}.bias"] = _conv_tensors(layer, in_ch)
    return sd


def detect_arch(layers: list[Layer]) -> str:
    kinds = Counter(l.type for l in layers)
    if kinds["Sigmoid"] and kinds["Swish"] and kinds["PixelShuffle"] == 1:
        return "SPAN"
    if kinds["PReLU"] and kinds["PixelShuffle"] == 1:
        return "Compact"
    if kinds["Eltwise"] and kinds["Concat"] and kinds["Interp"]:
        return "ESRGAN"
    raise ModelError("ncnn graph is not a supported architecture (SPAN, Compact or ESRGAN)")


def ncnn_to_state_dict(param_path: Path, bin_path: Path) -> tuple[StateDict, str]:
    """Read an ncnn pair and return (state dict for spandrel, architecture name)."""
    layers = read_ncnn(param_path, bin_path)
    arch = detect_arch(layers)
    if arch != "ESRGAN":
        _pixel_shuffle_factor(layers)
    sd = {"SPAN": _span, "Compact": _compact, "ESRGAN": _esrgan}[arch](layers)
    return sd, arch
