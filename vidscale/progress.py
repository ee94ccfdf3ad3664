"""Progress on stderr: a tqdm bar on a terminal, periodic plain lines otherwise."""

from __future__ import annotations

import logging
import sys
import time

from tqdm import tqdm

log = logging.getLogger("vidscale")
PLAIN_INTERVAL_S = 5.0


class Progress:
    def __init__(self, total: int | None, quiet: bool, label: str):
        self.total, self.label, self.quiet = total or None, label, quiet
        self.done = 0
        self.started = self._last_line = time.monotonic()
        self.first_frame_at: float | None = None  # for the steady-state rate
        self.last_frame_at: float | None = None
        self._bar = None
        if not quiet and sys.stderr.isatty():
            self._bar = tqdm(total=self.total, unit="frame", desc=label, dynamic_ncols=True, leave=False)

    def update(self, n: int = 1) -> None:
        self.done += n
        self.last_frame_at = time.monotonic()
        if self.first_frame_at is None:
            self.first_frame_at = self.last_frame_at
        if self._bar is not None:
            self._bar.update(n)
        elif not self.quiet and time.monotonic() - self._last_line >= PLAIN_INTERVAL_S:
            self._last_line = time.monotonic()
            log.info("%s: %s", self.label, self._status())

    def _status(self) -> str:
        elapsed = time.monotonic() - self.started
        fps = self.done / elapsed if elapsed > 0 else 0.0
        if self.total:
            text = f"{self.done}/{self.total} frames"
            if fps > 0:
                text += f", {fps:.2f} fps, ETA {max(self.total - self.done, 0) / fps:.0f}s"
        else:
            text = f"{self.done} frames, {fps:.2f} fps"
        return text

    @property
    def steady_fps(self) -> float:
        """Frames per second between the first and the last frame out: start-up and
        the encoder's final flush excluded, as a long video would amortise them."""
        if self.first_frame_at is None or self.last_frame_at is None or self.done < 2:
            return 0.0
        return (self.done - 1) / max(self.last_frame_at - self.first_frame_at, 1e-9)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
