"""What a job is asked to do: the settings the CLI, the library, the web page and presets fill in."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction

from vidscale.core.limits import DEFAULT_LIMITS, PixelLimits
from vidscale.core.position import Position

DEFAULT_TEMPORAL = 0.7  # the anti-flicker strength `--temporal` alone (or True) asks for


@dataclass
class EncoderSettings:
    """What the user asked for; None means 'the default for this output'."""

    codec: str | None = None
    crf: float | None = None
    preset: str | None = None
    pix_fmt: str | None = None
    options: dict[str, str] = field(default_factory=dict)
    fps: Fraction = Fraction(24)  # for image sequences turned into video
    # What a preset set (codec, crf, preset, pix_fmt, "opt:KEY"): a preference that gives way
    # where the output's container cannot hold the preset's codec (see `fit_container`).
    preferred: frozenset[str] = frozenset()


@dataclass
class JobSettings:
    scale: float | None = None
    width: int | None = None
    height: int | None = None
    model: str | None = None  # a name, a file, or a chain "a+b"; None: the default for the input
    denoise: str | None = None  # level of a model family that has them (Real-CUGAN)
    device: str | None = None
    backend: str | None = None  # auto, tensorrt, cuda, cpu or torch
    tile: int | None = None
    precision: str | None = None  # auto, fp16, bf16 or fp32
    batch: int = 1
    recursive: bool = False
    image_format: str | None = None  # e.g. ".png" for folder outputs
    quality: int | None = None
    background: tuple[int, int, int] = (255, 255, 255)  # 8-bit RGB under transparency an output cannot keep
    temporal: float | bool | None = None  # strength of the anti-flicker pass; None/False: off
    device_color: bool | None = None  # video YUV<->RGB on the inference device; None: on CUDA only
    max_frames: int | None = None  # video: stop after this many frames
    skip_repeats: bool = True  # a frame equal to the previous one reuses its upscale (vidscale/repeats.py)
    repeat_threshold: float = 0.0  # ...or within this many 8-bit levels of it (0: exact repeats only)
    start: Position | None = None  # video: begin at this time or frame (output times then start at 0)
    overwrite: bool = False
    quiet: bool = False
    encoder: EncoderSettings = field(default_factory=EncoderSettings)
    limits: PixelLimits = DEFAULT_LIMITS  # most pixels per input and per output frame
    on_progress: Callable[[int, int | None], None] | None = None  # called after each frame written
    cancel: threading.Event | None = None  # set it to stop the job (raises `Cancelled`, leaves nothing)
    dry_run: bool = False  # state the plan and estimate time and size from a sample; write nothing
    # video files run as segments that survive an interruption (see vidscale/segments/)
    segment: str | None = None  # segment length: "20s", "500f", "0" (one segment); None: the default
    fresh: bool = False  # discard an unfinished earlier run's segments
    workers: int | None = None  # segments in this many local processes (None: one per GPU, else one)
    ray: str | None = None  # run the segments on Ray: "" starts a local instance, else its address

    def temporal_strength(self) -> float | None:
        """The anti-flicker pass's strength; None when it is off (`temporal` None or False)."""
        if self.temporal is None or self.temporal is False:
            return None
        return DEFAULT_TEMPORAL if self.temporal is True else float(self.temporal)
