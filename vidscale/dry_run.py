"""What a job is about to do, in words, and what it would cost.

`describe` is the plan `--verbose` states before work starts: input, output
size, model chain and passes, backend, device, precision, tile size, batch,
the temporal pass and the encoder with its settings. `estimate` is what
`--dry-run` adds: it times a few frames (a large frame by a centre crop and
its tiles counted: frame_cost.py), encodes what it upscaled where nothing can
see it (a temporary folder) and scales both up to the whole job.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import av
import numpy as np

from vidscale.core.settings import JobSettings
from vidscale.core.units import duration, human_bytes
from vidscale.encoding import choose_encoder
from vidscale.engine.tiling import aligned_tile
from vidscale.frame_cost import SIDE, centre_crop, frame_cost, warm_up
from vidscale.media.frames import Frame
from vidscale.media.protocols import Source
from vidscale.media.source import VideoSource
from vidscale.upscaler import Upscaler

Sizes = Callable[[int, int], tuple[int, int]]  # input (height, width) -> output (height, width)
SAMPLE_FRAMES = 3  # frames or files (a video's: a keyframe, then two that set the rate of the rest)


def describe(source: Source, output: Path, kind: str, upscaler: Upscaler, settings: JobSettings,
             sizes: Sizes, first: tuple[int, int], count: int | None) -> str:
    """The plan, one aspect per line."""
    out_h, out_w = sizes(*first)
    factor = max(out_h / first[0], out_w / first[1])
    rows = [("input", _input(source, first, count)), *_start(source, settings),
            ("output", f"{output} ({kind}), {out_w}x{out_h} from {first[1]}x{first[0]} (x{factor:.3g})"),
            ("models", _models(upscaler, factor, (out_w, out_h))),
            ("engine", _engine(upscaler, factor, settings, first)),
            ("temporal", _temporal(settings, source)),
            ("encoder", _encoder(source, output, kind, settings))]
    return "plan:\n" + "\n".join(f"  {name + ':':<10}{text}" for name, text in rows)


def _input(source: Source, first: tuple[int, int], count: int | None) -> str:
    frames = f"{count} frames" if count else "frame count unknown"
    if source.info is not None:  # a clip
        rate = f" at {float(source.info.rate):.3g} fps" if source.info.rate else ""
        what = "video" if source.video else "animation"
        return f"{source.paths[0]}: {what} {first[1]}x{first[0]}, {frames}{rate}"
    if source.root is not None:
        return f"{source.root}: {len(source.paths)} pictures (first {first[1]}x{first[0]})"
    if len(source.paths) > 1:
        return f"{len(source.paths)} numbered frames from {source.paths[0]} ({first[1]}x{first[0]})"
    return f"{source.paths[0]}: picture {first[1]}x{first[0]}"


def _start(source: Source, settings: JobSettings) -> list[tuple[str, str]]:
    """The plan's row for --start, when given: where the job begins and what follows it."""
    start = settings.start
    if start is None:
        return []
    if source.info is None:  # a sequence: files skipped
        fps = settings.encoder.fps
        skip = start.frame_at(fps)
        why = "" if start.frame is not None else f" ({float(start.seconds):g}s at {float(fps):g} fps)"  # type: ignore[arg-type]
        return [("start", f"the first {skip} file{'s' * (skip != 1)} of the sequence skipped{why}")]
    at = f"frame {start.frame} (counted from 0)" if start.frame is not None else f"{float(start.seconds):g}s"  # type: ignore[arg-type]
    first = "the first frame at or after it" if start.seconds is not None else "that frame"
    if source.video:
        return [("start", f"at {at}: {first}, decoded from the keyframe before (from the first frame where "
                 "seeking is not exact); output times start at 0, "
                 "audio, subtitles and chapters cut and moved with them")]
    return [("start", f"at {at}: {first} (the frames before it decoded and dropped); times start at 0")]


def _models(upscaler: Upscaler, factor: float, size: tuple[int, int]) -> str:
    if upscaler.resizer:
        return f"{upscaler.resizer} resize to {size[0]}x{size[1]} (no network)"
    passes = upscaler.networks_for(factor)
    reached = float(np.prod([upscaler.engine(m).scale for m in passes]))
    chain = " -> ".join(f"{m.name} (x{upscaler.engine(m).scale})" for m in passes)
    text = f"{chain}: {len(passes)} pass{'es' * (len(passes) != 1)}"
    if abs(reached - factor) > 1e-6:
        text += f", then bicubic from x{reached:g} to {size[0]}x{size[1]}"
    return text


def _engine(upscaler: Upscaler, factor: float, settings: JobSettings, first: tuple[int, int]) -> str:
    passes = upscaler.networks_for(factor)
    engine = upscaler.engine(passes[0]) if passes else None
    runtime = getattr(engine, "runtime", None)  # an ONNX file's: OpenVINO or onnxruntime
    text = f"backend {upscaler.backend}{f' ({runtime})' if runtime else ''}, device {upscaler.device}"
    if engine is None:
        return text
    precision = getattr(engine, "precision", None)
    if not isinstance(precision, str):
        precision = str(getattr(engine, "dtype", "float32")).removeprefix("torch.")
    text += f", precision {precision}, batch {settings.batch}"
    if engine.fixed_tile:
        grid = getattr(engine, "align", 1)
        tile = aligned_tile(engine.fixed_tile, grid)
        rounded = f" (on the network's {grid} px grid)" if tile != engine.fixed_tile else ""
        return text + f", tile {tile} px{rounded}"
    auto = getattr(engine, "auto_tile", None)
    if auto is None:
        return text + ", tile from free memory"
    tile = auto(settings.batch, *first)
    return text + (", untiled (the frame fits in memory)" if tile >= max(first) else
                   f", tile {tile} px (from free memory)")


