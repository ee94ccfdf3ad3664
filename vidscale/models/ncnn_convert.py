"""Turn an ncnn super-resolution graph into a state dict spandrel loads.

Each supported architecture is recognised by the layer types in the graph
and its convolutions are mapped, in topological order, onto the key names
that spandrel's own architecture (SPAN, Compact, ESRGAN, RealCUGAN) expects.
There is then one loading path for built-in models, ncnn imports and user files.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vidscale.errors import ModelError
from vidscale.models.ncnn import Layer, io_blobs, read_ncnn

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


# --- Real-CUGAN ------------------------------------------------------------
# The ncnn graphs hold exactly the convolutions of spandrel's UpCunet, in its
# module order, unpadded like spandrel's; the input padding, and pro's range
# change, are not in the graph (spandrel's forward does both). Every weight
# layer's geometry and activation is checked against the module it fills, so
# a graph of another shape is refused rather than loaded wrong.

NO_ACT, RELU, LEAKY, SIGMOID = 0, 1, 2, 4  # ncnn activation_type (param 9)
LEAKY_SLOPE = 0.1
CUGAN_CROPS = (4, 4, 16, 20)  # skip-connection crops, in graph order; x4 adds 1
PRO_DIR = "models-pro"  # realcugan-ncnn-vulkan tells pro models by this folder name


@dataclass(frozen=True)
class _Expect:
    key: str  # spandrel module path
    type: str  # ncnn layer type
    kernel: int
    stride: int = 1
    pad: int = 0
    act: int = NO_ACT


def _unet_conv(prefix: str, se: bool) -> list[_Expect]:
    convs = [_Expect(f"{prefix}.conv.0", "Convolution", 3, act=LEAKY),
             _Expect(f"{prefix}.conv.2", "Convolution", 3, act=LEAKY)]
    if se:  # SEBlock: global mean -> 1x1 conv, ReLU -> 1x1 conv, sigmoid
        convs += [_Expect(f"{prefix}.seblock.conv1", "InnerProduct", 1, act=RELU),
                  _Expect(f"{prefix}.seblock.conv2", "InnerProduct", 1, act=SIGMOID)]
    return convs


def _down(key: str) -> _Expect:
    return _Expect(key, "Convolution", 2, stride=2, act=LEAKY)


def _up(key: str) -> _Expect:
    return _Expect(key, "Deconvolution", 2, stride=2, act=LEAKY)


def _cugan_layout(scale: int) -> list[_Expect]:
    """spandrel's UpCunet{2,3,4}x weight modules in registration order."""
    kernel, stride, pad = (5, 3, 2) if scale == 3 else (4, 2, 3)
    unet1 = [*_unet_conv("unet1.conv1", False), _down("unet1.conv1_down"),
             *_unet_conv("unet1.conv2", True), _up("unet1.conv2_up"),
             _Expect("unet1.conv3", "Convolution", 3, act=LEAKY),
             _Expect("unet1.conv_bottom", "Deconvolution", kernel, stride, pad)]
    unet2 = [*_unet_conv("unet2.conv1", False), _down("unet2.conv1_down"),
             *_unet_conv("unet2.conv2", True), _down("unet2.conv2_down"),
             *_unet_conv("unet2.conv3", True), _up("unet2.conv3_up"),
             *_unet_conv("unet2.conv4", True), _up("unet2.conv4_up"),
             _Expect("unet2.conv5", "Convolution", 3, act=LEAKY),
             _Expect("unet2.conv_bottom", "Convolution", 3)]
    final = [_Expect("conv_final", "Convolution", 3)] if scale == 4 else []
    return unet1 + unet2 + final


def _realcugan_scale(layers: list[Layer]) -> int:
    deconvs = [l for l in layers if l.type == "Deconvolution"]
    shuffles = sum(1 for l in layers if l.type == "PixelShuffle")
    if len(deconvs) != 4 or shuffles > 1:
        raise ModelError("Real-CUGAN graph: expected 4 deconvolutions and at most one PixelShuffle")
    stride = int(deconvs[1].p(3, 1))  # unet1.conv_bottom: x2 upsampling, or x3
    if shuffles:
        if stride != 2:
            raise ModelError("Real-CUGAN graph: a PixelShuffle after a x3 UNet is not UpCunet4x")
        return 4
    return stride


def _conv_geometry(layer: Layer) -> tuple[int, ...]:
    """(kernel w, h, stride w, h, pad left, top, right, bottom), with ncnn's defaults."""
    kw, sw, pw = int(layer.p(1)), int(layer.p(3, 1)), int(layer.p(4))
    return (kw, int(layer.p(11, kw)), sw, int(layer.p(13, sw)),
            pw, int(layer.p(14, pw)), int(layer.p(15, pw)), int(layer.p(16, pw)))


def _is_plain_conv(layer: Layer) -> bool:
    """No dilation, no groups, and for a deconvolution no output padding or size."""
    plain = (int(layer.p(2, 1)), int(layer.p(12, 1)), int(layer.p(7, 1))) == (1, 1, 1)
    if layer.type == "Deconvolution":
        plain = plain and not any(int(layer.p(k)) for k in (18, 19, 20, 21))
    return plain


def _activation_ok(layer: Layer, want: _Expect) -> bool:
    if int(layer.p(9)) != want.act:
        return False
    return want.act != LEAKY or np.allclose(layer.params.get(10, []), [LEAKY_SLOPE])


