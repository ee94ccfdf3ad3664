"""The torch engine: tiling is invisible, odd sizes are padded, OOM shrinks tiles."""

from __future__ import annotations

import numpy as np
import pytest
import spandrel
import torch
import torch.nn.functional as F

from vidscale.engine.tiling import run_tiled, spans
from vidscale.engine.torch_engine import TorchEngine
from vidscale.models import zoo
from vidscale.models.loading import load_descriptor
from vidscale.upscaler import to_tensor

CPU = torch.device("cpu")


def test_spans_cover_with_overlap() -> None:
    for length, tile, overlap in [(100, 40, 8), (257, 64, 16), (64, 64, 16), (30, 64, 16)]:
        parts = spans(length, tile, overlap)
        assert parts[0][0] == 0 and parts[-1][1] == length
        for (a0, a1), (b0, b1) in zip(parts, parts[1:]):
            assert b0 < a1 and a1 - b0 >= overlap  # neighbours overlap enough
        assert all(e - s == min(tile, length) for s, e in parts)


def test_aligned_spans_start_on_the_multiple() -> None:
    for length, tile, overlap, align in [(319, 128, 48, 4), (257, 64, 16, 4), (101, 40, 8, 2)]:
        parts = spans(length, tile, overlap, align)
        assert parts[0][0] == 0 and parts[-1][1] == length
        assert all(s % align == 0 for s, _ in parts)
        for (a0, a1), (b0, b1) in zip(parts, parts[1:]):
            assert a1 - b0 >= overlap
        assert all(e - s == tile for s, e in parts[:-1])
        assert tile <= parts[-1][1] - parts[-1][0] < tile + align


def test_tiled_real_cugan_uses_the_frames_se_means(bunny: np.ndarray) -> None:
    """Real-CUGAN's SE blocks scale channels by their whole-image mean: per-tile means
    shift colours tile by tile; the frame's means (recorded in a first pass) do not."""
    engine = TorchEngine(load_descriptor(zoo.builtins()["realcugan-x2-conservative"].path), CPU)
    assert len(engine.se_blocks) > 0
    x = to_tensor(bunny[:120, :200])
    with torch.inference_mode():
        whole = engine(x).clamp(0, 1)
        engine.fixed_tile = 64
        synced = engine(x).clamp(0, 1)
        blocks, engine.se_blocks = engine.se_blocks, []  # per-tile means, as before
        per_tile = engine(x).clamp(0, 1)
        engine.se_blocks = blocks
    err_synced, err_tile = (synced - whole).abs(), (per_tile - whole).abs()
    assert float(err_synced.mean()) < 0.5 * float(err_tile.mean())
    assert float(err_synced.max()) < 0.5 * float(err_tile.max())
    assert all("forward" not in vars(b) for b in blocks)  # the patched forwards are gone


def test_blending_is_exact_for_a_local_operation() -> None:
    """With a model that has no context (nearest upsample) tiling must be exact:
    this checks that the blend weights sum to one everywhere."""
    x = torch.rand(2, 3, 70, 93)
    up = lambda t: F.interpolate(t, scale_factor=3, mode="nearest")  # noqa: E731
    tiled = run_tiled(up, x, 3, tile=32, overlap=16)
    assert torch.allclose(tiled, up(x), atol=1e-6)


@pytest.mark.parametrize("name", ["span-x2", "animevideo-x4"])
def test_tiled_matches_untiled(name: str, bunny: np.ndarray) -> None:
    engine = TorchEngine(load_descriptor(zoo.builtins()[name].path), CPU)
    x = to_tensor(bunny[:120, :200])
    with torch.inference_mode():
        whole = engine(x).clamp(0, 1)
        engine.fixed_tile = 64
        tiled = engine(x).clamp(0, 1)
    assert tiled.shape == whole.shape
    assert float((tiled - whole).abs().max()) <= 1 / 255


