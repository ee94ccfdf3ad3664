"""Sizes and durations in words, as summaries and estimates print them."""

from __future__ import annotations


def human_bytes(n: float) -> str:
    """1023 B, 1.5 KiB, 12.3 MiB, 2.0 GiB."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.0f} B"


def duration(seconds: float) -> str:
    """45s, 12 min, 3.5 h."""
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
