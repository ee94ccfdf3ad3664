"""What the animation reader and writers share: the pixel layouts frames come in, with
PyAV's names for them, and how an FFmpeg error reads in a message."""

from __future__ import annotations

# (layout, more than 8 bits) -> PyAV's ndarray format; layouts: gray, rgb, rgba (straight alpha)
NDARRAY_FORMATS = {("rgba", False): "rgba", ("rgba", True): "rgba64le", ("rgb", False): "rgb24",
                   ("rgb", True): "rgb48le", ("gray", False): "gray", ("gray", True): "gray16le"}


def reason(exc: BaseException) -> str:
    return str(getattr(exc, "strerror", None) or exc)
