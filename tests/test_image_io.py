"""Still-image reading/writing and atomic output files."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from vidscale.errors import UsageError, VidscaleError
from vidscale.media.atomic import atomic_output
from vidscale.media.image import (
    IMAGE_SUFFIXES,
    is_image_path,
    read_image,
    write_image,
)

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "media" / "realesrgan_inputs"


def smooth_rgb(h: int, w: int, dtype=np.uint8) -> np.ndarray:
    """A photo-like image: gradients plus mild noise (lossy codecs cope)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.stack([x / w, y / h, 0.5 + 0.4 * np.sin(x / 9 + y / 13)], axis=-1)
    img += np.random.default_rng(1).normal(0, 0.004, img.shape)
    top = np.iinfo(dtype).max
    return np.clip(np.rint(img * top), 0, top).astype(dtype)


def noise_rgb(h: int, w: int, dtype=np.uint8) -> np.ndarray:
    """Every value possible: catches any lossy step in a lossless path."""
    top = int(np.iinfo(dtype).max)
    return np.random.default_rng(2).integers(0, top + 1, (h, w, 3), dtype=dtype)


def encode_raw(path: Path, array, in_fmt: str, codec: str, pix_fmt: str) -> None:
    """Write an image in a format write_image never produces (gray, alpha...)."""
    with av.open(str(path), "w", format="image2", options={"update": "1"}) as c:
        stream = c.add_stream(codec)
        # pal8 frames come from an (index, palette) pair.
        pixels = array[0] if isinstance(array, tuple) else array
        stream.height, stream.width = pixels.shape[:2]
        stream.pix_fmt = pix_fmt
        frame = av.VideoFrame.from_ndarray(array, format=in_fmt)
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            c.mux(packet)


def mean_abs_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).mean())


# --------------------------------------------------------------------------
# Lossless round trips


@pytest.mark.parametrize("suffix", [".png", ".tif", ".tiff", ".bmp", ".PNG"])
@pytest.mark.parametrize("size", [(179, 179), (351, 500), (1, 1)])
def test_lossless_8bit_round_trip_is_exact(tmp_path, suffix, size):
    img = noise_rgb(*size)
    path = tmp_path / f"out{suffix}"
    write_image(path, img)
    back = read_image(path)
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back, img)


@pytest.mark.parametrize("suffix", [".png", ".tiff"])
def test_lossless_16bit_round_trip_is_exact(tmp_path, suffix):
    img = noise_rgb(37, 53, np.uint16)
    path = tmp_path / f"out{suffix}"
    write_image(path, img)
    back = read_image(path)
    assert back.dtype == np.uint16 and back.shape == img.shape
    np.testing.assert_array_equal(back, img)


def test_bmp_reduces_16bit_with_rounding(tmp_path):
    img = np.array([[[0, 128, 129], [256, 385, 65535]]], dtype=np.uint16)
    write_image(tmp_path / "out.bmp", img)
    back = read_image(tmp_path / "out.bmp")
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back, [[[0, 0, 1], [1, 1, 255]]])


def test_webp_lossless_is_exact(tmp_path):
    img = noise_rgb(35, 61)
    write_image(tmp_path / "out.webp", img, quality=100)
    np.testing.assert_array_equal(read_image(tmp_path / "out.webp"), img)


# --------------------------------------------------------------------------
# Lossy round trips


def test_webp_lossy_is_close(tmp_path):
    img = smooth_rgb(179, 179)
    write_image(tmp_path / "out.webp", img)
    back = read_image(tmp_path / "out.webp")
    assert back.shape == img.shape and back.dtype == np.uint8
    assert mean_abs_error(back, img) < 3


@pytest.mark.parametrize("size", [(179, 179), (351, 500)])
def test_jpeg_default_quality_is_close(tmp_path, size):
    img = smooth_rgb(*size)
    path = tmp_path / "out.jpg"
    write_image(path, img)
    back = read_image(path)
    assert back.shape == img.shape and back.dtype == np.uint8
    # Full-range yuvj both ways: a range mix-up would shift levels by ~8%.
    assert mean_abs_error(back, img) < 2
    assert abs(back.astype(float).mean() - img.astype(float).mean()) < 1


