"""Hostile files and faults: size limits, filesystem faults, odd names, bad encoder settings,
malformed numbers in models, tiny inputs, damaged streams and Ctrl-C at start-up."""

from __future__ import annotations

import re
import resource
import signal
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import av
import numpy as np
import pytest

from tests.conftest import ROOT, SAMPLES, read_only
from tests.media import VideoSpec, make_video
from vidscale.cli import main
from vidscale.core.limits import PixelLimits, parse_max_pixels
from vidscale.errors import ModelError, VidscaleError
from vidscale.media.atomic import atomic_output
from vidscale.media.image import read_picture, write_image
from vidscale.media.opener import open_source
from vidscale.models.ncnn import read_ncnn

BUNNY = SAMPLES / "bunny.png"


def run(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str]:
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err


def one_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("vidscale: error: "), err
    return lines[0]


def only(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_bytes(width: int, height: int, extra: bytes = b"") -> bytes:
    """A gray 8-bit PNG of zeros, which deflate to almost nothing (built without compressing them all)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + extra
            + _chunk(b"IDAT", _zlib_zeros((width + 1) * height)) + _chunk(b"IEND", b""))


def _zlib_zeros(n: int, block: int = 1 << 20) -> bytes:
    """zlib data of `n` zero bytes: one fully flushed block repeated (each stands alone), then the rest."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    piece = deflate.compress(bytes(block)) + deflate.flush(zlib.Z_FULL_FLUSH)
    tail = zlib.compressobj(9, zlib.DEFLATED, -15)
    last = tail.compress(bytes(n % block)) + tail.flush()
    adler = ((n % 65521) << 16) | 1  # Adler-32 of n zeros
    return b"\x78\xda" + piece * (n // block) + last + struct.pack(">I", adler)


def tiny_video(path: Path, width: int, height: int, frames: int = 4) -> Path:
    return make_video(path, VideoSpec(width=width, height=height, frames=frames, audio=None,
                                      codec="ffv1", pix_fmt="yuv444p"))


# ---------------------------------------------------------------- 1. size limits


def test_png_that_inflates_past_the_limit_is_refused_before_decoding(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_bytes(11000, 10000))  # 110 MP of zeros in about 100 KiB
    assert bomb.stat().st_size < 1 << 20
    with pytest.raises(VidscaleError, match=r"11000x10000 is 110 MP per frame, above the limit of 100 MP"):
        read_picture(bomb)
    code, err = run(capsys, "-m", "bicubic", bomb, tmp_path / "out.png")
    assert code == 1 and "--max-pixels" in one_line(err)
    code, err = run(capsys, "compare", bomb, tmp_path / "cmp.png", "-m", "bicubic")
    assert code == 1 and "above the limit" in one_line(err)
    assert only(tmp_path) == ["bomb.png"]


def test_gif_with_a_huge_screen_and_tiny_frames_is_refused(tmp_path: Path) -> None:
    frame = b"\x21\xf9\x04\x00\x0a\x00\x00\x00" + b"\x2c" + struct.pack("<HHHH", 0, 0, 1, 1) + b"\x00\x02\x02\x44\x01\x00"
    gif = tmp_path / "screen.gif"
    gif.write_bytes(b"GIF89a" + struct.pack("<HH", 12000, 10000) + bytes([0x80, 0, 0]) + bytes(6)
                    + frame * 2 + b"\x3b")
    with pytest.raises(VidscaleError, match=r"12000x10000 is 120 MP per frame"):
        open_source(str(gif))


def test_limits_are_overridable_and_cover_the_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert parse_max_pixels("300M") == PixelLimits(300_000_000, 1_200_000_000)
    assert parse_max_pixels("1.5k,2G") == PixelLimits(1500, 2_000_000_000)
    small = tmp_path / "small.png"
    small.write_bytes(png_bytes(40, 30))
    with pytest.raises(VidscaleError, match="above the limit of 1000 pixels"):
        read_picture(small, PixelLimits(1000, 4000))
    code, err = run(capsys, "-m", "bicubic", small, tmp_path / "o.png", "--max-pixels", "1M,4000")
    assert code == 2 and "the output would be 80x60" in one_line(err)
    code, err = run(capsys, "-m", "bicubic", small, tmp_path / "o.png", "--max-pixels", "lots")
    assert code == 2 and "--max-pixels lots" in one_line(err)
    assert only(tmp_path) == ["small.png"]
    code, err = run(capsys, "-m", "bicubic", small, tmp_path / "o.png", "--max-pixels", "2000,5000")
    assert code == 0, err


def test_compressed_metadata_is_inflated_with_a_cap(tmp_path: Path) -> None:
    icc = _chunk(b"iCCP", b"icc\x00\x00" + zlib.compress(bytes(32 << 20), 9))  # 32 MiB profile in 32 KiB
    path = tmp_path / "icc-bomb.png"
    path.write_bytes(png_bytes(4, 4, extra=icc))
    with pytest.raises(VidscaleError, match=r"icc-bomb.png: its PNG iCCP chunk inflates past 16 MiB"):
        read_picture(path)
    xmp = b"XML:com.adobe.xmp\x00\x01\x00\x00\x00" + zlib.compress(bytes(32 << 20), 9)
    path.write_bytes(png_bytes(4, 4, extra=_chunk(b"iTXt", xmp)))
    with pytest.raises(VidscaleError, match="iTXt chunk inflates past"):
        read_picture(path)


# ---------------------------------------------------------------- 2. filesystem faults


def test_write_fault_mid_video_is_one_line_naming_the_target(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    src = make_video(tmp_path / "in.mkv", VideoSpec(width=64, height=48, frames=6, audio=None))
    out = tmp_path / "big.mp4"
    # A file size limit makes writes fail part-way (EFBIG), as a full disk does (ENOSPC).
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))
    try:
        code, err = run(capsys, "-m", "bicubic", "--scale", "4", "--encoder-opt", "qp=0", src, out)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old_handler)
    assert code == 1
    assert one_line(err) == f"vidscale: error: {out}: cannot write file: File too large"
    assert only(tmp_path) == ["in.mkv"]


