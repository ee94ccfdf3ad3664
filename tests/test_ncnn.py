"""The ncnn reader and importer on hand-made graphs and malformed files."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from vidscale.errors import ModelError
from vidscale.models.loading import load_descriptor
from vidscale.models.ncnn import FP16_TAG, read_ncnn


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
    ncnn = pytest.importorskip("ncnn")
    net = ncnn.Net()
    net.opt.use_vulkan_compute = False
    net.opt.use_fp16_storage = net.opt.use_fp16_arithmetic = net.opt.use_fp16_packed = False
    net.load_param(str(param))
    net.load_model(str(param.with_suffix(".bin")))
    ex = net.create_extractor()
    arr = np.ascontiguousarray(chw)  # the Mat borrows this memory: keep it alive
    ex.input("data", ncnn.Mat(arr))
    _, out = ex.extract("output")
    return np.array(out).copy()


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