def test_jpeg_lower_quality_gives_smaller_file(tmp_path):
    img = smooth_rgb(128, 160)
    sizes = []
    for quality in (95, 75, 30, 5):
        path = tmp_path / f"q{quality}.jpeg"
        write_image(path, img, quality=quality)
        sizes.append(path.stat().st_size)
    assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) == 4


def test_16bit_to_jpeg_is_reduced_to_8bit(tmp_path):
    img16 = smooth_rgb(64, 64, np.uint16)
    write_image(tmp_path / "out.jpg", img16)
    back = read_image(tmp_path / "out.jpg")
    assert back.dtype == np.uint8
    assert mean_abs_error(back, (img16 // 257).astype(np.uint8)) < 2


# --------------------------------------------------------------------------
# Source formats


def test_gray_png_reads_as_three_equal_channels(tmp_path):
    gray = np.tile(np.arange(256, dtype=np.uint8), (5, 1))
    encode_raw(tmp_path / "g.png", gray, "gray", "png", "gray")
    back = read_image(tmp_path / "g.png")
    assert back.shape == (5, 256, 3) and back.dtype == np.uint8
    for ch in range(3):
        np.testing.assert_array_equal(back[..., ch], gray)


def test_gray16_png_reads_as_uint16(tmp_path):
    gray = np.array([[0, 1, 256, 32768, 65535]], dtype=np.uint16)
    encode_raw(tmp_path / "g16.png", gray, "gray16le", "png", "gray16be")
    back = read_image(tmp_path / "g16.png")
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back[..., 1], gray)


def test_alpha_png_is_a_clear_error(tmp_path):
    rgba = np.zeros((8, 8, 4), dtype=np.uint8)
    rgba[..., 3] = 128
    encode_raw(tmp_path / "a.png", rgba, "rgba", "png", "rgba")
    with pytest.raises(VidscaleError, match="alpha") as info:
        read_image(tmp_path / "a.png")
    assert str(tmp_path / "a.png") in str(info.value)


@pytest.mark.parametrize("alpha", [255, 0])
def test_palette_png(tmp_path, alpha):
    index = np.array([[0, 1, 2, 3]] * 3, dtype=np.uint8)
    palette = np.full((256, 4), 255, dtype=np.uint8)  # PyAV order: A, R, G, B
    palette[:3] = [[255, 255, 0, 0], [255, 0, 255, 0], [255, 0, 0, 255]]
    palette[3] = [alpha, 9, 99, 199]
    path = tmp_path / "pal.png"
    encode_raw(path, (index, palette), "pal8", "png", "pal8")
    if alpha < 255:  # a transparent palette entry (PNG tRNS) is alpha too
        with pytest.raises(VidscaleError, match="alpha"):
            read_image(path)
        return
    back = read_image(path)
    expected = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [9, 99, 199]]
    np.testing.assert_array_equal(back[1], expected)


def test_opaque_alpha_is_dropped(tmp_path):
    rgba = np.full((4, 6, 4), 255, dtype=np.uint8)
    rgba[..., :3] = noise_rgb(4, 6)
    encode_raw(tmp_path / "o.png", rgba, "rgba", "png", "rgba")
    np.testing.assert_array_equal(read_image(tmp_path / "o.png"), rgba[..., :3])


def test_percent_in_name_is_not_a_pattern(tmp_path):
    # image2 would read 'x1.png' for 'x%d.png' if we passed names to FFmpeg.
    write_image(tmp_path / "x1.png", np.zeros((2, 2, 3), np.uint8))
    img = noise_rgb(5, 7)
    write_image(tmp_path / "x%d.png", img)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x%d.png", "x1.png"]
    np.testing.assert_array_equal(read_image(tmp_path / "x%d.png"), img)


# --------------------------------------------------------------------------
# Errors


def test_missing_file(tmp_path):
    with pytest.raises(VidscaleError, match="no such file") as info:
        read_image(tmp_path / "missing.png")
    assert "missing.png" in str(info.value)


