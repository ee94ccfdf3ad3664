"""Test media made with PyAV: small videos with known frames, timestamps and tags."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def pattern(index: int, height: int, width: int, deep: bool = False) -> np.ndarray:
    """A smooth moving picture (networks behave on it; codecs keep it)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    r = 0.5 + 0.4 * np.sin((x + 3 * index) / 9.0)
    g = 0.5 + 0.4 * np.cos((y - 2 * index) / 7.0)
    b = 0.5 + 0.3 * np.sin((x + y) / 13.0)
    rgb = np.stack([r, g, b], axis=-1)
    return (rgb * 65535).astype(np.uint16) if deep else (rgb * 255).astype(np.uint8)


@dataclass
class VideoSpec:
    width: int = 64
    height: int = 48
    frames: int = 6
    pts: list[int] | None = None  # in time_base units; None = constant rate
    time_base: Fraction = Fraction(1, 90000)
    rate: Fraction = Fraction(24)
    codec: str = "libx264"
    pix_fmt: str = "yuv420p"
    audio: str | None = "aac"
    colorspace: int | None = None  # FFmpeg AVColorSpace
    color_range: int | None = None
    primaries: int | None = None
    transfer: int | None = None
    rotation: int | None = None
    sar: Fraction | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    stream_metadata: dict[str, str] = field(default_factory=dict)
    x265_params: str = ""  # added to x265's, e.g. HDR10's master-display and max-cll


def make_video(path: Path, spec: VideoSpec = VideoSpec()) -> Path:
    with av.open(str(path), "w") as out:
        v = out.add_stream(spec.codec, rate=spec.rate)
        v.width, v.height, v.pix_fmt = spec.width, spec.height, spec.pix_fmt
        v.time_base = v.codec_context.time_base = spec.time_base
        v.codec_context.options = {"preset": "ultrafast"} if spec.codec in ("libx264", "libx265") else {}
        if spec.codec == "libx265":
            params = ":".join(p for p in ("log-level=error", spec.x265_params) if p)
            v.codec_context.options = {"preset": "ultrafast", "x265-params": params}
        ctx = v.codec_context
        for attr, value in (("colorspace", spec.colorspace), ("color_range", spec.color_range),
                            ("color_primaries", spec.primaries), ("color_trc", spec.transfer)):
            if value is not None:
                setattr(ctx, attr, value)
        if spec.sar is not None:
            ctx.sample_aspect_ratio = spec.sar
        if spec.rotation is not None:
            v.set_display_rotation(spec.rotation)
        v.metadata.update(spec.stream_metadata)
        out.metadata.update(spec.metadata)
        a = out.add_stream(spec.audio, rate=48000) if spec.audio else None
        if a is not None:
            a.layout = "stereo"
        step = round(1 / (spec.rate * spec.time_base))
        pts = spec.pts or [i * step for i in range(spec.frames)]
        deep = "10" in spec.pix_fmt
        for i, t in enumerate(pts):
            rgb = pattern(i, spec.height, spec.width, deep)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb48le" if deep else "rgb24")
            kwargs = {}
            if spec.colorspace is not None:
                kwargs["dst_colorspace"] = spec.colorspace
            frame = frame.reformat(format=spec.pix_fmt, **kwargs)
            frame.pts, frame.time_base = t, spec.time_base
            out.mux(v.encode(frame))
        out.mux(v.encode(None))
        if a is not None:
            _write_tone(out, a, seconds=float((pts[-1] + step) * spec.time_base))
    return path


def _write_tone(out: av.container.OutputContainer, stream: av.AudioStream, seconds: float) -> None:
    rate, chunk = 48000, 1024
    total = int(seconds * rate)
    for start in range(0, total, chunk):
        t = (np.arange(start, min(start + chunk, total)) / rate).astype(np.float32)
        wave = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        frame = av.AudioFrame.from_ndarray(np.stack([wave, wave]), format="fltp", layout="stereo")
        frame.sample_rate, frame.pts = rate, start
        out.mux(stream.encode(frame))
    out.mux(stream.encode(None))


def frame_times(path: Path) -> list[float]:
    with av.open(str(path)) as c:
        return [float(f.pts * f.time_base) for f in c.decode(video=0)]


def packets(path: Path, kind: str) -> list[tuple[int | None, bytes]]:
    with av.open(str(path)) as c:
        streams = [s for s in c.streams if s.type == kind]
        return [(float(p.pts * p.time_base) if p.pts is not None else None, bytes(p))
                for p in c.demux(*streams) if p.size]
