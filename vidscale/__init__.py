"""vidscale: learned super-resolution for video, image sequences and photos.

    import vidscale
    big = vidscale.upscale_image(picture, scale=2)           # numpy array or PIL image
    vidscale.upscale("in.mp4", "out.mp4", scale=2, crf=16)   # the CLI's option names

The names below load on first use, so that `import vidscale` (and `vidscale
--help`) does not import PyTorch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from vidscale import lazy_imports
from vidscale.core.version import __version__
from vidscale.errors import Cancelled, ModelError, UsageError, VidscaleError

lazy_imports.install()  # spandrel without torchvision's import (see lazy_imports.py)


# public name -> module that defines it
_LAZY = {
    "upscale": "vidscale.api",
    "upscale_image": "vidscale.api",
    "Upscaler": "vidscale.upscaler",
    "JobSettings": "vidscale.core.settings",
    "Summary": "vidscale.job",
    "run_job": "vidscale.job",
    "EncoderSettings": "vidscale.encoding",
}

if TYPE_CHECKING:
    from vidscale.api import upscale, upscale_image
    from vidscale.core.settings import EncoderSettings, JobSettings
    from vidscale.job import Summary, run_job
    from vidscale.upscaler import Upscaler


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'vidscale' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = ["Cancelled", "EncoderSettings", "JobSettings", "ModelError", "Summary", "Upscaler", "UsageError",
           "VidscaleError", "__version__", "run_job", "upscale", "upscale_image"]