@pytest.mark.parametrize(
    "name, data",
    [
        ("empty.png", b""),
        ("text.png", b"not an image\n"),
        ("junk.jpg", np.random.default_rng(3).bytes(3000)),
    ],
)
def test_unreadable_files_name_the_file(tmp_path, name, data):
    (tmp_path / name).write_bytes(data)
    with pytest.raises(VidscaleError) as info:
        read_image(tmp_path / name)
    message = str(info.value)
    assert name in message and "\n" not in message


def test_directory_is_not_an_image(tmp_path):
    (tmp_path / "d.png").mkdir()
    with pytest.raises(VidscaleError, match="d.png"):
        read_image(tmp_path / "d.png")


def test_unsupported_suffix_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match=r"unsupported image type '\.xyz'"):
        write_image(tmp_path / "out.xyz", np.zeros((2, 2, 3), np.uint8))
    assert not (tmp_path / "out.xyz").exists()


def test_bad_quality_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="quality"):
        write_image(tmp_path / "out.jpg", np.zeros((2, 2, 3), np.uint8), quality=0)


def test_is_image_path():
    assert all(is_image_path(Path("a" + s.upper())) for s in IMAGE_SUFFIXES)
    assert not is_image_path("clip.mp4") and not is_image_path("noext")


# --------------------------------------------------------------------------
# atomic_output


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if "vidscale-tmp" in p.name)


def test_atomic_success_renames(tmp_path):
    target = tmp_path / "out.png"
    img = noise_rgb(4, 4)
    with atomic_output(target) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".png"
        assert tmp.name.startswith(".") and not target.exists()
        write_image(tmp, img)
    np.testing.assert_array_equal(read_image(target), img)
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_atomic_failure_removes_temp(tmp_path, exc):
    target = tmp_path / "out.png"
    with pytest.raises(exc):
        with atomic_output(target) as tmp:
            tmp.write_bytes(b"partial")
            raise exc()
    assert not target.exists() and leftovers(tmp_path) == []


def test_atomic_refuses_existing_target(tmp_path):
    target = tmp_path / "out.png"
    target.write_bytes(b"old")
    with pytest.raises(UsageError, match="already exists"):
        with atomic_output(target):
            pytest.fail("must not get here")
    with atomic_output(target, overwrite=True) as tmp:
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new"


def test_atomic_target_created_meanwhile_is_not_clobbered(tmp_path):
    target = tmp_path / "out.png"
    with pytest.raises(UsageError, match="already exists"):
        with atomic_output(target) as tmp:
            tmp.write_bytes(b"ours")
            target.write_bytes(b"theirs")  # e.g. a second run, same output
    assert target.read_bytes() == b"theirs" and leftovers(tmp_path) == []


def test_atomic_refuses_overwriting_input(tmp_path, monkeypatch):
    src = tmp_path / "in.png"
    src.write_bytes(b"input")
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.png").symlink_to(src)
    monkeypatch.chdir(tmp_path / "sub")
    for target in (src, Path("../in.png"), tmp_path / "link.png"):
        with pytest.raises(UsageError, match="overwrite the input"):
            with atomic_output(target, overwrite=True, inputs=[Path("../in.png")]):
                pytest.fail("must not get here")
    assert src.read_bytes() == b"input"


def test_atomic_refuses_directory_and_missing_parent(tmp_path):
    with pytest.raises(UsageError, match="directory"):
        with atomic_output(tmp_path, overwrite=True):
            pass
    with pytest.raises(VidscaleError, match="does not exist"):
        with atomic_output(tmp_path / "nope" / "out.png"):
            pass


# --------------------------------------------------------------------------
# Real-world samples (shared data set, optional)


@pytest.mark.skipif(not SAMPLES.is_dir(), reason="shared sample images not present")
def test_shared_samples():
    for name in ("00017_gray.png", "wolf_gray.jpg", "0014.jpg"):
        img = read_image(SAMPLES / name)
        assert img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.uint8
    gray = read_image(SAMPLES / "00017_gray.png")
    assert (gray[..., 0] == gray[..., 2]).all()
    for name in ("children-alpha.png", "tree_alpha_16bit.png"):
        with pytest.raises(VidscaleError, match="alpha channel"):
            read_image(SAMPLES / name)
