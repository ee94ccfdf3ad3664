"""Batches to the device and back, double-buffered: transfers overlap compute.

Each batch goes host arrays -> pinned slot -> (upload stream) device ->
`compute` (compute stream) -> (download stream) pinned slot -> host arrays.
Events order the three streams, so nothing waits on the whole device: while
batch k computes, batch k+1 uploads and batch k-1 downloads. The host waits
only in `Pending.result()`, for that batch's own download.

Slots are reused in turn; a slot's buffers are rewritten only after its
previous batch's result was taken, which the caller guarantees by keeping at
most `depth` batches pending (`Stager.submit` checks). On the CPU the same
slot logic runs with plain buffers and no streams, so it is tested there.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

Compute = Callable[[list[torch.Tensor]], list[torch.Tensor]]
CUDA_DEPTH = 2  # batches in flight on a GPU; on the CPU results are ready at once (0)


class _Lanes:
    """Every CUDA call the stager makes: three streams, their events, page-locked
    buffers. On the CPU, no-ops and plain memory. (Tests swap in a recording double.)"""

    def __init__(self, device: torch.device):
        self.device, self.cuda = device, device.type == "cuda"
        self.upload = self.compute = self.download = None
        if self.cuda:
            self.upload, self.compute, self.download = (torch.cuda.Stream(device) for _ in range(3))

    @contextlib.contextmanager
    def on(self, stream: torch.cuda.Stream | None) -> Iterator[None]:
        with torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext():
            yield

    def follow_caller(self) -> None:
        """Compute after whatever the caller queued on its own stream (weights, graphs):
        our streams do not wait for it by themselves."""
        if self.compute is not None:
            self.compute.wait_stream(torch.cuda.current_stream(self.device))

    def mark(self, stream: torch.cuda.Stream | None) -> torch.cuda.Event | None:
        """An event at the current end of `stream` (None on the CPU: work is already done)."""
        if stream is None:
            return None
        event = torch.cuda.Event()
        event.record(stream)
        return event

    def after(self, stream: torch.cuda.Stream | None, event: torch.cuda.Event | None,
              tensors: Sequence[torch.Tensor]) -> None:
        """Make `stream` wait for `event`, and keep `tensors`' memory until `stream` is done with them."""
        if stream is None or event is None:
            return
        stream.wait_event(event)
        for t in tensors:
            t.record_stream(stream)  # allocated on another stream: the allocator must know

    def wait(self, event: torch.cuda.Event | None) -> None:
        """The host waits for `event` only: never for the whole device."""
        if event is not None:
            event.synchronize()

    def host_buffer(self, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        # page-locked: the only host memory a copy engine reads and writes asynchronously
        return torch.empty(shape, dtype=dtype, pin_memory=self.cuda)


@dataclass
class _Slot:
    inputs: list[torch.Tensor] = field(default_factory=list)
    outputs: list[torch.Tensor] = field(default_factory=list)
    uploaded: torch.cuda.Event | None = None  # inputs may be rewritten once this has happened
    busy: bool = False  # a batch whose result has not been taken


class Pending:
    """A submitted batch; `result()` waits for its download and returns host copies."""

    def __init__(self, slot: _Slot, downloaded: torch.cuda.Event | None, lanes: _Lanes):
        self._slot, self._downloaded, self._lanes = slot, downloaded, lanes
        self._result: list[np.ndarray] | None = None

    def result(self) -> list[np.ndarray]:
        if self._result is None:
            self._lanes.wait(self._downloaded)
            # copies: the slot's buffers take another batch next
            self._result = [t.numpy().copy() for t in self._slot.outputs]
            self._slot.busy = False
        return self._result


class Stager:
    def __init__(self, device: torch.device, depth: int | None = None):
        self.device = device
        self.depth = depth if depth is not None else (CUDA_DEPTH if device.type == "cuda" else 0)
        self.lanes = _Lanes(device)
        self._slots = [_Slot() for _ in range(self.depth + 1)]
        self._turn = 0
        self.allocations = 0  # pinned buffers made: once per shape (tests read it)

    def submit(self, planes: Sequence[Sequence[np.ndarray]], compute: Compute) -> Pending:
        """Run `compute` on a batch: `planes[p][i]` is plane p of frame i (e.g. one RGB
        array per frame, or Y, U and V). `compute` gets one N x ... device tensor per
        plane and returns the device tensors to bring back."""
        slot = self._next_slot()
        self.lanes.wait(slot.uploaded)
        slot.inputs = self.stage_in(slot.inputs, planes)
        lanes = self.lanes
        with lanes.on(lanes.upload):
            on_device = [b.to(self.device, non_blocking=True) for b in slot.inputs]
            slot.uploaded = lanes.mark(lanes.upload)
        lanes.follow_caller()
        with lanes.on(lanes.compute):
            lanes.after(lanes.compute, slot.uploaded, on_device)
            results = compute(on_device)
            computed = lanes.mark(lanes.compute)
        slot.outputs = self._buffers(slot.outputs, [(*r.shape, r.dtype) for r in results])
        with lanes.on(lanes.download):
            lanes.after(lanes.download, computed, results)
            for buffer, result in zip(slot.outputs, results):
                buffer.copy_(result, non_blocking=True)
            downloaded = lanes.mark(lanes.download)
        return Pending(slot, downloaded, lanes)

    def stage_in(self, buffers: list[torch.Tensor], planes: Sequence[Sequence[np.ndarray]]) -> list[torch.Tensor]:
        """`planes` copied into host `buffers` (N x ... per plane), new ones if the shapes changed."""
        buffers = self._buffers(buffers, [(len(p), *p[0].shape, p[0].dtype) for p in planes])
        for buffer, frames in zip(buffers, planes, strict=True):
            host = buffer.numpy()
            for i, frame in enumerate(frames):
                host[i] = frame
        return buffers

    def _next_slot(self) -> _Slot:
        slot = self._slots[self._turn]
        if slot.busy:
            raise RuntimeError(f"internal: more than {self.depth} batches pending")
        slot.busy = True
        self._turn = (self._turn + 1) % len(self._slots)
        return slot

    def _buffers(self, current: list[torch.Tensor], specs: list[tuple]) -> list[torch.Tensor]:
        """Host buffers for `specs` (shape..., dtype), reused while the shapes stay."""
        wanted = [(tuple(s[:-1]), _torch_dtype(s[-1])) for s in specs]
        if [(tuple(b.shape), b.dtype) for b in current] == wanted:
            return current
        self.allocations += len(wanted)
        return [self.lanes.host_buffer(shape, dtype) for shape, dtype in wanted]


def _torch_dtype(dtype: np.dtype | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    return torch.from_numpy(np.empty(0, dtype)).dtype
