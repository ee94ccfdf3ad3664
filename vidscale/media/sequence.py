"""Lists of image files: folders (natural order), printf patterns and globs."""

from __future__ import annotations

import glob
import re
from pathlib import Path

from vidscale.errors import VidscaleError
from vidscale.media.image import IMAGE_SUFFIXES

_PRINTF = re.compile(r"%(0?)(\d*)d")


def natural_key(text: str) -> list[object]:
    """Sort key where 'frame2' comes before 'frame10'."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


def is_pattern(path: str) -> bool:
    return bool(_PRINTF.search(Path(path).name)) or is_glob(path)


def is_numbered(name: str) -> bool:
    """Whether a file name has a printf number field (`%d`, `%04d`)."""
    return bool(_PRINTF.search(name))


def is_glob(path: str) -> bool:
    return any(c in path for c in "*?[")


def folder_images(folder: Path, recursive: bool) -> list[Path]:
    """Image files in `folder` (and below, if recursive) in natural order of relative path."""
    walker = folder.rglob("*") if recursive else folder.iterdir()
    found = [p for p in walker if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
             and not p.name.startswith(".")]
    if not found:
        raise VidscaleError(f"{folder}: no images found" + ("" if recursive else " (try --recursive)"))
    return sorted(found, key=lambda p: natural_key(p.relative_to(folder).as_posix()))


def pattern_images(pattern: str) -> list[Path]:
    """Files matching a printf pattern (`frames/%04d.png`) or a glob, in numeric/natural order."""
    if is_glob(pattern):
        found = [Path(p) for p in glob.glob(pattern) if Path(p).is_file()]
        found.sort(key=lambda p: natural_key(str(p)))
    else:
        found = _printf_matches(Path(pattern))
    if not found:
        raise VidscaleError(f"{pattern}: no files match")
    return found


def _printf_matches(pattern: Path) -> list[Path]:
    folder = pattern.parent
    if not folder.is_dir():
        raise VidscaleError(f"{pattern}: folder {folder} does not exist")
    parts = _PRINTF.split(pattern.name)
    regex = ""
    for i, part in enumerate(parts):
        if i % 3 == 0:
            regex += re.escape(part)
        elif i % 3 == 2:
            width = int(part) if part else 0
            regex += rf"(\d{{{width},}})" if parts[i - 1] == "0" and width else r"(\d+)"
    matcher = re.compile(regex + r"\Z")
    numbered = []
    for p in folder.iterdir():
        m = matcher.match(p.name)
        if m and p.is_file():
            numbered.append((int(m.group(1)), p))
    return [p for _, p in sorted(numbered)]


def format_pattern(pattern: Path, number: int) -> Path:
    """Fill the printf field of an output pattern with `number`."""
    return pattern.with_name(_PRINTF.sub(lambda m: f"%{m.group(1)}{m.group(2)}d" % number, pattern.name, count=1))
