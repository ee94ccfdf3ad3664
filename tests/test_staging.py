"""Double-buffered transfers (engine/staging.py), the pipeline's in-flight batches, and
the host/device pixel formats (transfer.py). The slot logic is shared by CPU and
CUDA, so it is tested here; the stream ordering itself needs a GPU (last test)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from fractions import Fraction

import numpy as np
import pytest
import torch

from vidscale.engine.staging import Stager
from vidscale.media.frames import Frame
from vidscale.media.yuv import pack_words, widen_words
from vidscale.pipeline import run_pipeline
from vidscale.transfer import RgbTransfer
from vidscale.upscaler import from_tensor, to_tensor

CPU = torch.device("cpu")


def frames_of(n: int, shape: tuple[int, ...], dtype: type = np.uint8, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    hi = 65536 if dtype == np.uint16 else 256
    return [rng.integers(0, hi, shape).astype(dtype) for _ in range(n)]


def double(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    return [widen_words(t).to(torch.int32) * 2 for t in tensors]


def test_each_plane_is_batched_computed_and_copied_back() -> None:
    stager = Stager(CPU)
    luma, chroma = frames_of(3, (6, 8)), frames_of(3, (3, 4), seed=1)
    out = stager.submit([luma, chroma], double).result()
    assert [o.shape for o in out] == [(3, 6, 8), (3, 3, 4)]
    np.testing.assert_array_equal(out[0], np.stack(luma).astype(np.int32) * 2)
    np.testing.assert_array_equal(out[1], np.stack(chroma).astype(np.int32) * 2)


def test_more_pending_batches_than_the_depth_is_refused() -> None:
    stager = Stager(CPU, depth=2)
    pending = [stager.submit([frames_of(1, (4, 4), seed=i)], double) for i in range(3)]
    with pytest.raises(RuntimeError, match="more than 2 batches pending"):
        stager.submit([frames_of(1, (4, 4))], double)
    pending[0].result()  # frees the oldest slot
    stager.submit([frames_of(1, (4, 4))], double)


def test_results_survive_the_reuse_of_their_slot() -> None:
    stager = Stager(CPU, depth=1)
    first = stager.submit([frames_of(2, (4, 4), seed=1)], double).result()
    kept = first[0].copy()
    for seed in range(2, 8):  # every slot is rewritten several times
        stager.submit([frames_of(2, (4, 4), seed=seed)], double).result()
    np.testing.assert_array_equal(first[0], kept)


def test_buffers_are_made_once_per_shape() -> None:
    stager = Stager(CPU, depth=2)
    for seed in range(9):
        stager.submit([frames_of(2, (4, 4), seed=seed)], double).result()
    assert stager.allocations == 3 * 2  # 3 slots, an input and an output buffer each
    stager.submit([frames_of(1, (4, 4))], double).result()  # a short last batch: new shape
    assert stager.allocations == 3 * 2 + 2


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_rgb_transfer_round_trips_exactly(dtype: type) -> None:
    transfer = RgbTransfer(np.dtype(dtype))
    images = frames_of(2, (5, 7, 3), dtype=np.uint16 if dtype == np.uint16 else np.uint8)
    images = [i.astype(np.float32) / 255 for i in images] if dtype == np.float32 else images
    out = Stager(CPU).submit(transfer.planes(images), lambda t: transfer.from_float(transfer.to_float(t)))
    back = transfer.split(out.result())
    assert back[0].dtype == np.dtype(dtype)
    np.testing.assert_array_equal(np.stack(back), np.stack(images))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_rgb_transfer_rounds_like_the_host_conversion(dtype: type) -> None:
    """Rounding on the device gives what numpy's rint gives on the host (`from_tensor` is this too)."""
    x = torch.rand(1, 3, 9, 11) * 1.2 - 0.1  # also out of range: clamped
    transfer = RgbTransfer(np.dtype(dtype))
    device_side = transfer.split([t.numpy() for t in transfer.from_float(x)])[0]
    top = 255 if dtype == np.uint8 else 65535
    expected = np.rint(x[0].permute(1, 2, 0).clamp(0, 1).numpy() * top).astype(dtype)
    np.testing.assert_array_equal(device_side, expected)
    np.testing.assert_array_equal(from_tensor(x, np.dtype(dtype)), expected)
    back = torch.from_numpy(device_side.astype(np.float32)).permute(2, 0, 1)[None] / top
    np.testing.assert_array_equal(transfer.to_float([torch.from_numpy(device_side[None])]), back)
    np.testing.assert_array_equal(to_tensor(device_side), back)


def test_unsupported_pixel_types_are_refused() -> None:
    with pytest.raises(TypeError, match="int32"):
        to_tensor(np.zeros((2, 2, 3), np.int32))


def test_16_bit_words_keep_their_values() -> None:
    words = torch.tensor([0, 1, 32767, 32768, 65534, 65535], dtype=torch.int32)
    packed = pack_words(words)
    assert packed.dtype == torch.int16
    np.testing.assert_array_equal(packed.numpy().view(np.uint16), words.numpy())
    np.testing.assert_array_equal(widen_words(packed), words)


