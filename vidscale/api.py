"""The library's front door: `upscale` (a file, as the CLI does) and `upscale_image` (a picture)."""

from __future__ import annotations

from vidscale.job import JobSettings, Summary, run_job
from vidscale.upscaler import upscale_image


def upscale(source: str, output: str, **settings: object) -> Summary:
    """Upscale a video, image, folder or pattern into `output`, as the CLI does.

    Keyword arguments are the fields of `JobSettings` (scale, model, device, batch...).
    """
    return run_job(str(source), str(output), JobSettings(**settings))  # type: ignore[arg-type]


__all__ = ["upscale", "upscale_image"]
