"""HDR10 static metadata (mastering display, content light level) kept end to end: in the
bitstream and in the container, for x265 and SVT-AV1, MKV and MP4, segmented and resumed;
one-line warnings where it cannot go; VapourSynth frame properties passed through."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import threading
from fractions import Fraction
from pathlib import Path

import av
import pytest

from tests.media import pattern
from vidscale import JobSettings, run_job
from vidscale.cli import main
from vidscale.errors import Cancelled
from vidscale.media import hdr
from vidscale.segments.plan import SegmentLength, plan_segments

PQ, HLG, BT2020 = 16, 18, 9
# x265's units: chromaticity in 0.00002, luminance in 0.0001 cd/m2
X265_MD = "G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,50)"
MASTERING = {"red": (Fraction(34000, 50000), Fraction(16000, 50000)),
             "green": (Fraction(13250, 50000), Fraction(34500, 50000)),
             "blue": (Fraction(7500, 50000), Fraction(3000, 50000)),
             "white": (Fraction(15635, 50000), Fraction(16450, 50000)),
             "min": Fraction(50, 10000), "max": Fraction(1000)}
EXPECTED = hdr.MasteringDisplay(MASTERING["red"], MASTERING["green"], MASTERING["blue"], MASTERING["white"],
                                MASTERING["min"], MASTERING["max"])
LIGHT = (1000, 400)
FRAMES, KEYINT = 8, 4
FFPROBE = shutil.which("ffprobe")
need_ffprobe = pytest.mark.skipif(FFPROBE is None, reason="ffprobe (Debian's ffmpeg) is not installed")


def run(*args: object) -> int:
    return main([str(a) for a in args] + ["--quiet"])


HDR10_PARAMS = f"hdr10=1:master-display={X265_MD}:max-cll=1000,400"


def x265_clip(path: Path, transfer: int = PQ, params: str = HDR10_PARAMS,
              pix_fmt: str = "yuv420p10le") -> Path:
    """A tiny x265 clip, BT.2020 with `transfer`, keyframes every KEYINT frames, `params` added."""
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx265", rate=24)
        v.width, v.height, v.pix_fmt = 64, 48, pix_fmt
        ctx = v.codec_context
        ctx.colorspace, ctx.color_range, ctx.color_primaries, ctx.color_trc = BT2020, 1, BT2020, transfer
        gop = f"log-level=error:keyint={KEYINT}:min-keyint={KEYINT}:scenecut=0"
        ctx.options = {"preset": "ultrafast", "x265-params": f"{gop}:{params}" if params else gop}
        for i in range(FRAMES):
            frame = av.VideoFrame.from_ndarray(pattern(i, 48, 64, deep=True), format="rgb48le")
            frame = frame.reformat(format=pix_fmt, dst_colorspace=BT2020)
            frame.pts = i
            out.mux(v.encode(frame))
        out.mux(v.encode(None))
    return path


def with_container_metadata(src: Path, dst: Path, extra_boxes: bytes = b"") -> Path:
    """`src`'s video remuxed with its HDR10 metadata in the container too (and `extra_boxes` in
    an MP4's sample entry)."""
    found = hdr.read(src)
    assert found is not None and found.static
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        stream = hdr.add_video_stream(out, inp.streams.video[0], found)
        for packet in inp.demux(inp.streams.video[0]):
            if packet.size:
                packet.stream = stream
                out.mux(packet)
    if extra_boxes:
        dst.write_bytes(hdr._with_boxes(dst.read_bytes(), extra_boxes))
    return dst


