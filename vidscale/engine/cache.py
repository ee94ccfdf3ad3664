"""Compiled artifacts (TensorRT plans, timing caches, ONNX exports for OpenVINO) under the user cache dir.

A plan is valid only for the exact weights, shape profile, precision, GPU
and library versions it was built with, so all of them go into its key; the
file name is the model name plus a short digest of the key, and a JSON
sidecar spells the key out for people clearing the cache by hand.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from vidscale.core.version import __version__
from vidscale.errors import VidscaleError
from vidscale.media.atomic import atomic_output, making_folder

log = logging.getLogger(__name__)
ENV_VAR = "VIDSCALE_CACHE_DIR"
SHORT_KEY = 16  # hex digits of the digest in file names: 64 bits, ample for a cache
_CHUNK = 1 << 20


def cache_dir() -> Path:
    """`$VIDSCALE_CACHE_DIR`, else `$XDG_CACHE_HOME/vidscale`, else `~/.cache/vidscale`."""
    if env := os.environ.get(ENV_VAR):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "vidscale"


def file_sha256(path: Path) -> str:
    """Digest of a model file's bytes; an ncnn model is its .param and .bin together."""
    path = Path(path)
    parts = [path.with_suffix(".param"), path.with_suffix(".bin")] \
        if path.suffix.lower() in (".param", ".bin") else [path]
    h = hashlib.sha256()
    for part in parts:
        with part.open("rb") as fh:
            while chunk := fh.read(_CHUNK):
                h.update(chunk)
    return h.hexdigest()


def state_dict_sha256(state: Mapping[str, torch.Tensor]) -> str:
    """Digest of weights held in memory: names, dtypes, shapes and bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}\n".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


@dataclass(frozen=True)
class CacheKey:
    kind: str  # the file suffix: "plan", "timing"
    name: str  # for people; not part of the digest
    fields: tuple[tuple[str, str], ...]

    @property
    def digest(self) -> str:
        text = json.dumps({"kind": self.kind, **dict(self.fields)}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    @property
    def filename(self) -> str:
        return f"{_slug(self.name)}-{self.digest[:SHORT_KEY]}.{self.kind}"

    def describe(self) -> dict[str, str]:
        return {"kind": self.kind, "name": self.name, **dict(self.fields), "sha256": self.digest}


def make_key(kind: str, name: str, **fields: object) -> CacheKey:
    return CacheKey(kind, name, tuple(sorted((k, _text(v)) for k, v in fields.items())))


def plan_key(model_name: str, model_sha256: str, profile: Mapping[str, Sequence[int]],
             precision: str, gpu_name: str, tensorrt_version: str, **extra: object) -> CacheKey:
    """The key of a TensorRT plan; `extra` adds fields such as the opset or torch version."""
    return make_key("plan", model_name, model_sha256=model_sha256, profile=profile,
                    precision=precision, gpu=gpu_name, tensorrt=tensorrt_version,
                    vidscale=__version__, **extra)


def timing_key(gpu_name: str, tensorrt_version: str) -> CacheKey:
    """One timing cache per GPU and TensorRT version, shared by every model."""
    return make_key("timing", f"{gpu_name}-trt{tensorrt_version}", gpu=gpu_name,
                    tensorrt=tensorrt_version)


def export_key(model_name: str, model_sha256: str, opset: int) -> CacheKey:
    """The key of a built-in's ONNX export (what OpenVINO compiles on the CPU)."""
    return make_key("onnx", model_name, model_sha256=model_sha256, opset=opset,
                    torch=torch.__version__, vidscale=__version__)


_FOLDERS = {"onnx": "onnx"}  # TensorRT's plans and timing caches: "tensorrt"


def path_for(key: CacheKey) -> Path:
    return cache_dir() / _FOLDERS.get(key.kind, "tensorrt") / key.filename


def load(key: CacheKey) -> bytes | None:
    try:
        return path_for(key).read_bytes()
    except FileNotFoundError:
        return None


def store(key: CacheKey, data: bytes) -> Path | None:
    """Write `data` (and a JSON sidecar) atomically; a concurrent writer's copy is as good.
    Where the cache cannot be written (a read-only or full disk) the job goes on uncached:
    None, and a warning."""
    path = path_for(key)
    sidecar = path.with_suffix(path.suffix + ".json")
    try:
        with making_folder(path.parent, path, parents=True):
            with atomic_output(sidecar, overwrite=True) as tmp:
                tmp.write_text(json.dumps(key.describe(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
            with atomic_output(path, overwrite=True) as tmp:
                tmp.write_bytes(data)
    except VidscaleError as e:
        log.warning("warning: not cached: %s", e)
        return None
    return path


def _text(value: object) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=list)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "model"
