"""Progress on stderr: a tqdm bar on a terminal, periodic plain lines otherwise."""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable

from tqdm import tqdm

from vidscale.errors import Cancelled

log = logging.getLogger("vidscale")
PLAIN_INTERVAL_S = 5.0
Listener = Callable[[int, "int | None"], None]  # (frames done, frames expected or None)


class Progress:
    def __init__(self, total: int | None, quiet: bool, label: str, listener: Listener | None = None,
                 cancel: threading.Event | None = None, unit: str = "frame"):
        self.total, self.label, self.quiet, self.unit = total or None, label, quiet, unit
        self.listener, self.cancel = listener, cancel
        self.done = 0
        self.started = self._last_line = time.monotonic()
        self.frame_times: list[float] = []  # when each frame went out: for the steady-state rate
        self._bar = None
        if not quiet and sys.stderr.isatty():
            self._bar = tqdm(total=self.total, unit=unit, desc=label, dynamic_ncols=True, leave=False)

    def update(self, n: int = 1) -> None:
        self.done += n
        self.frame_times.extend([time.monotonic()] * n)
        if self.listener is not None:
            self.listener(self.done, self.total)
        self.check()
        if self._bar is not None:
            self._bar.update(n)
        elif not self.quiet and time.monotonic() - self._last_line >= PLAIN_INTERVAL_S:
            self._last_line = time.monotonic()
            log.info("%s: %s", self.label, self._status())

    def check(self) -> None:
        """Raise `Cancelled` once the caller's cancel event is set (between frames, and between tiles)."""
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled("cancelled")

    def _status(self) -> str:
        elapsed = time.monotonic() - self.started
        fps = self.done / elapsed if elapsed > 0 else 0.0
        rate = f", {fps:.2f} fps" if self.unit == "frame" else ""  # a rate of photos means little
        if self.total:
            text = f"{self.done}/{self.total} {self.unit}s"
            if fps > 0:
                text += f"{rate}, ETA {max(self.total - self.done, 0) / fps:.0f}s"
        else:
            text = f"{self.done} {self.unit}s{rate}"
        return text

    @property
    def steady_fps(self) -> float:
        """Frames per second over the middle half of the frames, as a long video runs:
        start-up (model load, autotuning) and the end (batches still in flight come out
        together, the encoder flushes) are left out. Short runs use first to last frame."""
        return steady_rate(self.frame_times)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def steady_window(frames: int, min_frames: int = 8) -> range:
    """The frames a steady rate counts: those after the one a quarter of the way through, up to
    the one three quarters of the way (short runs: all but the first). `vidscale bench` times
    its stages over the same frames."""
    if frames < min_frames:
        return range(1, frames)
    return range(frames // 4 + 1, frames - frames // 4)


def steady_rate(times: list[float], min_frames: int = 8) -> float:
    """Frames per second over `steady_window`, from the time each frame went out."""
    window = steady_window(len(times), min_frames)
    if not window:
        return 0.0
    return len(window) / max(times[window[-1]] - times[window[0] - 1], 1e-9)
