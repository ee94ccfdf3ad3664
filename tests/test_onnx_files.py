"""`-m model.onnx`: a user's ONNX file runs as it is, on OpenVINO where installed, else onnxruntime
(models/onnx_file.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from tests.test_cli import one_line_error, run
from vidscale.engine.backend import make_engine
from vidscale.engine.onnx_engine import OnnxEngine
from vidscale.errors import ModelError, UsageError
from vidscale.media.image import read_image, write_image
from vidscale.models import onnx_file, zoo

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
CPU = torch.device("cpu")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the exporter tests use on purpose


class Pointwise(nn.Module):
    """Nearest x2 then a 1x1 conv: each output pixel depends on one input pixel, so tiling is exact."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.eye(3)[:, :, None, None] * 0.5)
            self.conv.bias.fill_(0.25)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(nn.functional.interpolate(x, scale_factor=2, mode="nearest"))


class NeedsMultipleOf8(nn.Module):
    """x + the 8x8 block means: the shapes only agree when height and width divide by 8."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + nn.functional.interpolate(nn.functional.avg_pool2d(x, 8), scale_factor=8.0)


def _export(module: nn.Module, path: Path, shape: tuple[int, int, int, int], dynamic: bool) -> Path:
    axes = {"x": {0: "n", 2: "h", 3: "w"}, "y": {0: "n", 2: "h2", 3: "w2"}} if dynamic else None
    torch.onnx.export(module.eval(), (torch.rand(*shape),), str(path), dynamo=False, opset_version=17,
                      input_names=["x"], output_names=["y"], dynamic_axes=axes)
    return path


def _photo(h: int, w: int) -> np.ndarray:
    rgb = read_image(Path(__file__).resolve().parent.parent / "samples" / "bunny.png")
    return np.ascontiguousarray(rgb[100:100 + h, 200:200 + w, :3])


@pytest.fixture(scope="module")
def span_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from vidscale.engine.onnx_export import export_onnx

    return export_onnx("span-x2", tmp_path_factory.mktemp("onnx") / "span.onnx")


def test_exported_model_runs_from_the_cli_and_matches_pytorch(tmp_path: Path, span_onnx: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "in.png"
    write_image(src, _photo(40, 56))
    code, _, err = run(capsys, src, tmp_path / "onnx.png", "-m", span_onnx)  # its own scale: x2
    assert code == 0, err
    code, _, err = run(capsys, src, tmp_path / "torch.png", "-m", "span-x2", "--backend", "torch")
    assert code == 0, err
    a, b = read_image(tmp_path / "onnx.png"), read_image(tmp_path / "torch.png")
    assert a.shape == b.shape == (80, 112, 3)
    assert int(np.abs(a.astype(int) - b.astype(int)).max()) <= 1


def test_a_fixed_size_graph_is_fed_tiles_of_its_size(tmp_path: Path) -> None:
    path = _export(Pointwise(), tmp_path / "fixed.onnx", (1, 3, 16, 16), dynamic=False)
    engine = OnnxEngine.for_file(path)
    assert engine.scale == 2 and engine.fixed_tile == 16 and engine.model.fixed_size == (16, 16)
    x = torch.rand(1, 3, 37, 23)  # tiles, and a remainder padded up to 16x16
    with torch.no_grad():
        expected = Pointwise()(x)
    assert float((engine(x) - expected).abs().max()) < 1e-5


def test_the_size_multiple_a_graph_needs_is_found_and_padded_to(tmp_path: Path) -> None:
    path = _export(NeedsMultipleOf8(), tmp_path / "pool.onnx", (1, 3, 32, 32), dynamic=True)
    engine = OnnxEngine.for_file(path)
    assert engine.scale == 1 and engine.model.multiple_of == 8
    x = torch.rand(1, 3, 30, 45)
    assert engine(x).shape == (1, 3, 30, 45)
    x = torch.rand(1, 3, 40, 64)
    whole = engine(x)
    engine.fixed_tile = 36  # tiles start on the 8 px blocks: each tile's block means are the frame's
    assert float((engine(x) - whole).abs().max()) < 1e-5


def test_user_onnx_model_is_imported_listed_and_used_by_name(tmp_path: Path, span_onnx: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "models", "import", span_onnx, "--name", "myspan")
    assert code == 0, err
    assert "ONNX graph x2" in out and (zoo.user_model_dir() / "myspan.onnx").is_file()
    code, out, _ = run(capsys, "models")
    assert any(line.startswith("myspan") and "ONNX graph" in line and "x2" in line for line in out.splitlines())
    assert isinstance(make_engine(zoo.resolve("myspan"), "cpu", CPU), OnnxEngine)
    code, _, err = run(capsys, "models", "import", span_onnx, "--name", "myspan")
    assert code == 2 and "--overwrite" in one_line_error(err)


def test_onnx_files_refuse_other_backends_and_precisions(span_onnx: Path) -> None:
    info = zoo.resolve(str(span_onnx))
    with pytest.raises(UsageError, match="not --backend torch"):
        make_engine(info, "cpu", CPU, onnx=False)
    with pytest.raises(UsageError, match="run on the CPU"):
        make_engine(info, "cuda", torch.device("cuda"))
    with pytest.raises(UsageError, match="precision"):
        make_engine(info, "cpu", CPU, precision="fp16")


def _graph(tmp_path: Path, name: str, node: object, inputs: list, outputs: list, initializers: list = ()) -> Path:
    graph = onnx.helper.make_graph([node], "g", inputs, outputs, list(initializers))
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    path = tmp_path / name
    path.write_bytes(model.SerializeToString())
    return path


def _image(name: str, channels: int | str = 3) -> object:
    return onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, ["n", channels, "h", "w"])


@pytest.mark.parametrize("case", ["garbage", "gray", "custom-op", "external", "int-input", "shrinks"])
def test_bad_onnx_files_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str) -> None:
    helper = onnx.helper
    if case == "garbage":
        path = tmp_path / "garbage.onnx"
        path.write_bytes(b"\x08\x07\x12\x05hello" + bytes(range(256)) * 4)
        why = "not a readable ONNX file"
    elif case == "gray":
        path = _graph(tmp_path, "gray.onnx", helper.make_node("Identity", ["x"], ["y"]), [_image("x", 1)], [_image("y", 1)])
        why = "not an RGB image batch"
    elif case == "custom-op":
        node = helper.make_node("Sharpen", ["x"], ["y"], domain="com.example.custom")
        path = _graph(tmp_path, "custom.onnx", node, [_image("x")], [_image("y")])
        model = onnx.load(str(path))
        model.opset_import.append(helper.make_opsetid("com.example.custom", 1))
        path.write_bytes(model.SerializeToString())
        why = "onnxruntime cannot run it"
    elif case == "external":
        weight = helper.make_tensor("w", onnx.TensorProto.FLOAT, [1], [1.0])
        weight.data_location = onnx.TensorProto.EXTERNAL
        weight.ClearField("float_data")
        weight.external_data.add(key="location", value="/etc/passwd")
        path = _graph(tmp_path, "external.onnx", helper.make_node("Mul", ["x", "w"], ["y"]),
                      [_image("x")], [_image("y")], [weight])
        why = "external data"
    elif case == "int-input":
        value = helper.make_tensor_value_info("x", onnx.TensorProto.INT32, ["n", 3, "h", "w"])
        path = _graph(tmp_path, "int.onnx", helper.make_node("Identity", ["x"], ["y"]), [value], [value])
        why = "not float32 or float16"
    else:  # a 2x downscale is not an upscaler's output
        node = helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[2, 2], strides=[2, 2])
        path = _graph(tmp_path, "shrink.onnx", node, [_image("x")], [_image("y")])
        why = "not a whole scale"
    with pytest.raises(ModelError, match=why):
        OnnxEngine.for_file(path)
    src = tmp_path / "in.png"
    write_image(src, _photo(16, 16))
    code, _, err = run(capsys, src, tmp_path / "out.png", "-m", path)
    assert code != 0 and why in one_line_error(err)
    assert not (tmp_path / "out.png").exists()


def _without(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    """Imports of `modules` fail, as where they are not installed."""
    import builtins

    real_import = builtins.__import__

    def missing(name: str, *args: object, **kwargs: object) -> object:
        if name.partition(".")[0] in modules:
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", missing)
    if "openvino" in modules:
        monkeypatch.setattr(onnx_file, "openvino_installed", lambda: False)


def test_without_a_runtime_an_onnx_file_says_what_to_install(span_onnx: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    _without(monkeypatch, "onnxruntime", "openvino")
    with pytest.raises(UsageError, match=r"pip install 'vidscale\[openvino\]'"):
        OnnxEngine.for_file(span_onnx)


ov = pytest.importorskip("openvino")


def _run(engine: OnnxEngine, h: int = 40, w: int = 56) -> torch.Tensor:
    from vidscale.upscaler import to_tensor

    return engine(to_tensor(_photo(h, w))).clamp(0, 1)


def test_openvino_runs_onnx_files_where_installed_and_matches_onnxruntime(span_onnx: Path) -> None:
    fast = OnnxEngine.for_file(span_onnx)
    assert fast.runtime == "openvino" and fast.scale == 2
    # float32 even where the CPU has bf16 (OpenVINO's default there, which wrecks SPAN's output)
    assert fast.session._compiled.get_property("INFERENCE_PRECISION_HINT") == ov.Type.f32
    plain = OnnxEngine(onnx_file.read_onnx(span_onnx), fast.requirements, fast._bytes_per_px, fast.overlap)
    plain.session = onnx_file.session(plain.model, 1, runtime="onnxruntime")
    assert plain.runtime == "onnxruntime"
    a, b = _run(fast), _run(plain)
    assert a.shape == (1, 3, 80, 112)
    assert float((a - b).abs().max()) * 255 < 0.5
    assert not torch.equal(_run(fast, 24, 40)[..., :48, :80], a[..., :48, :80])  # new input, new output


def test_onnx_files_fall_back_to_onnxruntime_without_openvino(span_onnx: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    expected = _run(OnnxEngine.for_file(span_onnx))
    _without(monkeypatch, "openvino")
    engine = OnnxEngine.for_file(span_onnx)
    assert engine.runtime == "onnxruntime"
    assert float((_run(engine) - expected).abs().max()) * 255 < 0.5


def test_a_graph_openvino_cannot_compile_runs_on_onnxruntime(span_onnx: Path, monkeypatch: pytest.MonkeyPatch,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("Exception from src/inference/src/cpp/core.cpp:105:\n"
                           "Check 'false' failed at src/plugins/intel_cpu/src/node.cpp:1:\nunsupported operation\n\n")

    monkeypatch.setattr(ov.Core, "compile_model", refuse)
    with pytest.raises(ModelError, match=r"OpenVINO cannot run it \(unsupported operation\)$"):
        onnx_file.session(onnx_file.read_onnx(span_onnx), 1, runtime="openvino")
    with caplog.at_level("DEBUG", logger="vidscale.models.onnx_file"):
        engine = OnnxEngine.for_file(span_onnx)
    assert engine.runtime == "onnxruntime" and engine.scale == 2
    assert "running it on onnxruntime" in caplog.text


def test_the_plan_names_the_runtime(tmp_path: Path, span_onnx: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "in.png"
    write_image(src, _photo(16, 16))
    code, out, err = run(capsys, src, tmp_path / "out.png", "-m", span_onnx, "--dry-run")
    assert code == 0, err
    assert "backend cpu (openvino)" in out + err
    assert not (tmp_path / "out.png").exists()


def test_without_onnxruntime_openvino_says_why_it_cannot_run_a_graph(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    node = onnx.helper.make_node("Sharpen", ["x"], ["y"], domain="com.example.custom")
    path = _graph(tmp_path, "custom.onnx", node, [_image("x")], [_image("y")])
    model = onnx.load(str(path))
    model.opset_import.append(onnx.helper.make_opsetid("com.example.custom", 1))
    path.write_bytes(model.SerializeToString())
    real_find = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "onnxruntime" else real_find(name, *a))
    with pytest.raises(ModelError, match=r"OpenVINO cannot run it \(No conversion rule .*Sharpen\)$"):
        OnnxEngine.for_file(path)


def test_openvino_is_loaded_without_its_telemetry() -> None:
    """`import openvino` would send a usage event from a forked process; vidscale loads it without."""
    import subprocess
    import sys

    code = ("import sys; from vidscale.models.onnx_file import import_openvino; ov = import_openvino(); "
            "ov.Core(); print(sys.modules.get('openvino_telemetry'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "None"
