"""Photos keep what they are: transparency flattened where it cannot stay, gray JPEG, DPI,
ICC/EXIF in TIFF and AVIF, and no encoder noise in the files or on the terminal.

Outputs are checked with Pillow, a reader independent of ours.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT
from vidscale.cli import main
from vidscale.media.image import read_picture, write_image
from vidscale.media.photo_meta import PhotoMeta, read_meta

Image = pytest.importorskip("PIL.Image")
from PIL import features  # noqa: E402

ICC = b"\x00\x00\x02\x00fake profile bytes " * 30
DATE_TAG, EXIF_IFD = 36867, 0x8769  # DateTimeOriginal, in the Exif directory


def run(*args: object) -> int:
    return main([str(a) for a in args] + ["--quiet", "-m", "lanczos"])


def cutout(size: int = 32) -> np.ndarray:
    """An opaque red square in a transparent field whose hidden colour is bright green."""
    rgba = np.zeros((size, size, 4), np.uint8)
    rgba[..., 1] = 255
    q = size // 4
    rgba[q:-q, q:-q] = [200, 30, 30, 255]
    return rgba


def test_flatten_composites_straight_alpha() -> None:
    from vidscale.media.image import flatten

    rgba = np.array([[[200, 0, 0, 255], [200, 0, 0, 0], [200, 0, 0, 128]]], np.uint8)
    out = flatten(rgba, (0, 0, 255))
    assert out.tolist() == [[[200, 0, 0], [0, 0, 255], [100, 0, 127]]]
    deep = flatten(rgba.astype(np.uint16) * 257, (255, 255, 255))
    assert deep.dtype == np.uint16 and deep[0, 1].tolist() == [65535, 65535, 65535]


@pytest.mark.parametrize("suffix", [".jpg", ".avif"])
def test_transparency_into_a_type_without_alpha_is_flattened_onto_white(
        tmp_path: Path, suffix: str, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "cut.png"
    write_image(src, cutout())
    out = tmp_path / f"out{suffix}"
    assert run(src, out) == 0
    assert "keep no transparency: flattened onto #ffffff" in capsys.readouterr().err
    got = np.asarray(Image.open(out).convert("RGB")).astype(int)
    assert got.shape == (64, 64, 3)
    assert np.abs(got[:8, :8] - 255).max() <= 6  # white, not the hidden green
    assert np.abs(got[32, 32] - [200, 30, 30]).max() <= 12  # the opaque part as it was


def test_background_option_and_folder_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.png", "b.png"):
        write_image(folder / name, cutout())
    assert run(folder, tmp_path / "out", "--format", "jpg", "--background", "#000080") == 0
    assert capsys.readouterr().err.count("keep no transparency") == 1  # once per run
    for name in ("a.jpg", "b.jpg"):
        got = np.asarray(Image.open(tmp_path / "out" / name)).astype(int)
        assert np.abs(got[:8, :8] - [0, 0, 128]).max() <= 6
    assert main(["x.png", str(tmp_path / "y.jpg"), "--background", "nocolour"]) == 2
    assert "--background 'nocolour': not a colour" in capsys.readouterr().err


def test_gray_jpeg_stays_one_component_with_its_profile(tmp_path: Path) -> None:
    gray = (np.arange(24 * 32).reshape(24, 32, 1) % 251).astype(np.uint8)
    src = tmp_path / "gray.jpg"
    Image.fromarray(gray[..., 0]).save(src, quality=95, icc_profile=ICC)
    out = tmp_path / "big.jpg"
    assert run(src, out) == 0
    with Image.open(out) as im:
        assert im.mode == "L" and im.layers == 1 and im.size == (64, 48)
        assert im.info["icc_profile"] == ICC
        assert b"Lavc" not in out.read_bytes()
    assert read_picture(out).pixels.shape == (48, 64, 1)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".tif", ".webp"])
def test_dpi_of_the_source_is_kept(tmp_path: Path, suffix: str) -> None:
    src = tmp_path / "in.png"
    Image.fromarray(np.full((16, 20, 3), 90, np.uint8)).save(src, dpi=(300, 150))
    out = tmp_path / f"out{suffix}"
    assert run(src, out) == 0
    with Image.open(out) as im:
        if suffix == ".webp":  # WebP's only resolution field is EXIF's
            exif = im.getexif()
            dpi = (float(exif[282]), float(exif[283])) if exif.get(296) == 2 else None
        else:
            dpi = im.info.get("dpi")
    assert dpi is not None and np.allclose(dpi, (300, 150), rtol=1e-4)
    if suffix != ".png":  # and it reads back the same from our outputs
        assert np.allclose(read_meta(out.read_bytes()).dpi, (300, 150), rtol=1e-4)


def test_png_without_dpi_has_no_zero_phys(tmp_path: Path) -> None:
    out = tmp_path / "o.png"
    write_image(out, np.zeros((4, 4, 3), np.uint8))
    assert b"pHYs" not in out.read_bytes()
    with Image.open(out) as im:
        assert "dpi" not in im.info and "aspect" not in im.info


def tiff_source(path: Path) -> bytes:
    """A JPEG with an ICC profile and EXIF (IFD0 and Exif directory) made by Pillow."""
    exif = Image.Exif()
    exif[271] = "Maker"
    exif.get_ifd(EXIF_IFD)[DATE_TAG] = "2026:12:02 01:02:03"
    Image.fromarray(np.full((16, 20, 3), 120, np.uint8)).save(
        path, quality=95, icc_profile=ICC, exif=exif.tobytes(), dpi=(240, 240))
    return ICC


@pytest.mark.parametrize("suffix", [".tif", ".avif"])
def test_tiff_and_avif_keep_icc_and_exif(tmp_path: Path, suffix: str) -> None:
    if suffix == ".avif" and not features.check("avif"):
        pytest.skip("this Pillow reads no AVIF")
    src = tmp_path / "in.jpg"
    tiff_source(src)
    xmp = b"<x:xmpmeta xmlns:x='adobe:ns:meta/'>vidscale</x:xmpmeta>"
    write_image(tmp_path / "in2.jpg", np.asarray(Image.open(src)),
                meta=PhotoMeta(read_meta(src.read_bytes()).exif, ICC, xmp, dpi=(240, 240)))
    out = tmp_path / f"out{suffix}"
    assert run(tmp_path / "in2.jpg", out) == 0
    with Image.open(out) as im:
        assert im.size == (40, 32)
        assert im.info["icc_profile"] == ICC
        exif = im.getexif()
        assert exif[271] == "Maker" and exif.get_ifd(EXIF_IFD)[DATE_TAG] == "2026:12:02 01:02:03"
        assert xmp in (im.info.get("xmp") or im.info.get("XML:com.adobe.xmp") or b"")
        assert np.abs(np.asarray(im.convert("RGB")).astype(int) - 120).max() <= 4
    assert read_picture(out).pixels.shape == (32, 40, 3)  # FFmpeg still decodes it


def test_tiff_input_metadata_reaches_a_jpeg(tmp_path: Path) -> None:
    src = tmp_path / "in.tif"
    exif = Image.Exif()
    exif[271] = "Maker"
    Image.fromarray(np.full((16, 20, 3), 60, np.uint8)).save(
        src, icc_profile=ICC, dpi=(350, 350), exif=exif)
    out = tmp_path / "out.jpg"
    assert run(src, out) == 0
    with Image.open(out) as im:
        assert im.info["icc_profile"] == ICC and im.info["dpi"] == (350, 350)
        assert im.getexif()[271] == "Maker"


def test_jpeg_and_tiff_outputs_name_no_encoder(tmp_path: Path) -> None:
    for suffix in (".jpg", ".tif"):
        out = tmp_path / f"o{suffix}"
        write_image(out, np.zeros((8, 8, 3), np.uint8))
        assert b"Lavc" not in out.read_bytes()
        with Image.open(out) as im:
            assert "comment" not in im.info and 305 not in im.getexif()  # COM segment, Software tag


def quiet_run(code: str) -> str:
    """stderr of `code` in a fresh interpreter: torch warns once per process."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-W", "default", "-c", code], capture_output=True, env=env,
                          cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    return done.stderr.decode()


