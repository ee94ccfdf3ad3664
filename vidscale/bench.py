"""`vidscale bench`: each pipeline stage alone, then the whole pipeline, on the same frames.

Efficiency = pipeline fps / slowest stage fps: 1.0 means the stages overlap
perfectly and the slowest one alone sets the pace. Every rate counts the same
frames, the middle half (`progress.steady_window`): the pipeline's from the
time each frame went out, so model loading, the last batches in flight and the
encoder's final flush are left out, as a long video would amortise them; each
stage's from the time it spent on each of those frames. The pipeline runs the
stages' own upscaler (one engine, one tile size), and the inference stage frees
each network output as the pipeline does: keeping them all where the network
allocates made the heap grow by 13.8 MB a frame (3,375 page faults a frame for
span-x2 at 320x180; almost none in the pipeline).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass, field, replace
from functools import partial
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from vidscale.core.settings import JobSettings
from vidscale.encoding import EncoderChoice, has_alpha, choose_encoder
from vidscale.engine.staging import Stager
from vidscale.errors import UsageError
from vidscale.job import run_job
from vidscale.media import yuv
from vidscale.media.color import ColorInfo, RgbConverter
from vidscale.media.frames import Frame
from vidscale.media.source import VideoSource
from vidscale.media.yuv import YuvImage
from vidscale.progress import steady_window
from vidscale.scale import output_size
from vidscale.transfer import Pixels, Transfer, size_of, transfer_for, yuv_route
from vidscale.upscaler import Upscaler


@dataclass
class BenchResult:
    source: str
    frames: int
    input_size: tuple[int, int]
    output_size: tuple[int, int]
    device: str
    model: str
    batch: int
    color: str = "host"  # where YUV<->RGB runs: "host" (swscale) or "device"
    stages: dict[str, float] = field(default_factory=dict)  # name -> frames per second
    pipeline_fps: float = 0.0
    load: tuple[float, float] = (0.0, 0.0)  # the 1-minute load average before and after
    rounds: list[tuple[float, float]] = field(default_factory=list)  # (inference alone, pipeline) fps

    @property
    def timed_frames(self) -> range:
        """The frames every rate counts (0-based), the pipeline's and each stage's."""
        return steady_window(self.frames)

    @property
    def efficiency(self) -> float:
        return self.pipeline_fps / min(self.stages.values()) if self.stages else 0.0

    def to_json(self) -> str:
        return json.dumps({
            "source": self.source, "frames": self.frames, "input": list(self.input_size[::-1]),
            "output": list(self.output_size[::-1]), "device": self.device, "model": self.model,
            "batch": self.batch, "color": self.color, "stages": {k: round(v, 3) for k, v in self.stages.items()},
            "pipeline_fps": round(self.pipeline_fps, 3),
            "efficiency": float(f"{self.efficiency:.4g}"),  # a trivial model's is tiny
            "timed_frames": [self.timed_frames.start, self.timed_frames.stop], "load": list(self.load),
            "rounds": [{"infer": round(i, 3), "pipeline": round(p, 3)} for i, p in self.rounds],
        })

    def table(self) -> str:
        slowest = min(self.stages, key=self.stages.get)  # type: ignore[arg-type]
        rows = [f"{self.source}: {self.frames} frames {self.input_size[1]}x{self.input_size[0]} -> "
                f"{self.output_size[1]}x{self.output_size[0]}, {self.model} on {self.device}, batch {self.batch}, "
                f"colour conversion on the {self.color}",
                f"{'stage':<10} {'fps':>10}"]
        rows += [f"{name:<10} {fps:>10.2f}{'  <- slowest' if name == slowest else ''}"
                 for name, fps in self.stages.items()]
        rows.append(f"{'pipeline':<10} {self.pipeline_fps:>10.2f}")
        rows.append(f"efficiency {self.efficiency:.2f} (pipeline / slowest stage)")
        if len(self.rounds) > 1:
            rows.append(f"infer and pipeline: the faster of {len(self.rounds)} rounds each, "
                        "taken in turn: " + ", ".join(f"{i:.2f}/{p:.2f}" for i, p in self.rounds))
        if self.timed_frames:
            rows.append(f"every rate over frames {self.timed_frames.start + 1}-{self.timed_frames.stop} "
                        f"of {self.frames} (counting from 1)")
        rows.append(f"load average {self.load[0]:.2f} before, {self.load[1]:.2f} after ({os.cpu_count()} "
                    "cores): others' work slows stages and pipeline, timed in turn, unequally")
        return "\n".join(rows)


def synthetic_clip(folder: Path, width: int, height: int, frames: int) -> Path:
    """A moving test pattern encoded losslessly-ish (x264, CRF 0 ultrafast) to decode like a real file."""
    path = folder / f"synthetic-{width}x{height}.mkv"
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=24, options={"crf": "0", "preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            rgb = np.stack([np.sin((x + 4 * i) / 17), np.cos((y - 3 * i) / 13), np.sin((x + y) / 29)], -1)
            frame = av.VideoFrame.from_ndarray(((rgb * 0.45 + 0.5) * 255).astype(np.uint8), format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


Mark = float | torch.cuda.Event  # when a stage began a batch: host time, or an event on the stream


class StageClock:
    """The time a stage spends on each frame (a batch's time shared among its frames)."""

    now = staticmethod(time.perf_counter)

    def __init__(self, device: torch.device):
        self.device = device
        self.frame_times: list[float] = []

    def start(self) -> Mark:
        _sync(self.device)
        return self.now()

    def stop(self, started: Mark, frames: int) -> None:
        _sync(self.device)
        self.frame_times += [(self.now() - started) / frames] * frames  # type: ignore[operator]

    def rate(self) -> float:
        """Frames per second over the frames the pipeline's steady rate counts."""
        window = steady_window(len(self.frame_times))
        return len(window) / max(sum(self.frame_times[i] for i in window), 1e-9)


class StreamClock(StageClock):
    """For a CUDA stream's work (inference): each batch timed by events on the stream, with no wait
    between batches, so they queue back to back as in the pipeline (where up to `depth` are in
    flight); a wait after each would add the next batch's launch time to the stage alone."""

    def __init__(self, device: torch.device):
        super().__init__(device)
        self._marks: list[tuple[torch.cuda.Event, torch.cuda.Event, int]] = []

    def start(self) -> Mark:
        return _event()

    def stop(self, started: Mark, frames: int) -> None:
        self._marks.append((started, _event(), frames))  # type: ignore[arg-type]

    def rate(self) -> float:
        if self._marks:
            _sync(self.device)
        for begin, end, frames in self._marks:
            self.frame_times += [begin.elapsed_time(end) / 1000 / frames] * frames
        self._marks.clear()
        return super().rate()


def _event() -> torch.cuda.Event:
    event = torch.cuda.Event(enable_timing=True)
    event.record()
    return event


def clock_for(device: torch.device, on_stream: bool = False) -> StageClock:
    """A stage's clock: CUDA events for work that stays on the device's stream, else host time."""
    return StreamClock(device) if on_stream and device.type == "cuda" else StageClock(device)


class _Stages:
    """A clock for each stage timed, by name; a clock with no name times a warm-up, not reported."""

    def __init__(self, device: torch.device):
        self.device = device
        self.clocks: dict[str, StageClock] = {}

    def __call__(self, name: str | None = None, on_stream: bool = False) -> StageClock:
        clock = clock_for(self.device, on_stream)
        if name is not None:
            self.clocks[name] = clock
        return clock

    def rates(self) -> dict[str, float]:
        return {name: clock.rate() for name, clock in self.clocks.items()}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_bench(source: Path, settings: JobSettings, rounds: int = 3) -> BenchResult:
    """Time each stage on the same frames, then the whole job with `settings` and the same upscaler.

    Inference alone and the pipeline take turns `rounds` times and each counts its fastest round:
    others' work on a shared machine only ever adds time, and it comes and goes between the two
    (inference alone, span-x2 at 320x180 on two cores: 8.5 fps at load average 2.0, 1.3 fps at 2.8).
    """
    load = _load_average()
    video = VideoSource(source, limit=settings.max_frames)
    up = Upscaler.for_job(settings, "video")
    result = BenchResult(source.name, 0, (video.info.height, video.info.width), (0, 0), str(up.device),
                         up.label(settings.scale or 2), settings.batch)
    plan = choose_encoder(".mp4", video.info.deep, video.info.pix_fmt, settings.encoder)
    route = yuv_route(video.info, plan.pix_fmt, has_alpha(plan.pix_fmt), video.info.color, up.device,
                      settings.device_color, settings.temporal_strength() is not None)
    result.color = "device" if route else "host"
    stage = _Stages(up.device)
    # with a route, frames in formats the device cannot convert still come as RGB
    decoded = _decode(video, stage("decode"), route is not None)
    video.close()
    if not decoded:
        raise UsageError(f"{source}: no frames to measure")
    result.frames = len(decoded)
    size = output_size(*size_of(decoded[0].pixels), settings.scale)
    result.output_size = size = (size[0] - size[0] % 2, size[1] - size[1] % 2)
    transfer = transfer_for(decoded[0], route)
    batches = [decoded[i:i + settings.batch] for i in range(0, len(decoded), settings.batch)]
    _upload(batches[:1], transfer, up.device, stage())  # warm-up: pinned buffers, filter taps
    uploaded = _upload(batches, transfer, up.device, stage("upload"))
    outputs = _infer(up, uploaded, size, stage("infer", on_stream=True))
    strength = settings.temporal_strength()
    if strength is not None:
        _temporal(strength, up, decoded, outputs, stage("temporal"))
    _download(outputs[:1], transfer, stage())  # warm-up
    converted = _download(outputs, transfer, stage("download"))
    outputs.clear()  # frees device memory before the pipeline runs
    uploaded.clear()
    with tempfile.TemporaryDirectory(prefix="vidscale-bench-") as tmp:
        _encode(converted, Path(tmp) / "enc.mp4", plan, video.info.color, stage("encode"))
        converted.clear()
        pipeline = partial(_pipeline, source, Path(tmp), settings, up)
        result.rounds.append((stage.clocks["infer"].rate(), pipeline()))
        for _ in range(rounds - 1):
            result.rounds.append((_infer_again(up, batches, transfer, size), pipeline()))
    result.stages = stage.rates()
    result.stages["infer"] = max(infer for infer, _ in result.rounds)
    result.pipeline_fps = max(fps for _, fps in result.rounds)
    result.load = (load, _load_average())
    return result


def _pipeline(source: Path, folder: Path, settings: JobSettings, up: Upscaler) -> float:
    """The whole job, with the upscaler the stages ran: its steady rate."""
    summary = run_job(str(source), str(folder / "pipeline.mp4"),
                      replace(settings, quiet=True, overwrite=True), upscaler=up)
    return summary.steady_fps


def _infer_again(up: Upscaler, batches: list[list[Frame]], transfer: Transfer,
                 size: tuple[int, int]) -> float:
    """Inference alone once more, for a later round: its rate (the upload untimed)."""
    uploaded = _upload(batches, transfer, up.device, StageClock(up.device))
    clock = clock_for(up.device, on_stream=True)
    _infer(up, uploaded, size, clock)
    return clock.rate()


def _load_average() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:  # not on every system
        return 0.0


def _decode(video: VideoSource, clock: StageClock, planes: bool) -> list[Frame]:
    items = video.items(planes=planes)
    out: list[Frame] = []
    while True:
        started = clock.start()
        frame = next((f for f in items if isinstance(f, Frame)), None)
        if frame is None:
            return out
        clock.stop(started, 1)
        out.append(frame)


def _upload(batches: list[list[Frame]], transfer: Transfer, device: torch.device,
            clock: StageClock) -> list[torch.Tensor]:
    """Host to device through page-locked memory, then to float RGB there (the stager's path)."""
    stager, pinned = Stager(device), []
    out: list[torch.Tensor] = []
    for group in batches:
        started = clock.start()
        pinned = stager.stage_in(pinned, transfer.planes([f.pixels for f in group]))
        tensors = [t.to(device, non_blocking=True) for t in pinned]
        out.append(transfer.to_float(tensors))
        clock.stop(started, len(group))  # synchronises: the pinned buffers are rewritten next
    return out


def _infer(up: Upscaler, batches: list[torch.Tensor], size: tuple[int, int],
           clock: StageClock) -> list[torch.Tensor]:
    """The network's outputs, each copied (untimed) into one buffer made beforehand and then freed,
    as the pipeline frees each batch's output once converted."""
    first = up.upscale(batches[0], size)  # warm-up: model load, cuDNN autotuning, CUDA graph capture
    held = torch.empty((sum(x.shape[0] for x in batches), *first.shape[1:]), dtype=first.dtype,
                       device=first.device)
    del first
    out: list[torch.Tensor] = []
    at = 0
    for x in batches:
        started = clock.start()
        y = up.upscale(x, size)
        clock.stop(started, x.shape[0])
        out.append(held[at:at + y.shape[0]].copy_(y))
        at += y.shape[0]
        del y  # before the next batch runs, as in the pipeline
    return out


def _temporal(strength: float, up: Upscaler, frames: list[Frame], outputs: list[torch.Tensor],
              clock: StageClock) -> None:
    """The anti-flicker pass alone, over the network's outputs in frame order."""
    from vidscale.temporal import TemporalFilter

    flt = TemporalFilter(strength, up.device)
    lows = iter(f.pixels for f in frames)
    for y in outputs:
        for i in range(y.shape[0]):
            started = clock.start()
            flt.apply(next(lows), y[i:i + 1])  # type: ignore[arg-type]
            clock.stop(started, 1)


def _download(batches: list[torch.Tensor], transfer: Transfer, clock: StageClock) -> list[Pixels]:
    """Convert to the encoder's format on the device, then device to host."""
    out: list[Pixels] = []
    for y in batches:
        started = clock.start()
        out.extend(transfer.split([t.cpu().numpy() for t in transfer.from_float(y)]))
        clock.stop(started, y.shape[0])
    return out


def _encode(pictures: list[Pixels], path: Path, plan: EncoderChoice, color: ColorInfo,
            clock: StageClock) -> None:
    """The video sink's work alone: RGB -> YUV conversion (unless done on the device) and encoding.
    The final flush is left out, as the pipeline's rate leaves it out."""
    first = pictures[0]
    h, w = (first.height, first.width) if isinstance(first, YuvImage) else first.shape[:2]
    converter = RgbConverter()
    with av.open(str(path), "w") as out:
        stream = out.add_stream(plan.codec, rate=24, options=dict(plan.options))
        stream.width, stream.height, stream.pix_fmt = w, h, plan.pix_fmt
        stream.codec_context.time_base = Fraction(1, 24)
        for i, picture in enumerate(pictures):
            started = clock.start()
            frame = (yuv.to_frame(picture) if isinstance(picture, YuvImage)
                     else converter.from_rgb(picture, plan.pix_fmt, color))
            frame.pts, frame.time_base = i, Fraction(1, 24)
            out.mux(stream.encode(frame))
            clock.stop(started, 1)
        out.mux(stream.encode(None))
