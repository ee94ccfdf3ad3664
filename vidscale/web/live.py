"""The live look at a running video job: its latest upscaled frame beside the source frame.

A `LiveLook` is the job's frame tap (`passes.tapping`): every INTERVAL_S it keeps a copy
of the next input frame and of the result made from it, as 8-bit RGB. The page asks for
them as JPEG while the job runs; nothing is written to disk.
"""

from __future__ import annotations

import io
import threading
import time

import numpy as np
from PIL import Image

from vidscale.media import yuv
from vidscale.media.frames import Frame
from vidscale.media.image import to_rgb

INTERVAL_S = 2.0
JPEG_QUALITY = 85
GIVE_UP_S = 120.0  # on a source frame whose result never came


class LiveLook:
    def __init__(self, interval_s: float = INTERVAL_S):
        self.interval_s = interval_s
        self.index: int | None = None  # the frame of the pair shown, once both are in
        self._lock = threading.Lock()
        self._wanted: int | None = None
        self._source: np.ndarray | None = None
        self._pair: tuple[np.ndarray, np.ndarray] | None = None
        self._taken_at = -interval_s

    def source(self, frame: Frame) -> None:
        now = time.monotonic()
        # batches are upscaled ahead of writing: a frame still awaited is not replaced (unless
        # lost, as a skipped frame would be), or slow batches would never complete a pair
        awaited = self._wanted is not None and now - self._taken_at < GIVE_UP_S
        if frame.warmup or awaited or now - self._taken_at < self.interval_s:
            return
        pixels = rgb8(frame.pixels)
        with self._lock:
            self._taken_at, self._wanted, self._source = now, frame.index, pixels

    def result(self, frame: Frame) -> None:
        if frame.index != self._wanted:
            return
        pixels = rgb8(frame.pixels)
        with self._lock:
            if frame.index == self._wanted and self._source is not None:
                self._pair, self.index, self._wanted = (self._source, pixels), frame.index, None

    def jpeg(self, which: str) -> bytes | None:
        """The source ("before") or result ("after") frame of the latest pair, as JPEG."""
        with self._lock:
            pair = self._pair
        if pair is None:
            return None
        out = io.BytesIO()
        Image.fromarray(pair[0] if which == "before" else pair[1]).save(out, "JPEG", quality=JPEG_QUALITY)
        return out.getvalue()


def rgb8(pixels: np.ndarray | yuv.YuvImage) -> np.ndarray:
    """A frame's pixels (RGB, gray, RGBA, 16-bit, or the encoder's YUV planes) as a new 8-bit RGB array."""
    if isinstance(pixels, yuv.YuvImage):
        return yuv.to_frame(pixels).to_ndarray(format="rgb24")
    rgb = to_rgb(pixels)
    return (rgb >> 8).astype(np.uint8) if rgb.dtype == np.uint16 else np.array(rgb)  # a copy: buffers get reused
