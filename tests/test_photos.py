"""Photos come out as the same pictures, bigger: layout, depth, metadata, orientation."""

from __future__ import annotations

import struct
from pathlib import Path

import av
import numpy as np
import pytest

import vidscale
from tests.conftest import need_shared
from vidscale.cli import main
from vidscale.media.image import read_picture, write_image
from vidscale.media.photo_meta import PhotoMeta, exif_orientation, read_meta
from vidscale.resample import resize
from vidscale.upscaler import from_tensor, to_tensor


def run(*args: object) -> int:
    return main([str(a) for a in args] + ["--quiet"])


def tiff_with_orientation(value: int) -> bytes:
    """A minimal little-endian EXIF TIFF: IFD0 with Orientation and an Artist tag."""
    artist = b"vidscale test\x00"
    entries = struct.pack("<HHIHH", 0x0112, 3, 1, value, 0)
    entries += struct.pack("<HHII", 0x013B, 2, len(artist), 8 + 2 + 24 + 4)
    return b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 2) + entries + b"\x00" * 4 + artist


def gradient(h: int, w: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), np.full_like(x, 90)], -1).astype(np.uint8)


def test_exif_orientation_is_applied_once(tmp_path: Path) -> None:
    pixels = gradient(30, 50)  # stored sideways: a viewer rotates it 90 degrees clockwise
    src = tmp_path / "phone.jpg"
    write_image(src, pixels, quality=95, meta=PhotoMeta(exif=tiff_with_orientation(6)))
    assert read_meta(src.read_bytes()).orientation == 6
    out = tmp_path / "big.jpg"
    assert run(src, out, "-m", "lanczos") == 0
    picture = read_picture(out)
    assert picture.pixels.shape[:2] == (100, 60)  # upright: rotated, and twice the size
    meta = read_meta(out.read_bytes())
    assert exif_orientation(meta.exif) == 1  # never both rotated and tagged
    assert b"vidscale test" in meta.exif  # the rest of the EXIF is kept
    upright = np.rot90(pixels, k=-1)
    got = picture.pixels[::2, ::2].astype(int)
    assert np.abs(got - upright.astype(int)).mean() < 8


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp"])
def test_icc_exif_xmp_are_copied(tmp_path: Path, suffix: str) -> None:
    meta = PhotoMeta(exif=tiff_with_orientation(1), icc=b"fake icc profile " * 40,
                     xmp=b"<x:xmpmeta>vidscale</x:xmpmeta>")
    src = tmp_path / f"in{suffix}"
    write_image(src, gradient(20, 24), meta=meta)
    out = tmp_path / f"out{suffix}"
    assert run(src, out, "-m", "lanczos") == 0
    got = read_meta(out.read_bytes())
    assert (got.exif, got.icc, got.xmp) == (meta.exif, meta.icc, meta.xmp)
    assert read_picture(out).pixels.shape == (40, 48, 3)  # still decodes


def test_gray_stays_gray_and_sixteen_bit_stays_sixteen(tmp_path: Path) -> None:
    gray = gradient(20, 30)[..., :1]
    write_image(tmp_path / "g.png", gray)
    deep = (gradient(20, 30).astype(np.uint16) * 257 + 3).astype(np.uint16)
    write_image(tmp_path / "d.png", deep)
    write_image(tmp_path / "d.tif", deep)
    assert run(tmp_path / "g.png", tmp_path / "g2.png", "-m", "lanczos") == 0
    assert run(tmp_path / "d.png", tmp_path / "d2.png", "-m", "lanczos") == 0
    assert run(tmp_path / "d.tif", tmp_path / "d2.tif", "-m", "lanczos") == 0
    g2 = read_picture(tmp_path / "g2.png").pixels
    assert g2.shape == (40, 60, 1) and g2.dtype == np.uint8
    for name in ("d2.png", "d2.tif"):
        d2 = read_picture(tmp_path / name).pixels
        assert d2.shape == (40, 60, 3) and d2.dtype == np.uint16
        assert np.any(d2 % 257 != 0)  # real 16-bit values, not 8-bit ones widened


def _disc(size: int = 48) -> np.ndarray:
    """A white disc on a transparent background whose hidden colour is black."""
    y, x = np.mgrid[0:size, 0:size]
    inside = (x - size / 2) ** 2 + (y - size / 2) ** 2 < (size / 3) ** 2
    rgba = np.zeros((size, size, 4), np.uint8)
    rgba[inside] = 255
    return rgba


@pytest.mark.parametrize("model", ["span-x2", "lanczos"])
def test_alpha_edges_have_no_dark_halo(model: str) -> None:
    rgba = _disc()
    ours = vidscale.upscale_image(rgba, scale=2, model=model).astype(float)
    plain = from_tensor(resize(to_tensor(rgba), (96, 96), "bicubic").clamp(0, 1), np.uint8).astype(float)
    edge = (ours[..., 3] > 20) & (ours[..., 3] < 235)
    assert edge.sum() > 50
    assert ours[..., :3][edge].mean() >= plain[..., :3][edge].mean()
    assert ours[..., :3][edge].mean() > 240  # the disc's colour, not a mix with black
    assert ours.shape == (96, 96, 4)


