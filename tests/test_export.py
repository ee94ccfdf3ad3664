"""ONNX export: equal to the torch engine through onnxruntime, dynamic shapes, folding."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import spandrel
import torch

from vidscale.engine.onnx_export import export_descriptor, export_onnx, fold_reparameterized
from vidscale.engine.torch_engine import TorchEngine
from vidscale.errors import ModelError, UsageError
from vidscale.models import zoo
from vidscale.models.loading import load_descriptor
from vidscale.upscaler import to_tensor

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

CPU = torch.device("cpu")
# Real picture content: on noise SPAN's output reaches +-150, far outside [0, 1].
SHAPES = [(1, 40, 56), (2, 32, 48), (3, 17, 23)]


def _desc(name: str):  # type: ignore[no-untyped-def]
    return load_descriptor(zoo.builtins()[name].path)


def _batch(bunny: np.ndarray, n: int, h: int, w: int) -> torch.Tensor:
    return torch.cat([to_tensor(bunny[30 * i: 30 * i + h, 50 * i: 50 * i + w]) for i in range(n)])


@pytest.fixture(scope="module")
def folded() -> dict[str, spandrel.ImageModelDescriptor]:
    """Loaded and folded once: SPAN's fold costs seconds on a busy 2-core machine
    (test_fold_keeps_outputs_and_stops_recomputing shows it changes nothing)."""
    descs = {name: _desc(name) for name in ("span-x2", "animevideo-x4")}
    for desc in descs.values():
        fold_reparameterized(desc.model)
    return descs


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory, folded: dict) -> dict[tuple[str, bool], Path]:
    folder = tmp_path_factory.mktemp("onnx")
    return {(name, fp16): export_descriptor(desc, folder / f"{name}-{fp16}.onnx", fp16=fp16)
            for name, desc in folded.items() for fp16 in (False, True)}


@pytest.mark.parametrize("fp16", [False, True], ids=["fp32", "fp16"])
@pytest.mark.parametrize("name", ["span-x2", "animevideo-x4"])
def test_export_matches_torch_engine_at_any_shape(name: str, fp16: bool, bunny: np.ndarray,
                                                  folded: dict, exported: dict) -> None:
    """One file serves several batch sizes and frame sizes (dynamic axes), and agrees
    with the engine within 1/255; fp16 is the graph TensorRT would build from."""
    engine = TorchEngine(folded[name], CPU)
    session = ort.InferenceSession(str(exported[name, fp16]), providers=["CPUExecutionProvider"])
    for n, h, w in SHAPES:
        x = _batch(bunny, n, h, w)
        with torch.inference_mode():
            want = engine(x).numpy()
        got = session.run(["output"], {"input": x.numpy()})[0]
        assert got.shape == (n, 3, h * engine.scale, w * engine.scale)
        assert got.dtype == np.float32
        assert float(np.abs(got - want).max()) <= 1 / 255


def test_export_declares_dynamic_float32_io(exported: dict) -> None:
    model = onnx.load(str(exported["span-x2", True]))
    (inp,), (out,) = model.graph.input, model.graph.output
    assert (inp.name, out.name) == ("input", "output")
    for tensor in (inp, out):
        assert tensor.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert dims == ["batch", 3, "height", "width"]


def test_folded_graph_holds_only_the_inference_convs(exported: dict) -> None:
    model = onnx.load(str(exported["span-x2", False]))
    convs = sum(node.op_type == "Conv" for node in model.graph.node)
    assert convs == 22  # 20 folded Conv3XC + conv_cat + the upsampler's conv


def test_fold_keeps_outputs_and_stops_recomputing(bunny: np.ndarray) -> None:
    desc = _desc("span-x2")
    x = _batch(bunny, 1, 40, 56)
    with torch.inference_mode():
        before = desc.model(x)
        fold_reparameterized(desc.model)
        after = desc.model(x)
    assert float((after - before).abs().max()) <= 1e-5
    # The training branches no longer matter: forward uses the folded conv only,
    # and folding again (export does) leaves the folded weights alone.
    with torch.no_grad():
        for module in desc.model.modules():
            if hasattr(module, "eval_conv"):
                module.conv[1].weight.zero_()
        fold_reparameterized(desc.model)
        with torch.inference_mode():
            assert torch.equal(desc.model(x), after)


def test_export_by_name_is_atomic_and_keeps_existing_files(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "m.onnx"
    assert export_onnx("animevideo-x4", out, opset=18) == out
    assert onnx.load(str(out)).opset_import[0].version == 18
    out.write_bytes(b"keep")
    with pytest.raises(UsageError, match="already exists"):
        export_onnx("animevideo-x4", out)
    assert out.read_bytes() == b"keep"

    def broken(*_args: object, **_kwargs: object) -> None:
        raise onnx.checker.ValidationError("bad graph")

    monkeypatch.setattr(onnx.checker, "check_model", broken)
    with pytest.raises(onnx.checker.ValidationError):
        export_onnx(zoo.builtins()["animevideo-x4"], tmp_path / "new.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_export_refuses_resizers_and_size_dependent_code(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="resizer"):
        export_onnx("bicubic", tmp_path / "b.onnx")

    class HalvesWideInputs(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x[..., : x.shape[-1] // 2] if x.shape[-1] > 16 else x

    desc = SimpleNamespace(model=HalvesWideInputs(), supports_half=True,
                           size_requirements=spandrel.SizeRequirements(),
                           architecture=SimpleNamespace(name="Toy"))
    with pytest.raises(ModelError, match="depends on the input size"):
        export_descriptor(desc, tmp_path / "s.onnx")  # type: ignore[arg-type]
    with pytest.raises(ModelError, match="ONNX export failed"):
        export_descriptor(desc, tmp_path / "s.onnx", opset=1)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_export_without_onnx_is_a_usage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(UsageError, match="needs the onnx package"):
        export_onnx("span-x2", tmp_path / "m.onnx")