class _Deferred:
    """A batch whose result is only computed when asked: records the order of requests."""

    def __init__(self, frames: list[Frame], log: list[str], live: list[int]):
        self.frames, self.log, self.live = frames, log, live
        live[0] += 1
        live[1] = max(live[1], live[0])

    def result(self) -> list[object]:
        self.log.append(f"result {self.frames[0].index}")
        self.live[0] -= 1
        return [f.pixels + 1 for f in self.frames]


def test_pipeline_keeps_depth_batches_in_flight_and_packets_in_order() -> None:
    items: list[object] = []
    for i in range(7):
        items.append(Frame(np.full((2, 2, 3), i, np.uint8), i, i, Fraction(1, 24)))
        if i % 3 == 0:
            items.append(f"packet after {i}")  # stands in for an audio packet
    written: list[str] = []
    log: list[str] = []
    live = [0, 0]  # batches pending now, most ever

    def write_frame(frame: Frame) -> None:
        assert int(frame.pixels[0, 0, 0]) == frame.index + 1
        written.append(f"frame {frame.index}")

    run_pipeline(items, lambda frames: _Deferred(frames, log, live), write_frame,  # type: ignore[arg-type]
                 lambda p: written.append(str(p)), lambda: None, batch=2, depth=2)
    # a packet overtakes only the frames of the batch still being gathered
    assert written == ["packet after 0", "frame 0", "frame 1", "frame 2", "frame 3", "packet after 3",
                       "frame 4", "frame 5", "packet after 6", "frame 6"]
    assert live[1] == 3  # depth batches waiting while the next one starts
    assert log == [f"result {i}" for i in (0, 2, 4, 6)]


class _RecordingLanes:
    """Stands in for the CUDA streams: records what waits for what, runs everything at once."""

    cuda = True
    upload, compute, download = "upload", "compute", "download"

    def __init__(self) -> None:
        self.log: list[tuple[str, ...]] = []
        self.marks = 0
        self.current = "caller"

    @contextlib.contextmanager
    def on(self, stream: str) -> Iterator[None]:
        before, self.current = self.current, stream
        yield
        self.current = before

    def follow_caller(self) -> None:
        self.log.append(("compute follows", "caller"))

    def mark(self, stream: str) -> str:
        self.marks += 1
        event = f"{stream}-{self.marks}"
        self.log.append(("mark", event))
        return event

    def after(self, stream: str, event: str | None, tensors: list[torch.Tensor]) -> None:
        self.log.append(("stream waits", stream, str(event)))

    def wait(self, event: str | None) -> None:
        if event is not None:
            self.log.append(("host waits", event))

    def host_buffer(self, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        self.log.append(("pinned", str(shape)))
        return torch.empty(shape, dtype=dtype)


def test_streams_are_ordered_by_events_and_the_host_waits_only_for_its_batch(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The CUDA protocol, recorded: upload -> compute -> download chained by events; the
    host waits for a batch's own download, two batches later, and never for the device."""
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a: pytest.fail("device-wide sync"))
    stager = Stager(CPU, depth=2)
    lanes = _RecordingLanes()
    stager.lanes = lanes  # type: ignore[assignment]
    streams_seen: list[str] = []

    def compute(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
        streams_seen.append(lanes.current)
        return double(tensors)

    pending, results = [], []
    for k in range(5):  # the pipeline's pattern: submit, then take the result two batches back
        lanes.log.append(("submit", str(k)))
        pending.append(stager.submit([frames_of(2, (4, 4), seed=k)], compute))
        if len(pending) > 2:
            lanes.log.append(("take", str(k - 2)))
            results.append(pending.pop(0).result())
    results += [p.result() for p in pending]
    assert streams_seen == ["compute"] * 5
    log = lanes.log
    marks = [e[1] for e in log if e[0] == "mark"]
    assert marks == [f"{s}-{3 * k + i + 1}" for k in range(5) for i, s in enumerate(("upload", "compute", "download"))]
    for k in range(5):
        up, comp, down = marks[3 * k: 3 * k + 3]
        assert ("stream waits", "compute", up) in log and ("stream waits", "download", comp) in log
        assert log.index(("host waits", down)) > log.index(("submit", str(min(k + 2, 4))))
    host_waits = [e[1] for e in log if e[0] == "host waits"]
    # downloads in order, plus each slot's previous upload before its buffers are rewritten
    assert [w for w in host_waits if w.startswith("download")] == [marks[3 * k + 2] for k in range(5)]
    assert [w for w in host_waits if w.startswith("upload")] == [marks[0], marks[3]]
    assert sum(e[0] == "pinned" for e in log) == 3 * 2  # one input and one output buffer per slot
    for k, got in enumerate(results):
        np.testing.assert_array_equal(got[0], np.stack(frames_of(2, (4, 4), seed=k)).astype(np.int32) * 2)


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@needs_cuda
def test_cuda_stager_matches_the_cpu_with_batches_in_flight() -> None:
    cuda = torch.device("cuda")
    stager = Stager(cuda, depth=2)
    inputs = [frames_of(4, (540, 960), seed=s) for s in range(6)]
    pending = []
    results = []
    for batch in inputs:  # two batches always pending: transfers overlap compute
        pending.append(stager.submit([batch], double))
        if len(pending) > 2:
            results.append(pending.pop(0).result()[0])
    results += [p.result()[0] for p in pending]
    for batch, got in zip(inputs, results, strict=True):
        np.testing.assert_array_equal(got, np.stack(batch).astype(np.int32) * 2)
