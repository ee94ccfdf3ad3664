"""onnxruntime as the CPU engine for the networks it runs faster (engine/onnx_engine.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vidscale.engine import backend, cache, onnx_engine
from vidscale.engine.backend import make_engine
from vidscale.engine.onnx_engine import OnnxEngine
from vidscale.engine.torch_engine import TorchEngine
from vidscale.media.image import read_image
from vidscale.models import zoo
from vidscale.models.loading import load_descriptor
from vidscale.upscaler import Upscaler, to_tensor

pytest.importorskip("onnxruntime")
CPU = torch.device("cpu")


def _frame() -> torch.Tensor:
    rgb = read_image(Path(__file__).resolve().parent.parent / "samples" / "bunny.png")
    return to_tensor(rgb[40:104, 60:156, :3].copy())  # 96x64 of a real frame


def test_animevideo_runs_through_onnxruntime_and_matches_pytorch() -> None:
    info = zoo.builtins()["animevideo-x4"]
    engine = make_engine(info, "cpu", CPU)
    assert isinstance(engine, OnnxEngine)
    x = _frame()
    reference = TorchEngine(load_descriptor(info.path), CPU)(x)
    out = engine(x)
    assert out.shape == reference.shape == (1, 3, 256, 384)
    assert float((out.clamp(0, 1) - reference.clamp(0, 1)).abs().max()) <= 1 / 255


def test_tiled_onnx_run_matches_untiled() -> None:
    desc = load_descriptor(zoo.builtins()["animevideo-x4"].path)
    x = _frame()
    whole = OnnxEngine.for_network(desc, "animevideo-x4", "sha")(x)
    tiled = OnnxEngine.for_network(desc, "animevideo-x4", "sha", tile=64)(x)  # two tiles across
    assert float((whole - tiled).abs().max()) <= 1 / 255


def test_the_export_is_made_once_and_kept_in_the_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    info = zoo.builtins()["animevideo-x4"]
    exports = []
    real_export = onnx_engine.export_descriptor
    monkeypatch.setattr(onnx_engine, "export_descriptor", lambda *a, **k: exports.append(a) or real_export(*a, **k))
    key = cache.export_key(info.name, cache.file_sha256(info.path), onnx_engine.DEFAULT_OPSET)
    cache.path_for(key).unlink(missing_ok=True)
    first = make_engine(info, "cpu", CPU)
    second = make_engine(info, "cpu", CPU)
    assert len(exports) == 1 and cache.path_for(key).is_file()
    assert cache.path_for(key).is_relative_to(cache.cache_dir() / "onnx")
    x = _frame()
    assert torch.equal(first(x), second(x))


def test_falls_back_to_pytorch_without_onnxruntime(monkeypatch: pytest.MonkeyPatch) -> None:
    info = zoo.builtins()["animevideo-x4"]
    monkeypatch.setattr(onnx_engine, "onnxruntime_available", lambda: False)
    assert isinstance(make_engine(info, "cpu", CPU), TorchEngine)


def test_backend_torch_and_networks_it_does_not_help_stay_on_pytorch() -> None:
    assert isinstance(Upscaler("animevideo-x4", backend="torch")._engine(zoo.builtins()["animevideo-x4"]),
                      TorchEngine)
    assert isinstance(make_engine(zoo.builtins()["span-x2"], "cpu", CPU), TorchEngine)
    assert backend.pick_backend("torch", "cpu") == "cpu"
