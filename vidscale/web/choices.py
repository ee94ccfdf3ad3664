"""The page's model choices in plain words, and the job settings each one runs with.

Each choice is a built-in preset (`vidscale presets`), so the page runs what the
CLI's `--preset NAME` runs; the page's own scale or width wins over the preset's.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from vidscale.core.settings import EncoderSettings, JobSettings
from vidscale.errors import UsageError
from vidscale.models import zoo
from vidscale.presets import find_preset


@dataclass(frozen=True)
class Choice:
    key: str
    label: str  # what the page shows
    picture_preset: str
    video_preset: str  # live action gets the film preset's anti-flicker pass and encoder
    hint: str = ""  # in plain words; the preset's own description (with its flags) is the tooltip

    def preset(self, video: bool) -> str:
        return self.video_preset if video else self.picture_preset


CHOICES = {c.key: c for c in (
    Choice("photo", "Photo or live action (Real-ESRGAN: cleans JPEG blocks and noise; slow without a GPU)",
           "photo", "film", "Removes JPEG blocks and noise and keeps the photo's details; on video it also "
           "steadies flicker between frames. The slowest choice without a graphics card."),
    Choice("anime", "Anime or drawing (Real-CUGAN)", "anime", "anime",
           "Sharp lines and flat colours. Rough sources (old DVDs, heavy JPEG) want more noise removal; "
           "on video it also steadies flicker between frames."),
    Choice("clean", "Clean source: render, screenshot, lossless master (SPAN)", "clean", "clean",
           "The most faithful and the fastest, for pictures without compression damage."),
    Choice("fast", "Fast: a quick look (SPAN x2; sharpens JPEG blocks)", "fast", "fast",
           "A quick look at a big batch; it sharpens JPEG blocks rather than removing them."),
)}


def denoise_levels(choice: str) -> list[str]:
    """The denoise levels of a choice's model ([] when it has none)."""
    model = find_preset(CHOICES[choice].picture_preset).values.get("model")
    families = zoo.families()
    return zoo.family_levels(model) if model in families else []


def describe() -> list[dict[str, Any]]:
    """What the page needs to draw its model menu."""
    return [{"key": c.key, "label": c.label, "denoise": denoise_levels(c.key), "hint": c.hint,
             "flags": f"vidscale --preset {c.picture_preset} (video: --preset {c.video_preset}): "
                      f"{find_preset(c.picture_preset).description}"} for c in CHOICES.values()]


def job_settings(choice: str, video: bool, scale: float | None, width: int | None,
                 denoise: str | None) -> JobSettings:
    """JobSettings for one upload: the choice's preset, then the page's size and denoise level."""
    if choice not in CHOICES:
        raise UsageError(f"unknown model choice {choice!r} (expected {', '.join(CHOICES)})")
    if (scale is None) == (width is None):
        raise UsageError("give a scale or a width")
    if width is not None and width < 1:
        raise UsageError(f"width {width}: must be at least 1 pixel")
    if denoise and not denoise_levels(choice):
        raise UsageError(f"the {choice} model has no denoise levels")
    values = find_preset(CHOICES[choice].preset(video)).values
    enc = values.get("encoder", {})
    options = {k: str(v) for k, v in enc.get("options", {}).items()}
    # all of it the preset's: a container that cannot hold its codec (WebM and H.264) takes its own
    preferred = {k for k in ("codec", "crf", "preset", "pix_fmt") if k in enc} | {f"opt:{k}" for k in options}
    encoder = EncoderSettings(codec=enc.get("codec"), crf=enc.get("crf"), preset=enc.get("preset"),
                              pix_fmt=enc.get("pix_fmt"), options=options, preferred=frozenset(preferred))
    settings = JobSettings(model=values.get("model"), batch=values.get("batch", 1), quality=values.get("quality"),
                           tile=values.get("tile"), temporal=values.get("temporal") if video else None,
                           encoder=encoder, quiet=True)
    level = denoise or (str(values["denoise"]) if "denoise" in values else None)
    return replace(settings, scale=scale, width=width, denoise=zoo.denoise_level(level) if level else None)
