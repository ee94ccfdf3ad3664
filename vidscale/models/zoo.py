"""Where models come from: built-ins, the user's model folder, paths, resizers.

`resolve()` turns one name into a `ModelInfo`, `resolve_chain()` a whole
`--model a+b` chain; `default_chain()` picks the built-in networks for a scale
and a kind of input when no model is named. Built-ins of one family (Real-CUGAN)
differ by scale and denoise level: `pick_variant()` chooses among them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from vidscale.errors import ModelError, UsageError
from vidscale.models.loading import MODEL_SUFFIXES
from vidscale.models.onnx_file import ONNX_SUFFIX
from vidscale.scale import runs_needed

CLASSIC = {
    "bicubic": "classic bicubic resize (no network), any scale",
    "lanczos": "classic Lanczos-3 resize (no network), any scale",
}
# Defaults by kind of input ("photo": stills, folders, animations; "video": clips and
# numbered frames). Both are live action until told otherwise, and what people bring is
# compressed and noisy: a real-world model, not one trained on clean bicubic downscales
# (measured: benchmarks/results/2026-12-01-quality-cpu.md). Above x4 the clean, fast SPAN
# x2 finishes: the real-world model's output is already clean.
DEFAULT_MODEL = {"photo": "realesrgan-x4plus", "video": "realesrgan-x4plus"}
FINISHER = "span-x2"
PURPOSES = tuple(DEFAULT_MODEL)
CHAIN_SEPARATOR = "+"
# --denoise spellings -> the manifest's level names (realcugan-ncnn-vulkan's -n values too)
DENOISE_ALIASES = {
    "none": "none", "no": "none", "0": "none", "no-denoise": "none",
    "conservative": "conservative", "-1": "conservative",
    "1": "1", "1x": "1", "denoise1x": "1",
    "2": "2", "2x": "2", "denoise2x": "2",
    "3": "3", "3x": "3", "denoise3x": "3",
}
PACKAGE_ROOT = Path(__file__).resolve().parent.parent
FILE_SUFFIXES = (*MODEL_SUFFIXES, ONNX_SUFFIX)  # weights to load, and ONNX graphs that run as they are


@dataclass(frozen=True)
class ModelInfo:
    name: str
    kind: str  # "builtin", "user", "file", "classic" or "family" (a built-in family's name)
    path: Path | None = None
    arch: str | None = None
    scale: int | None = None  # None: a resizer, any scale
    params: int | None = None
    license: str | None = None
    source: str | None = None
    description: str = ""
    family: str | None = None  # built-ins that differ only by scale and denoise level
    denoise: str | None = None  # "none", "conservative", "1", "2" or "3" within a family
    use: str | None = None  # "photo", "anime" or "clean": what it is for
    cpu_precision: str = "fp32"  # what `--precision auto` computes in on a CPU with native bf16

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
            family=m.get("family"), denoise=m.get("denoise"), use=m.get("use"),
            cpu_precision=m.get("cpu_precision", "fp32"),
        )
        for m in manifest["models"]
    }


def user_models() -> dict[str, ModelInfo]:
    folder = user_model_dir()
    if not folder.is_dir():
        return {}
    found = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() in FILE_SUFFIXES and path.suffix.lower() != ".bin":
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
    if key in families():
        members = families()[key]
        return ModelInfo(name=key, kind="family", arch=members[0].arch, license=members[0].license,
                         source=members[0].source, family=key, use=members[0].use,
                         description=f"{key}: x{'/x'.join(str(s) for s in family_scales(key))}, "
                                     "chosen by --scale" + (" and --denoise" if family_levels(key) else ""))
    if key in (users := user_models()):
        return users[key]
    path = Path(key).expanduser()
    if path.suffix.lower() in FILE_SUFFIXES or os.sep in key:
        if not path.is_file():
            raise ModelError(f"{key}: model file not found")
        return ModelInfo(name=path.name, kind="file", path=path)
    raise ModelError(f"unknown model {key!r} (`vidscale models` lists the available ones)")


def resolve_chain(spec: str) -> list[ModelInfo]:
    """`a+b+c` (e.g. a 1x JPEG cleanup model, then an upscaler) -> their infos, in order.

    A name or file that itself contains a `+` is taken whole when it resolves.
    """
    if CHAIN_SEPARATOR in spec:
        try:
            return [resolve(spec)]
        except ModelError:
            pass
    parts = [p.strip() for p in spec.split(CHAIN_SEPARATOR)]
    if any(not p for p in parts):
        raise ModelError(f"--model {spec!r}: empty name in the chain (write a+b)")
    chain = [resolve(p) for p in parts]
    if len(chain) > 1 and any(not m.is_network for m in chain):
        raise ModelError(f"--model {spec!r}: a resizer cannot be part of a chain")
    return chain


def default_chain(scale: float, purpose: str = "photo") -> list[ModelInfo]:
    """The built-ins that run for a scale when no model is named."""
    if purpose not in DEFAULT_MODEL:
        raise ValueError(f"purpose {purpose!r}: expected one of {', '.join(PURPOSES)}")
    zoo = builtins()
    main = zoo[DEFAULT_MODEL[purpose]]
    if scale <= main.scale:  # type: ignore[operator]
        return [main]
    return [main, zoo[FINISHER]]


# --- families: one network trained at several scales and denoise levels -------------

@lru_cache(maxsize=1)
def families() -> dict[str, list[ModelInfo]]:
    found: dict[str, list[ModelInfo]] = {}
    for info in builtins().values():
        if info.family:
            found.setdefault(info.family, []).append(info)
    return found


def family_scales(family: str) -> list[int]:
    return sorted({m.scale for m in families()[family]})  # type: ignore[misc]


def denoise_level(text: str) -> str:
    """A `--denoise` value in the manifest's spelling, or a usage error naming the choices."""
    key = str(text).strip().lower()
    if key not in DENOISE_ALIASES:
        raise UsageError(f"--denoise {text}: expected none, conservative, 1, 2 or 3")
    return DENOISE_ALIASES[key]


def family_levels(family: str) -> list[str]:
    """A family's denoise levels, in manifest order ([] for one that differs only by scale)."""
    return list(dict.fromkeys(m.denoise for m in families()[family] if m.denoise))


def models_with_denoise() -> str:
    return ", ".join(sorted(f for f in families() if family_levels(f))) or "none is installed"


def pick_variant(info: ModelInfo, factor: float, denoise: str | None) -> list[ModelInfo]:
    """The networks of `info`'s family that run for `factor` at a denoise level.

    A family name picks the smallest native scale at or above the factor (the
    largest, repeated, above it); a named variant keeps its scale. The level
    defaults to the named variant's own, else conservative (Real-CUGAN's default);
    a family without levels (span) ignores it (the caller refuses --denoise for it).
    """
    members = families()[info.family]  # type: ignore[index]
    if not family_levels(info.family):  # type: ignore[arg-type]
        level = None
    else:
        level = denoise or (info.denoise if info.kind != "family" else None) or "conservative"
    if info.kind == "family":
        scales = family_scales(info.family)  # type: ignore[arg-type]
        scale = next((s for s in scales if s >= factor - 1e-9), scales[-1])
    else:
        scale = info.scale  # type: ignore[assignment]
    runs = runs_needed(factor, scale)
    at_scale = [m for m in members if m.scale == scale]
    match = [m for m in at_scale if m.denoise == level]
    if not match:
        levels = ", ".join(m.denoise for m in at_scale)  # type: ignore[misc]
        raise UsageError(f"--denoise {level}: {info.family} x{scale} has the levels {levels}")
    return match[:1] * runs
