"""Backend choice, the TensorRT plan cache and the TensorRT engine's pure logic.

TensorRT cannot be installed on the CPU machines: the one test that builds an
engine skips unless CUDA and TensorRT are both present.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import types
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import spandrel
import torch

from vidscale.engine import backend, cache
from vidscale.engine.backend import backend_device, make_engine, pick_backend
from vidscale.engine.tensorrt_engine import (
    MIN_TILE,
    MISSING,
    ShapeProfile,
    TensorRTEngine,
    profile_for,
    smaller_tile,
    tile_shape,
    tile_side,
)
from vidscale.engine.torch_engine import TorchEngine
from vidscale.errors import UsageError
from vidscale.models import zoo
from vidscale.models.loading import load_descriptor
from vidscale.upscaler import to_tensor

ANY = spandrel.SizeRequirements()
CPU = torch.device("cpu")


def _machine(monkeypatch: pytest.MonkeyPatch, cuda: bool, trt: bool) -> None:
    monkeypatch.setattr(backend, "cuda_available", lambda: cuda)
    monkeypatch.setattr(backend, "tensorrt_available", lambda: trt)


@pytest.mark.parametrize("cuda,trt,want", [(True, True, "tensorrt"), (True, False, "cuda"),
                                           (False, True, "cpu"), (False, False, "cpu")])
def test_auto_prefers_tensorrt_then_cuda_then_cpu(monkeypatch: pytest.MonkeyPatch, cuda: bool,
                                                   trt: bool, want: str) -> None:
    _machine(monkeypatch, cuda, trt)
    assert pick_backend("auto") == want
    assert pick_backend(None) == want


def test_explicit_backends_and_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    _machine(monkeypatch, cuda=True, trt=True)
    assert pick_backend("auto", "cpu") == "cpu"  # --device cpu wins over auto
    assert pick_backend("torch") == "cuda"
    assert pick_backend("torch", "cpu") == "cpu"
    assert pick_backend("CUDA", "cuda:0") == "cuda"
    assert pick_backend("tensorrt", torch.device("cuda", 0)) == "tensorrt"
    assert pick_backend("cpu") == "cpu"
    for name, device in [("cpu", "cuda"), ("cuda", "cpu"), ("tensorrt", "cpu")]:
        with pytest.raises(UsageError, match="does not run on"):
            pick_backend(name, device)
    with pytest.raises(UsageError, match="expected one of"):
        pick_backend("vulkan")
    assert backend_device("cpu", "auto") == CPU


def test_missing_tensorrt_or_gpu_is_a_clear_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _machine(monkeypatch, cuda=True, trt=False)
    with pytest.raises(UsageError) as err:
        pick_backend("tensorrt")
    assert str(err.value) == MISSING and "pip install 'vidscale[tensorrt]'" in MISSING
    _machine(monkeypatch, cuda=False, trt=True)
    with pytest.raises(UsageError, match="no CUDA GPU"):
        pick_backend("cuda")


def test_engine_without_tensorrt_raises_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import fails as if not installed
    desc = load_descriptor(zoo.builtins()["span-x2"].path)
    with pytest.raises(UsageError) as err:
        TensorRTEngine(desc, torch.device("cuda"), model_name="span-x2", model_sha256="0")
    assert str(err.value) == MISSING
    with pytest.raises(UsageError):
        make_engine(zoo.builtins()["span-x2"], "tensorrt", torch.device("cuda"))


def test_make_engine_torch_backends() -> None:
    engine = make_engine(zoo.builtins()["animevideo-x4"], "cpu", CPU, tile=96, onnx=False)
    assert isinstance(engine, TorchEngine) and engine.scale == 4 and engine.fixed_tile == 96
    desc = load_descriptor(zoo.builtins()["span-x2"].path)
    assert make_engine(desc, "cpu", CPU).scale == 2
    with pytest.raises(UsageError, match="resizer"):
        make_engine(zoo.resolve("lanczos"), "cpu", CPU)


# -- shape profiles and tiles (pure Python) ------------------------------------------


def test_profile_fits_the_job_and_grows_only_when_needed() -> None:
    first = profile_for((4, 1080, 1920), ANY)
    assert first == ShapeProfile(min=(1, 1, 1), opt=(4, 1080, 1920), max=(4, 1080, 1920))
    assert first.covers((1, 1080, 1920))  # a short last batch
    assert profile_for((2, 720, 1280), ANY, first) is first  # smaller frames fit as they are
    grown = profile_for((2, 1200, 1600), ANY, first)
    assert grown.opt == (2, 1200, 1600) and grown.max == (4, 1200, 1920)
    assert grown.covers((4, 1080, 1920)) and grown.covers((2, 1200, 1600))
    assert first.nchw() == ((1, 3, 1, 1), (4, 3, 1080, 1920), (4, 3, 1080, 1920))


def test_tile_shapes_follow_size_requirements() -> None:
    req = spandrel.SizeRequirements(minimum=16, multiple_of=8)
    assert tile_shape(2, 100, 70, 512, req) == (2, 104, 72)  # whole frame, padded
    assert tile_shape(1, 1080, 1920, 300, req) == (1, 304, 304)  # tiled
    assert profile_for((1, 304, 304), req).min == (1, 16, 16)


def test_tile_side_and_shrinking() -> None:
    assert tile_side(1e12, 100, 1, 1080, 1920) == 1920  # fits whole
    side = tile_side(100 * 256 * 256, 100, 1, 1080, 1920)
    assert side == 256
    assert tile_side(1, 100, 1, 1080, 1920) == MIN_TILE
    assert smaller_tile(512, 1080, 1920) == 256
    assert smaller_tile(4000, 300, 200) == 150  # first cut is below the frame
    assert smaller_tile(80, 1080, 1920) == MIN_TILE
    assert smaller_tile(MIN_TILE, 1080, 1920) is None


# -- the plan cache --------------------------------------------------------------


def test_cache_dir_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(cache.ENV_VAR, raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache.cache_dir() == tmp_path / "home" / ".cache" / "vidscale"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_dir() == tmp_path / "xdg" / "vidscale"
    monkeypatch.setenv(cache.ENV_VAR, str(tmp_path / "mine"))
    assert cache.cache_dir() == tmp_path / "mine"


BASE: dict[str, object] = {
    "model_name": "span-x2", "model_sha256": "ab" * 32,
    "profile": {"min": [1, 1, 1], "opt": [4, 1080, 1920], "max": [4, 1080, 1920]},
    "precision": "fp16", "gpu_name": "NVIDIA H100 80GB HBM3", "tensorrt_version": "10.13.0",
}


def test_plan_key_is_deterministic_and_names_the_model() -> None:
    key = cache.plan_key(**BASE)
    reordered = dict(reversed(list(BASE.items())))
    reordered["profile"] = dict(reversed(list(BASE["profile"].items())))  # type: ignore[attr-defined]
    assert cache.plan_key(**reordered) == key
    assert len(key.digest) == 64
    assert key.filename == f"span-x2-{key.digest[:16]}.plan"
    assert cache.make_key("plan", "a/b c", x=1).filename.startswith("a_b_c-")


@pytest.mark.parametrize("field,value", [
    ("model_sha256", "cd" * 32), ("precision", "fp32"), ("gpu_name", "NVIDIA H200"),
    ("tensorrt_version", "10.14.1"),
    ("profile", {"min": [1, 1, 1], "opt": [2, 1080, 1920], "max": [4, 1080, 1920]}),
])
def test_plan_key_changes_with_every_component(field: str, value: object) -> None:
    assert cache.plan_key(**{**BASE, field: value}).digest != cache.plan_key(**BASE).digest


def test_plan_key_changes_with_versions(monkeypatch: pytest.MonkeyPatch) -> None:
    before = cache.plan_key(**BASE)
    assert cache.plan_key(**BASE, torch="2.15.0").digest != before.digest
    monkeypatch.setattr(cache, "__version__", "9.9.9")
    assert cache.plan_key(**BASE).digest != before.digest


def test_store_and_load_with_sidecar(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(cache.ENV_VAR, str(tmp_path))
    key = cache.plan_key(**BASE)
    assert cache.load(key) is None
    path = cache.store(key, b"plan bytes")
    assert path == tmp_path / "tensorrt" / key.filename and cache.load(key) == b"plan bytes"
    side = json.loads(path.with_name(path.name + ".json").read_text())
    assert side["sha256"] == key.digest and side["gpu"] == BASE["gpu_name"]
    assert json.loads(side["profile"])["opt"] == [4, 1080, 1920]
    cache.store(key, b"rebuilt")  # replacing is fine: plans are caches
    assert cache.load(key) == b"rebuilt"
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name, path.name + ".json"]


def test_model_digests(tmp_path: Path) -> None:
    info = zoo.builtins()["span-x2"]
    assert cache.file_sha256(info.path) == cache.file_sha256(info.path)  # type: ignore[arg-type]
    (tmp_path / "m.param").write_bytes(b"graph")
    (tmp_path / "m.bin").write_bytes(b"weights")
    pair = cache.file_sha256(tmp_path / "m.param")
    assert cache.file_sha256(tmp_path / "m.bin") == pair
    (tmp_path / "m.bin").write_bytes(b"other weights")
    assert cache.file_sha256(tmp_path / "m.param") != pair
    state = load_descriptor(info.path).model.state_dict()  # type: ignore[arg-type]
    digest = cache.state_dict_sha256(state)
    assert cache.state_dict_sha256(dict(reversed(list(state.items())))) == digest
    state["conv_cat.bias"] = state["conv_cat.bias"] + 1e-3
    assert cache.state_dict_sha256(state) != digest


# -- on a real GPU with TensorRT only -------------------------------------------------


@pytest.mark.skipif(not torch.cuda.is_available() or importlib.util.find_spec("tensorrt") is None,
                    reason="needs a CUDA GPU and TensorRT")
def test_tensorrt_matches_torch_on_gpu(bunny: np.ndarray, monkeypatch: pytest.MonkeyPatch,
                                       tmp_path: Path) -> None:
    monkeypatch.setenv(cache.ENV_VAR, str(tmp_path))
    gpu = torch.device("cuda")
    info = zoo.builtins()["span-x2"]
    x = torch.cat([to_tensor(bunny[:96, :128]), to_tensor(bunny[60:156, 150:278])]).to(gpu)
    trt_engine = make_engine(info, "tensorrt", gpu)
    want = make_engine(info, "cuda", gpu)(x)
    got = trt_engine(x)
    assert got.shape == want.shape
    assert float((got - want).abs().max()) <= 2 / 255
    assert len(list((tmp_path / "tensorrt").glob("span-x2-*.plan"))) == 1
    again = make_engine(info, "tensorrt", gpu)(x[:1])  # from the cached plan, a short batch
    assert float((again - got[:1]).abs().max()) <= 1 / 255


# -- build and plan-cache plumbing, against a stand-in for the tensorrt module ---------


class _FakeTensorRT(types.ModuleType):
    """Records what the engine asks of TensorRT; checks our plumbing, not TensorRT."""

    __version__ = "10.99.0"

    def __init__(self) -> None:
        super().__init__("tensorrt")
        fake = self
        self.builds: list[tuple[int, tuple]] = []
        self.parsed: list[bytes] = []
        self.timing_seen: list[bytes] = []
        self.fail_build = self.fail_parse = False

        class Logger:
            WARNING = 2

            def __init__(self, _level: int) -> None:
                pass

        class NetworkDefinitionCreationFlag:
            STRONGLY_TYPED = 0

        class Runtime:
            def __init__(self, _logger: object) -> None:
                pass

            def deserialize_cuda_engine(self, plan: bytes) -> object | None:
                return None if plan == b"corrupt" else SimpleNamespace(plan=plan)

        class Config:
            def __init__(self) -> None:
                self.profiles: list[tuple] = []

            def add_optimization_profile(self, profile: SimpleNamespace) -> None:
                self.profiles.append(profile.shapes)

            def create_timing_cache(self, data: bytes) -> bytes:
                fake.timing_seen.append(bytes(data))
                return bytes(data)

            def set_timing_cache(self, cache: bytes, ignore_mismatch: bool) -> bool:
                self.timing = cache
                return True

            def get_timing_cache(self) -> SimpleNamespace:
                return SimpleNamespace(serialize=lambda: self.timing + b"+")

        class Builder:
            def __init__(self, _logger: object) -> None:
                pass

            def create_network(self, flags: int) -> SimpleNamespace:
                return SimpleNamespace(flags=flags)

            def create_builder_config(self) -> Config:
                return Config()

            def create_optimization_profile(self) -> SimpleNamespace:
                profile = SimpleNamespace(shapes=None)

                def set_shape(name: str, lo: tuple, opt: tuple, hi: tuple) -> None:
                    profile.shapes = (name, lo, opt, hi)

                profile.set_shape = set_shape
                return profile

            def build_serialized_network(self, network: SimpleNamespace, config: Config) -> bytes | None:
                fake.builds.append((network.flags, tuple(config.profiles)))
                return None if fake.fail_build else b"plan-%d" % len(fake.builds)

        class OnnxParser:
            num_errors = 1

            def __init__(self, _network: object, _logger: object) -> None:
                pass

            def parse(self, data: bytes) -> bool:
                fake.parsed.append(data)
                return not fake.fail_parse

            def get_error(self, _i: int) -> str:
                return "unsupported node"

        self.Logger, self.Runtime, self.Builder, self.OnnxParser = Logger, Runtime, Builder, OnnxParser
        self.NetworkDefinitionCreationFlag = NetworkDefinitionCreationFlag


_EXPORTS: dict[str, bytes] = {}
_real_onnx_bytes = TensorRTEngine._onnx_bytes


def _onnx_bytes_once(self: TensorRTEngine) -> bytes:
    """The real export, done once for all these tests (seconds each on 2 busy cores)."""
    if self.model_name not in _EXPORTS:
        _EXPORTS[self.model_name] = _real_onnx_bytes(self)
    return _EXPORTS[self.model_name]


@pytest.fixture
def fake_trt(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> _FakeTensorRT:
    fake = _FakeTensorRT()
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    monkeypatch.setattr(TensorRTEngine, "_onnx_bytes", _onnx_bytes_once)
    monkeypatch.setenv(cache.ENV_VAR, str(tmp_path))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda _device=None: "Fake GPU")
    return fake


def _trt_engine() -> TensorRTEngine:
    desc = load_descriptor(zoo.builtins()["animevideo-x4"].path)
    return TensorRTEngine(desc, torch.device("cuda"), model_name="animevideo-x4", model_sha256="ab" * 32)


def test_build_once_then_load_from_the_plan_cache(fake_trt: _FakeTensorRT, tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    profile = profile_for((2, 64, 96), ANY)
    engine = _trt_engine()
    assert engine.precision == "fp16"
    assert engine._load(profile).plan == b"plan-1"
    (flags, profiles), = fake_trt.builds
    assert flags == 1 << 0  # strongly typed
    assert profiles == (("input", (1, 3, 1, 1), (2, 3, 64, 96), (2, 3, 64, 96)),)
    graph = onnx.load_from_string(fake_trt.parsed[0])  # the half-precision export, float32 I/O
    assert graph.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in graph.graph.initializer)
    plans = list((tmp_path / "tensorrt").glob("animevideo-x4-*.plan"))
    assert len(plans) == 1 and plans[0].with_name(plans[0].name + ".json").is_file()

    assert _trt_engine()._load(profile).plan == b"plan-1"  # a new process: no second build
    assert len(fake_trt.builds) == 1
    _trt_engine()._load(profile_for((1, 64, 64), ANY))  # another profile: built and kept apart
    assert len(fake_trt.builds) == 2 and fake_trt.timing_seen == [b"", b"+"]  # timing cache reused
    assert len(list((tmp_path / "tensorrt").glob("animevideo-x4-*.plan"))) == 2


def test_corrupt_plans_are_rebuilt_and_failures_reported(fake_trt: _FakeTensorRT) -> None:
    from vidscale.engine.tensorrt_engine import _NoRoom

    engine = _trt_engine()
    profile = profile_for((1, 32, 32), ANY)
    cache.store(engine._plan_key(profile), b"corrupt")
    assert engine._load(profile).plan == b"plan-1"
    fake_trt.fail_build = True
    with pytest.raises(_NoRoom):  # the caller retries with smaller tiles
        engine._load(profile_for((1, 48, 48), ANY))
    fake_trt.fail_parse = True
    with pytest.raises(UsageError, match="cannot parse .*unsupported node"):
        engine._load(profile_for((1, 40, 40), ANY))


def test_auto_tile_is_stable_and_capped_after_a_failure(fake_trt: _FakeTensorRT) -> None:
    engine = _trt_engine()
    engine._budget = float(engine._bytes_per_px * 256 * 256)  # as measured on first use
    assert engine._tile(1, 1080, 1920) == 256
    assert engine._tile(1, 200, 200) == 200  # fits whole
    engine._tile_cap = 128  # set when a build or allocation failed
    assert engine._tile(1, 1080, 1920) == 128 and engine._tile(1, 200, 200) == 128
    engine.fixed_tile = 512
    assert engine._tile(1, 1080, 1920) == 128