def test_filesystem_errors_name_the_target_not_the_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out.png"
    with pytest.raises(VidscaleError) as info:
        with atomic_output(target) as tmp:
            raise PermissionError(13, "Permission denied", str(tmp))
    assert str(info.value) == f"{target}: cannot write into '{tmp_path}': Permission denied"
    with pytest.raises(VidscaleError) as info:
        with atomic_output(target) as tmp:
            tmp.unlink()
            tmp.mkdir()  # the writer fails on the temporary name...
            write_image(tmp, np.zeros((2, 2, 3), np.uint8))
    tmp.rmdir()
    assert str(info.value).startswith(f"{target}: cannot write file")  # ...the message names the target
    with pytest.raises(FileNotFoundError):  # reading an input is not a write fault
        with atomic_output(target):
            open(tmp_path / "missing-input.png", "rb")
    assert only(tmp_path) == []


@pytest.mark.parametrize("src,output,args", [
    ("picture", "o.png", ()),
    ("video", "out.mp4", ()),  # its segment state folder is the first write
    ("video", "out.mkv", ("--segment", "0")),
    ("pictures", "outdir/", ()),  # a folder output, made by vidscale
    ("pictures", "kept/", ()),  # ... or already there
    ("picture", "%03d.png", ()),
    ("picture", "kept/%03d.png", ()),
])
def test_read_only_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str], src: str, output: str,
                          args: tuple[str, ...]) -> None:
    inputs = {"picture": BUNNY, "pictures": tmp_path / "in",
              "video": make_video(tmp_path / "in.mkv", VideoSpec(width=64, height=48, frames=3, audio=None))}
    (tmp_path / "in").mkdir()
    write_image(tmp_path / "in" / "a.png", np.zeros((8, 8, 3), np.uint8))
    folder = tmp_path / "ro"
    (folder / "kept").mkdir(parents=True)
    target = folder / output
    with read_only(folder):
        code, err = run(capsys, "-m", "bicubic", inputs[src], target, *args)
    assert code == 1, err
    assert one_line(err).startswith(f"vidscale: error: {Path(str(target))}: cannot write into '{folder}")
    assert only(folder) == ["kept"] and only(folder / "kept") == []


