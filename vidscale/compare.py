"""`vidscale compare`: the plain resize and one or more networks' results, side by side.

For an image: one picture with a labelled panel per result, in a row or a
grid (or an HTML page where two chosen results share a before/after slider).
For a video: the same for the frame at `--at`, or a short clip of the grid
when the output is a video file.
"""

from __future__ import annotations

import base64
import gc
import html
import io
import logging
import math
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import torch

from vidscale.encoding import VIDEO_SUFFIXES
from vidscale.errors import UsageError, VidscaleError
from vidscale.media.atomic import atomic_output
from vidscale.media.containers import main_video
from vidscale.media.image import is_image_path, read_picture, to_rgb, write_image
from vidscale.media.names import ffmpeg_url
from vidscale.models import zoo
from vidscale.resample import resize
from vidscale.upscaler import Upscaler, from_tensor, to_tensor

log = logging.getLogger("vidscale")

LABEL_BAR = 28  # pixels above each panel for its label
GAP = 4
BACKGROUND = 24
MAX_MODELS = 4
MAX_ROW = 4096  # a row of panels wider than this wraps into a grid
# H.264 level 6.2's largest frame (8192x4320): beyond it encoders and players give up
MAX_CLIP_SIDE, MAX_CLIP_AREA = 8192, 8192 * 4320

Result = tuple[str, np.ndarray]  # (label, 8-bit RGB panel)
MakeUpscaler = Callable[[str | None], Upscaler]


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


def parse_models(model: str | None, models: str | None) -> list[str | None]:
    """The model names to compare: `-m`'s one (None: the default), or `--models`' list.

    Only commas split: a chain such as `a+b` is one name, passed on unchanged.
    """
    if models is None:
        return [model]
    if model is not None:
        raise UsageError("give -m MODEL or --models A,B, not both")
    names = [name.strip() for name in models.split(",")]
    if not all(names):
        raise UsageError(f"--models {models}: empty model name")
    unique: list[str | None] = list(dict.fromkeys(names))
    if len(unique) < len(names):
        log.warning("--models %s: repeated names dropped", models)
    if len(unique) > MAX_MODELS:
        raise UsageError(f"--models {models}: at most {MAX_MODELS} models")
    return unique


def check_models(names: Iterable[str | None]) -> None:
    """Fail now, with `-m`'s one-line error, on a name that does not resolve (no weights load)."""
    for name in names:
        if name is not None:
            zoo.resolve_chain(name)  # what Upscaler resolves `-m` with, chains `a+b` included


def _crop(rgb: np.ndarray, crop: tuple[int, int, int, int] | None) -> np.ndarray:
    if crop is None:
        return rgb
    x, y, w, h = crop
    if x + w > rgb.shape[1] or y + h > rgb.shape[0]:
        raise UsageError(f"--crop {x},{y},{w},{h} lies outside the {rgb.shape[1]}x{rgb.shape[0]} input")
    return rgb[y:y + h, x:x + w]


def _panel_size(rgb: np.ndarray, scale: float) -> tuple[int, int]:
    return round(rgb.shape[0] * scale), round(rgb.shape[1] * scale)


def bicubic_panel(rgb: np.ndarray, scale: float) -> np.ndarray:
    """The plain resize every result is judged against."""
    return from_tensor(resize(to_tensor(rgb), _panel_size(rgb, scale), "bicubic").clamp(0, 1), np.uint8)


def model_panel(rgb: np.ndarray, scale: float, upscaler: Upscaler) -> np.ndarray:
    return from_tensor(upscaler.upscale(to_tensor(rgb), _panel_size(rgb, scale)), np.uint8)


def panels(rgb: np.ndarray, scale: float, upscaler: Upscaler) -> tuple[np.ndarray, np.ndarray]:
    """(bicubic, network) upscales of an 8-bit RGB picture, the same size."""
    return bicubic_panel(rgb, scale), model_panel(rgb, scale, upscaler)


