"""`vidscale compare`: the plain resize and the network's result, side by side.

For an image: one picture with two labelled panels (or an HTML page with a
before/after slider). For a video: the same for the frame at `--at`, or a
short side-by-side clip when the output is a video file.
"""

from __future__ import annotations

import base64
import html
import io
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from vidscale.encoding import VIDEO_SUFFIXES
from vidscale.errors import UsageError, VidscaleError
from vidscale.media.atomic import atomic_output
from vidscale.media.image import is_image_path, read_picture, to_rgb, write_image
from vidscale.resample import resize
from vidscale.upscaler import Upscaler, from_tensor, to_tensor

LABEL_BAR = 28  # pixels above each panel for its label
GAP = 4


def parse_crop(text: str | None) -> tuple[int, int, int, int] | None:
    if not text:
        return None
    try:
        x, y, w, h = (int(v) for v in text.split(","))
    except ValueError:
        raise UsageError(f"--crop {text}: expected X,Y,W,H in input pixels") from None
    if w <= 0 or h <= 0 or x < 0 or y < 0:
        raise UsageError(f"--crop {text}: position must be >= 0 and size > 0")
    return x, y, w, h


def _crop(rgb: np.ndarray, crop: tuple[int, int, int, int] | None) -> np.ndarray:
    if crop is None:
        return rgb
    x, y, w, h = crop
    if x + w > rgb.shape[1] or y + h > rgb.shape[0]:
        raise UsageError(f"--crop {x},{y},{w},{h} lies outside the {rgb.shape[1]}x{rgb.shape[0]} input")
    return rgb[y:y + h, x:x + w]


def panels(rgb: np.ndarray, scale: float, upscaler: Upscaler) -> tuple[np.ndarray, np.ndarray]:
    """(bicubic, network) upscales of an 8-bit RGB picture, the same size."""
    size = (round(rgb.shape[0] * scale), round(rgb.shape[1] * scale))
    x = to_tensor(rgb)
    plain = from_tensor(resize(x, size, "bicubic").clamp(0, 1), np.uint8)
    ours = from_tensor(upscaler.upscale(x, size), np.uint8)
    return plain, ours


def side_by_side(left: np.ndarray, right: np.ndarray, labels: tuple[str, str]) -> np.ndarray:
    """Two panels with a label bar above each and a gap between them."""
    h, w = left.shape[:2]
    canvas = np.full((h + LABEL_BAR, 2 * w + GAP, 3), 24, np.uint8)
    for i, (panel, label) in enumerate(zip((left, right), labels)):
        x0 = i * (w + GAP)
        canvas[LABEL_BAR:, x0:x0 + w] = panel
        _label(canvas, label, x0 + 8, LABEL_BAR - 9)
    return canvas


def _label(canvas: np.ndarray, text: str, x: int, baseline: int) -> None:
    cv2.putText(canvas, text, (x, baseline), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (240, 240, 240), 1, cv2.LINE_AA)


