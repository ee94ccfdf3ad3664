"""Shared test fixtures: isolated user folders, small real images, a fast CPU setup."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
# The project's shared real media sits beside the checkout; tests using it skip without it.
SHARED_MEDIA = ROOT.parent / "shared" / "media"


@pytest.fixture(autouse=True)
def isolated_user_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Never read or write the real user's model folder."""
    folder = tmp_path_factory.mktemp("user-models")
    monkeypatch.setenv("VIDSCALE_MODEL_DIR", str(folder))
    return folder


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Compiled artifacts (ONNX exports, TensorRT plans) go to a folder of this run, shared by its tests."""
    from vidscale.engine.cache import ENV_VAR

    folder = tmp_path_factory.mktemp("cache")
    before = os.environ.get(ENV_VAR)
    os.environ[ENV_VAR] = str(folder)
    yield folder
    if before is None:
        os.environ.pop(ENV_VAR, None)
    else:
        os.environ[ENV_VAR] = before


@pytest.fixture(scope="session", autouse=True)
def modest_threads() -> Iterator[None]:
    torch.set_num_threads(2)
    yield


@pytest.fixture(scope="session")
def bunny() -> np.ndarray:
    from vidscale.media.image import read_image

    return read_image(SAMPLES / "bunny.png")


def need_shared(*parts: str) -> Path:
    path = SHARED_MEDIA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared media not present: {path}")
    return path


@contextmanager
def read_only(folder: Path) -> Iterator[Path]:
    """`folder` and the folders in it read-only while the block runs. Root writes into a folder
    whatever its mode, so as root it is a read-only bind mount (undone after; skipped where
    mounting is not allowed), else mode 0555."""
    if os.geteuid() != 0:
        folders = [folder, *(p for p in folder.rglob("*") if p.is_dir())]
        for each in folders:
            each.chmod(0o555)
        try:
            yield folder
        finally:
            for each in folders:
                each.chmod(0o755)
        return
    mounted = subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot make a read-only folder as root: {mounted.stderr.decode().strip()}")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], check=True, capture_output=True)
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True, capture_output=True)
