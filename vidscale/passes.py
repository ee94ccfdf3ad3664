"""One pass of frames: a source's items through the upscaler (and temporal filter) into a sink."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Protocol

import av
import torch

from vidscale.core.settings import JobSettings
from vidscale.engine.staging import Pending, Stager
from vidscale.engine.tiling import between_tiles
from vidscale.errors import UsageError
from vidscale.media.frames import Frame
from vidscale.media.protocols import Sink, Source
from vidscale.pipeline import run_pipeline
from vidscale.progress import Progress
from vidscale.repeats import Repeats, Reuse
from vidscale.scale import output_size
from vidscale.transfer import Pixels, Transfer, YuvRoute, size_of, transfer_for
from vidscale.upscaler import Upscaler

if TYPE_CHECKING:
    from vidscale.temporal import TemporalFilter

log = logging.getLogger("vidscale")


class FrameTap(Protocol):
    """Sees frames go by (a page's live look at a job): each input frame before it is upscaled,
    each result before it is written. Both calls must be quick."""

    def source(self, frame: Frame) -> None: ...

    def result(self, frame: Frame) -> None: ...


_tap: ContextVar[FrameTap | None] = ContextVar("vidscale_frame_tap", default=None)


@contextmanager
def tapping(tap: FrameTap) -> Iterator[None]:
    """Within the block, on this thread, the passes run in this process show their frames to `tap`."""
    token = _tap.set(tap)
    try:
        yield
    finally:
        _tap.reset(token)


class SizeRule:
    """Output size for an input size; even sizes for video (4:2:0 chroma needs them)."""

    def __init__(self, settings: JobSettings, even: bool):
        self.settings, self.even = settings, even

    def __call__(self, height: int, width: int) -> tuple[int, int]:
        s = self.settings
        h, w = output_size(height, width, s.scale, s.width, s.height)
        if self.even:
            h, w = max(2, h - h % 2), max(2, w - w % 2)
        s.limits.check_output(w, h)
        return h, w


def run_pass(source: Source, upscaler: Upscaler, sizes: SizeRule, sink: Sink, settings: JobSettings,
             progress: Progress, carried: Sequence[av.stream.Stream] = (), yuv: YuvRoute | None = None,
             items: object = None) -> int:
    """Upscale every frame of `source` (or of `items`, an iterable of its items) into `sink`;
    returns how many of the frames written were repeats (see `repeats.py`). With a `yuv`
    route the source decodes to planes where it can (`items` are asked for them by the caller).

    Frames marked `warmup` go through the network and the temporal filter, so the
    filter starts in the state a run from the clip's start would have, but are not written.
    """
    temporal = temporal_filter(settings, upscaler, source)
    stager = Stager(upscaler.device)
    tap = _tap.get()
    # Repeats are found here, the one place that sees every frame of a pass in order (the
    # pipeline only carries frames, the upscaler knows no order, and the anti-flicker pass
    # must still see each repeat to evolve as it would without skipping); a new pass (a
    # segment) starts with no previous frame.
    repeats = repeat_finder(settings, source)
    reuse, written = Reuse(), [0]

    def upscale(frames: list[Frame]) -> _Started:
        if tap is not None:
            for frame in frames:
                tap.source(frame)
        batch = [f.pixels for f in frames]
        transfer = transfer_for(frames[0], yuv)
        size = sizes(*size_of(batch[0]))
        repeat = [repeats is not None and repeats.check(f.pixels, f.color) for f in frames]
        written[0] += sum(r and not f.warmup for r, f in zip(repeat, frames))

        def compute(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
            out = reuse.run(transfer.to_float(tensors), repeat, lambda x: upscaler.upscale_channels(x, size))
            if temporal is not None and out.shape[1] == 3:  # batches arrive in frame order
                out = torch.cat([temporal.apply(lr, out[i:i + 1]) for i, lr in enumerate(batch)])  # type: ignore[arg-type]
            return transfer.from_float(out)

        return _Started(stager.submit(transfer.planes(batch), compute), transfer)

    read = items if items is not None else source.items(carried, planes=yuv is not None)
    try:
        with between_tiles(progress.check):  # inference runs on this thread: a cancel stops mid-frame
            run_pipeline(read, upscale,  # type: ignore[arg-type]
                         sink.write if tap is None else _tapped(sink, tap), sink.write_packet, sink.close, batch=settings.batch,
                         on_frame=progress.update, depth=stager.depth)
    except BaseException:
        sink.abort()
        raise
    return written[0]


def _tapped(sink: Sink, tap: FrameTap) -> Callable[[Frame], None]:
    def write(frame: Frame) -> None:
        tap.result(frame)
        sink.write(frame)
    return write


class _Started:
    """A batch in flight; its result is one pixels object per frame."""

    def __init__(self, pending: Pending, transfer: Transfer):
        self.pending, self.transfer = pending, transfer

    def result(self) -> list[Pixels]:
        return self.transfer.split(self.pending.result())


def temporal_filter(settings: JobSettings, upscaler: Upscaler, source: Source) -> "TemporalFilter | None":
    """The anti-flicker pass, when asked for (`True` means the default strength).

    Off for a folder of photos: unrelated pictures have no motion to follow.
    """
    strength = settings.temporal_strength()
    if strength is None:
        return None
    if source.root is not None:
        log.info("--temporal: off for a folder of photos (use a pattern or glob for frames)")
        return None
    from vidscale.temporal import TemporalFilter

    if not 0 <= strength <= 1:
        raise UsageError(f"--temporal {strength:g}: strength must be between 0 and 1")
    return TemporalFilter(strength, upscaler.device)


def repeat_finder(settings: JobSettings, source: Source) -> Repeats | None:
    """Repeats are looked for in clips and sequences; not among photos (a folder, or one picture),
    where the comparison would only hold a copy of a possibly huge picture."""
    if not settings.skip_repeats or source.photos:
        return None
    return Repeats(settings.repeat_threshold)

