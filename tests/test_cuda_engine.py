"""Precision choice, and the CUDA engine's channels_last + CUDA graphs (GPU tests skip here)."""

from __future__ import annotations

import numpy as np
import pytest
import spandrel
import torch

from vidscale.cli import main
from vidscale.engine import cpu_features
from vidscale.engine.torch_engine import TorchEngine, pick_dtype
from vidscale.errors import ModelError, UsageError
from vidscale.models import zoo
from vidscale.models.loading import load_descriptor
from vidscale.upscaler import to_tensor

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def span() -> spandrel.ImageModelDescriptor:
    return load_descriptor(zoo.builtins()["span-x2"].path)


def test_the_cpu_computes_in_fp32(span: spandrel.ImageModelDescriptor) -> None:
    assert pick_dtype(span, CPU, None) == torch.float32
    assert pick_dtype(span, CPU, "auto") == torch.float32
    assert pick_dtype(span, CPU, "FP32") == torch.float32
    assert TorchEngine(span, CPU).graphs is None  # graphs are a CUDA feature


@pytest.mark.parametrize("precision,why", [("fp16", "needs a CUDA GPU"), ("bf16", "needs native bf16")])
def test_half_precision_on_the_cpu_is_refused_not_ignored(span: spandrel.ImageModelDescriptor, precision: str,
                                                          why: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpu_features, "cpu_flags", lambda: frozenset({"avx2"}))  # bf16 only where native
    with pytest.raises(UsageError, match=why):
        pick_dtype(span, CPU, precision)


def test_unknown_precision(span: spandrel.ImageModelDescriptor) -> None:
    with pytest.raises(UsageError, match="expected one of"):
        pick_dtype(span, CPU, "fp8")


def test_cli_precision_error_is_one_line(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import SAMPLES

    code = main([str(SAMPLES / "bunny.png"), str(tmp_path / "out.png"), "--precision", "fp16", "--device", "cpu"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "fp16" in err
    assert not (tmp_path / "out.png").exists()


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@needs_cuda
def test_model_without_bf16_support_is_a_model_error(span: spandrel.ImageModelDescriptor,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(type(span), "supports_bfloat16", property(lambda self: False))
    with pytest.raises(ModelError, match="bf16"):
        pick_dtype(span, torch.device("cuda"), "bf16")


@needs_cuda
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_graphs_replay_what_eager_computes(span: spandrel.ImageModelDescriptor, bunny: np.ndarray,
                                           precision: str) -> None:
    cuda = torch.device("cuda")
    x = to_tensor(bunny).to(cuda).repeat(2, 1, 1, 1)
    graphed = TorchEngine(span, cuda, precision=precision)
    eager = TorchEngine(span, cuda, precision=precision, graphs=False)
    convs = [p for p in graphed.model.parameters() if p.dim() == 4 and p.shape[1] > 1 and p.shape[-1] > 1]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    assert not convs[0].is_contiguous()  # really the NHWC layout, not a shape where both agree
    first = graphed(x)  # a shape seen once runs eagerly (a photo of its own size)
    assert graphed.graphs is not None and len(graphed.graphs) == 0
    again, third = graphed(x + 0), graphed(x + 0)  # seen again: captured, then replayed
    assert len(graphed.graphs) == 1 and graphed.graphs.eager_runs == 0
    reference = eager(x)
    tolerance = 1 / 255 if precision == "fp16" else 4 / 255
    assert (first - reference).abs().max().item() <= tolerance
    assert (again - reference).abs().max().item() <= tolerance
    assert torch.equal(again, third)  # outputs are copies, not the graph's buffer
    graphed(x[:1])
    short = graphed(x[:1])  # a short last batch, repeated: a second graph
    assert len(graphed.graphs) == 2  # batch 1 may take other cuDNN algorithms: equal within rounding
    assert (short - reference[:1]).abs().max().item() <= tolerance
