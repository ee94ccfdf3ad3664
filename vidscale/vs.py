"""The VapourSynth filter: `clip = vidscale.vs.upscale(clip, scale=2)` in a .vpy script.

Any constant-format RGB, YUV or GRAY clip goes in; the core's resizer turns it
into float RGB with the clip's own colour properties (`_Matrix`, `_Range`,
`_ChromaLocation`...), the same `Upscaler` as the CLI runs, and the result is
coded back into the input's format (or `out_format`), as VapourSynth filters
do. Arguments are checked as the CLI checks them, and every error is a
`vapoursynth.Error` with the CLI's words. This module needs `vapoursynth`;
nothing else in vidscale imports it.

VapourSynth calls a Python frame callback (`std.ModifyFrame`) for one frame at
a time per filter instance, so the clip is dealt out to several instances
("lanes": frame n goes to lane n % lanes) that run on VapourSynth's threads at
once, and a `Batcher` groups their concurrent requests into network calls of
up to `batch` frames, one call at a time.

With `temporal` the anti-flicker pass (`vidscale.temporal`) must see the frames
in order, so one callback serves them all through a `SequentialRunner`: each
request also receives the `WARMUP` source frames before it, to fill a gap in
the order or to rebuild the pass's history after a jump.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import torch
import vapoursynth as vs

from vidscale import options
from vidscale.engine.backend import pick_backend
from vidscale.errors import UsageError, VidscaleError
from vidscale.media.color import guess_matrix
from vidscale.repeats import Recent, Repeats
from vidscale.scale import output_size
from vidscale.temporal import DEFAULT_STRENGTH, WARMUP, TemporalFilter
from vidscale.upscaler import Upscaler

# How long the first of a batch waits for the others: well under a network
# call, and enough for VapourSynth's threads to deliver their frames.
GATHER_S = 0.005
DEFAULT_CUDA_BATCH = 4
# Frame properties that describe pixels of the input size, not the output's.
SIZE_BOUND_PROPS = ("_Alpha",)
# Outputs made ahead of their request (filling a gap in the order), kept until asked for.
AHEAD = 16

Format = int | vs.PresetVideoFormat | vs.VideoFormat


def upscale(
    clip: vs.VideoNode,
    scale: float = 2,
    model: str | None = None,
    backend: str = "auto",
    device: str | None = None,
    tile: int | None = None,
    fp16: bool | None = None,
    temporal: bool | float = False,
    batch: int | None = None,
    out_format: Format | None = None,
    skip_repeats: bool = True,
    repeat_threshold: float = 0,
) -> vs.VideoNode:
    """Upscale `clip` by `scale` with `model` (default: the built-in for the scale).

    Returns the input's format (YUV stays the same YUV with its matrix and
    range, GRAY stays GRAY) unless `out_format` names another, e.g. vs.RGBS.
    `backend`, `device` and `tile` are the CLI's --backend, --device and
    --tile; `fp16` computes in half precision on CUDA. `batch` is how many
    frames go through the network together (default 4 on CUDA, 1 on the CPU;
    at most `core.num_threads`). Errors in the arguments or the model are
    raised here, at script load, as `vapoursynth.Error`.

    `temporal` adds the anti-flicker pass: True for its default strength, or a
    strength 0-1. It sees every frame in order, so it runs one frame at a time
    (`batch` is ignored). Small gaps in the order VapourSynth asks in are filled
    exactly; after a jump back or far ahead the `WARMUP` frames before rebuild the
    pass's history, close to (not bit-identical with) a run in order.

    `skip_repeats` and `repeat_threshold` are the CLI's: a frame equal to the one
    before it reuses that frame's upscale (without the temporal pass: when that
    frame was asked for first), with the same output.
    """
    try:
        repeats = options.check("--repeat-threshold", options.REPEAT_THRESHOLD, repeat_threshold) \
            if skip_repeats else None
        return _upscale(clip, scale, model, backend, device, tile, fp16, temporal, batch, out_format, repeats)
    except (VidscaleError, ValueError) as exc:
        raise vs.Error(str(exc)) from exc


def _upscale(clip: vs.VideoNode, scale: float, model: str | None, backend: str, device: str | None,
             tile: int | None, fp16: bool | None, temporal: bool | float, batch: int | None,
             out_format: Format | None, repeats: float | None = None) -> vs.VideoNode:
    strength = _temporal_strength(temporal)
    _check_constant(clip)
    backend = options.check("--backend", options.BACKEND, backend)
    if tile is not None:
        tile = options.check("--tile", options.TILE, tile)
    if batch is not None:
        batch = options.check("--batch", options.BATCH, batch)
    size = output_size(clip.height, clip.width, scale)
    precision = _precision(fp16, backend, device)
    # unknown models and impossible backend/device pairs fail now
    upscaler = Upscaler(model, device, tile, precision, backend=backend, purpose="video")
    target = _target_format(out_format, clip.format)
    tags = _color_tags(clip, size)
    work = vs.GRAY if target.color_family == vs.GRAY else vs.RGB
    half = target.sample_type == vs.FLOAT and target.bits_per_sample == 16
    work_format = vs.core.query_video_format(work, vs.FLOAT, 16 if half else 32)  # RGBH only for RGBH out
    rgb = _to_float_rgb(clip, tags)
    if strength is None:
        batch, lanes = _batching(batch, upscaler.device, clip.num_frames)
        up = _upscaled(rgb, upscaler, size, work_format, batch, lanes, repeats)
    else:
        up = _temporal_upscaled(rgb, TemporalFilter(strength, upscaler.device), upscaler, size,
                                work_format, repeats)
    return _convert(up, target, tags)


def _temporal_strength(temporal: bool | float | None) -> float | None:
    """The anti-flicker strength asked for; None when off (strength 0 changes nothing)."""
    if temporal is None or temporal is False:
        return None
    strength = DEFAULT_STRENGTH if temporal is True else options.check("--temporal", options.TEMPORAL, temporal)
    return strength or None


@dataclass(frozen=True)
class ColorTags:
    """How the clip's pixels are coded: VapourSynth's (H.273) enum values."""

    matrix: int
    range: int  # vs.RANGE_LIMITED (0) or vs.RANGE_FULL (1)
    chromaloc: int


def _color_tags(clip: vs.VideoNode, out_size: tuple[int, int]) -> ColorTags:
    """The first frame's colour properties, with VapourSynth's usual defaults for the gaps.

    These serve as the resizer's arguments; a frame's own properties override
    them, so only frames without tags fall back to these.
    """
    props = clip.get_frame(0).props
    rgb = clip.format.color_family == vs.RGB
    matrix = int(props.get("_Matrix", vs.MATRIX_UNSPECIFIED))
    if matrix in (vs.MATRIX_RGB, vs.MATRIX_UNSPECIFIED):
        # untagged YUV: what players assume for its size; RGB: what the output's size asks
        h, w = out_size if rgb else (clip.height, clip.width)
        matrix = guess_matrix(w, h)
    return ColorTags(matrix, _range_of(props, vs.RANGE_FULL if rgb else vs.RANGE_LIMITED),
                     int(props.get("_ChromaLocation", vs.CHROMA_LEFT)))


def _range_of(props: vs.FrameProps, default: int) -> int:
    """`_Range`, or `_ColorRange` from sources older than R74 (same values)."""
    for key in ("_Range", "_ColorRange"):  # reading the old name warns: only when needed
        if key in props:
            return int(props[key])
    return default


def _check_constant(clip: vs.VideoNode) -> None:
    if not isinstance(clip, vs.VideoNode):
        raise UsageError(f"vidscale.vs.upscale needs a video clip, got {type(clip).__name__}")
    if clip.format is None or clip.width == 0 or clip.height == 0:
        raise UsageError("vidscale.vs.upscale: variable-size or variable-format clips are not "
                         "supported; resize the clip to one size and format first")
    if clip.format.color_family not in (vs.RGB, vs.YUV, vs.GRAY):
        raise UsageError(f"vidscale.vs.upscale: unsupported format {clip.format.name}")


def _precision(fp16: bool | None, backend: str, device: str | None) -> str | None:
    """fp16=True computes in fp16 on CUDA; the CPU computes in fp32 whatever is asked."""
    if fp16 is None:
        return None
    return "fp16" if fp16 and pick_backend(backend, device) != "cpu" else "fp32"


def _target_format(out_format: Format | None, source: vs.VideoFormat) -> vs.VideoFormat:
    """`out_format`, or the input's format: what VapourSynth filters hand back."""
    if out_format is None:
        return source
    fmt_id = out_format.id if isinstance(out_format, vs.VideoFormat) else int(out_format)
    try:
        fmt = vs.core.get_video_format(fmt_id)
    except vs.Error:
        fmt = None
    if fmt is None or fmt.color_family not in (vs.RGB, vs.YUV, vs.GRAY):
        raise UsageError(f"out_format {out_format!r} is not an RGB, YUV or GRAY video format")
    return fmt


