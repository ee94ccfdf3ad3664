"""What a job is asked to do, in parts by purpose (the CLI, the library, the web page and
presets fill them in):

- `Product`: what to produce. Each field can change a byte of a video output, so a segmented
  job resumes only where all of them match: its fingerprint is this part, whole.
- `Pictures`: what only picture and folder jobs read; a video output never does.
- `Execution`: how to run it: speed, where, file and resume policy, what is shown. None of it
  changes a byte of the output, so a resumed job may change any of it.
- `Callbacks`: the caller's progress listener and cancel event. They stay in the caller's
  process: a segment's worker gets `Product` and `Execution` only.

`JobSettings` holds the four and takes and gives each of their fields by its own name too
(`JobSettings(scale=2, quiet=True)`, `settings.scale`, `replace(settings, cancel=event)`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from fractions import Fraction
from typing import Any

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


@dataclass(frozen=True)
class Product:
    """What to produce. The engine's choices belong here: precision, backend, device, tiles
    and where colour is converted each move pixels."""

    model: str | None = None  # a name, a file, or a chain "a+b"; None: the default for the input
    denoise: str | None = None  # level of a model family that has them (Real-CUGAN)
    scale: float | None = None
    width: int | None = None
    height: int | None = None
    temporal: float | bool | None = None  # strength of the anti-flicker pass; None/False: off
    repeat_threshold: float = 0.0  # a frame within this many 8-bit levels of the previous one repeats it
    background: tuple[int, int, int] = (255, 255, 255)  # 8-bit RGB under transparency an output cannot keep
    start: Position | None = None  # video: begin at this time or frame (output times then start at 0)
    max_frames: int | None = None  # video: stop after this many frames
    encoder: EncoderSettings = field(default_factory=EncoderSettings)
    # video files run as segments that survive an interruption (see vidscale/segments/); each
    # segment's first frame is a keyframe of the output
    segment: str | None = None  # segment length: "20s", "500f", "0" (one segment); None: the default
    dry_run: bool = False  # produce the plan and estimates of time and size from a sample; write nothing
    device: str | None = None
    backend: str | None = None  # auto, tensorrt, cuda, cpu or torch
    precision: str | None = None  # auto, fp16, bf16 or fp32
    tile: int | None = None
    device_color: bool | None = None  # video YUV<->RGB on the inference device; None: on CUDA only

    def temporal_strength(self) -> float | None:
        """The anti-flicker pass's strength; None when it is off (`temporal` None or False)."""
        if self.temporal is None or self.temporal is False:
            return None
        return DEFAULT_TEMPORAL if self.temporal is True else float(self.temporal)


@dataclass(frozen=True)
class Pictures:
    """What only picture and folder jobs read."""

    recursive: bool = False  # walk a folder input's subfolders
    image_format: str | None = None  # e.g. ".png" for folder outputs
    quality: int | None = None  # of lossy picture outputs (JPEG, WebP, AVIF)


@dataclass(frozen=True)
class Execution:
    """How to run it; the output is the same whatever these are."""

    batch: int = 1
    skip_repeats: bool = True  # a frame equal to the previous one reuses its upscale (vidscale/repeats.py)
    limits: PixelLimits = DEFAULT_LIMITS  # most pixels per input and per output frame: refuses, changes none
    workers: int | None = None  # segments in this many local processes (None: one per GPU, else one)
    ray: str | None = None  # run the segments on Ray: "" starts a local instance, else its address
    fresh: bool = False  # discard an unfinished earlier run's segments
    overwrite: bool = False
    quiet: bool = False


@dataclass(frozen=True)
class Callbacks:
    on_progress: Callable[[int, int | None], None] | None = None  # called after each frame written
    cancel: threading.Event | None = None  # set it to stop the job (raises `Cancelled`, leaves nothing)


_PARTS: dict[str, type] = {"product": Product, "pictures": Pictures, "execution": Execution,
                           "callbacks": Callbacks}
_PART_OF = {f.name: part for part, kind in _PARTS.items() for f in fields(kind)}


@dataclass(init=False)
class JobSettings:
    """A job's settings: its four parts, and each part's fields by their own names (see above)."""

    product: Product
    pictures: Pictures
    execution: Execution
    callbacks: Callbacks

    def __init__(self, product: Product | None = None, pictures: Pictures | None = None,
                 execution: Execution | None = None, callbacks: Callbacks | None = None, **flat: Any) -> None:
        self.product = Product() if product is None else product
        self.pictures = Pictures() if pictures is None else pictures
        self.execution = Execution() if execution is None else execution
        self.callbacks = Callbacks() if callbacks is None else callbacks
        by_part: dict[str, dict[str, Any]] = {}
        for name, value in flat.items():
            if name not in _PART_OF:
                raise TypeError(f"JobSettings() got an unexpected keyword argument {name!r}")
            by_part.setdefault(_PART_OF[name], {})[name] = value
        for part, values in by_part.items():
            setattr(self, part, replace(getattr(self, part), **values))

    def temporal_strength(self) -> float | None:
        return self.product.temporal_strength()


class _Field:
    """A part's field read and set through `JobSettings` itself. Setting makes a new part (parts
    are frozen): settings copied with `replace` share their parts, and changing one leaves the
    other as it was."""

    def __init__(self, part: str, name: str):
        self.part, self.name = part, name

    def __get__(self, settings: JobSettings | None, owner: type | None = None) -> Any:
        return self if settings is None else getattr(getattr(settings, self.part), self.name)

    def __set__(self, settings: JobSettings, value: Any) -> None:
        setattr(settings, self.part, replace(getattr(settings, self.part), **{self.name: value}))


for _name, _part in _PART_OF.items():
    setattr(JobSettings, _name, _Field(_part, _name))