def _geometry_error(layer: Layer, want: _Expect) -> str | None:
    """Why `layer` cannot fill the module `want` describes, or None."""
    if layer.type != want.type:
        return f"is {layer.type}, expected {want.type} for {want.key}"
    if layer.type != "InnerProduct":
        expected = (want.kernel,) * 2 + (want.stride,) * 2 + (want.pad,) * 4
        if _conv_geometry(layer) != expected or not _is_plain_conv(layer):
            return f"kernel, stride, padding, dilation or groups do not match {want.key}"
    if "bias" not in layer.weights:
        return f"has no bias, {want.key} has one"
    if not _activation_ok(layer, want):
        return f"activation differs from the one after {want.key}"
    return None


def _cugan_tensor(layer: Layer) -> torch.Tensor:
    """The layer's weight in PyTorch layout. ncnn stores Deconvolution weights
    [out][in][kh][kw] (found against the ncnn package), unflipped; PyTorch's
    ConvTranspose2d wants [in][out][kh][kw]. InnerProduct is [out][in]."""
    w = layer.weights["weight"]
    out_ch = int(layer.p(0))
    k = 1 if layer.type == "InnerProduct" else int(layer.p(1))
    t = torch.from_numpy(w.reshape(out_ch, w.size // (out_ch * k * k), k, k).copy())
    return t.transpose(0, 1).contiguous() if layer.type == "Deconvolution" else t


def _check_cugan_plumbing(layers: list[Layer], scale: int) -> None:
    """The weight-less layers that shape the data flow: global average
    pooling for every SE block, and the skip crops spandrel also applies."""
    pools = [l for l in layers if l.type == "Pooling"]
    if not pools or any((int(l.p(0)), int(l.p(4))) != (1, 1) for l in pools):
        raise ModelError("Real-CUGAN graph: SE blocks must use global average pooling")
    crops = [(l.params.get(9), l.params.get(10)) for l in layers if l.type == "Crop"]  # starts, ends
    want = [([float(c)] * 2, [-float(c)] * 2) for c in CUGAN_CROPS + ((1,) if scale == 4 else ())]
    if crops != want:
        raise ModelError(f"Real-CUGAN graph: crops {crops} differ from UpCunet{scale}x's")


def _realcugan(layers: list[Layer], pro: bool) -> StateDict:
    scale = _realcugan_scale(layers)
    _check_cugan_plumbing(layers, scale)
    weighted = [l for l in layers if l.weights]
    layout = _cugan_layout(scale)
    if len(weighted) != len(layout):
        raise ModelError(f"Real-CUGAN graph has {len(weighted)} weight layers, "
                         f"UpCunet{scale}x has {len(layout)}")
    sd: StateDict = {}
    for layer, want in zip(weighted, layout):
        if why := _geometry_error(layer, want):
            raise ModelError(f"ncnn layer {layer.name} {why}")
        sd[f"{want.key}.weight"] = _cugan_tensor(layer)
        sd[f"{want.key}.bias"] = torch.from_numpy(layer.weights["bias"].copy())
    if pro:
        # spandrel's marker: its forward maps the input to [0.15, 0.85] and back, as
        # bilibili's own inference does. (realcugan-ncnn-vulkan skips that mapping,
        # nihui/realcugan-ncnn-vulkan issue #52; these are the upstream weights.)
        sd["pro"] = torch.zeros(1)
    return sd


def detect_arch(layers: list[Layer]) -> str:
    kinds = Counter(l.type for l in layers)
    if kinds["Deconvolution"] and kinds["Crop"]:
        if not kinds["InnerProduct"]:
            raise ModelError("Real-CUGAN without SE blocks (models-nose) is not supported: "
                             "spandrel's RealCUGAN always has them")
        return "RealCUGAN"
    if kinds["Sigmoid"] and kinds["Swish"] and kinds["PixelShuffle"] == 1:
        return "SPAN"
    if kinds["PReLU"] and kinds["PixelShuffle"] == 1:
        return "Compact"
    if kinds["Eltwise"] and kinds["Concat"] and kinds["Interp"]:
        return "ESRGAN"
    raise ModelError("ncnn graph is not a supported architecture (SPAN, Compact, ESRGAN or RealCUGAN)")


def final_resize(layers: list[Layer]) -> float:
    """The factor of a resize that ends the graph, 1.0 if none. Real-ESRGAN's animevideov3
    x2 and x3 files are its x4 network followed by a bicubic resize by 0.5 and 0.75."""
    _, out = io_blobs(layers)
    last = next(l for l in layers if out in l.outputs)
    if last.type != "Interp":
        return 1.0
    height, width = float(last.p(1, 1.0)), float(last.p(2, 1.0))
    if height != width or height <= 0:
        raise ModelError(f"ncnn layer {last.name}: the final resize is not uniform ({height} x {width})")
    return height


def ncnn_to_state_dict(param_path: Path, bin_path: Path, pro: bool | None = None) -> tuple[StateDict, str]:
    """Read an ncnn pair and return (state dict for spandrel, architecture name).

    `pro` marks a Real-CUGAN pro model, whose graph is identical to the
    others'; None infers it from a `models-pro` folder, the layout in which
    realcugan-ncnn-vulkan ships them."""
    layers = read_ncnn(param_path, bin_path)
    arch = detect_arch(layers)
    if arch == "RealCUGAN":
        return _realcugan(layers, PRO_DIR in param_path.parts if pro is None else pro), arch
    if pro:
        raise ModelError(f"{param_path}: only Real-CUGAN models have a pro variant, this is {arch}")
    if arch in ("SPAN", "Compact"):
        _pixel_shuffle_factor(layers)
    sd = {"SPAN": _span, "Compact": _compact, "ESRGAN": _esrgan}[arch](layers)
    return sd, arch