def _batching(batch: int | None, device: torch.device, frames: int) -> tuple[int, int]:
    """(frames per network call, frame callbacks running at once).

    Two batches' worth of callbacks, so that the next batch gathers while one
    runs; neither more than VapourSynth has threads (or batches would never
    fill) nor than the clip has frames.
    """
    most = min(vs.core.num_threads, frames)
    batch = max(1, min(batch or (DEFAULT_CUDA_BATCH if device.type == "cuda" else 1), most))
    return batch, max(batch, min(2 * batch, most))


def _to_float_rgb(clip: vs.VideoNode, tags: ColorTags) -> vs.VideoNode:
    """Float RGB from any format; the resizer reads each frame's own colour tags first."""
    fmt = clip.format
    if fmt.color_family == vs.RGB and fmt.sample_type == vs.FLOAT:
        return clip  # RGBS/RGBH: the network takes them as they are
    kwargs: dict[str, Any] = {"range_in": tags.range}
    if fmt.color_family != vs.RGB:
        kwargs.update(matrix_in=tags.matrix, chromaloc_in=tags.chromaloc)
    return vs.core.resize.Bicubic(clip, format=vs.RGBS, **kwargs)


def _convert(clip: vs.VideoNode, target: vs.VideoFormat, tags: ColorTags) -> vs.VideoNode:
    """The upscaled float RGB (or gray) in the requested format, coded like the input."""
    if clip.format.id == target.id:
        return clip
    if target.color_family == vs.YUV:
        return vs.core.resize.Bicubic(clip, format=target.id, matrix=tags.matrix,
                                      range=tags.range, chromaloc=tags.chromaloc)
    if target.color_family == vs.GRAY:
        return vs.core.resize.Point(clip, format=target.id, range=tags.range)
    return vs.core.resize.Point(clip, format=target.id)