def test_palette_image_becomes_rgb(tmp_path: Path) -> None:
    src = tmp_path / "pal.png"
    with av.open(str(src), "w", format="image2", options={"update": "1"}) as out:
        stream = out.add_stream("png")
        stream.width, stream.height, stream.pix_fmt = 16, 8, "pal8"
        index = (np.arange(8 * 16).reshape(8, 16) % 4).astype(np.uint8)
        palette = np.zeros((256, 4), np.uint8)  # PyAV wants A, R, G, B
        palette[:4] = [[255, 250, 0, 0], [255, 0, 250, 0], [255, 0, 0, 250], [255, 9, 99, 199]]
        frame = av.VideoFrame.from_ndarray((index, palette), format="pal8")
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    assert run(src, tmp_path / "o.png", "-m", "lanczos") == 0
    assert read_picture(tmp_path / "o.png").pixels.shape == (16, 32, 3)


def test_jpeg_quality_follows_the_source(tmp_path: Path) -> None:
    src = tmp_path / "q60.jpg"
    write_image(src, gradient(32, 32), quality=60)
    source_q = read_meta(src.read_bytes()).jpeg_quality
    assert run(src, tmp_path / "o.jpg", "-m", "lanczos") == 0
    assert run(src, tmp_path / "o95.jpg", "-m", "lanczos", "--quality", "95") == 0
    out_q = read_meta((tmp_path / "o.jpg").read_bytes()).jpeg_quality
    assert source_q is not None and out_q is not None
    assert abs(out_q - max(source_q, 75)) <= 10
    assert read_meta((tmp_path / "o95.jpg").read_bytes()).jpeg_quality > out_q


def test_batch_goes_on_past_a_broken_file_and_resumes(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for i in range(3):
        write_image(src / f"p{i}.png", gradient(10 + i, 12))
    (src / "broken.jpg").write_bytes(b"\xff\xd8 this is not really a jpeg")
    assert main([str(src), str(out), "-m", "lanczos"]) == 1
    err = capsys.readouterr().err
    assert "broken.jpg" in err and "3 done, 0 skipped (already there), 1 failed" in err
    assert sorted(p.name for p in out.iterdir()) == ["p0.png", "p1.png", "p2.png"]
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    (out / "p1.png").unlink()  # as if the first run had been stopped before it
    (out / ".p1.png.vidscale-tmp-0123abcd.png").write_bytes(b"half")  # left by a killed run
    assert main([str(src), str(out), "-m", "lanczos"]) == 1  # the broken file still fails
    err = capsys.readouterr().err
    assert "1 done, 2 skipped (already there), 1 failed" in err
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name != "p1.png"} == \
        {k: v for k, v in stamps.items() if k != "p1.png"}
    assert sorted(p.name for p in out.iterdir()) == ["p0.png", "p1.png", "p2.png"]


def test_real_photos(tmp_path: Path) -> None:
    folder = need_shared("realesrgan_inputs")
    out = tmp_path / "big"
    assert run(folder, out, "-m", "lanczos") == 0
    cases = {
        "children-alpha.png": (4, np.uint8),
        "tree_alpha_16bit.png": (4, np.uint16),
        "00017_gray.png": (1, np.uint8),
        "wolf_gray.jpg": (1, np.uint8),  # one-component JPEG, valid with its gray profile
        "0014.jpg": (3, np.uint8),
        "OST_009.png": (3, np.uint8),
    }
    for name, (channels, dtype) in cases.items():
        before = read_picture(folder / name).pixels
        after = read_picture(out / name).pixels
        assert after.shape == (before.shape[0] * 2, before.shape[1] * 2, channels), name
        assert after.dtype == dtype, name
    for name in ("wolf_gray.jpg", "tree_alpha_16bit.png"):
        src_meta, out_meta = read_meta((folder / name).read_bytes()), read_meta((out / name).read_bytes())
        assert out_meta.icc == src_meta.icc and out_meta.xmp == src_meta.xmp, name
        assert (out_meta.exif is None) == (src_meta.exif is None), name


def test_avif_output_with_quality(tmp_path: Path) -> None:
    src = tmp_path / "in.png"
    write_image(src, gradient(40, 64))
    for q in (30, 90):
        assert run(src, tmp_path / f"q{q}.avif", "-m", "lanczos", "--quality", str(q)) == 0
    hi, lo = tmp_path / "q90.avif", tmp_path / "q30.avif"
    assert hi.read_bytes()[4:12] == b"ftypavif"
    assert hi.stat().st_size > lo.stat().st_size
    back = read_picture(hi).pixels
    assert back.shape == (80, 128, 3)
    want = vidscale.upscale_image(gradient(40, 64), scale=2, model="lanczos").astype(int)
    assert np.abs(back.astype(int) - want).mean() < 4


def test_cmyk_jpeg_reads_as_rgb(tmp_path: Path) -> None:
    image = pytest.importorskip("PIL.Image")  # PyAV cannot write CMYK JPEG; Pillow can
    src = tmp_path / "cmyk.jpg"
    image.new("CMYK", (40, 30), (0, 255, 255, 0)).save(src, quality=95)  # pure red
    assert run(src, tmp_path / "o.png", "-m", "lanczos") == 0
    out = read_picture(tmp_path / "o.png").pixels
    assert out.shape == (60, 80, 3)
    assert np.abs(out[30, 40].astype(int) - [255, 0, 0]).max() <= 3
