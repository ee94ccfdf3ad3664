"""Output size, and how many runs of a network reach it."""

from __future__ import annotations

import math

from vidscale.errors import UsageError

MIN_SCALE, MAX_SCALE = 1.0, 8.0


def output_size(
    height: int,
    width: int,
    scale: float | None = None,
    out_width: int | None = None,
    out_height: int | None = None,
) -> tuple[int, int]:
    """(height, width) of the output for a `--scale` or `--width/--height` request.

    One of width/height alone keeps the aspect ratio; both set the exact size.
    """
    if scale is not None and (out_width or out_height):
        raise UsageError("give either --scale or --width/--height, not both")
    if out_width or out_height:
        sx = out_width / width if out_width else None
        sy = out_height / height if out_height else None
        h = out_height or round(height * sx)  # type: ignore[operator]
        w = out_width or round(width * sy)  # type: ignore[operator]
        check_scale(max(h / height, w / width))
        return max(h, 1), max(w, 1)
    scale = 2.0 if scale is None else scale
    check_scale(scale)
    return max(round(height * scale), 1), max(round(width * scale), 1)


def check_scale(scale: float) -> None:
    if not math.isfinite(scale) or not MIN_SCALE <= scale <= MAX_SCALE:
        raise UsageError(f"scale {scale:g} is impossible: it must be between 1 and 8")


def runs_needed(scale: float, model_scale: int) -> int:
    """How many runs of a `model_scale` network, one on the other's output, reach at least `scale`."""
    if model_scale <= 1:
        return 1
    return max(1, math.ceil(math.log(scale, model_scale) - 1e-9))
