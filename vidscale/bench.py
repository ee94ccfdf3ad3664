"""`vidscale bench`: each pipeline stage alone, then the whole pipeline, on the same frames.

Efficiency = pipeline fps / slowest stage fps: 1.0 means the stages overlap
perfectly and the slowest one alone sets the pace. Stage rates exclude
start-up (a warm-up batch runs first); the pipeline rate is its steady rate
over the middle half of the frames (`progress.steady_rate`), so model loading,
the last batches in flight and the encoder's final flush are left out, as a
long video would amortise them.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from vidscale.core.settings import JobSettings
from vidscale.encoding import EncoderPlan, has_alpha, plan_encoder
from vidscale.engine.staging import Stager
from vidscale.errors import UsageError
from vidscale.job import run_job
from vidscale.media import yuv
from vidscale.media.color import ColorInfo, RgbConverter
from vidscale.media.frames import Frame
from vidscale.media.source import VideoSource
from vidscale.media.yuv import YuvImage
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

    @property
    def efficiency(self) -> float:
        return self.pipeline_fps / min(self.stages.values()) if self.stages else 0.0

    def to_json(self) -> str:
        return json.dumps({
            "source": self.source, "frames": self.frames, "input": list(self.input_size[::-1]),
            "output": list(self.output_size[::-1]), "device": self.device, "model": self.model,
            "batch": self.batch, "color": self.color, "stages": {k: round(v, 3) for k, v in self.stages.items()},
            "pipeline_fps": round(self.pipeline_fps, 3), "efficiency": round(self.efficiency, 3),
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


def _timed(fn: Callable[[], int], device: torch.device) -> float:
    """Frames per second of `fn` (which returns how many frames it handled)."""
    _sync(device)
    start = time.perf_counter()
    count = fn()
    _sync(device)
    return count / max(time.perf_counter() - start, 1e-9)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_bench(source: Path, settings: JobSettings) -> BenchResult:
    """Time each stage on the same frames, then the whole job with `settings`."""
    video = VideoSource(source)
    video.limit = settings.max_frames
    up = Upscaler.for_job(settings, "video")
    result = BenchResult(source.name, 0, (video.info.height, video.info.width), (0, 0), str(up.device),
                         up.label(settings.scale or 2), settings.batch)
    plan = plan_encoder(".mp4", video.info.deep, video.info.pix_fmt, settings.encoder)
    route = yuv_route(video.info, plan.pix_fmt, has_alpha(plan.pix_fmt), video.info.color, up.device,
                      settings.device_color, settings.temporal_strength() is not None)
    video.yuv_planes = route is not None  # frames in formats the device cannot convert still come as RGB
    result.color = "device" if route else "host"
    decoded: list[Frame] = []
    result.stages["decode"] = _timed(lambda: _decode(video, decoded), up.device)
    video.close()
    if not decoded:
        raise UsageError(f"{source}: no frames to measure")
    result.frames = len(decoded)
    size = output_size(*size_of(decoded[0].pixels), settings.scale)
    result.output_size = size = (size[0] - size[0] % 2, size[1] - size[1] % 2)
    transfer = transfer_for(decoded[0], route)
    batches = [decoded[i:i + settings.batch] for i in range(0, len(decoded), settings.batch)]
    uploaded: list[torch.Tensor] = []
    _upload(batches[:1], transfer, up.device, [])  # warm-up: pinned buffers, filter taps
    result.stages["upload"] = _timed(lambda: _upload(batches, transfer, up.device, uploaded), up.device)
    outputs: list[torch.Tensor] = []
    up.upscale(uploaded[0], size)  # warm-up: model load, cuDNN autotuning, CUDA graph capture
    result.stages["infer"] = _timed(lambda: _infer(up, uploaded, size, outputs), up.device)
    strength = settings.temporal_strength()
    if strength is not None:
        result.stages["temporal"] = _timed(lambda: _temporal(strength, up, decoded, outputs),
                                           up.device)
    converted: list[Pixels] = []
    _download(outputs[:1], transfer, [])  # warm-up
    result.stages["download"] = _timed(lambda: _download(outputs, transfer, converted), up.device)
    outputs.clear()  # frees device memory before the pipeline runs
    uploaded.clear()
    with tempfile.TemporaryDirectory(prefix="vidscale-bench-") as tmp:
        result.stages["encode"] = _timed(
            lambda: _encode(converted, Path(tmp) / "enc.mp4", plan, video.info.color), up.device)
        converted.clear()
        summary = run_job(str(source), str(Path(tmp) / "pipeline.mp4"), replace(settings, quiet=True))
        result.pipeline_fps = summary.steady_fps
    return result


def _decode(video: VideoSource, out: list[Frame]) -> int:
    out.extend(f for f in video.items() if isinstance(f, Frame))
    return len(out)


def _upload(batches: list[list[Frame]], transfer: Transfer, device: torch.device,
            out: list[torch.Tensor]) -> int:
    """Host to device through page-locked memory, then to float RGB there (the stager's path)."""
    stager, pinned = Stager(device), []
    for group in batches:
        pinned = stager.stage_in(pinned, transfer.planes([f.pixels for f in group]))
        tensors = [t.to(device, non_blocking=True) for t in pinned]
        out.append(transfer.to_float(tensors))
        _sync(device)  # the pinned buffers are rewritten next
    return sum(len(g) for g in batches)


def _infer(up: Upscaler, batches: list[torch.Tensor], size: tuple[int, int], out: list[torch.Tensor]) -> int:
    for x in batches:
        out.append(up.upscale(x, size))
    return sum(x.shape[0] for x in batches)


def _temporal(strength: float, up: Upscaler, frames: list[Frame], outputs: list[torch.Tensor]) -> int:
    """The anti-flicker pass alone, over the network's outputs in frame order."""
    from vidscale.temporal import TemporalFilter

    flt = TemporalFilter(strength, up.device)
    lows = iter(f.pixels for f in frames)
    count = 0
    for y in outputs:
        for i in range(y.shape[0]):
            flt.apply(next(lows), y[i:i + 1])  # type: ignore[arg-type]
            count += 1
    return count


def _download(batches: list[torch.Tensor], transfer: Transfer, out: list[Pixels]) -> int:
    """Convert to the encoder's format on the device, then device to host."""
    for y in batches:
        out.extend(transfer.split([t.cpu().numpy() for t in transfer.from_float(y)]))
    return len(out)


def _encode(pictures: list[Pixels], path: Path, plan: EncoderPlan, color: ColorInfo) -> int:
    """The video sink's work alone: RGB -> YUV conversion (unless done on the device) and encoding."""
    first = pictures[0]
    h, w = (first.height, first.width) if isinstance(first, YuvImage) else first.shape[:2]
    converter = RgbConverter()
    with av.open(str(path), "w") as out:
        stream = out.add_stream(plan.codec, rate=24, options=dict(plan.options))
        stream.width, stream.height, stream.pix_fmt = w, h, plan.pix_fmt
        stream.codec_context.time_base = Fraction(1, 24)
        for i, picture in enumerate(pictures):
            frame = (yuv.to_frame(picture) if isinstance(picture, YuvImage)
                     else converter.from_rgb(picture, plan.pix_fmt, color))
            frame.pts, frame.time_base = i, Fraction(1, 24)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return len(pictures)