def _unknown_weights(folder: Path) -> Path:
    path = folder / "unknown.pth"
    import torch

    torch.save({"foo.weight": torch.zeros(3, 3)}, path)
    return path


def _absurd_ncnn(folder: Path) -> Path:
    param = folder / "absurd.param"
    param.write_text("7767517\n999999999 999999999\n")
    param.with_suffix(".bin").write_bytes(b"")
    return param


@pytest.mark.parametrize("make", [_unknown_weights, _absurd_ncnn])
def test_a_failed_model_import_leaves_no_models_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch, make) -> None:
    models = tmp_path / "data" / "vidscale" / "models"
    monkeypatch.setenv("VIDSCALE_MODEL_DIR", str(models))
    code, err = run(capsys, "models", "import", make(tmp_path))
    assert code == 2 and one_line(err)
    assert not (tmp_path / "data").exists()


def test_models_folder_that_cannot_be_made_is_a_write_fault(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import torch
    from spandrel.architectures.Compact import Compact

    model = tmp_path / "tiny.pth"
    torch.save(Compact(num_feat=4, num_conv=1, upscale=2).state_dict(), model)
    folder = tmp_path / "ro"
    folder.mkdir()
    monkeypatch.setenv("VIDSCALE_MODEL_DIR", str(folder / "vidscale" / "models"))
    with read_only(folder):
        code, err = run(capsys, "models", "import", model)
    target = folder / "vidscale" / "models" / "tiny.safetensors"
    assert code == 1
    assert one_line(err).startswith(f"vidscale: error: {target}: cannot write into '{folder}': ")
    assert only(folder) == []


def test_a_cache_that_cannot_be_written_is_skipped_with_a_warning(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    from vidscale.engine import cache

    folder = tmp_path / "ro"
    folder.mkdir()
    monkeypatch.setenv(cache.ENV_VAR, str(folder / "cache"))
    with read_only(folder):
        assert cache.store(cache.timing_key("GPU", "10.0"), b"timings") is None  # the build goes on
    assert "not cached:" in caplog.text and only(folder) == []


@pytest.mark.parametrize("output,missing", [("a/b/out.png", "a/b"), ("a/b/folder/", "a/b"),
                                            ("a/b/%04d.png", "a")])  # a pattern's folder is its output
def test_one_rule_for_missing_parent_folders(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             output: str, missing: str) -> None:
    code, err = run(capsys, "-m", "bicubic", BUNNY, str(tmp_path / output))
    assert code == 1 and f"folder '{tmp_path / missing}' does not exist" in one_line(err)
    assert only(tmp_path) == []


# ---------------------------------------------------------------- 3. any file name


@pytest.mark.parametrize("src_name,out_name", [
    ("2024-05-01T10:30.mp4", "2024-05-01T10:31.mkv"),  # a colon: FFmpeg would see a protocol
    ("in.mkv", "a%d.mp4"),  # '%' in a single-file output is literal
    ("50%.mkv", "100%.mp4"),
    ("-dash.mkv", "-out.mp4"),  # after --
    ("in.mkv", "é" * 122 + ".mp4"),  # 248 bytes: the temporary name must fit too
])
def test_any_file_name_works_for_video(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch,
                                       src_name: str, out_name: str) -> None:
    monkeypatch.chdir(tmp_path)
    make_video(tmp_path / "plain.mkv", VideoSpec(width=32, height=24, frames=3, audio=None)).rename(src_name)
    code, err = run(capsys, "-m", "bicubic", "--", src_name, out_name)
    assert code == 0, err
    with av.open("file:" + out_name) as c:
        assert c.streams.video[0].codec_context.width == 64
    assert only(tmp_path) == sorted([src_name, out_name])


def test_any_file_name_works_for_photos(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_image(tmp_path / "a:b%d.png", np.full((6, 8, 3), 90, np.uint8))
    name = "ü" * 124 + ".png"  # 252 bytes
    code, err = run(capsys, "-m", "bicubic", "--", "a:b%d.png", name)
    assert code == 0, err
    assert read_picture(tmp_path / name).pixels.shape == (12, 16, 3)
    code, err = run(capsys, "-m", "bicubic", "--", "a:b%d.png", "frames%03d.png")  # a valid pattern: numbered
    assert code == 0, err
    assert (tmp_path / "frames001.png").is_file()


# ---------------------------------------------------------------- 4. encoder settings


@pytest.mark.parametrize("args,expected", [
    (("--encoder-opt", "crf=abc"), "--encoder-opt crf=abc: libx264 does not take 'abc'; accepted: a number, at least -1"),
    (("--encoder-preset", "bogus"), "--encoder-preset bogus: libx264 does not take 'bogus'; accepted: ultrafast,"),
    (("--encoder-opt", "no-such=1"), "--encoder-opt no-such=1: libx264 has no option 'no-such'"),
    (("--codec", "libsvtav1", "--encoder-preset", "slow"), "libsvtav1 does not take 'slow'; accepted: a number from -2 to 13"),
    (("--codec", "libvpx-vp9", "--encoder-opt", "deadline=fast"), "accepted: best, good, realtime"),
])
def test_bad_encoder_settings_are_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               args: tuple[str, ...], expected: str) -> None:
    src = make_video(tmp_path / "in.mkv", VideoSpec(width=32, height=24, frames=2, audio=None))
    code, err = run(capsys, "-m", "bicubic", src, tmp_path / "out.mkv", *args)
    assert code == 2 and expected in one_line(err)
    assert only(tmp_path) == ["in.mkv"]


# ---------------------------------------------------------------- 5. numbers in model files


@pytest.mark.parametrize("param", ["1=1e999", "1=nan", "1=-inf", "0=99999999999", "-23300=2,1.0,1e400"])
def test_ncnn_params_that_are_not_finite_32_bit_numbers(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                        param: str) -> None:
    model = tmp_path / "bad.param"
    model.write_text(f"7767517\n2 2\nInput data 0 1 data\nInterp up 1 1 data output 0=2 {param}\n")
    model.with_suffix(".bin").write_bytes(b"")
    with pytest.raises(ModelError, match="malformed parameter"):
        read_ncnn(model, model.with_suffix(".bin"))
    code, err = run(capsys, BUNNY, tmp_path / "o.png", "-m", model)
    assert code == 2 and "bad.param" in one_line(err)


def test_ncnn_weights_that_are_not_finite(tmp_path: Path) -> None:
    model = tmp_path / "nan.param"
    model.write_text("7767517\n2 2\nInput data 0 1 data\nPReLU p 1 1 data output 0=3\n")
    model.with_suffix(".bin").write_bytes(np.array([0.1, np.nan, 0.2], "<f4").tobytes())
    with pytest.raises(ModelError, match="layer p has non-finite slope values"):
        read_ncnn(model, model.with_suffix(".bin"))


# ---------------------------------------------------------------- 6. tiny inputs


@pytest.mark.parametrize("width,height", [(1, 1), (3, 2)])
def test_tiny_video_with_temporal(tmp_path: Path, capsys: pytest.CaptureFixture[str], width: int, height: int) -> None:
    src = tiny_video(tmp_path / "tiny.mkv", width, height)
    code, err = run(capsys, "-m", "bicubic", src, tmp_path / "out.mkv", "--temporal")
    assert code == 0, err
    with av.open(str(tmp_path / "out.mkv")) as c:
        assert len(list(c.decode(video=0))) == 4
    code, err = run(capsys, "compare", src, tmp_path / "cmp.png", "-m", "bicubic")
    assert code == 0, err


@pytest.mark.parametrize("height,width", [(1, 1), (2, 3)])
def test_tiny_picture_compare(tmp_path: Path, capsys: pytest.CaptureFixture[str], height: int, width: int) -> None:
    write_image(tmp_path / "t.png", np.full((height, width, 3), 120, np.uint8))
    for out in ("cmp.png", "cmp.html"):
        code, err = run(capsys, "compare", tmp_path / "t.png", tmp_path / out, "-m", "bicubic")
        assert code == 0, err


@pytest.mark.parametrize("width,height", [(1, 1), (3, 2)])
def test_tiny_clip_in_the_vapoursynth_filter(width: int, height: int) -> None:
    vs = pytest.importorskip("vapoursynth")
    import vidscale.vs as vsx

    clip = vs.core.std.BlankClip(width=width, height=height, format=vs.RGB24, length=3, color=[100, 50, 20])
    for temporal in (False, True):
        out = vsx.upscale(clip, scale=2, model="bicubic", temporal=temporal, out_format=clip.format)
        shapes = {np.asarray(f[0]).shape for f in out.frames()}
        assert shapes == {(2 * height, 2 * width)}


# ---------------------------------------------------------------- 7. damage


def test_damaged_video_warns_frames_written_against_expected(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    src = make_video(tmp_path / "in.mkv", VideoSpec(width=32, height=24, frames=48, audio=None))
    data = src.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) // 2])
    code, err = run(capsys, "-m", "bicubic", cut, tmp_path / "out.mkv")
    assert code == 0, err
    with av.open(str(tmp_path / "out.mkv")) as c:
        written = len(list(c.decode(video=0)))
    assert 0 < written < 48
    assert f"warning: {cut}: wrote {written} frames of about 48 expected; the input is damaged" in err
    code, err = run(capsys, "-m", "bicubic", src, tmp_path / "whole.mkv")
    assert code == 0 and "warning" not in err


def test_frame_size_change_mid_stream_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # MPEG-TS files concatenate into one valid stream: 64x48 frames, then 32x24 ones.
    parts = [make_video(tmp_path / f"{w}.ts", VideoSpec(width=w, height=h, frames=4, audio=None)).read_bytes()
             for w, h in ((64, 48), (32, 24))]
    src = tmp_path / "both.ts"
    src.write_bytes(b"".join(parts))
    code, err = run(capsys, "-m", "bicubic", src, tmp_path / "out.mp4")
    assert code == 1
    line = one_line(err)  # the header tells the last size, so the first frame already differs
    assert "is 64x48 where the stream says 32x24; a size change within a stream is refused" in line
    assert not (tmp_path / "out.mp4").exists()


# ---------------------------------------------------------------- 8. Ctrl-C at start-up


def test_ctrl_c_while_torch_imports_gives_no_traceback(tmp_path: Path) -> None:
    src = tiny_video(tmp_path / "in.mkv", 8, 8)
    # -X importtime reports each module as it finishes: the first torch line means torch is loading.
    proc = subprocess.Popen([sys.executable, "-X", "importtime", "-m", "vidscale", src, tmp_path / "o.mkv",
                             "-m", "bicubic"], stderr=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if re.search(r"\|\s+torch\b", line):
            proc.send_signal(signal.SIGINT)
            break
    rest = proc.communicate(timeout=60)[1]
    # an importtime line the signal cut in two leaves a fragment such as "63 |     msvcrt" or a bare
    # module name ("selectors"): not a message
    timing = re.compile(r"^(import time:|[\s\d|]*\|?\s*[\w.]+\s*$)")
    messages = [ln for ln in seen + rest.splitlines(True) if ln.strip() and not timing.match(ln)]
    assert proc.returncode == 130, messages
    assert [m.strip() for m in messages] == ["vidscale: interrupted"]
    assert only(tmp_path) == ["in.mkv"]
