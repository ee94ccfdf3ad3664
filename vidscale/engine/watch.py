"""What a caller sees of a frame while it is being computed: a cancel check and a fraction done.

A picture on the CPU is one frame of up to minutes of work. The caller (a job with a
cancel button, a page with a progress bar) installs, on the thread that runs inference:

- `between_tiles(check)`: `check` is called before each tile but the first, and after
  each convolution of a PyTorch network (`TorchEngine`), so an exception it raises (a
  cancel) ends the frame within one layer's time. Checking between layers keeps a
  frame's tiling and so its result: tiles small enough to take a second each would
  cost up to four times the work in overlap (ESRGAN needs 192 px of it) and change
  the output.
- `reporting(report)`: `report(fraction)` gets the fraction of the current frame
  (or batch) done, from layers, tiles, the two passes of SE-synced networks and the
  passes of a chain, each a `part` of the one that holds it.

Without either, the checkpoints cost a context-variable lookup.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_check: ContextVar[Callable[[], None] | None] = ContextVar("vidscale_check", default=None)
_report: ContextVar[Callable[[float], None] | None] = ContextVar("vidscale_report", default=None)
_span: ContextVar[tuple[float, float]] = ContextVar("vidscale_span", default=(0.0, 1.0))


@contextmanager
def between_tiles(check: Callable[[], None]) -> Iterator[None]:
    """Within the block, on this thread, tiles and layers call `check`; an exception it
    raises (a cancel) ends the frame there."""
    token = _check.set(check)
    try:
        yield
    finally:
        _check.reset(token)


@contextmanager
def reporting(report: Callable[[float], None]) -> Iterator[None]:
    """Within the block, on this thread, `report` gets the fraction of the frame done."""
    token = _report.set(report)
    try:
        yield
    finally:
        _report.reset(token)


def current_check() -> Callable[[], None] | None:
    return _check.get()


def watched() -> bool:
    """True while someone wants fractions (work to measure them is worth doing)."""
    return _report.get() is not None


@contextmanager
def part(index: int, count: int) -> Iterator[None]:
    """The block is the `index`-th of `count` equal parts of the work that holds it."""
    lo, hi = _span.get()
    step = (hi - lo) / max(count, 1)
    token = _span.set((lo + index * step, lo + (index + 1) * step))
    try:
        yield
    finally:
        _span.reset(token)


def reached(fraction: float, check: bool = True) -> None:
    """`fraction` of the current part is done: report it, then check for a cancel."""
    report = _report.get()
    if report is not None:
        lo, hi = _span.get()
        report(lo + (hi - lo) * min(max(fraction, 0.0), 1.0))
    if check and (stop := _check.get()) is not None:
        stop()