def test_a_transformer_model_loads_without_the_meshgrid_warning(tmp_path: Path) -> None:
    swinir = pytest.importorskip("spandrel.architectures.SwinIR")
    import torch

    with warnings.catch_warnings():  # building it here warns in this process: not what is tested
        warnings.simplefilter("ignore")
        net = swinir.SwinIR(upscale=2, img_size=16, window_size=8, embed_dim=12, depths=[1], num_heads=[2],
                            mlp_ratio=1, upsampler="pixelshuffledirect")
    torch.save(net.state_dict(), tmp_path / "tiny-swinir.pth")
    err = quiet_run("from pathlib import Path; from vidscale.models.loading import load_descriptor; "
                    f"load_descriptor(Path({str(tmp_path / 'tiny-swinir.pth')!r}))")
    assert "meshgrid" not in err


def test_read_only_arrays_reach_torch_writable(monkeypatch: pytest.MonkeyPatch) -> None:
    # torch warns ("not writable") once per process: check what it is handed instead
    import torch

    import vidscale
    from vidscale import upscaler

    seen: list[bool] = []
    real = torch.from_numpy

    def from_numpy(array: np.ndarray) -> torch.Tensor:
        seen.append(bool(array.flags.writeable))
        return real(array)

    monkeypatch.setattr(upscaler.torch, "from_numpy", from_numpy)
    picture = np.zeros((8, 8, 3), np.uint8)
    picture.flags.writeable = False  # as np.asarray of a PIL image is
    vidscale.upscale_image(picture, model="bicubic", device="cpu")
    assert seen and all(seen)