def _upscaled(rgb: vs.VideoNode, upscaler: Upscaler, size: tuple[int, int],
              work_format: vs.VideoFormat, batch: int, lanes: int,
              repeats: float | None = None) -> vs.VideoNode:
    """`rgb` through the network, dealt out to `lanes` frame callbacks that run at once; with
    `repeats` (a threshold), repeated frames take the output of the frame before them."""
    dtype = torch.float16 if work_format.bits_per_sample == 16 else torch.float32
    infer = partial(_infer, upscaler, size, dtype, work_format.num_planes == 1)
    recent = Recent(repeats, keep=2 * lanes + 2) if repeats is not None else None
    batcher = Batcher(infer, batch, GATHER_S)
    outs = []
    for lane in range(lanes):
        src = rgb if lanes == 1 else vs.core.std.SelectEvery(rgb, lanes, lane, modify_duration=False)
        blank = vs.core.std.BlankClip(src, width=size[1], height=size[0], format=work_format.id,
                                      keep=True)
        modify = partial(_modify_frame, batcher, recent, lane, lanes)
        outs.append(vs.core.std.ModifyFrame(blank, [src, blank], modify))
    return outs[0] if lanes == 1 else vs.core.std.Interleave(outs, modify_duration=False)


def _modify_frame(batcher: Batcher, recent: Recent | None, lane: int, lanes: int, n: int,
                  f: Sequence[vs.VideoFrame]) -> vs.VideoFrame:
    src, blank = f  # frame n of `lane`: frame n * lanes + lane of the clip
    inputs = [np.asarray(src[p]) for p in range(src.format.num_planes)]
    planes = batcher(inputs) if recent is None else recent(n * lanes + lane, inputs, batcher)
    out = blank.copy()
    for p in range(out.format.num_planes):
        np.copyto(np.asarray(out[p]), planes[p])
    _copy_props(src, out)
    return out


def _copy_props(src: vs.VideoFrame, out: vs.VideoFrame) -> None:
    """The source frame's properties (timing, SAR, custom ones), retagged for the output."""
    keys = set(src.props.keys()).difference(SIZE_BOUND_PROPS)
    if "_Range" in keys:
        keys.discard("_ColorRange")  # its deprecated twin (R74-R7x): reading it warns
    out.props.clear()
    out.props.update({key: src.props[key] for key in keys})
    # float RGB from the resizer is tagged RGB already; gray made from it must not be
    out.props["_Matrix"] = vs.MATRIX_RGB if out.format.color_family == vs.RGB else vs.MATRIX_UNSPECIFIED


