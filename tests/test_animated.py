"""Animated GIF, WebP and APNG: every frame, its time and its duration, and transparency, kept.

Inputs are written with Pillow (an implementation independent of ours and of
FFmpeg; torchvision brings it) and outputs read back with PyAV, Pillow and a
plain chunk walk.
"""

from __future__ import annotations

import struct
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

import vidscale
from vidscale.errors import UsageError, VidscaleError
from vidscale.media.animated.gif_palette import GifQuantizer, gif_quantize
from vidscale.media.animated.header import is_animated, probe_animation
from vidscale.media.animated.sink import AnimatedSink
from vidscale.media.animated.source import AnimatedFrame, AnimatedSource
from vidscale.media.frames import Frame

Image = pytest.importorskip("PIL.Image")

DELAYS_MS = [100, 50, 200]
H, W = 24, 32
COLOURS = [(220, 40, 40), (40, 200, 60), (30, 60, 230)]
SQUARE = (250, 250, 250)


def clip(opaque: bool = False) -> list[np.ndarray]:
    """Three RGBA frames: a flat colour, a moving white square and a moving transparent band."""
    frames = []
    for i, colour in enumerate(COLOURS):
        a = np.zeros((H, W, 4), np.uint8)
        a[..., :3], a[..., 3] = colour, 255
        a[4:12, 4 + 6 * i:14 + 6 * i, :3] = SQUARE
        if not opaque:
            a[:, 8 * i + 1:8 * i + 5] = 0
        frames.append(a)
    return frames


def write_gif(path: Path, frames: list[np.ndarray], loop: int | None = 0) -> Path:
    palette = [(0, 0, 0), *COLOURS, SQUARE]  # index 0: transparent
    images = []
    for a in frames:
        index = np.zeros((H, W), np.uint8)
        for i, colour in enumerate(palette[1:], start=1):
            index[(a[..., :3] == colour).all(-1)] = i
        index[a[..., 3] == 0] = 0
        image = Image.fromarray(index, "P")
        image.putpalette([c for rgb in palette for c in rgb])
        images.append(image)
    extra = {} if loop is None else {"loop": loop}
    images[0].save(path, save_all=True, append_images=images[1:], duration=DELAYS_MS[:len(frames)],
                   transparency=0, disposal=2, optimize=False, **extra)
    return path


def write_pil(path: Path, frames: list[np.ndarray], loop: int = 0) -> Path:
    """APNG (.png) or lossless animated WebP (.webp)."""
    images = [Image.fromarray(a, "RGBA") for a in frames]
    extra = {"lossless": True} if path.suffix == ".webp" else {"blend": 0, "disposal": 0}
    images[0].save(path, save_all=True, append_images=images[1:], duration=DELAYS_MS[:len(frames)], loop=loop,
                   **extra)
    return path


def make(tmp_path: Path, fmt: str, opaque: bool = False, frames: int = 3) -> Path:
    pictures = clip(opaque)[:frames]
    if fmt == "gif":
        return write_gif(tmp_path / "in.gif", pictures)
    return write_pil(tmp_path / f"in.{fmt}", pictures)


def decoded(path: Path) -> list[tuple[float, float, np.ndarray]]:
    """(start s, duration s, RGBA pixels) of each frame, as FFmpeg reads the file."""
    with av.open(str(path)) as c:
        return [(float(f.pts * f.time_base), float(f.duration * f.time_base), f.to_ndarray(format="rgba"))
                for f in c.decode(video=0)]


def webp_durations(path: Path) -> list[int]:
    """ANMF frame durations (ms), read straight from the chunks."""
    data, pos, out = path.read_bytes(), 12, []
    while pos + 8 <= len(data):
        kind, size = struct.unpack_from("<4sI", data, pos)
        if kind == b"ANMF":
            out.append(int.from_bytes(data[pos + 20:pos + 23], "little"))
        pos += 8 + size + (size & 1)
    return out


def pil_durations(path: Path) -> list[float]:
    with Image.open(path) as image:
        durations = []
        for i in range(image.n_frames):
            image.seek(i)
            durations.append(float(image.info["duration"]))
        return durations


STARTS = [0.0, 0.1, 0.15]
DURATIONS = [0.1, 0.05, 0.2]


# --------------------------------------------------------------------------
# Detection


@pytest.mark.parametrize("fmt", ["gif", "png", "webp"])
def test_is_animated_true_for_clips_false_for_stills(tmp_path: Path, fmt: str) -> None:
    assert is_animated(make(tmp_path, fmt))
    still = tmp_path / "still"
    still.mkdir()
    assert not is_animated(make(still, fmt, frames=1))
    flat = tmp_path / f"flat.{fmt}"
    Image.fromarray(clip()[0], "RGBA").save(flat)
    assert not is_animated(flat)


