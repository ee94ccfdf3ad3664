"""The streaming pipeline: decode thread -> batched inference -> encode thread.

Bounded queues keep memory flat however long the input is, and the three
stages overlap, so the slowest one sets the pace. Inference is asynchronous
on a GPU: up to `depth` batches are in flight (see `engine/staging.py`)
before the oldest one's result is waited for. Packets of carried streams
(audio, subtitles...) travel through the same queues, in order, so the sink
can interleave them with the video.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from typing import Protocol

import av
import numpy as np

from vidscale.media.frames import Frame
from vidscale.signals import stops_held

_END = object()
_POLL_S = 0.1


class Batch(Protocol):
    """A batch on its way through the network."""

    def result(self) -> list[object]: ...


UpscaleBatch = Callable[[list[Frame]], Batch]  # starts a batch; its result: each frame's new pixels


class _Stopped(Exception):
    """Another stage failed or the user interrupted: unwind quietly."""


class _Channel:
    """A bounded queue whose waits give up when the job is stopping."""

    def __init__(self, size: int, stop: threading.Event):
        self.q: queue.Queue[object] = queue.Queue(maxsize=size)
        self.stop = stop

    def put(self, item: object) -> None:
        while not self.stop.is_set():
            try:
                self.q.put(item, timeout=_POLL_S)
                return
            except queue.Full:
                pass
        raise _Stopped

    def get(self) -> object:
        while not self.stop.is_set():
            try:
                return self.q.get(timeout=_POLL_S)
            except queue.Empty:
                pass
        raise _Stopped


class _Worker(threading.Thread):
    def __init__(self, name: str, target: Callable[[], None], stop: threading.Event):
        super().__init__(name=name, daemon=True)
        self._target_fn, self._stop_event = target, stop
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._target_fn()
        except _Stopped:
            pass
        except BaseException as exc:  # handed to the main thread, which re-raises it
            self.error = exc
            self._stop_event.set()


def run_pipeline(
    items: Iterable[Frame | av.Packet],
    upscale: UpscaleBatch,
    write_frame: Callable[[Frame], None],
    write_packet: Callable[[av.Packet], None],
    finish: Callable[[], None],
    batch: int = 1,
    on_frame: Callable[[], None] = lambda: None,
    depth: int = 0,
) -> None:
    """Run decode, inference and encode concurrently; re-raise the first failure."""
    stop = threading.Event()
    inbox, outbox = _Channel(2 * batch + 2, stop), _Channel(2 * batch + 2, stop)

    def decode() -> None:
        for item in items:
            inbox.put(item)
        inbox.put(_END)

    def encode() -> None:
        while (item := outbox.get()) is not _END:
            if isinstance(item, Frame):
                if item.warmup:
                    continue  # it only primed the temporal filter
                write_frame(item)
                on_frame()
            else:
                write_packet(item)  # type: ignore[arg-type]
        finish()

    workers = [_Worker("vidscale-decode", decode, stop), _Worker("vidscale-encode", encode, stop)]
    started: list[_Worker] = []
    try:
        with stops_held():  # a stop while a thread starts would leave it running, unjoined
            for w in workers:
                w.start()
                started.append(w)
        ahead = _InFlight(outbox, depth)
        for item in _batched(inbox, batch):
            ahead.add(item if not isinstance(item, list) else (item, upscale(item)))
        ahead.drain()
        outbox.put(_END)
        workers[1].join()  # the encoder drains the queue and finishes the file
    except _Stopped:
        pass  # a worker failed: its error is raised below
    finally:
        stop.set()  # wakes any stage still waiting (after an error or Ctrl-C)
        with stops_held():  # the caller closes the source and sink next: no thread may still use them
            for w in started:
                w.join()
    for w in workers:
        if w.error is not None:
            raise w.error


class _InFlight:
    """Batches started but not yet handed to the encoder, with the packets between them."""

    def __init__(self, outbox: _Channel, depth: int):
        self.outbox, self.depth = outbox, depth
        self.items: deque[tuple[list[Frame], Batch] | av.Packet] = deque()
        self.batches = 0

    def add(self, item: tuple[list[Frame], Batch] | av.Packet) -> None:
        self.items.append(item)
        self.batches += isinstance(item, tuple)
        self._emit(self.depth)

    def drain(self) -> None:
        self._emit(0)

    def _emit(self, keep: int) -> None:
        """Hand over items in order while more than `keep` batches are in flight."""
        while self.items and (not isinstance(self.items[0], tuple) or self.batches > keep):
            item = self.items.popleft()
            if not isinstance(item, tuple):
                self.outbox.put(item)
                continue
            self.batches -= 1
            frames, pending = item
            for frame, pixels in zip(frames, pending.result(), strict=True):
                self.outbox.put(replace(frame, pixels=pixels))


def _batched(inbox: _Channel, size: int) -> Iterator[list[Frame] | av.Packet]:
    """Runs of up to `size` same-sized frames; packets pass straight through."""
    pending: list[Frame] = []
    while (item := inbox.get()) is not _END:
        if not isinstance(item, Frame):
            yield item  # type: ignore[misc]
            continue
        if pending and _key(pending[0]) != _key(item):
            yield pending
            pending = []
        pending.append(item)
        if len(pending) == size:
            yield pending
            pending = []
    if pending:
        yield pending


def _key(frame: Frame) -> tuple[object, ...]:
    """What frames of one batch share: array shape and dtype (or YUV format and size), and colour."""
    p = frame.pixels
    shape = ((*p.shape, p.dtype) if isinstance(p, np.ndarray)
             else (p.pix_fmt, p.height, p.width, p.chroma_location))
    return (*shape, frame.color)
