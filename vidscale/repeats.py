"""Repeated frames: a frame whose low-res picture equals the previous one is not upscaled again.

Anime holds each drawing for two or three frames; freeze frames, static titles
and telecine repeat pictures in any clip. A repeat's network output is the
previous frame's, reused; everything after the network (the anti-flicker pass,
the colour conversion, the encoder) still sees every frame, so timestamps and
frame count are untouched and, where repeats are exact, the output is the one
a run without skipping writes.

`Repeats` decides, frame by frame in order; `Reuse` hands out the network's
outputs, running the network only on the frames that are new. `Recent` serves a
filter asked for frames out of order from several threads (VapourSynth).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from vidscale.media.yuv import YuvImage

Pixels = np.ndarray | YuvImage


class Repeats:
    """Which frames repeat the last frame that was upscaled (feed every frame, in order).

    `threshold` 0 (the default) takes exact repeats only. Above 0 a frame also
    counts when no 16x16 block of it differs from the last upscaled frame's by
    more than `threshold` 8-bit code values on average (16-bit and float pictures
    are scaled to match). A block mean, not the largest single difference: lossy
    video never repeats a held drawing exactly, and its coding noise reaches
    tens of levels at a few pixels (onepiece_demo.mp4: no two frames equal, the
    largest difference between frames of one drawing 4-50 levels), while a
    change a viewer sees (a mouth, a line that moves) moves a block's mean by
    more. Coding noise also averages out over the whole picture, a fade does
    not: a frame whose mean (per channel) moved by more than `DRIFT` levels is
    never a near-repeat, or a fade-in would stall on a darker picture (sintel_5s:
    visible from 3 levels without this bound; held drawings and repeated film
    frames moved their mean by at most 0.09). The comparison is with the last
    frame *upscaled*, not the previous one, so no slow change creeps past the
    bounds a little at a time.
    """

    def __init__(self, threshold: float = 0.0):
        if not 0 <= threshold <= 255:
            raise ValueError(f"repeat threshold must be 0-255, got {threshold}")
        self.threshold = threshold
        self.reset()

    def reset(self) -> None:
        """Forget the last frame: the next one is upscaled (a segment's or a seek's start)."""
        self._reference: list[np.ndarray] | None = None
        self._key: tuple[object, ...] | None = None

    def check(self, pixels: Pixels, color: object = None) -> bool:
        """Whether `pixels` (with its colour description `color`) repeats the last upscaled frame;
        if not, it becomes the one that later frames are compared with."""
        planes, key = _planes(pixels), (_kind(pixels), color)
        if self._reference is not None and key == self._key and same(planes, self._reference, self.threshold):
            return True
        self._reference, self._key = [p.copy() for p in planes], key  # the decoder may reuse its buffers
        return False


def same(planes: Sequence[np.ndarray], reference: Sequence[np.ndarray], threshold: float = 0.0) -> bool:
    """Whether two pictures' planes agree: exactly, or within `threshold` 8-bit levels (see `Repeats`)."""
    if len(planes) != len(reference):
        return False
    return all(a.shape == b.shape and a.dtype == b.dtype and _within(a, b, threshold)
               for a, b in zip(planes, reference))


def _planes(pixels: Pixels) -> list[np.ndarray]:
    return list(pixels.planes) if isinstance(pixels, YuvImage) else [pixels]


def _kind(pixels: Pixels) -> tuple[object, ...]:
    return (pixels.pix_fmt, pixels.chroma_location) if isinstance(pixels, YuvImage) else ("array",)


BLOCK = 16  # side of the blocks whose mean difference --repeat-threshold bounds
DRIFT = 0.25  # most a near-repeat may move a channel's mean, in 8-bit levels (a fade moves it more)


def _within(a: np.ndarray, b: np.ndarray, threshold: float) -> bool:
    if threshold == 0:
        return bool(np.array_equal(a, b))
    if np.issubdtype(a.dtype, np.floating):
        scale = 1 / 255
    else:
        scale = 257 if a.dtype.itemsize == 2 else 1  # 16-bit: 65535 / 255 per 8-bit level
    diff = a.astype(np.float32) - b.astype(np.float32)
    channels = diff.reshape(-1, diff.shape[2] if diff.ndim == 3 else 1)
    if np.abs(channels.mean(axis=0)).max() > DRIFT * scale:
        return False
    size = np.abs(diff).mean(axis=2) if diff.ndim == 3 else np.abs(diff)  # channels: RGB, or a UV plane's two
    return bool(block_means(size).max() <= threshold * scale)


