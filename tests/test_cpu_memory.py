"""The CPU engine keeps freed memory for the next frame (engine/cpu_memory.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from vidscale.engine import torch_engine
from vidscale.engine.torch_engine import TorchEngine
from vidscale.models import zoo
from vidscale.models.loading import load_descriptor

# malloc and fill 96 MB (above glibc's largest mmap threshold) nine times, as torch's CPU
# allocator does for a big activation; print the page faults of the last eight
_PROBE = """
import ctypes, resource, sys
from vidscale.engine.cpu_memory import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, (ctypes.c_size_t,)
libc.free.argtypes = (ctypes.c_void_p,)
def once():
    p = libc.malloc(96 << 20)
    ctypes.memset(p, 1, 96 << 20)
    libc.free(p)
once()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(8):
    once()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> int:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop("MALLOC_MMAP_MAX_", None)
    out = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True,
                         env=env, check=True).stdout
    return int(out.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_freed_buffers_are_reused_without_new_page_faults() -> None:
    fresh, kept = _faults("fresh"), _faults("keep")
    assert fresh > 8 * 20000  # without it each 96 MB buffer is new pages (24,576 of 4 KiB)
    assert kept < fresh / 4  # with it: at most one buffer's worth, placed anew once


def test_compact_frame_that_fits_is_not_tiled(monkeypatch: pytest.MonkeyPatch) -> None:
    """640x480 through animevideo-x4 needs about 0.5 GB: one tile with 3 GB available."""
    monkeypatch.setattr(torch_engine, "available_memory", lambda: 3 << 30)
    engine = TorchEngine(load_descriptor(zoo.builtins()["animevideo-x4"].path), torch.device("cpu"))
    assert engine.auto_tile(1, 480, 640) == 640
    assert engine.auto_tile(1, 2160, 3840) < 2160  # a 4K frame still does not fit in 0.9 GB


def test_available_memory_counts_reclaimable_cache() -> None:
    free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert torch_engine.available_memory() >= 0.9 * free
