"""Named presets: TOML files that set model, scale, temporal pass and encoder options.

Built-ins live in the repository's `presets/` (inside the wheel at
`vidscale/presets/`); `--preset PATH` takes any file of the same form.
Flags given on the command line always win over a preset.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidscale.errors import UsageError
from vidscale.models.zoo import PACKAGE_ROOT

# keys a preset may set, and their types
TOP_KEYS = {"description": str, "model": str, "denoise": (str, int), "scale": (int, float), "width": int, "height": int,
            "temporal": (int, float, bool), "batch": int, "quality": int, "tile": int,
            "container": str, "encoder": dict}
ENCODER_KEYS = {"codec": str, "crf": (int, float), "preset": str, "pix_fmt": str, "options": dict}


@dataclass(frozen=True)
class Preset:
    name: str
    path: Path
    values: dict[str, Any]

    @property
    def description(self) -> str:
        return str(self.values.get("description", ""))


def presets_dir() -> Path:
    for candidate in (PACKAGE_ROOT / "presets", PACKAGE_ROOT.parent / "presets"):
        if candidate.is_dir():
            return candidate
    raise UsageError("built-in presets are missing; reinstall vidscale")


def builtin_presets() -> dict[str, Preset]:
    return {p.stem: load_preset(p) for p in sorted(presets_dir().glob("*.toml"))}


def find_preset(spec: str) -> Preset:
    """A built-in preset by name, or a preset file by path."""
    path = Path(spec)
    if path.suffix == ".toml" or path.exists():
        return load_preset(path)
    presets = builtin_presets()
    if spec not in presets:
        raise UsageError(f"unknown preset {spec!r} (`vidscale presets` lists them)")
    return presets[spec]


def load_preset(path: Path) -> Preset:
    try:
        values = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path}: preset file not found") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"{path}: not a readable preset ({exc})") from None
    _check(values, TOP_KEYS, path)
    _check(values.get("encoder", {}), ENCODER_KEYS, path)
    options = values.get("encoder", {}).get("options", {})
    if not all(isinstance(v, (str, int, float)) for v in options.values()):
        raise UsageError(f"{path}: encoder options must be strings or numbers")
    return Preset(path.stem, path, values)


def _check(values: dict[str, Any], allowed: dict[str, Any], path: Path) -> None:
    for key, value in values.items():
        if key not in allowed:
            raise UsageError(f"{path}: unknown preset key {key!r}")
        if not isinstance(value, allowed[key]) or (isinstance(value, bool) and allowed[key] is int):
            raise UsageError(f"{path}: preset key {key!r} has the wrong type")