@pytest.fixture(scope="module")
def hdr10(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """HDR10: x265 yuv420p10le, BT.2020/PQ, mastering display and MaxCLL in the bitstream and the MKV."""
    folder = tmp_path_factory.mktemp("hdr10")
    return with_container_metadata(x265_clip(folder / "bitstream.mkv"), folder / "hdr10.mkv")


# --- reading the metadata back, independently of vidscale ---------------------------------------

def _parse(md: bytes | None, light: bytes | None) -> tuple[dict | None, tuple[int, int] | None]:
    """FFmpeg's AVMasteringDisplayMetadata (R, G, B, white, min, max as rationals) and
    AVContentLightMetadata, as the test's own reading."""
    parsed = None
    if md is not None:
        v = struct.unpack("=22i", md[:88])
        q = [Fraction(v[i], v[i + 1]) for i in range(0, 20, 2)]
        parsed = {"red": (q[0], q[1]), "green": (q[2], q[3]), "blue": (q[4], q[5]), "white": (q[6], q[7]),
                  "min": q[8], "max": q[9]}
    return parsed, (struct.unpack("=2I", light[:8]) if light is not None else None)


def container_metadata(path: Path) -> tuple[dict | None, tuple[int, int] | None]:
    """What the container says (the stream's side data), read with PyAV."""
    with av.open(str(path)) as c:
        side = c.streams.video[0].codec_context.coded_side_data
    return _parse(side.get("mastering_display_metadata"), side.get("content_light_level"))


def bitstream_metadata(path: Path) -> tuple[dict | None, tuple[int, int] | None]:
    """What the video bitstream says: its packets through a fresh decoder that is not told
    the container's side data."""
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        decoder = av.CodecContext.create(stream.codec_context.codec.name, "r")
        if stream.codec_context.extradata:
            decoder.extradata = stream.codec_context.extradata
        frames = [f for p in c.demux(stream) if p.size for f in decoder.decode(p)] + decoder.decode(None)
    side = {t: bytes(d) for t, d in frames[0].side_data.items()}
    return _parse(side.get(av.sidedata.sidedata.Type.MASTERING_DISPLAY_METADATA),
                  side.get(av.sidedata.sidedata.Type.CONTENT_LIGHT_LEVEL))


def ffprobe_stream(path: Path) -> dict:
    """The video stream as ffprobe reports it."""
    out = subprocess.run([FFPROBE, "-v", "error", "-select_streams", "v:0", "-show_streams", "-of", "json",
                          str(path)], capture_output=True, text=True, check=True).stdout
    return json.loads(out)["streams"][0]


def ffprobe_metadata(path: Path) -> tuple[dict | None, tuple[int, int] | None]:
    """The stream's side data as ffprobe reports it."""
    side = {d["side_data_type"]: d for d in ffprobe_stream(path).get("side_data_list", [])}
    md, cll = side.get("Mastering display metadata"), side.get("Content light level metadata")
    mastering = None if md is None else {
        **{c: (Fraction(md[f"{c}_x"]), Fraction(md[f"{c}_y"])) for c in ("red", "green", "blue")},
        "white": (Fraction(md["white_point_x"]), Fraction(md["white_point_y"])),
        "min": Fraction(md["min_luminance"]), "max": Fraction(md["max_luminance"])}
    return mastering, (None if cll is None else (int(cll["max_content"]), int(cll["max_average"])))


def close_to(found: dict | None, units: tuple[float, float]) -> bool:
    """`found` equals MASTERING within the format's steps (chromaticity, luminance)."""
    assert found is not None
    chroma, luma = units
    points = all(abs(found[k][i] - MASTERING[k][i]) <= chroma / 2
                 for k in ("red", "green", "blue", "white") for i in (0, 1))
    luminance = abs(found["min"] - MASTERING["min"]) <= luma and abs(found["max"] - MASTERING["max"]) <= 1
    return points and luminance


def assert_hdr10_kept(path: Path, exact_bitstream: bool = True) -> None:
    assert container_metadata(path) == (MASTERING, LIGHT)
    mastering, light = bitstream_metadata(path)
    assert light == LIGHT
    if exact_bitstream:
        assert mastering == MASTERING
    else:  # AV1 stores chromaticity in 1/65536 and min luminance in 1/16384 cd/m2
        assert close_to(mastering, (1 / 65536, 1 / 16384))
    if FFPROBE:
        assert ffprobe_metadata(path) == (MASTERING, LIGHT)
    with av.open(str(path)) as c:
        ctx = c.streams.video[0].codec_context
        assert (ctx.color_trc, ctx.color_primaries, ctx.format.name) == (PQ, BT2020, "yuv420p10le")


# --- the source ----------------------------------------------------------------------------------

@need_ffprobe
def test_the_test_clip_carries_hdr10_in_bitstream_and_container(hdr10: Path) -> None:
    assert ffprobe_metadata(hdr10) == (MASTERING, LIGHT)
    assert bitstream_metadata(hdr10) == (MASTERING, LIGHT)


def test_read_finds_bitstream_only_container_only_and_nothing(hdr10: Path, tmp_path: Path) -> None:
    bitstream_only = x265_clip(tmp_path / "sei.mkv")
    assert container_metadata(bitstream_only) == (None, None)
    assert hdr.read(bitstream_only) == hdr.Hdr(EXPECTED, LIGHT)
    assert hdr.read(hdr10) == hdr.Hdr(EXPECTED, LIGHT)
    plain = x265_clip(tmp_path / "plain.mkv", params="")
    container_only = tmp_path / "container.mkv"
    with av.open(str(plain)) as inp, av.open(str(container_only), "w") as out:
        stream = hdr.add_video_stream(out, inp.streams.video[0], hdr.Hdr(EXPECTED, LIGHT))
        for packet in inp.demux(inp.streams.video[0]):
            if packet.size:
                packet.stream = stream
                out.mux(packet)
    assert bitstream_metadata(container_only) == (None, None)
    assert hdr.read(container_only) == hdr.Hdr(EXPECTED, LIGHT)
    assert hdr.read(plain) is None


# --- through vidscale ----------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_x265_output_keeps_hdr10_in_bitstream_and_container(hdr10: Path, tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"out{suffix}"
    assert run(hdr10, out, "-m", "lanczos", "--scale", "2", "--codec", "libx265") == 0
    assert_hdr10_kept(out)


def test_segmented_run_keeps_hdr10(hdr10: Path, tmp_path: Path) -> None:
    assert len(plan_segments(hdr10, SegmentLength.parse(f"{KEYINT}f")).segments) == FRAMES // KEYINT
    out = tmp_path / "out.mp4"
    assert run(hdr10, out, "-m", "bicubic", "--scale", "2", "--segment", f"{KEYINT}f") == 0
    assert_hdr10_kept(out)


def test_resumed_run_keeps_hdr10(hdr10: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mkv"
    cancel = threading.Event()
    settings = {"model": "bicubic", "scale": 2, "quiet": True, "segment": f"{KEYINT}f"}

    def listener(done: int, total: int | None) -> None:
        if done >= KEYINT + 1:
            cancel.set()

    with pytest.raises(Cancelled):
        run_job(str(hdr10), str(out), JobSettings(**settings, on_progress=listener, cancel=cancel))
    assert not out.exists()
    run_job(str(hdr10), str(out), JobSettings(**settings))
    assert_hdr10_kept(out)


@pytest.mark.parametrize(("suffix", "segment"), [(".mkv", "0"), (".mp4", f"{KEYINT}f")])
def test_svt_av1_output_keeps_hdr10(hdr10: Path, tmp_path: Path, suffix: str, segment: str) -> None:
    out = tmp_path / f"out{suffix}"
    assert run(hdr10, out, "-m", "lanczos", "--scale", "2", "--codec", "libsvtav1", "--segment", segment) == 0
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.name in ("libdav1d", "av1")
    assert_hdr10_kept(out, exact_bitstream=False)


def test_hlg_and_12_bit_are_kept(tmp_path: Path) -> None:
    src = x265_clip(tmp_path / "hlg.mkv", transfer=HLG, params="", pix_fmt="yuv420p12le")
    out = tmp_path / "out.mkv"
    assert run(src, out, "-m", "lanczos", "--scale", "2") == 0
    with av.open(str(out)) as c:
        ctx = c.streams.video[0].codec_context
        assert (ctx.color_trc, ctx.color_primaries, ctx.format.name) == (HLG, BT2020, "yuv420p12le")
    if FFPROBE:
        assert ffprobe_stream(out)["color_transfer"] == "arib-std-b67"


# --- where it cannot go --------------------------------------------------------------------------

def test_picture_outputs_of_hdr_video_warn_once(hdr10: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(hdr10), str(tmp_path / "out.gif"), "-m", "lanczos", "--scale", "2"]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if "HDR10" in line]
    assert lines == [f"warning: {hdr10}: HDR10 mastering-display and light-level metadata cannot go into "
                     ".gif outputs: dropped"]


def test_dolby_vision_is_said_to_be_dropped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # a 'dvcC' box: version 1.0, profile 8, level 1, RPU and base layer present, compatibility 1
    profile = (8 << 9) | (1 << 3) | (1 << 2) | 1
    dvcc = struct.pack(">I4sBBH", 32, b"dvcC", 1, 0, profile) + bytes([1 << 4]) + bytes(19)
    src = with_container_metadata(x265_clip(tmp_path / "bitstream.mkv"), tmp_path / "dv.mp4", dvcc)
    with av.open(str(src)) as c:
        assert "dovi_conf" in c.streams.video[0].codec_context.coded_side_data
    out = tmp_path / "out.mkv"
    assert main([str(src), str(out), "-m", "lanczos", "--scale", "2"]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert lines == [f"warning: {src}: Dolby Vision RPUs cannot be carried: dropped"]
    assert container_metadata(out) == (MASTERING, LIGHT)  # the static part is kept
    with av.open(str(out)) as c:
        assert "dovi_conf" not in c.streams.video[0].codec_context.coded_side_data


def test_losses_name_what_each_output_cannot_keep() -> None:
    md = EXPECTED
    static = hdr.Hdr(md, LIGHT)
    assert hdr.losses(static, "libx265", ".mkv") == []
    assert hdr.losses(static, "libx265", ".avi") == []  # the bitstream keeps it
    assert hdr.losses(static, "libvpx-vp9", ".webm") == []  # VP9 keeps it in the container, by design
    assert hdr.losses(static, "mpeg4", ".avi") == [
        "HDR10 mastering-display and light-level metadata cannot go into .avi with mpeg4: dropped"]
    assert hdr.losses(static, "h264_nvenc", ".mp4") == [
        "h264_nvenc cannot write HDR10 mastering-display and light-level metadata into the video: "
        "kept in the .mp4 container only"]
    plus = hdr.Hdr(md, LIGHT, ("HDR10+ dynamic metadata",))
    assert hdr.losses(plus, "libx265", ".mkv") == ["HDR10+ dynamic metadata cannot be carried: dropped"]


def test_encoder_options_add_to_the_users_parameters_and_theirs_win() -> None:
    found = hdr.Hdr(EXPECTED, LIGHT)
    users = "log-level=error:max-cll=500,100"
    options = hdr.encoder_options("libx265", {"crf": "20", "x265-params": users}, found)
    assert options == {"crf": "20", "x265-params": f"{users}:hdr10=1:master-display={X265_MD}"}
    assert hdr.encoder_options("libvpx-vp9", {"crf": "30"}, found) == {"crf": "30"}
    assert hdr.encoder_options("libx265", {"crf": "20"}, None) == {"crf": "20"}
    svt = hdr.encoder_options("libsvtav1", {}, found)["svtav1-params"]
    assert svt == ("mastering-display=G(0.26500,0.69000)B(0.15000,0.06000)R(0.68000,0.32000)"
                   "WP(0.31270,0.32900)L(1000.00000,0.00500):content-light=1000,400")


def test_sdr_or_unreadable_sources_have_none(tmp_path: Path) -> None:
    sdr = x265_clip(tmp_path / "sdr.mkv", transfer=1, params="")
    assert hdr.read(sdr) is None
    assert hdr.read(tmp_path / "absent.mkv") is None  # no metadata, no error: the job says what is wrong


# --- VapourSynth -----------------------------------------------------------------------------------

def test_vapoursynth_filter_passes_the_hdr_frame_properties(hdr10: Path) -> None:
    vs = pytest.importorskip("vapoursynth")
    if not hasattr(vs.core, "bs"):
        pytest.skip("vapoursynth-bestsource is not installed")
    import vidscale.vs as vsx

    clip = vs.core.bs.VideoSource(source=str(hdr10), cachemode=0)
    props = clip.get_frame(0).props
    hdr_keys = ("MasteringDisplay", "ContentLightLevel", "_Transfer", "_Primaries")
    keys = [k for k in props if k.startswith(hdr_keys)]
    assert len(keys) == 8 + 2  # bestsource names HDR10's eight; the colour tags
    assert props["ContentLightLevelMax"] == LIGHT[0] and props["MasteringDisplayMaxLuminance"] == 1000
    for out_format in (None, vs.RGBS):
        out = vsx.upscale(clip, model="bicubic", out_format=out_format).get_frame(0).props
        assert {k: out[k] for k in keys} == {k: props[k] for k in keys}
