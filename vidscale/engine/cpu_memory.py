"""Keep freed memory in the process on the CPU, so each frame reuses the last one's buffers.

glibc serves every allocation above 32 MiB (its largest mmap threshold) with a
fresh mmap and returns it with munmap on free, so a network's activations
(a 64-channel 640x480 float map is 78 MB) were new pages on every frame:
measured on animevideo-x4 at 640x480, 1.36 million page faults and 6 s of
system time per frame against 7.7 s of user time. With mmap off for the heap
(large blocks come from the main arena, which can grow; threads' arenas still
fall back to mmap) and trimming off, torch's allocations of the next frame
land in the same pages: 14,000 faults and 0.05 s of system time.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # <malloc.h>
_TRIM_AT = 2**31 - 1  # mallopt takes an int: return at most free tops above 2 GiB
_kept = False


def keep_freed_memory() -> bool:
    """Tell glibc's malloc to keep and reuse freed blocks; False where it is not glibc."""
    global _kept
    if _kept:
        return True
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    _kept = bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, _TRIM_AT))
    if not _kept:
        log.debug("mallopt refused: freed memory goes back to the system")
    return _kept


def release_freed_memory() -> bool:
    """Give the pages of freed blocks back to the system (glibc's malloc_trim), and CUDA's cached
    blocks to the driver: for a long-running process (the web page's server) gone idle, which
    `keep_freed_memory` would otherwise leave at its peak. False where it is not glibc."""
    import gc

    import torch

    gc.collect()  # cycles holding tensors go first
    if torch.cuda.is_initialized():
        torch.cuda.empty_cache()
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return False
    trim.argtypes, trim.restype = (ctypes.c_size_t,), ctypes.c_int
    trim(0)
    return True