def test_is_animated_never_raises(tmp_path: Path) -> None:
    assert not is_animated(tmp_path / "missing.gif")
    assert not is_animated(tmp_path)
    (tmp_path / "empty.png").write_bytes(b"")
    assert not is_animated(tmp_path / "empty.png")
    (tmp_path / "text.webp").write_bytes(b"RIFF\xff\xff\xff\xffWEBPnot really")
    assert not is_animated(tmp_path / "text.webp")
    rng = np.random.default_rng(0)
    for fmt in ("gif", "png", "webp"):
        data = make(tmp_path, fmt).read_bytes()
        for cut in range(0, len(data), 7):  # every truncation
            (tmp_path / "cut").write_bytes(data[:cut])
            is_animated(tmp_path / "cut")
        for _ in range(200):  # and random damage
            broken = bytearray(data)
            for at in rng.integers(0, len(data), 4):
                broken[at] = int(rng.integers(0, 256))
            (tmp_path / "bad").write_bytes(bytes(broken))
            is_animated(tmp_path / "bad")


def test_loop_counts_are_read(tmp_path: Path) -> None:
    # GIF's NETSCAPE field counts repeats after the first play; our `plays` counts plays.
    assert probe_animation(write_gif(tmp_path / "a.gif", clip(), loop=0)).plays == 0
    assert probe_animation(write_gif(tmp_path / "b.gif", clip(), loop=2)).plays == 3
    assert probe_animation(write_gif(tmp_path / "c.gif", clip(), loop=None)).plays == 1
    assert probe_animation(write_pil(tmp_path / "d.png", clip(), loop=3)).plays == 3
    assert probe_animation(write_pil(tmp_path / "e.webp", clip(), loop=3)).plays == 3
    assert probe_animation(make(tmp_path, "png")).frames == 3


# --------------------------------------------------------------------------
# Reading


@pytest.mark.parametrize("fmt", ["gif", "png", "webp"])
def test_source_yields_every_frame_with_its_time_and_alpha(tmp_path: Path, fmt: str) -> None:
    source = AnimatedSource(make(tmp_path, fmt))
    try:
        assert source.kind == "animated" and source.layout == "rgba"
        assert (source.info.width, source.info.height, source.info.frames) == (W, H, 3)
        frames = list(source.items())
    finally:
        source.close()
    assert [f.index for f in frames] == [0, 1, 2]
    assert [float(f.pts * f.time_base) for f in frames] == pytest.approx(STARTS)
    assert [float(f.duration * f.time_base) for f in frames] == pytest.approx(DURATIONS)
    for frame, want in zip(frames, clip()):
        assert frame.pixels.shape == (H, W, 4) and frame.pixels.dtype == np.uint8
        assert np.array_equal(frame.pixels[..., 3], want[..., 3])
        shown = want[..., 3] > 0
        assert np.array_equal(frame.pixels[shown, :3], want[shown, :3])


@pytest.mark.parametrize("fmt", ["gif", "png", "webp"])
def test_opaque_animation_comes_as_rgb(tmp_path: Path, fmt: str) -> None:
    source = AnimatedSource(make(tmp_path, fmt, opaque=True))
    try:
        frames = list(source.items())
    finally:
        source.close()
    assert source.layout == "rgb" and all(f.pixels.shape == (H, W, 3) for f in frames)


