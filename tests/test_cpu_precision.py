"""bf16 on CPUs that have it, for the built-ins measured to keep their picture (engine/cpu_features.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.conftest import need_shared
from vidscale.engine import backend, cache, cpu_features, openvino_builtin
from vidscale.engine.cpu_features import cpu_precision
from vidscale.engine.onnx_engine import OnnxEngine
from vidscale.engine.onnx_export import DEFAULT_OPSET
from vidscale.engine.openvino_builtin import openvino_ready
from vidscale.engine.torch_engine import TorchEngine
from vidscale.errors import UsageError
from vidscale.media.image import read_image
from vidscale.models import zoo
from vidscale.upscaler import Upscaler, to_tensor

CPU = torch.device("cpu")
ZEN4 = frozenset({"avx2", "avx512f", "avx512_bf16", "avx512_vnni"})
SKYLAKE = frozenset({"avx2", "avx512f"})  # AVX-512 without bf16: it would be emulated, slower than fp32
needs_openvino = pytest.mark.skipif(not openvino_ready(), reason="needs the openvino extra")


@pytest.fixture
def flags(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    def fake(found: frozenset[str]) -> None:
        monkeypatch.setattr(cpu_features, "cpu_flags", lambda: found)
    return fake


def bf16_builtin() -> zoo.ModelInfo:
    """A built-in whose measured CPU precision is bf16 (the manifest's choice)."""
    chosen = [m for m in zoo.builtins().values() if m.cpu_precision == "bf16"]
    assert chosen, "no built-in takes bf16 on the CPU"
    return min(chosen, key=lambda m: m.params or 0)


def test_auto_takes_bf16_only_where_the_cpu_has_it_and_the_model_keeps_its_picture(flags) -> None:  # type: ignore[no-untyped-def]
    flags(ZEN4)
    assert cpu_precision("auto", "bf16") == "bf16"
    assert cpu_precision(None, "bf16") == "bf16"
    assert cpu_precision("auto", "fp32") == "fp32"  # e.g. SPAN: bf16 breaks its ill-conditioned pixels
    assert cpu_precision("fp32", "bf16") == "fp32"  # the old path, on request
    flags(SKYLAKE)
    assert cpu_precision("auto", "bf16") == "fp32"
    flags(frozenset({"amx_bf16", "amx_tile"}))
    assert cpu_precision("auto", "bf16") == "bf16"


def test_bf16_without_hardware_and_fp16_on_the_cpu_are_refused(flags) -> None:  # type: ignore[no-untyped-def]
    flags(SKYLAKE)
    with pytest.raises(UsageError, match="needs native bf16"):
        cpu_precision("bf16")
    with pytest.raises(UsageError, match="needs a CUDA GPU"):
        cpu_precision("fp16")
    flags(ZEN4)
    assert cpu_precision("bf16") == "bf16"


def test_the_manifest_names_only_known_cpu_precisions() -> None:
    manifest = json.loads((zoo.engines_dir() / "manifest.json").read_text())
    assert {m.get("cpu_precision", "fp32") for m in manifest["models"]} <= set(cpu_features.CPU_PRECISIONS)
    assert zoo.builtins()["span-x2"].cpu_precision == "fp32"  # measured: bf16 destroys its output


@needs_openvino
def test_a_bf16_builtin_runs_on_openvino_and_without_it_on_pytorch(flags, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    info = bf16_builtin()
    flags(ZEN4)
    engine = backend.make_engine(info, "cpu", CPU)
    assert isinstance(engine, OnnxEngine) and engine.precision == "bf16" and engine.runtime == "openvino"
    key = cache.export_key(info.name, cache.file_sha256(info.path), DEFAULT_OPSET)  # type: ignore[arg-type]
    assert cache.path_for(key).is_file()  # exported once, read from the cache after
    assert isinstance(backend.make_engine(info, "cpu", CPU, precision="fp32"), TorchEngine)
    assert isinstance(backend.make_engine(info, "cpu", CPU, onnx=False), TorchEngine)  # --backend torch
    monkeypatch.setattr(openvino_builtin, "openvino_ready", lambda: False)
    torch_bf16 = backend.make_engine(info, "cpu", CPU)
    assert isinstance(torch_bf16, TorchEngine) and torch_bf16.dtype == torch.bfloat16
    flags(SKYLAKE)
    fallback = backend.make_engine(info, "cpu", CPU)
    assert isinstance(fallback, TorchEngine) and fallback.dtype == torch.float32


@needs_openvino
def test_bf16_keeps_the_default_models_picture_on_a_real_photo(flags) -> None:  # type: ignore[no-untyped-def]
    """realesrgan-x4plus in bf16 on OpenVINO against float32 on a real photo's crop."""
    photo = read_image(need_shared("realesrgan_inputs", "OST_009.png"))[100:148, 300:364]
    flags(ZEN4)
    assert zoo.builtins()["realesrgan-x4plus"].cpu_precision == "bf16"
    x, size = to_tensor(photo), (48 * 4, 64 * 4)
    fp32 = Upscaler("realesrgan-x4plus", "cpu", precision="fp32").upscale(x, size)
    bf16 = Upscaler("realesrgan-x4plus", "cpu").upscale(x, size)
    diff = (bf16 - fp32).abs() * 255
    # measured on this crop: well under these bounds; a wrong conversion or layout is tens of levels
    assert float(diff.mean()) < 1.0 and float(diff.max()) < 24
    assert float(np.percentile(diff.numpy(), 99)) < 6


@needs_openvino
def test_a_cancel_stops_openvino_while_it_computes(flags) -> None:  # type: ignore[no-untyped-def]
    """One OpenVINO call of a whole frame takes seconds: a cancel is looked for while it runs."""
    from vidscale.engine.watch import between_tiles

    flags(ZEN4)
    engine = backend.make_engine(zoo.builtins()["realesrgan-x4plus"], "cpu", CPU)
    assert isinstance(engine, OnnxEngine)
    calls = []

    class Stop(Exception):
        pass

    def check() -> None:
        calls.append(1)
        raise Stop

    x = torch.rand(1, 3, 96, 96)
    with between_tiles(check), pytest.raises(Stop):
        engine(x)
    assert calls == [1]  # looked for while the call ran, which then ended the frame
    fresh = Upscaler("realesrgan-x4plus", "cpu", precision="bf16")._engine(zoo.builtins()["realesrgan-x4plus"])
    assert torch.equal(engine(x), fresh(x))  # the engine works as before after a cancel


def test_real_cugan_computes_bf16_in_pytorch_not_from_a_one_size_export(flags) -> None:  # type: ignore[no-untyped-def]
    info = zoo.builtins()["realcugan-x2-conservative"]
    assert info.cpu_precision == "bf16"
    flags(ZEN4)
    engine = backend.make_engine(info, "cpu", CPU)
    assert isinstance(engine, TorchEngine) and engine.dtype == torch.bfloat16
    flags(SKYLAKE)
    assert backend.make_engine(info, "cpu", CPU).dtype == torch.float32