def still_results(rgb: np.ndarray, scale: float, names: list[str | None], make: MakeUpscaler) -> list[Result]:
    """Bicubic, then each model's panel; one model in memory at a time."""
    results = [("bicubic", bicubic_panel(rgb, scale))]
    for name in names:
        upscaler = make(name)
        results.append((upscaler.label(scale), model_panel(rgb, scale, upscaler)))
        del upscaler  # else it stays alive while the next one loads
        _release()
    return results


def _release() -> None:
    """Hand a dropped model's memory back before the next one sizes its tiles."""
    gc.collect()
    if torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def grid_columns(count: int, width: int) -> int:
    """Panels per row: all in one, else the fewest balanced rows within MAX_ROW (never under two)."""
    for rows in range(1, count + 1):
        cols = math.ceil(count / rows)
        if cols <= 2 or cols * width + (cols - 1) * GAP <= MAX_ROW:
            return cols
    return min(count, 2)


def grid_shape(count: int, height: int, width: int) -> tuple[int, int]:
    """(height, width) of the picture holding `count` labelled panels of one size."""
    cols = grid_columns(count, width)
    rows = math.ceil(count / cols)
    return rows * (height + LABEL_BAR) + (rows - 1) * GAP, cols * width + (cols - 1) * GAP


def grid_image(results: list[Result]) -> np.ndarray:
    """Every panel with its label bar above, row by row, on a dark background."""
    h, w = results[0][1].shape[:2]
    cols = grid_columns(len(results), w)
    canvas = np.full((*grid_shape(len(results), h, w), 3), BACKGROUND, np.uint8)
    for i, (label, panel) in enumerate(results):
        y0, x0 = (i // cols) * (h + LABEL_BAR + GAP), (i % cols) * (w + GAP)
        canvas[y0:y0 + LABEL_BAR, x0:x0 + w] = _label_bar(label, w)
        canvas[y0 + LABEL_BAR:y0 + LABEL_BAR + h, x0:x0 + w] = panel
    return canvas


def side_by_side(left: np.ndarray, right: np.ndarray, labels: tuple[str, str]) -> np.ndarray:
    """Two panels with a label bar above each and a gap between them."""
    return grid_image([(labels[0], left), (labels[1], right)])


def _label_bar(text: str, width: int) -> np.ndarray:
    """The label drawn in its own bar, so a long one is cut at its panel's edge, not drawn over the next."""
    bar = np.full((LABEL_BAR, width, 3), BACKGROUND, np.uint8)
    font, size = cv2.FONT_HERSHEY_SIMPLEX, 0.55
    text_width = cv2.getTextSize(text, font, size, 1)[0][0]
    if text_width > width - 16:  # shrink a little to fit, but not below legible
        size = max(0.4, size * (width - 16) / text_width)
    cv2.putText(bar, text, (8, LABEL_BAR - 9), font, size, (240, 240, 240), 1, cv2.LINE_AA)
    return bar


_PAGE_STYLE = """
body { background:#181818; color:#eee; font:14px sans-serif; margin:16px; }
.bar { display:flex; flex-wrap:wrap; gap:16px; align-items:center; margin:8px 0; }
.frame { position:relative; display:inline-block; max-width:100%; }
#view { overflow:auto; max-width:100%; max-height:85vh; }
.cmp { position:relative; cursor:col-resize; --cut:50%; }
.cmp img { position:absolute; top:0; left:0; width:100%; height:100%; }
.cmp.px img { image-rendering:pixelated; }
.cmp img.top { z-index:1; clip-path:inset(0 var(--cut) 0 0); }
.line { position:absolute; top:0; bottom:0; left:calc(100% - var(--cut)); width:1px; z-index:2;
        background:#fffa; pointer-events:none; }
.tag { position:absolute; top:6px; z-index:2; padding:2px 6px; background:#000a; pointer-events:none; }
#pos { display:block; margin:4px 0 0; padding:0; box-sizing:border-box; }
.hint { color:#999; }
"""

_PAGE_SCRIPT = """
const $ = id => document.getElementById(id);
const view = $("view"), cmp = $("cmp"), pos = $("pos"), zoom = $("zoom");
const pics = [...cmp.querySelectorAll("img")];
const W = +cmp.dataset.w, H = +cmp.dataset.h;
const ZOOMS = [0, 1, 2, 4, 8];  // 0: fit the window
function show() {
  const l = +$("left").value, r = +$("right").value;
  pics.forEach((p, i) => { p.hidden = i !== l && i !== r; p.classList.toggle("top", i === l && l !== r); });
  $("ltag").textContent = pics[l].alt; $("rtag").textContent = pics[r].alt;
}
function divide(percent) {
  pos.value = percent; cmp.style.setProperty("--cut", (100 - percent) + "%");
}
function fitScale() {
  return Math.min(1, view.parentElement.parentElement.clientWidth / W, innerHeight * 0.85 / H);
}
function setZoom(z, fx, fy) {  // fx, fy: the point of the picture (0-1) to centre on
  const s = z > 0 ? z / devicePixelRatio : fitScale();
  cmp.style.width = W * s + "px"; cmp.style.height = H * s + "px";
  cmp.classList.toggle("px", s * devicePixelRatio >= 1);
  view.scrollLeft = fx * W * s - view.clientWidth / 2;
  view.scrollTop = fy * H * s - view.clientHeight / 2;
  pos.style.width = view.clientWidth + "px";  // the slider spans the picture as shown
}
function centre() {
  return [(view.scrollLeft + view.clientWidth / 2) / cmp.clientWidth,
          (view.scrollTop + view.clientHeight / 2) / cmp.clientHeight];
}
function at(e) {
  const box = cmp.getBoundingClientRect();
  return [(e.clientX - box.left) / box.width, (e.clientY - box.top) / box.height];
}
$("left").onchange = $("right").onchange = show;
pos.oninput = () => divide(+pos.value);
zoom.onchange = () => setZoom(+zoom.value, ...centre());
const drag = e => divide(Math.max(0, Math.min(100, 100 * at(e)[0])));
cmp.onpointerdown = e => { if (e.button === 0) { cmp.setPointerCapture(e.pointerId); drag(e); } };
cmp.onpointermove = e => { if (cmp.hasPointerCapture(e.pointerId)) drag(e); };
cmp.ondblclick = e => {  // zoom in (Shift: out) around the point clicked
  const i = Math.max(0, Math.min(ZOOMS.length - 1, ZOOMS.indexOf(+zoom.value) + (e.shiftKey ? -1 : 1)));
  zoom.value = ZOOMS[i]; setZoom(ZOOMS[i], ...at(e));
};
addEventListener("resize", () => { if (+zoom.value === 0) setZoom(0, 0.5, 0.5); });
show(); divide(50); setZoom(0, 0.5, 0.5);
"""


def slider_page(results: list[Result], title: str) -> str:
    """A self-contained HTML page: pick two results, drag to reveal one over the other, zoom in."""
    h, w = results[0][1].shape[:2]
    labels = [html.escape(label) for label, _ in results]
    pictures = "".join(f'<img alt="{label}" src="{_data_uri(rgb)}">'
                       for label, (_, rgb) in zip(labels, results))
    zooms = "".join(f'<option value="{z}">{z}:1</option>' for z in (1, 2, 4, 8))
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{_PAGE_STYLE}</style></head><body>
<h3>{html.escape(title)}</h3>
<div class="bar">
<label>left <select id="left">{_options(labels, 0)}</select></label>
<label>right <select id="right">{_options(labels, 1)}</select></label>
<label>zoom <select id="zoom"><option value="0" selected>fit</option>{zooms}</select></label>
<span class="hint">drag on the picture to move the divide; double-click to zoom in there (Shift: out)</span>
</div>
<div class="frame"><div id="view">
<div class="cmp" id="cmp" data-w="{w}" data-h="{h}" style="width:{w}px; height:{h}px">
{pictures}<div class="line"></div></div></div>
<span class="tag" id="ltag" style="left:6px"></span><span class="tag" id="rtag" style="right:6px"></span>
<input id="pos" type="range" min="0" max="100" step="0.1" value="50"></div>
<script>{_PAGE_SCRIPT}</script></body></html>
"""


def _options(labels: list[str], selected: int) -> str:
    return "".join(f'<option value="{i}"{" selected" if i == selected else ""}>{label}</option>'
                   for i, label in enumerate(labels))


def _data_uri(rgb: np.ndarray) -> str:
    """PNG; a result whose PNG passes MAX_PNG_BYTES goes in as JPEG at quality 95 with full
    chroma, which keeps the page loadable (a 4K PNG is some 20 MB, and base64 adds a third)."""
    data = _encode(rgb, "png", "rgb24", {"pred": "mixed"})
    if len(data) <= MAX_PNG_BYTES:
        return "data:image/png;base64," + base64.b64encode(data).decode("ascii")
    data = _encode(rgb, "mjpeg", "yuvj444p", {"qmin": str(JPEG_QSCALE), "qmax": str(JPEG_QSCALE)})
    return "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii")


MAX_PNG_BYTES = 4 << 20
JPEG_QSCALE = 2  # mjpeg's quantiser scale; about libjpeg quality 90-95


def _encode(rgb: np.ndarray, codec: str, pix_fmt: str, options: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="image2pipe") as out:
        stream = out.add_stream(codec, options=options)
        stream.width, stream.height, stream.pix_fmt = rgb.shape[1], rgb.shape[0], pix_fmt
        if codec == "mjpeg":
            stream.codec_context.color_range = av.video.reformatter.ColorRange.JPEG
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        out.mux(stream.encode(frame.reformat(format=pix_fmt) if pix_fmt != "rgb24" else frame))
        out.mux(stream.encode(None))
    return buffer.getvalue()


def compare(source: Path, output: Path, scale: float, names: list[str | None], make: MakeUpscaler,
            crop: tuple[int, int, int, int] | None, at: float, duration: float, overwrite: bool) -> str:
    """Write bicubic beside each named model (`make` builds one Upscaler per name) to `output`;
    returns a line saying what was written."""
    suffix = output.suffix.lower()
    if suffix not in VIDEO_SUFFIXES and suffix not in (".html", ".htm") and not is_image_path(output):
        raise UsageError(f"{output}: compare writes an image, an .html page or a video")
    with atomic_output(output, overwrite=overwrite, inputs=[source]) as tmp:
        if suffix in VIDEO_SUFFIXES:
            labels = _compare_clip(source, tmp, scale, names, make, crop, at, duration)
            what = f"a {duration:g}s side-by-side clip from {at:g}s"
        else:
            results = still_results(_crop(_still(source, at), crop), scale, names, make)
            labels = [label for label, _ in results]
            if suffix in (".html", ".htm"):
                tmp.write_text(slider_page(results, f"{source.name}: x{scale:g}"), encoding="utf-8")
                what = "a slider page"
            else:
                write_image(tmp, grid_image(results))
                what = "side-by-side panels"
    return f"{output}: {what} of {', '.join(labels)} at x{scale:g} ({output.stat().st_size / 2**20:.1f} MiB)"


def _still(source: Path, at: float) -> np.ndarray:
    if is_image_path(source):
        return to_rgb(read_picture(source).pixels)
    for _, rgb in _video_frames(source, at, 0.0):
        return rgb
    raise VidscaleError(f"{source}: no frame at {at:g}s")


def _video_frames(source: Path, at: float, duration: float) -> Iterator[tuple[float, np.ndarray]]:
    """(seconds, RGB) of the frames from `at` for `duration` seconds (at least one)."""
    try:
        container = av.open(ffmpeg_url(source))
    except (av.error.FFmpegError, OSError) as exc:
        raise VidscaleError(f"{source}: not a readable media file ({exc})") from None
    with container:
        stream = main_video(container)
        if stream is None:
            raise VidscaleError(f"{source}: no video stream")
        if at > 0 and stream.time_base:
            container.seek(int(at / stream.time_base), stream=stream, backward=True)
        for frame in container.decode(stream):
            t = float(frame.pts * frame.time_base) if frame.pts is not None else 0.0
            if t + 1e-6 < at:
                continue
            yield t, frame.to_ndarray(format="rgb24")
            if t >= at + duration:
                return


def _clip_shape(count: int, height: int, width: int) -> tuple[int, int]:
    """The clip's even frame size, or a UsageError when no encoder would take it."""
    h, w = (v + v % 2 for v in grid_shape(count, height, width))  # yuv420p needs even sizes
    if max(h, w) > MAX_CLIP_SIDE or h * w > MAX_CLIP_AREA:
        raise UsageError(f"the side-by-side clip would be {w}x{h}, too large to encode; "
                         "use --crop for a smaller region (or fewer models)")
    return h, w


def _compare_clip(source: Path, out_path: Path, scale: float, names: list[str | None], make: MakeUpscaler,
                  crop: tuple[int, int, int, int] | None, at: float, duration: float) -> list[str]:
    """Each model's panels go to a lossless track on disk, one model loaded at a time; then the grid.
    Returns the panels' labels."""
    height, width = _panel_size(_crop(_still(source, at), crop), scale)
    shape = _clip_shape(1 + len(names), height, width)  # refused before any model loads
    with tempfile.TemporaryDirectory(prefix="vidscale-compare-") as folder:
        tracks: list[tuple[str, Path]] = []
        for i, name in enumerate(names):
            upscaler = make(name)
            frames = (model_panel(_crop(rgb, crop), scale, upscaler)
                      for _, rgb in _video_frames(source, at, duration))
            tracks.append((upscaler.label(scale), _write_track(Path(folder) / f"{i}.mkv", frames)))
            del upscaler, frames  # else it stays alive while the next one loads
            _release()
        _write_grid_clip(source, out_path, scale, crop, at, duration, tracks, shape)
    return ["bicubic", *(label for label, _ in tracks)]


def _write_track(path: Path, panels: Iterator[np.ndarray]) -> Path:
    """FFV1 RGB: exact, and far smaller than raw frames."""
    with av.open(str(path), "w") as out:
        stream = None
        for rgb in panels:
            if stream is None:
                stream = out.add_stream("ffv1")
                stream.height, stream.width, stream.pix_fmt = rgb.shape[0], rgb.shape[1], "bgr0"
            out.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        if stream is not None:
            out.mux(stream.encode(None))
    return path


def _read_track(stack: ExitStack, path: Path) -> Iterator[np.ndarray]:
    container = stack.enter_context(av.open(str(path)))
    return (frame.to_ndarray(format="rgb24") for frame in container.decode(video=0))


def _write_grid_clip(source: Path, out_path: Path, scale: float, crop: tuple[int, int, int, int] | None,
                     at: float, duration: float, tracks: list[tuple[str, Path]],
                     shape: tuple[int, int]) -> None:
    with av.open(ffmpeg_url(out_path), "w") as out, ExitStack() as stack:
        stream = out.add_stream("libx264", rate=30, options={"crf": "16", "preset": "fast"})
        stream.height, stream.width = shape
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        readers = [_read_track(stack, path) for _, path in tracks]
        for (t, rgb), *ours in zip(_video_frames(source, at, duration), *readers, strict=True):
            results = [("bicubic", bicubic_panel(_crop(rgb, crop), scale))]
            results += [(label, panel) for (label, _), panel in zip(tracks, ours)]
            canvas = np.full((*shape, 3), BACKGROUND, np.uint8)
            grid = grid_image(results)
            canvas[:grid.shape[0], :grid.shape[1]] = grid
            frame = av.VideoFrame.from_ndarray(canvas, format="rgb24")
            frame = frame.reformat(format="yuv420p", dst_colorspace="itu709")
            frame.pts, frame.time_base = round((t - at) * 1000), Fraction(1, 1000)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