def _temporal(settings: JobSettings, source: Source) -> str:
    strength = settings.temporal_strength()
    if strength is None:
        return "off"
    if source.root is not None:
        return "off (a folder of photos)"
    return f"anti-flicker pass, strength {strength:g}"


def _encoder(source: Source, output: Path, kind: str, settings: JobSettings) -> str:
    if kind == "video":
        video = source.video
        plan = choose_encoder(output.suffix, bool(video and video.deep), video.pix_fmt if video else None,
                            settings.encoder)
        options = " ".join(f"{k}={v}" for k, v in plan.options.items())
        return f"{plan.codec} {plan.pix_fmt}" + (f" {options}" if options else "")
    suffix = settings.image_format if kind == "folder" and settings.image_format else output.suffix
    what = suffix.lstrip(".").upper() if suffix else "each input's own type"
    quality = f"quality {settings.quality}" if settings.quality else "default quality (JPEG: the source's)"
    return f"{what} images, {quality}"


@dataclass
class Estimate:
    frames: int | None  # frames (or pictures) the job would write; None: unknown
    seconds_per_frame: float
    bytes_per_frame: float
    sample: int  # frames upscaled (whole or in part) for the estimate
    unit: str = "frame"  # "picture" for photos
    basis: str = ""  # how a frame's cost was found (timed whole, or a crop extrapolated)

    def line(self, output: Path) -> str:
        u = self.unit
        each = f"{self.seconds_per_frame:.2f}s and {human_bytes(self.bytes_per_frame)} per {u}"
        sample = f"from {self.sample} sample {u}{'s' * (self.sample != 1)}"
        sample += f": {self.basis}" if self.basis else ""
        if not self.frames:
            return f"{output}: dry run, nothing written; {each} ({sample})"
        return (f"{output}: dry run, nothing written; estimate for {self.frames} {u}{'s' * (self.frames != 1)}: "
                f"about {duration(self.seconds_per_frame * self.frames)} and "
                f"{human_bytes(self.bytes_per_frame * self.frames)} ({each}, {sample})")


def estimate(source: Source, output: Path, kind: str, upscaler: Upscaler, settings: JobSettings,
             sizes: Sizes, count: int | None) -> Estimate:
    """Time a few frames (a large one by a centre crop: `frame_cost`) and encode them in a
    temporary folder."""
    frames = _sample_frames(source, SAMPLE_FRAMES, count)
    pictures = [_pixels(frame) for frame in frames]
    first = pictures[0]
    warm_up(upscaler, first.shape, centre_crop(first, SIDE), sizes(*first.shape[:2]))
    costs = [frame_cost(upscaler, p, sizes(*p.shape[:2])) for p in pictures]
    outputs = [replace(frame, pixels=cost.sample) for frame, cost in zip(frames, costs)]
    with tempfile.TemporaryDirectory(prefix="vidscale-dry-run-") as tmp:
        encoded = _encoded_bytes(outputs, source, output, kind, settings, Path(tmp), count)
    share = float(np.mean([cost.share for cost in costs]))  # the encoded samples' share of a frame
    return Estimate(count, float(np.median([c.seconds for c in costs])), encoded / share, len(frames),
                    "picture" if source.photos else "frame", costs[-1].basis)


def _pixels(frame: Frame) -> np.ndarray:
    assert isinstance(frame.pixels, np.ndarray)  # sources decode to arrays unless a YUV route asks
    return frame.pixels


def _sample_frames(source: Source, n: int, count: int | None) -> list[Frame]:
    """`n` frames in a row from the middle of a long video (its opening is often black
    or titles), else from the start."""
    # only a video's demuxer is asked to seek: pictures and animations are read from their start
    if isinstance(source, VideoSource) and count and count > 4 * n and source.container.duration:
        source.container.seek(source.container.duration // 2)  # to the keyframe before the middle
    frames = []
    for item in source.items():
        if isinstance(item, Frame):
            frames.append(item)
            if len(frames) == n:
                break
    return frames


def _encoded_bytes(frames: list[Frame], source: Source, output: Path, kind: str, settings: JobSettings,
                   tmp: Path, count: int | None) -> float:
    """Bytes per output frame. Video: the keyframe counts once per job (a long clip has a
    keyframe every few seconds, and the sample is too short to say how often); the others
    set the rate of the rest."""
    if kind != "video":
        from vidscale.media.image import write_image

        suffix = (settings.image_format if kind == "folder" and settings.image_format else None)
        sizes = []
        for i, frame in enumerate(frames):
            target = tmp / f"{i}{suffix or (output.suffix if kind != 'folder' else frame.source_suffix) or '.png'}"
            write_image(target, frame.pixels, settings.quality)  # type: ignore[arg-type]
            sizes.append(target.stat().st_size)
        return float(np.mean(sizes))
    from vidscale.media.sinks import VideoSink

    path = tmp / f"sample{output.suffix}"
    sink = VideoSink(path, output.suffix.lower(), frames[0].pixels.shape[:2], source,  # type: ignore[union-attr]
                     settings.encoder, lambda _: None)
    for frame in frames:
        sink.write(frame)
    sink.close()
    with av.open(str(path)) as container:
        packets = [p.size for p in container.demux(video=0) if p.size]
    if len(packets) < 2 or not count:
        return float(np.mean(packets))
    return (packets[0] + float(np.mean(packets[1:])) * (count - 1)) / count
