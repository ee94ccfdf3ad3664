"""File names handed to FFmpeg by name.

FFmpeg reads `x:y` at the start of a name as a protocol (`2024-05-01T10:30.mp4`
would be protocol `2024-05-01T10`), so every local path goes through its
`file:` protocol, which takes the rest literally. Image readers and writers
avoid names altogether and hand FFmpeg file objects (see image.py).
"""

from __future__ import annotations

import os
from pathlib import Path


def ffmpeg_url(path: Path | str) -> str:
    """The URL FFmpeg opens as exactly this local file."""
    return "file:" + os.fspath(path)


def local_path(url: str) -> str:
    """The file name behind a URL made by `ffmpeg_url` (or a plain name)."""
    return url.removeprefix("file:")