def test_avif_input_metadata_reaches_the_output(tmp_path: Path) -> None:
    if not features.check("avif"):
        pytest.skip("this Pillow writes no AVIF")
    src = tmp_path / "in.avif"  # written by libavif (through Pillow): another writer's layout
    exif = Image.Exif()
    exif[271] = "Maker"
    xmp = b"<x:xmpmeta xmlns:x='adobe:ns:meta/'>from avif</x:xmpmeta>"
    Image.fromarray(np.full((16, 20, 3), 80, np.uint8)).save(src, icc_profile=ICC, exif=exif.tobytes(), xmp=xmp)
    for suffix in (".jpg", ".avif"):
        out = tmp_path / f"out{suffix}"
        assert run(src, out) == 0
        with Image.open(out) as im:
            assert im.info["icc_profile"] == ICC and im.getexif()[271] == "Maker", suffix
            assert read_meta(out.read_bytes()).xmp == xmp, suffix


def test_malformed_avif_and_tiff_metadata_is_dropped(tmp_path: Path) -> None:
    src = tmp_path / "in.avif"
    write_image(src, np.zeros((8, 8, 3), np.uint8), meta=PhotoMeta(icc=ICC))
    data = src.read_bytes()
    meta = data.index(b"meta")
    iloc = data.index(b"iloc")
    cases = [data[:meta + 40],  # cut inside the boxes
             data[:iloc + 10] + b"\xff\xff" + data[iloc + 12:],  # an absurd item count
             data.replace(b"pitm", b"xxxx")]  # a required box missing
    tiff = tmp_path / "in.tif"
    write_image(tiff, np.zeros((8, 8, 3), np.uint8), meta=PhotoMeta(icc=ICC))
    raw = bytearray(tiff.read_bytes())
    raw[4:8] = (len(raw) - 4).to_bytes(4, "little")  # IFD0 past the end
    for broken in [*cases, bytes(raw)]:
        assert read_meta(broken) == PhotoMeta()