def block_means(d: np.ndarray, block: int = BLOCK) -> np.ndarray:
    """Means of `d` (HxW) over `block` x `block` tiles; those at the right and bottom edges may be smaller."""
    h, w = d.shape
    s = np.zeros((h + 1, w + 1))
    s[1:, 1:] = d.cumsum(axis=0, dtype=np.float64).cumsum(axis=1)
    ys, xs = np.r_[0:h:block, h], np.r_[0:w:block, w]
    total = s[np.ix_(ys[1:], xs[1:])] - s[np.ix_(ys[:-1], xs[1:])] - s[np.ix_(ys[1:], xs[:-1])] \
        + s[np.ix_(ys[:-1], xs[:-1])]
    return total / (np.diff(ys)[:, None] * np.diff(xs)[None, :])


class Reuse:
    """The network's output per frame, run only on new frames; a repeat gets the output of the
    last new frame (of this batch or an earlier one)."""

    def __init__(self) -> None:
        self.last: torch.Tensor | None = None  # 1xCxHxW: the last new frame's network output

    def reset(self) -> None:
        self.last = None

    def run(self, x: torch.Tensor, repeat: Sequence[bool],
            network: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """`x`: NCHW, one frame per entry of `repeat`; returns N network outputs."""
        if not any(repeat):
            out = network(x)
            self.last = out[-1:]
            return out
        fresh = [i for i, r in enumerate(repeat) if not r]
        computed = network(x[fresh]) if fresh else None
        rows, j = [], 0
        for r in repeat:
            if not r:
                self.last, j = computed[j:j + 1], j + 1  # type: ignore[index]
            elif self.last is None:
                raise RuntimeError("internal: a repeat before any frame was upscaled")
            rows.append(self.last)
        return torch.cat(rows)


class _Entry:
    """A frame's output in the making: its own (`source` None) or a frame's it repeats."""

    def __init__(self, reference: list[np.ndarray], source: "_Entry | None" = None):
        self.reference, self.source = reference, source  # reference: the input of the frame upscaled
        self.done = threading.Event()
        self.output: Any = None
        self.failed = False

    def finish(self, output: Any, failed: bool = False) -> None:
        self.output, self.failed = output, failed
        self.done.set()


class Recent:
    """Frame n whose input repeats frame n-1's takes n-1's output, when n-1 was asked for first
    (waiting for it if another thread is still computing it); otherwise n is computed. Asked
    in any order from any thread. Holds the last `keep` frames' outputs."""

    def __init__(self, threshold: float = 0.0, keep: int = 4):
        self.threshold, self.keep = threshold, keep
        self._lock = threading.Lock()
        self._entries: OrderedDict[int, _Entry] = OrderedDict()
        self.repeats = 0  # frames whose output was reused

    def __call__(self, n: int, planes: list[np.ndarray], compute: Callable[[list[np.ndarray]], Any]) -> Any:
        with self._lock:
            previous = self._entries.get(n - 1)
            repeat = previous is not None and not previous.failed \
                and same(planes, previous.reference, self.threshold)
            if repeat:
                source = previous.source or previous  # type: ignore[union-attr]
                entry = _Entry(source.reference, source)
            else:
                entry = _Entry([p.copy() for p in planes])
            self._entries[n] = entry
            self._entries.move_to_end(n)
            while len(self._entries) > self.keep:
                self._entries.popitem(last=False)
        if entry.source is not None:
            entry.source.done.wait()
            if not entry.source.failed:
                with self._lock:
                    self.repeats += 1
                entry.finish(entry.source.output)
                return entry.output
            entry.source = None  # the frame it repeats failed: try its own
        try:
            entry.finish(compute(planes))
        except BaseException:
            entry.finish(None, failed=True)
            raise
        return entry.output
