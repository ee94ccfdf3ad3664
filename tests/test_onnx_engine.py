"""The CPU engine for built-ins is PyTorch; onnxruntime runs only ONNX files (engine/onnx_engine.py)."""

from __future__ import annotations

import pytest
import torch

from vidscale.engine import backend, cpu_features
from vidscale.engine.backend import make_engine
from vidscale.engine.torch_engine import TorchEngine
from vidscale.models import zoo
from vidscale.upscaler import Upscaler

CPU = torch.device("cpu")


@pytest.mark.parametrize("name", ["animevideo-x4", "span-x2"])
def test_built_ins_run_on_pytorch_on_the_cpu(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # in float32 onnxruntime was slower at a 640x480 frame for every built-in measured (cpu_runtimes.py);
    # bf16 built-ins go to OpenVINO only on CPUs with native bf16 (tests/test_cpu_precision.py)
    monkeypatch.setattr(cpu_features, "cpu_flags", lambda: frozenset({"avx2", "avx512f"}))
    assert isinstance(make_engine(zoo.builtins()[name], "cpu", CPU), TorchEngine)
    assert isinstance(Upscaler(name, backend="torch")._engine(zoo.builtins()[name]), TorchEngine)
    assert backend.pick_backend("torch", "cpu") == "cpu"


def test_the_cpu_engine_flushes_denormal_floats() -> None:
    torch.set_flush_denormal(False)
    make_engine(zoo.builtins()["span-x2"], "cpu", CPU)
    tiny = torch.tensor([1e-39], dtype=torch.float32)  # below float32's smallest normal number
    assert float(tiny * 1.0) == 0.0