def slider_page(left: np.ndarray, right: np.ndarray, labels: tuple[str, str], title: str) -> str:
    """A self-contained HTML page: drag to reveal one picture over the other."""
    a, b = _data_uri(left), _data_uri(right)
    la, lb = (html.escape(s) for s in labels)
    h, w = left.shape[:2]
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ background:#181818; color:#eee; font:14px sans-serif; margin:16px; }}
.cmp {{ position:relative; width:{w}px; height:{h}px; max-width:100%; }}
.cmp img {{ position:absolute; top:0; left:0; width:{w}px; height:{h}px; image-rendering:pixelated; }}
#top {{ clip-path: inset(0 50% 0 0); }}
.tag {{ position:absolute; top:6px; padding:2px 6px; background:#000a; }}
input {{ width:{w}px; max-width:100%; }}
</style></head><body>
<h3>{html.escape(title)}</h3>
<div class="cmp"><img alt="{lb}" src="{b}"><img id="top" alt="{la}" src="{a}">
<span class="tag" style="left:6px">{la}</span><span class="tag" style="right:6px">{lb}</span></div>
<p><input id="pos" type="range" min="0" max="100" value="50"></p>
<script>
const overlay = document.getElementById("top");
document.getElementById("pos").addEventListener("input", e => {{
  overlay.style.clipPath = "inset(0 " + (100 - e.target.value) + "% 0 0)";
}});
</script></body></html>
"""


def _data_uri(rgb: np.ndarray) -> str:
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="image2pipe") as out:
        stream = out.add_stream("png")
        stream.width, stream.height, stream.pix_fmt = rgb.shape[1], rgb.shape[0], "rgb24"
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def compare(source: Path, output: Path, scale: float, upscaler: Upscaler, model_name: str,
            crop: tuple[int, int, int, int] | None, at: float, duration: float, overwrite: bool) -> None:
    suffix = output.suffix.lower()
    labels = ("bicubic", model_name)
    with atomic_output(output, overwrite=overwrite, inputs=[source]) as tmp:
        if suffix in VIDEO_SUFFIXES:
            _compare_clip(source, tmp, scale, upscaler, labels, crop, at, duration)
            return
        rgb = _crop(_still(source, at), crop)
        left, right = panels(rgb, scale, upscaler)
        if suffix in (".html", ".htm"):
            tmp.write_text(slider_page(left, right, labels, f"{source.name}: x{scale:g}"), encoding="utf-8")
        elif is_image_path(output):
            write_image(tmp, side_by_side(left, right, labels))
        else:
            raise UsageError(f"{output}: compare writes an image, an .html page or a video")


def _still(source: Path, at: float) -> np.ndarray:
    if is_image_path(source):
        return to_rgb(read_picture(source).pixels)
    for _, rgb in _video_frames(source, at, 0.0):
        return rgb
    raise VidscaleError(f"{source}: no frame at {at:g}s")


def _video_frames(source: Path, at: float, duration: float):  # type: ignore[no-untyped-def]
    """(seconds, RGB) of the frames from `at` for `duration` seconds (at least one)."""
    try:
        container = av.open(str(source))
    except (av.error.FFmpegError, OSError) as exc:
        raise VidscaleError(f"{source}: not a readable media file ({exc})") from None
    with container:
        if not container.streams.video:
            raise VidscaleError(f"{source}: no video stream")
        stream = container.streams.video[0]
        if at > 0 and stream.time_base:
            container.seek(int(at / stream.time_base), stream=stream, backward=True)
        for frame in container.decode(stream):
            t = float(frame.pts * frame.time_base) if frame.pts is not None else 0.0
            if t + 1e-6 < at:
                continue
            yield t, frame.to_ndarray(format="rgb24")
            if t >= at + duration:
                return


def _compare_clip(source: Path, out_path: Path, scale: float, upscaler: Upscaler,
                  labels: tuple[str, str], crop: tuple[int, int, int, int] | None,
                  at: float, duration: float) -> None:
    with av.open(str(out_path), "w") as out:
        stream = None
        for t, rgb in _video_frames(source, at, duration):
            canvas = side_by_side(*panels(_crop(rgb, crop), scale, upscaler), labels)
            canvas = canvas[: canvas.shape[0] // 2 * 2, : canvas.shape[1] // 2 * 2]
            if stream is None:
                stream = out.add_stream("libx264", rate=30, options={"crf": "16", "preset": "fast"})
                stream.height, stream.width = canvas.shape[:2]
                stream.pix_fmt = "yuv420p"
                stream.codec_context.time_base = Fraction(1, 1000)
            frame = av.VideoFrame.from_ndarray(canvas, format="rgb24").reformat(format="yuv420p", dst_colorspace="itu709")
            frame.pts, frame.time_base = round((t - at) * 1000), Fraction(1, 1000)
            out.mux(stream.encode(frame))
        if stream is None:
            raise VidscaleError(f"{source}: no frames at {at:g}s")
        out.mux(stream.encode(None))
