"""The threaded pipeline: bounded memory, order, batching and failure handling."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from vidscale.media.frames import Frame
from vidscale.pipeline import run_pipeline
from vidscale.progress import steady_rate


class Done:
    """A batch computed at once (the CPU's case)."""

    def __init__(self, pixels: list[np.ndarray]):
        self.pixels = pixels

    def result(self) -> list[np.ndarray]:
        return self.pixels


def at_once(fn: Callable[[list[np.ndarray]], list[np.ndarray]]) -> Callable[[list[Frame]], Done]:
    return lambda batch: Done(fn([f.pixels for f in batch]))  # type: ignore[misc]


def frames(n: int, shapes: list[tuple[int, int]] | None = None) -> Iterator[Frame]:
    for i in range(n):
        h, w = shapes[i] if shapes else (4, 4)
        yield Frame(np.full((h, w, 3), i % 256, np.uint8), i, i, None)


def test_order_batches_and_bounded_read_ahead() -> None:
    pulled = 0
    batch = 3
    max_ahead = 0
    written: list[int] = []
    batches: list[int] = []

    def source() -> Iterator[Frame]:
        nonlocal pulled
        for f in frames(50):
            pulled += 1
            yield f

    def upscale(arrays: list[np.ndarray]) -> list[np.ndarray]:
        nonlocal max_ahead
        max_ahead = max(max_ahead, pulled - len(written))
        batches.append(len(arrays))
        return [a + 1 for a in arrays]

    run_pipeline(source(), at_once(upscale), lambda f: written.append(int(f.pixels[0, 0, 0])), lambda p: None,
                 lambda: None, batch=batch)
    assert written == [i + 1 for i in range(50)]
    assert set(batches[:-1]) == {batch}
    # read-ahead is bounded by the queues, not by the length of the input
    assert max_ahead <= 2 * (2 * batch + 2) + 2 * batch + 2


def test_size_changes_split_batches() -> None:
    shapes = [(4, 4), (4, 4), (6, 2), (6, 2), (6, 2), (4, 4)]
    sizes: list[list[tuple[int, ...]]] = []

    def upscale(arrays: list[np.ndarray]) -> list[np.ndarray]:
        sizes.append([a.shape for a in arrays])
        return arrays

    run_pipeline(frames(6, shapes), at_once(upscale), lambda f: None, lambda p: None, lambda: None, batch=8)
    assert [len(b) for b in sizes] == [2, 3, 1]
    assert all(len(set(b)) == 1 for b in sizes)


@pytest.mark.parametrize("stage", ["decode", "infer", "encode", "finish"])
def test_a_failing_stage_stops_everything(stage: str) -> None:
    def source() -> Iterator[Frame]:
        for f in frames(1000):
            if stage == "decode" and f.index == 7:
                raise ValueError("decode failed")
            yield f

    def upscale(arrays: list[np.ndarray]) -> list[np.ndarray]:
        if stage == "infer":
            raise ValueError("infer failed")
        return arrays

    def write(frame: Frame) -> None:
        if stage == "encode" and frame.index == 3:
            raise ValueError("encode failed")

    def finish() -> None:
        if stage == "finish":
            raise ValueError("finish failed")

    before = threading.active_count()
    with pytest.raises(ValueError, match=f"{stage} failed"):
        run_pipeline(source(), at_once(upscale), write, lambda p: None, finish, batch=2)
    assert threading.active_count() == before  # no stage left running


def test_packets_pass_through_in_order() -> None:
    events: list[str] = []
    items: list[object] = []
    for f in frames(3):
        items.append(f)
        items.append(f"packet{f.index}")
    run_pipeline(iter(items), at_once(lambda a: a), lambda f: events.append(f"frame{f.index}"),
                 lambda p: events.append(p), lambda: events.append("end"), batch=1)  # type: ignore[arg-type]
    assert events == ["frame0", "packet0", "frame1", "packet1", "frame2", "packet2", "end"]


def test_steady_rate_leaves_out_start_up_and_the_final_burst() -> None:
    """10 fps after 3 s of start-up, batches of 4 frames out at once, the last 8 frames flushed together."""
    times = [3.0 + 0.4 * (i // 4) for i in range(32)] + [3.0 + 0.4 * 8] * 8
    assert steady_rate(times) == pytest.approx(10, rel=0.15)
    assert steady_rate([1.0, 1.5, 2.0]) == pytest.approx(2)  # short runs: first to last
    assert steady_rate([1.0]) == 0.0


@pytest.mark.parametrize("during", ["start", "join"])
def test_a_stop_while_threads_start_or_end_leaves_none_running(during: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGTERM landing while a stage's thread starts (or while the stages are joined) used to
    leave the decoder running while the caller closed its file: a segfault 1 run in 12-20."""
    import signal

    from vidscale import pipeline
    from vidscale.signals import Terminated, stop_on_sigterm

    def slow() -> Iterator[Frame]:
        for f in frames(1000):
            threading.Event().wait(0.01)
            yield f

    hooked = getattr(pipeline._Worker, during)

    def arrives() -> None:
        """SIGTERM, as Python delivers it: its handler now, in the main thread. (Not a real kill:
        in the whole suite, after an OpenVINO call had been cancelled, the kernel at times could
        not push the handler's frame (SIGSEGV, si_code SI_KERNEL), and pytest was gone.)"""
        handler = signal.getsignal(signal.SIGTERM)
        assert callable(handler)
        handler(signal.SIGTERM, None)

    def hook(self: threading.Thread, *args: object) -> None:
        if during == "join" and self.name == "vidscale-decode":
            arrives()
        hooked(self, *args)
        if during == "start" and self.name == "vidscale-encode":
            arrives()

    def upscale(arrays: list[np.ndarray]) -> list[np.ndarray]:
        if during == "join":
            raise ValueError("infer failed")  # on to the joins
        return arrays

    monkeypatch.setattr(pipeline._Worker, during, hook)
    previous = stop_on_sigterm()
    try:
        with pytest.raises(Terminated):
            run_pipeline(slow(), at_once(upscale), lambda f: None, lambda p: None, lambda: None, batch=1)
    finally:
        signal.signal(signal.SIGTERM, previous)  # type: ignore[arg-type]
    assert not [t for t in threading.enumerate() if t.name.startswith("vidscale-") and t.is_alive()]


def test_stops_held_leaves_alone_a_handler_set_outside_python(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the host set SIGINT's handler (an embedding application: `getsignal` says None),
    `signal.signal` could not put it back; it is not held."""
    import signal

    from vidscale import signals

    real_get, real_set = signal.getsignal, signal.signal
    touched: list[int] = []
    monkeypatch.setattr(signal, "getsignal", lambda s: None if s == signal.SIGINT else real_get(s))
    monkeypatch.setattr(signal, "signal", lambda s, h: touched.append(s) or real_set(s, h))
    with signals.stops_held():
        pass
    assert touched == [signal.SIGTERM, signal.SIGTERM]