def _infer(upscaler: Upscaler, size: tuple[int, int], dtype: torch.dtype, gray: bool,
           items: list[list[np.ndarray]]) -> np.ndarray:
    """A batch of frames (each a list of float planes) -> NxCxHxW array at `size`."""
    return _to_numpy(_network(upscaler, size, items), dtype, gray)


def _network(upscaler: Upscaler, size: tuple[int, int], items: list[list[np.ndarray]]) -> torch.Tensor:
    """A batch of frames (each a list of float RGB planes) -> Nx3xHxW in [0, 1] on the engine's device."""
    height, width = items[0][0].shape
    batch = np.empty((len(items), 3, height, width), dtype=items[0][0].dtype)
    for i, planes in enumerate(items):
        for p, plane in enumerate(planes):
            batch[i, p] = plane
    return upscaler.upscale(torch.from_numpy(batch), size)


def _to_numpy(y: torch.Tensor, dtype: torch.dtype, gray: bool) -> np.ndarray:
    if gray:
        y = y.mean(dim=1, keepdim=True)  # as `upscale_image` does for gray pictures
    return y.to(dtype).cpu().numpy()


# ---------------------------------------------------------------- temporal pass


def _temporal_upscaled(rgb: vs.VideoNode, pass_: TemporalFilter, upscaler: Upscaler,
                       size: tuple[int, int], work_format: vs.VideoFormat,
                       repeats: float | None = None) -> vs.VideoNode:
    """`rgb` through the network and the anti-flicker pass, in frame order whatever VS asks;
    with `repeats` (a threshold), the network skips repeated frames (the pass sees them)."""
    dtype = torch.float16 if work_format.bits_per_sample == 16 else torch.float32
    held = _Held(Repeats(repeats)) if repeats is not None else None
    step = partial(_temporal_step, upscaler, size, dtype, work_format.num_planes == 1, pass_, held)

    def reset() -> None:
        pass_.reset()
        if held is not None:
            held.reset()

    runner = SequentialRunner(step, reset)
    # clip d hands out frame n - d with frame n, so the callback can fill gaps and warm up
    earlier = [_delayed(rgb, d) for d in range(1, min(WARMUP, rgb.num_frames - 1) + 1)]
    blank = vs.core.std.BlankClip(rgb, width=size[1], height=size[0], format=work_format.id, keep=True)
    return vs.core.std.ModifyFrame(blank, [rgb, blank, *earlier], partial(_modify_temporal, runner))


def _delayed(clip: vs.VideoNode, d: int) -> vs.VideoNode:
    """Frame n is `clip`'s frame max(0, n - d)."""
    return clip[0] * d + clip[: clip.num_frames - d]


def _modify_temporal(runner: SequentialRunner, n: int, f: Sequence[vs.VideoFrame]) -> vs.VideoFrame:
    src, blank, earlier = f[0], f[1], f[2:]

    def source(k: int) -> list[np.ndarray]:  # frame k (n - WARMUP <= k <= n) as float planes
        frame = src if k == n else earlier[n - k - 1]
        return [np.asarray(frame[p]) for p in range(frame.format.num_planes)]

    planes = runner(n, source)
    out = blank.copy()
    for p in range(out.format.num_planes):
        np.copyto(np.asarray(out[p]), planes[p])
    _copy_props(src, out)
    return out


def _temporal_step(upscaler: Upscaler, size: tuple[int, int], dtype: torch.dtype, gray: bool,
                   pass_: TemporalFilter, held: _Held | None, planes: list[np.ndarray]) -> np.ndarray:
    """One frame's float RGB planes -> its CxHxW output, through the network and the pass."""
    if held is not None and held.repeats.check(np.stack(planes, axis=-1)) and held.sr is not None:
        sr = held.sr  # the pass still runs: on a held picture its history moves on
    else:
        sr = _network(upscaler, size, [planes])
    if held is not None:
        held.sr = sr
    # the pass reads the low-res frame as integers (its flow estimator wants 8 bits)
    lr = np.rint(np.clip(np.stack(planes, axis=-1), 0, 1) * 65535).astype(np.uint16)
    return _to_numpy(pass_.apply(lr, sr), dtype, gray)[0]