def test_source_refuses_non_media(tmp_path: Path) -> None:
    (tmp_path / "x.gif").write_bytes(b"GIF89a nonsense")
    with pytest.raises(VidscaleError, match="no picture size"):
        AnimatedSource(tmp_path / "x.gif")
    data = make(tmp_path, "png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[:len(data) * 2 // 3])
    with pytest.raises(VidscaleError):
        source = AnimatedSource(tmp_path / "cut.png")
        try:
            list(source.items())
        finally:
            source.close()


# --------------------------------------------------------------------------
# Writing


def upscaled(path: Path) -> tuple[list[Frame], int]:
    """The source's frames, twice the size (lanczos), and its loop count."""
    source = AnimatedSource(path)
    try:
        frames = [replace(f, pixels=vidscale.upscale_image(f.pixels, scale=2, model="lanczos"))
                  for f in source.items()]
    finally:
        source.close()
    return frames, source.plays


def write_all(path: Path, frames: list[Frame], quality: int | None = None, plays: int = 0,
              warnings: list[str] | None = None) -> Path:
    warn = warnings.append if warnings is not None else lambda message: None
    sink = AnimatedSink(path, path.suffix, frames[0].pixels.shape[:2], quality, warn, plays=plays)
    for frame in frames:
        sink.write(frame)
    sink.close()
    return path


@pytest.mark.parametrize("src", ["gif", "png", "webp"])
@pytest.mark.parametrize("suffix", [".png", ".apng", ".webp", ".gif"])
def test_source_upscale_sink_keeps_frames_times_and_alpha(tmp_path: Path, src: str, suffix: str) -> None:
    frames, plays = upscaled(make(tmp_path, src))
    out = write_all(tmp_path / f"out{suffix}", frames, plays=plays)
    got = decoded(out)
    assert len(got) == 3
    assert [start for start, _, _ in got] == pytest.approx(STARTS)
    assert [duration for _, duration, _ in got] == pytest.approx(DURATIONS)
    if suffix == ".webp":
        assert webp_durations(out) == DELAYS_MS
    else:
        assert pil_durations(out) == pytest.approx(DELAYS_MS)
    for (_, _, pixels), frame in zip(got, frames):
        want = frame.pixels
        assert pixels.shape == (2 * H, 2 * W, 4)
        alpha, want_alpha = pixels[..., 3].astype(int), want[..., 3].astype(int)
        if suffix == ".gif":  # one bit: solid from half up
            assert np.array_equal(alpha, np.where(want_alpha >= 128, 255, 0))
        else:
            solid = (want_alpha == 0) | (want_alpha == 255)
            assert np.array_equal(alpha[solid], want_alpha[solid])
            assert np.abs(alpha - want_alpha).max() <= (0 if suffix != ".webp" else 2)
        shown = (want_alpha == 255) & (alpha == 255)
        error = np.abs(pixels[shown, :3].astype(int) - want[shown, :3]).mean()
        assert error <= {".png": 0, ".apng": 0, ".webp": 3, ".gif": 4}[suffix], error


@pytest.mark.parametrize("suffix", [".png", ".webp", ".gif"])
@pytest.mark.parametrize("plays", [0, 1, 3])
def test_loop_count_is_written(tmp_path: Path, suffix: str, plays: int) -> None:
    frames = [AnimatedFrame(p, i, 10 * i, Fraction(1, 100), duration=10) for i, p in enumerate(clip())]
    out = write_all(tmp_path / f"out{suffix}", frames, plays=plays)
    assert probe_animation(out).plays == plays
    with Image.open(out) as image:  # Pillow reports the file's own field
        pil_loop = image.info.get("loop", None)
    if suffix == ".gif":
        assert pil_loop == {0: 0, 1: None, 3: 2}[plays]
    else:
        assert pil_loop == plays


def test_webp_quality_100_is_lossless(tmp_path: Path) -> None:
    frames, _ = upscaled(make(tmp_path, "webp"))
    got = decoded(write_all(tmp_path / "out.webp", frames, quality=100))
    for (_, _, pixels), frame in zip(got, frames):
        shown = frame.pixels[..., 3] > 0  # colour under full transparency is free to change
        assert np.array_equal(pixels[..., 3], frame.pixels[..., 3])
        assert np.array_equal(pixels[shown, :3], frame.pixels[shown, :3])


def test_deep_apng_stays_16_bit(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    pictures = [rng.integers(0, 65536, (H, W, 4), dtype=np.uint16) for _ in range(3)]
    frames = [AnimatedFrame(p, i, 5 * i, Fraction(1, 100), duration=5) for i, p in enumerate(pictures)]
    out = write_all(tmp_path / "deep.png", frames)
    source = AnimatedSource(out)
    try:
        back = list(source.items())
    finally:
        source.close()
    assert source.info.deep
    for frame, want in zip(back, pictures):
        assert frame.pixels.dtype == np.uint16 and np.array_equal(frame.pixels, want)


def test_frames_without_durations_late_start_and_colliding_times(tmp_path: Path) -> None:
    # Plain Frames (no duration): the last shows as long as the one before it.
    # The clip starts at 0 whatever the first pts. 1 ms apart: still distinct
    # frames in a GIF (centiseconds), in order, with a warning: viewers (and
    # FFmpeg's webp demuxer) stretch frames of 10 ms or less to 100 ms.
    pictures = [p[..., :3] for p in clip(opaque=True)]
    times = [500, 501, 800]
    frames = [Frame(p, i, t, Fraction(1, 1000)) for i, (p, t) in enumerate(zip(pictures, times))]
    for suffix in (".gif", ".png", ".webp"):
        warnings: list[str] = []
        out = write_all(tmp_path / f"out{suffix}", frames, warnings=warnings)
        assert bool(warnings) == (suffix != ".png"), suffix
        assert len(decoded(out)) == 3
        stored = webp_durations(out) if suffix == ".webp" else pil_durations(out)  # as in the file
        assert stored == {".gif": [10, 290, 290], ".png": [1, 299, 299], ".webp": [1, 299, 299]}[suffix]


def test_gray_and_16_bit_frames_go_into_8_bit_formats(tmp_path: Path) -> None:
    gray = np.tile(np.arange(W, dtype=np.uint16)[None, :, None] * 2000, (H, 1, 1))
    frames = [Frame(gray, i, i, Fraction(1, 10)) for i in range(2)]
    for suffix in (".gif", ".webp"):
        got = decoded(write_all(tmp_path / f"gray{suffix}", frames))
        want = ((gray[..., 0].astype(np.uint32) + 128) // 257).astype(int)
        assert np.abs(got[0][2][..., 0].astype(int) - want).mean() < 3, suffix


def test_sink_refuses_bad_input(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        AnimatedSink(tmp_path / "x.webp", ".webp", (H, W), 0, lambda m: None)
    with pytest.raises(UsageError):
        AnimatedSink(tmp_path / "x.jpg", ".jpg", (H, W), None, lambda m: None)
    sink = AnimatedSink(tmp_path / "x.gif", ".gif", (H, W), None, lambda m: None)
    with pytest.raises(VidscaleError, match="no frames"):
        sink.close()
    sink.write(Frame(clip()[0][..., :3], 0, 0, Fraction(1, 10)))
    sink.write(Frame(clip()[1][..., :1], 1, 1, Fraction(1, 10)))  # gray into RGB: fine
    with pytest.raises(VidscaleError, match="must match"):
        sink.write(Frame(np.zeros((H + 1, W, 3), np.uint8), 2, 2, Fraction(1, 10)))
    with pytest.raises(VidscaleError, match="RGBA pixels"):  # alpha would be lost
        sink.write(Frame(clip()[2], 2, 2, Fraction(1, 10)))
    sink.abort()


# --------------------------------------------------------------------------
# GIF palettes


def test_pal8_palette_rows_are_argb() -> None:
    # What PyAV expects for pal8 (and our palettes give): rows of A, R, G, B.
    indices, palette = gif_quantize(clip()[0])
    frame = av.VideoFrame.from_ndarray((indices, palette), format="pal8")
    rgba = frame.to_ndarray(format="rgba")
    want = clip()[0]
    shown = want[..., 3] > 0
    assert np.array_equal(rgba[shown], want[shown])
    assert (rgba[..., 3][~shown] == 0).all()


def test_few_colours_are_kept_exactly_many_are_close() -> None:
    flat = np.zeros((40, 40, 3), np.uint8)
    flat[:20], flat[20:], flat[:, :5] = (10, 20, 30), (11, 20, 30), (200, 0, 0)  # near-twins stay apart
    indices, palette = gif_quantize(flat)
    assert np.array_equal(palette[indices][..., 1:], flat)
    y, x = np.mgrid[0:120, 0:160]
    smooth = np.stack([x * 255 // 159, y * 255 // 119, (x + y) * 255 // 278], -1).astype(np.uint8)
    indices, palette = gif_quantize(smooth)
    assert len(np.unique(indices)) > 200
    assert np.abs(palette[indices][..., 1:].astype(int) - smooth).mean() < 4


def test_palette_is_kept_while_frames_fit_and_rebuilt_on_a_new_scene() -> None:
    y, x = np.mgrid[0:60, 0:80]
    scene = np.stack([x * 3, y * 4, x + y], -1).astype(np.uint8)
    quantize = GifQuantizer()
    _, first = quantize(scene)
    moved = np.roll(scene, 3, axis=1)
    _, second = quantize(moved)
    assert np.array_equal(first, second)  # same colours: same table, static pixels keep their index
    other = 255 - scene[..., ::-1]
    indices, third = quantize(other)
    assert not np.array_equal(first, third)
    assert np.abs(third[indices][..., 1:].astype(int) - other).mean() < 4


# --------------------------------------------------------------------------
# Through the CLI, once wired into open_source/output_kind/_run


def _wired() -> bool:
    from vidscale.media.sinks import output_kind

    try:
        return output_kind("x.gif") == "image"
    except UsageError:
        return False


@pytest.mark.skipif(not _wired(), reason="animated outputs not yet wired into vidscale.job")
@pytest.mark.parametrize("fmt", ["gif", "png", "webp"])
def test_cli_upscales_an_animation(tmp_path: Path, fmt: str) -> None:
    from vidscale.cli import main

    src = make(tmp_path, fmt)
    out = tmp_path / f"big.{fmt}"
    assert main([str(src), str(out), "-m", "lanczos", "--quiet"]) == 0
    got = decoded(out)
    assert len(got) == 3 and got[0][2].shape == (2 * H, 2 * W, 4)
    assert [d for _, d, _ in got] == pytest.approx(DURATIONS)
    assert probe_animation(out).plays == probe_animation(src).plays
