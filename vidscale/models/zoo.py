"""Where models come from: built-ins, the user's model folder, paths, resizers.

`resolve()` turns whatever `--model` says into a `ModelInfo`; `default_chain()`
picks the built-in networks for a scale when no model is named.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from vidscale.errors import ModelError
from vidscale.models.loading import MODEL_SUFFIXES

CLASSIC = {
    "bicubic": "classic bicubic resize (no network), any scale",
    "lanczos": "classic Lanczos-3 resize (no network), any scale",
}
DEFAULT_X2, DEFAULT_X4 = "span-x2", "span-x4"
PACKAGE_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class ModelInfo:
    name: str
    kind: str  # "builtin", "user", "file" or "classic"
    path: Path | None = None
    arch: str | None = None
    scale: int | None = None  # None: a resizer, any scale
    params: int | None = None
    license: str | None = None
    source: str | None = None
    description: str = ""

    @property
    def is_network(self) -> bool:
        return self.kind != "classic"


def engines_dir() -> Path:
    """Built-in weights: inside the installed package, or the source tree's engines/."""
    for candidate in (PACKAGE_ROOT / "engines", PACKAGE_ROOT.parent / "engines"):
        if (candidate / "manifest.json").is_file():
            return candidate
    raise ModelError("built-in models are missing (no engines/manifest.json); reinstall vidscale")


def user_model_dir() -> Path:
    """`$VIDSCALE_MODEL_DIR`, else the XDG data dir's vidscale/models."""
    if env := os.environ.get("VIDSCALE_MODEL_DIR"):
        return Path(env)
    data = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data) / "vidscale" / "models"


@lru_cache(maxsize=1)
def builtins() -> dict[str, ModelInfo]:
    root = engines_dir()
    manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    return {
        m["name"]: ModelInfo(
            name=m["name"], kind="builtin", path=root / m["file"], arch=m["arch"],
            scale=int(m["scale"]), params=m.get("params"), license=m["license"],
            source=m.get("upstream"), description=m.get("description", ""),
        )
        for m in manifest["models"]
    }


def user_models() -> dict[str, ModelInfo]:
    folder = user_model_dir()
    if not folder.is_dir():
        return {}
    found = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() in MODEL_SUFFIXES and path.suffix.lower() != ".bin":
            found.setdefault(path.stem, ModelInfo(name=path.stem, kind="user", path=path))
    return found


def resolve(name: str) -> ModelInfo:
    """A model name (built-in, user, resizer) or a path to a model file."""
    key = name.strip()
    if key.lower() in CLASSIC:
        return ModelInfo(name=key.lower(), kind="classic", description=CLASSIC[key.lower()],
                         license="-", source="-")
    if key in builtins():
        return builtins()[key]
    if key in (users := user_models()):
        return users[key]
    path = Path(key).expanduser()
    if path.suffix.lower() in MODEL_SUFFIXES or os.sep in key:
        if not path.is_file():
            raise ModelError(f"{key}: model file not found")
        return ModelInfo(name=path.name, kind="file", path=path)
    raise ModelError(f"unknown model {key!r} (`vidscale models` lists the available ones)")


def default_chain(scale: float) -> list[ModelInfo]:
    """Built-ins for a scale: the smallest native scale >= the request, two passes above 4."""
    zoo = builtins()
    if scale <= 2:
        return [zoo[DEFAULT_X2]]
    if scale <= 4:
        return [zoo[DEFAULT_X4]]
    return [zoo[DEFAULT_X2], zoo[DEFAULT_X4]]  # x2 first: the x4 pass then runs on fewer pixels