@dataclass
class _Held:
    """The temporal path's repeats: frames come in order, so the last network output serves."""

    repeats: Repeats
    sr: torch.Tensor | None = None

    def reset(self) -> None:
        self.repeats.reset()
        self.sr = None


class SequentialRunner:
    """Runs a stateful per-frame `step` in frame order, whatever order the frames are asked in.

    A request for frame n (with `source(k)` giving input frame k for n - warmup <= k <= n):
    - made ahead earlier: that output;
    - at most `warmup` frames past the last one stepped: the frames between are stepped
      first (kept for their requests), then n; exactly what a run in order gives;
    - otherwise (back in the clip, or a jump): `reset()`, then the `warmup` frames before n
      rebuild the history, and n is stepped.
    Outputs with less than `warmup` frames of history (other than from frame 0) are never
    handed out, so every output is within the warm-up's error of a run in order.
    """

    def __init__(self, step: Callable[[list[np.ndarray]], Any], reset: Callable[[], None],
                 warmup: int = WARMUP, ahead: int = AHEAD):
        self._step, self._reset, self._warmup, self._keep = step, reset, warmup, ahead
        self._lock = threading.Lock()
        self._last: int | None = -1  # last frame stepped; None: the state is unusable
        self._start = 0  # first frame of the current history
        self._ahead: OrderedDict[int, Any] = OrderedDict()

    def __call__(self, n: int, source: Callable[[int], list[np.ndarray]]) -> Any:
        with self._lock:
            if n in self._ahead:
                return self._ahead.pop(n)
            try:
                return self._run_to(n, source)
            except BaseException:
                self._last = None  # stopped mid-way: start over next time
                raise

    def _run_to(self, n: int, source: Callable[[int], list[np.ndarray]]) -> Any:
        if self._last is None or not self._last < n <= self._last + self._warmup + 1:
            self._reset()
            self._start = max(0, n - self._warmup)
            self._last = self._start - 1
        for k in range(self._last + 1, n):
            out = self._step(source(k))
            self._last = k
            if self._start == 0 or k - self._start >= self._warmup:
                self._keep_ahead(k, out)
        out = self._step(source(n))
        self._last = n
        return out

    def _keep_ahead(self, k: int, out: Any) -> None:
        self._ahead[k] = out
        while len(self._ahead) > self._keep:
            self._ahead.popitem(last=False)  # the oldest: its request is least likely to come


@dataclass
class _Job:
    item: Any
    deadline: float
    done: bool = False
    result: Any = None
    error: BaseException | None = None


class Batcher:
    """Groups concurrent calls into batched calls of `fn`, one batch at a time.

    A caller queues its item and waits. Whichever waiting caller finds no batch
    running takes the oldest items (up to `max_batch`) once the batch is full
    or the oldest has waited `gather_s`, runs `fn` on them outside the lock and
    hands every caller its result. Items queued while a batch runs form the
    next one, so gathering overlaps the running batch.
    """

    def __init__(self, fn: Callable[[list[Any]], Sequence[Any]], max_batch: int,
                 gather_s: float = GATHER_S):
        self._fn, self._max, self._gather = fn, max_batch, gather_s
        self._cond = threading.Condition()
        self._queue: list[_Job] = []
        self._busy = False

    def __call__(self, item: Any) -> Any:
        job = _Job(item, time.monotonic() + self._gather)
        with self._cond:
            self._queue.append(job)
            self._cond.notify_all()
        while batch := self._claim(job):
            self._run(batch)
        if job.error is not None:
            raise job.error
        return job.result

    def _claim(self, job: _Job) -> list[_Job]:
        """Wait until `job` is done ([]) or this caller is to run the next batch."""
        with self._cond:
            while not job.done:
                if self._busy or not self._queue:
                    self._cond.wait()
                    continue
                wait = self._queue[0].deadline - time.monotonic()
                if len(self._queue) >= self._max or wait <= 0:
                    batch, self._queue = self._queue[: self._max], self._queue[self._max:]
                    self._busy = True
                    return batch
                self._cond.wait(wait)
            return []

    def _run(self, batch: list[_Job]) -> None:
        results: Sequence[Any] = ()
        error: BaseException | None = None
        try:
            results = self._fn([job.item for job in batch])
        except BaseException as exc:  # every caller in the batch gets it
            error = exc
        with self._cond:
            for i, job in enumerate(batch):
                job.done, job.error = True, error
                job.result = None if error else results[i]
            self._busy = False
            self._cond.notify_all()