class _NeedsMultipleOf8(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[-1] % 8 == 0 and x.shape[-2] % 8 == 0, x.shape
        return F.interpolate(x, scale_factor=2, mode="nearest")


class _OomAbove48(torch.nn.Module):
    """Pretends a big input exhausts GPU memory."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[int, int]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(tuple(x.shape[-2:]))
        if max(x.shape[-2:]) > 64:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return F.interpolate(x, scale_factor=2, mode="nearest")


def _descriptor(module: torch.nn.Module, **req: int) -> spandrel.ImageModelDescriptor:
    arch = spandrel.MAIN_REGISTRY.get("Compact").architecture
    return spandrel.ImageModelDescriptor(
        module, {}, architecture=arch, purpose="SR", tags=[], supports_half=False,
        supports_bfloat16=False, scale=2, input_channels=3, output_channels=3,
        size_requirements=spandrel.SizeRequirements(**req),
    )


def test_sizes_the_model_cannot_take_are_padded_and_cropped_back() -> None:
    engine = TorchEngine(_descriptor(_NeedsMultipleOf8(), multiple_of=8), CPU)
    x = torch.rand(1, 3, 37, 51)
    out = engine(x)
    assert out.shape == (1, 3, 74, 102)
    assert torch.equal(out, F.interpolate(x, scale_factor=2, mode="nearest"))


def test_out_of_memory_retries_with_smaller_tiles() -> None:
    module = _OomAbove48()
    engine = TorchEngine(_descriptor(module), CPU, tile=256)
    x = torch.rand(1, 3, 150, 170)
    out = engine(x)
    assert torch.allclose(out, F.interpolate(x, scale_factor=2, mode="nearest"), atol=1e-6)
    assert module.calls[0] == (150, 170)  # first try: whole frame
    assert max(max(c) for c in module.calls[-4:]) <= 64  # finished with small tiles


def test_auto_tile_whole_frame_when_it_fits() -> None:
    engine = TorchEngine(load_descriptor(zoo.builtins()["span-x2"].path), CPU)
    assert engine.auto_tile(1, 180, 320) == 320
    engine_budget_tile = engine.auto_tile(64, 4320, 7680)  # 8K x64 cannot fit in one go
    assert 64 <= engine_budget_tile < 4320


def test_networks_run_channels_last_on_the_cpu_with_the_same_output(bunny: np.ndarray) -> None:
    """oneDNN ran every built-in faster channels_last (RRDB 1.52x); the output must not move."""
    path = zoo.builtins()["realesrgan-x4plus-anime"].path
    fast = TorchEngine(load_descriptor(path), CPU)
    plain = TorchEngine(load_descriptor(path), CPU, channels_last=False)  # its own weights: .to() is in place
    assert fast.channels_last and not plain.channels_last
    assert next(fast.model.parameters()).is_contiguous(memory_format=torch.channels_last)
    x = to_tensor(bunny[:40, :56])
    with torch.inference_mode():
        a, b = fast(x), plain(x)
    assert a.shape == b.shape == (1, 3, 160, 224)
    assert float((a.clamp(0, 1) - b.clamp(0, 1)).abs().max()) * 255 < 0.05


@pytest.mark.parametrize("channels_last", [True, False])
def test_each_engine_takes_its_input_in_its_own_layout(bunny: np.ndarray, channels_last: bool) -> None:
    """VapourSynth hands over contiguous NCHW planes, a decoded frame is channels_last already;
    either way the network sees the engine's layout and gives the same output."""
    engine = TorchEngine(load_descriptor(zoo.builtins()["span-x2"].path), CPU, channels_last=channels_last)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    seen: list[bool] = []
    engine.model.register_forward_pre_hook(lambda _m, args: seen.append(args[0].is_contiguous(memory_format=layout)))
    x = to_tensor(bunny[:32, :48])
    assert x.is_contiguous(memory_format=torch.channels_last)  # the HWC array's own layout
    with torch.inference_mode():
        a = engine(x)
        b = engine(x.contiguous())
    assert seen == [True, True]
    assert torch.equal(a, b)
