"""Carrying audio, subtitles, attachments, chapters and metadata across containers."""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import av.stream
import numpy as np
import pytest

from tests.conftest import need_shared
from vidscale.media.image import write_image
from vidscale.media.streams import StreamCopier, subtitle_payload, subtitle_text

Disposition = av.stream.Disposition
MS = Fraction(1, 1000)
FONT = b"\x00\x01\x00\x00" + bytes(range(256)) * 4  # not a real font: muxers don't care

# Hand-written cues: (start ms, duration ms, payload text).
SRT_CUES = [(500, 1000, "Hello, world"), (2000, 800, "Second line\nwith <i>two</i> rows")]
ASS_CUES = [
    (600, 900, r"{\an8}{\i1}Hola{\i0}, mundo"),
    (1900, 700, r"Dos\Nlíneas{\p1}m 0 0 l 10 10{\p0}"),
]
MOV_TEXT_CUES = [(300, 700, "Bonjour"), (1500, 1000, "à tout à l'heure")]
ASS_HEADER = b"""[Script Info]
ScriptType: v4.00+
PlayResX: 640
PlayResY: 480

[V4+ Styles]
Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, \
BackColour, Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, \
BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, MarginV, Encoding
Style: Default,Fancy Font,28,&Hffffff,&Hffffff,&H0,&H0,0,0,0,0,100,100,0,0,1,1,0,2,10,10,10,1

[Events]
Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text
"""


# --------------------------------------------------------------------------
# Building inputs


@dataclass
class Audio:
    codec: str
    rate: int
    layout: str
    metadata: dict[str, str] = field(default_factory=dict)
    disposition: int = 0


def add_video(out: av.container.OutputContainer, codec: str = "mpeg4") -> av.stream.Stream:
    stream = out.add_stream(codec, rate=10)
    stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
    stream.codec_context.time_base = Fraction(1, 10)
    return stream


def video_frames(count: int = 10):
    for i in range(count):
        rgb = np.full((48, 64, 3), 20 * i, np.uint8)
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.pts, frame.time_base = i, Fraction(1, 10)
        yield frame


def mux_video(out: av.container.OutputContainer, video: av.stream.Stream) -> None:
    for frame in video_frames():
        out.mux(video.encode(frame))
    out.mux(video.encode(None))


def add_audio(out: av.container.OutputContainer, spec: Audio) -> av.stream.Stream:
    stream = out.add_stream(spec.codec, rate=spec.rate)
    stream.codec_context.layout = spec.layout
    stream.codec_context.time_base = Fraction(1, spec.rate)
    if spec.codec == "vorbis":
        stream.codec_context.options = {"strict": "experimental"}
    stream.metadata.update(spec.metadata)
    stream.disposition = spec.disposition
    return stream


def audio_packets(stream: av.stream.Stream, seconds: float = 1.0):
    ctx = stream.codec_context
    ctx.open(strict=False)
    resampler = av.AudioResampler(format=ctx.format, layout=ctx.layout, rate=ctx.sample_rate,
                                  frame_size=ctx.frame_size or 1024)
    rate = ctx.sample_rate
    t = np.arange(int(rate * seconds)) / rate
    tone = (0.3 * np.sin(2 * math.pi * 440 * t)).astype(np.float32)
    channels = ctx.layout.nb_channels
    frame = av.AudioFrame.from_ndarray(np.tile(tone, (channels, 1)), format="fltp",
                                       layout=ctx.layout.name)
    frame.rate, frame.pts, frame.time_base = rate, 0, Fraction(1, rate)
    for chunk in resampler.resample(frame) + resampler.resample(None):
        yield from stream.encode(chunk)
    yield from stream.encode(None)


def add_text_subtitles(out: av.container.OutputContainer, codec: str, metadata: dict[str, str],
                       disposition: int = 0) -> av.stream.Stream:
    # An encoder-backed stream muxes hand-written packets and gets its
    # extradata (ASS script header, mov_text sample description) for free.
    stream = out.add_stream(codec)
    stream.codec_context.subtitle_header = ASS_HEADER
    stream.time_base = MS
    stream.metadata.update(metadata)
    stream.disposition = disposition
    return stream


def subtitle_packets(stream: av.stream.Stream, cues: list[tuple[int, int, str]], codec: str):
    for order, (start, duration, text) in enumerate(cues):
        if codec == "ass":
            data = f"{order},0,Default,,0,0,0,,{text}".encode()
        elif codec == "mov_text":
            data = struct.pack(">H", len(text.encode())) + text.encode()
        else:
            data = text.encode()
        packet = av.Packet(data)
        packet.pts = packet.dts = start
        packet.duration, packet.time_base = duration, MS
        packet.stream = stream
        yield packet


AUDIO_IN = [
    Audio("aac", 48000, "stereo", {"language": "eng", "title": "Main mix"}, Disposition.default),
    Audio("libopus", 48000, "mono", {"language": "fra"}),
    Audio("vorbis", 44100, "stereo", {"language": "deu"}),
    Audio("libmp3lame", 44100, "stereo", {"language": "jpn", "title": "Commentary"}),
]
CHAPTERS = [
    {"id": 1, "start": 0, "end": 400, "time_base": MS, "metadata": {"title": "Opening"}},
    {"id": 2, "start": 400, "end": 1000, "time_base": MS, "metadata": {"title": "Ending"}},
]


@pytest.fixture(scope="module")
def rich_mkv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """MKV: video, 4 audio codecs, SRT + ASS, a font, cover art, chapters, tags."""
    folder = tmp_path_factory.mktemp("rich")
    cover = folder / "cover.jpg"
    write_image(cover, np.full((16, 16, 3), 90, np.uint8))
    path = folder / "rich.mkv"
    with av.open(str(path), "w") as out:
        out.metadata.update({"title": "Rich test", "comment": "made by tests"})
        out.set_chapters(CHAPTERS)
        video = add_video(out)
        audios = [add_audio(out, spec) for spec in AUDIO_IN]
        srt = add_text_subtitles(out, "subrip", {"language": "eng", "title": "English"},
                                 Disposition.default | Disposition.forced)
        ass = add_text_subtitles(out, "ass", {"language": "spa", "title": "Spanish"})
        out.add_attachment("font.ttf", "font/ttf", FONT)
        out.add_attachment("cover.jpg", "image/jpeg", cover.read_bytes())
        mux_video(out, video)
        for stream in audios:
            out.mux(list(audio_packets(stream)))
        out.mux(list(subtitle_packets(srt, SRT_CUES, "subrip")))
        out.mux(list(subtitle_packets(ass, ASS_CUES, "ass")))
    return path


@pytest.fixture(scope="module")
def mov_text_mp4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("movtext") / "subs.mp4"
    with av.open(str(path), "w") as out:
        video = add_video(out)
        subs = add_text_subtitles(out, "mov_text", {"language": "fra", "title": "Français"},
                                  Disposition.default)
        mux_video(out, video)
        out.mux(list(subtitle_packets(subs, MOV_TEXT_CUES, "mov_text")))
    return path


# --------------------------------------------------------------------------
# The pipeline, as the video code will drive it


def remux(src_path: Path, dst_path: Path, reencode_video: bool = True) -> list[str]:
    """Copy `src_path` to `dst_path`, video re-encoded, the rest by StreamCopier."""
    warnings: list[str] = []
    with av.open(str(src_path)) as src, av.open(str(dst_path), "w") as dst:
        video_in = src.streams.video[0]
        if reencode_video:
            video_out = add_video(dst, "libvpx" if dst.format.name == "webm" else "mpeg4")
        else:
            video_out = dst.add_stream_from_template(video_in, opaque=True)
        copier = StreamCopier(src, dst, {video_in.index}, warnings.append)
        count = 0
        for packet in src.demux([video_in, *copier.streams_in]):
            if copier.wants(packet):
                copier.write(packet)
            elif packet.stream is video_in and not reencode_video:
                if packet.dts is not None:
                    packet.stream = video_out
                    dst.mux(packet)
            elif packet.stream is video_in:
                for frame in packet.decode():
                    frame.pts, frame.time_base = count, Fraction(1, 10)
                    count += 1
                    dst.mux(video_out.encode(frame))
        if reencode_video:
            dst.mux(video_out.encode(None))
        copier.finish()
    return warnings


# --------------------------------------------------------------------------
# Reading outputs


def streams_of(path: Path, kind: str) -> list[dict]:
    """type-`kind` streams: codec, metadata, disposition, extradata."""
    with av.open(str(path)) as c:
        return [
            {
                "codec": s.codec_context.codec.canonical_name if s.codec_context else None,
                "metadata": dict(s.metadata),
                "disposition": int(s.disposition),
                "extradata": s.codec_context.extradata if s.codec_context else None,
                "rate": getattr(s.codec_context, "sample_rate", None),
                "channels": s.codec_context.layout.nb_channels if kind == "audio" else None,
            }
            for s in c.streams if s.type == kind and s.discard != av.stream.Discard.all
        ]


def packets_of(path: Path, kind: str) -> list[list[tuple[bytes, Fraction, Fraction]]]:
    """Per type-`kind` stream: (payload, pts in seconds, duration in seconds)."""
    with av.open(str(path)) as c:
        wanted = [s for s in c.streams if s.type == kind]
        found: dict[int, list] = {s.index: [] for s in wanted}
        for p in c.demux(wanted):
            if p.size:
                found[p.stream.index].append(
                    (bytes(p), p.pts * p.time_base, (p.duration or 0) * p.time_base))
        return [found[s.index] for s in wanted]


def timed(streams: list[list[tuple]]) -> list[list[tuple[bytes, Fraction]]]:
    """Payloads and times only. Matroska keeps a trimmed last audio packet's
    length as DiscardPadding but not always as its duration: same audio."""
    return [[p[:2] for p in packets] for packets in streams]


def same_audio(a: list[tuple], b: list[tuple], tolerance: Fraction) -> bool:
    """Same payloads, times equal within `tolerance` seconds.

    Copying between Matroska (milliseconds) and MP4 (audio in samples)
    rounds each time once to the coarser unit.
    """
    return [p[0] for p in a] == [p[0] for p in b] and all(
        abs(p[1] - q[1]) <= tolerance for p, q in zip(a, b))


def cues_of(path: Path) -> list[list[tuple[float, float, str]]]:
    """Per subtitle stream: (start s, duration s, plain text), empty cues left out."""
    with av.open(str(path)) as c:
        codecs = {s.index: s.codec_context.codec.canonical_name for s in c.streams.subtitles}
    out = []
    for index, packets in zip(codecs, packets_of(path, "subtitle")):
        cues = [(float(pts), float(dur), subtitle_text(codecs[index], data))
                for data, pts, dur in packets]
        out.append([c for c in cues if c[2]])
    return out


def audio_seconds(path: Path, index_in_audio: int) -> float:
    with av.open(str(path)) as c:
        stream = c.streams.audio[index_in_audio]
        return sum(f.samples for f in c.decode(stream)) / stream.codec_context.sample_rate


def plain(cues: list[tuple[int, int, str]], codec: str) -> list[tuple[float, float, str]]:
    return [(s / 1000, d / 1000, subtitle_text(codec, payload(codec, t))) for s, d, t in cues]


def payload(codec: str, text: str) -> bytes:
    return f"0,0,Default,,0,0,0,,{text}".encode() if codec == "ass" else text.encode()


# --------------------------------------------------------------------------
# Tests: generated inputs


def test_mkv_to_mkv_keeps_everything_as_is(rich_mkv: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mkv"
    assert remux(rich_mkv, out) == []

    assert timed(packets_of(out, "audio")) == timed(packets_of(rich_mkv, "audio"))
    assert packets_of(out, "subtitle") == packets_of(rich_mkv, "subtitle")
    audio_in, audio_out = streams_of(rich_mkv, "audio"), streams_of(out, "audio")
    assert [a["codec"] for a in audio_out] == ["aac", "opus", "vorbis", "mp3"]
    for a, b in zip(audio_in, audio_out):
        assert b["metadata"].get("language") == a["metadata"].get("language")
        assert b["metadata"].get("title") == a["metadata"].get("title")
        assert b["disposition"] == a["disposition"]
        assert b["extradata"] == a["extradata"]

    subs = streams_of(out, "subtitle")
    assert [s["codec"] for s in subs] == ["subrip", "ass"]
    assert subs[0]["metadata"]["title"] == "English"
    assert subs[0]["disposition"] == Disposition.default | Disposition.forced
    assert subs[1]["metadata"]["language"] == "spa"
    assert subs[1]["extradata"] == streams_of(rich_mkv, "subtitle")[1]["extradata"]

    with av.open(str(out)) as c, av.open(str(rich_mkv)) as original:
        assert c.metadata["title"] == "Rich test"
        assert c.metadata["COMMENT"] == "made by tests"
        assert c.chapters() == original.chapters()
        fonts = [s for s in c.streams if s.type == "attachment"]
        assert [(s.name, s.mimetype, s.data) for s in fonts] == [("font.ttf", "font/ttf", FONT)]
        # Cover art stays an attachment, not a one-frame video track.
        covers = [s for s in c.streams.video if s.disposition & Disposition.attached_pic]
        assert [s.metadata.get("filename") for s in covers] == ["cover.jpg"]
        assert len(c.streams.video) == 2


def test_mkv_to_mp4_copies_or_converts(rich_mkv: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    warnings = remux(rich_mkv, out)

    assert sorted(warnings) == [
        "attachment #7 (font.ttf) cannot go into mp4: dropped",
        "audio stream #3 (vorbis) cannot go into mp4: transcoded to aac",
        "subtitle stream #6 (ass) cannot go into mp4: converted to mov_text, styling dropped",
    ]
    audio = streams_of(out, "audio")
    assert [a["codec"] for a in audio] == ["aac", "opus", "aac", "mp3"]
    assert [a["metadata"].get("language") for a in audio] == ["eng", "fra", "deu", "jpn"]
    assert audio[0]["disposition"] & Disposition.default
    packets_in, packets_out = packets_of(rich_mkv, "audio"), packets_of(out, "audio")
    for i in (0, 1, 3):  # copied: same bytes at the same times
        assert same_audio(packets_out[i], packets_in[i], MS)
    assert audio[2]["rate"] == 44100 and audio[2]["channels"] == 2
    assert audio_seconds(out, 2) == pytest.approx(1.0, abs=0.05)

    subs = streams_of(out, "subtitle")
    assert [s["codec"] for s in subs] == ["mov_text", "mov_text"]
    assert [s["metadata"]["language"] for s in subs] == ["eng", "spa"]
    # FFmpeg writes an MP4 track's title and reads it back as "name".
    assert [s["metadata"]["name"] for s in subs] == ["English", "Spanish"]
    assert subs[0]["disposition"] & Disposition.default
    srt, ass = cues_of(out)
    assert srt == [(0.5, 1.0, "Hello, world"), (2.0, 0.8, "Second line\nwith two rows")]
    assert ass == [(0.6, 0.9, "Hola, mundo"), (1.9, 0.7, "Dos\nlíneas")]

    with av.open(str(out)) as c:
        assert c.metadata["title"] == "Rich test"
        assert [(ch["start"] * ch["time_base"], ch["metadata"]["title"]) for ch in c.chapters()] \
            == [(0, "Opening"), (Fraction(2, 5), "Ending")]
        assert [bool(s.disposition & Disposition.attached_pic) for s in c.streams.video] \
            == [False, True]


def test_mkv_to_webm_keeps_webm_codecs(rich_mkv: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.webm"
    warnings = remux(rich_mkv, out)

    assert sorted(warnings) == [
        "attachment #7 (font.ttf) cannot go into webm: dropped",
        "audio stream #1 (aac) cannot go into webm: transcoded to opus",
        "audio stream #4 (mp3) cannot go into webm: transcoded to opus",
        "subtitle stream #6 (ass) cannot go into webm: converted to webvtt, styling dropped",
        "video stream #8 (mjpeg) cannot go into webm: dropped",
    ]
    audio = streams_of(out, "audio")
    assert [a["codec"] for a in audio] == ["opus", "opus", "vorbis", "opus"]
    assert [a["rate"] for a in audio] == [48000, 48000, 44100, 48000]  # Opus is 48 kHz
    assert [a["metadata"].get("title") for a in audio] == ["Main mix", None, None, "Commentary"]
    packets_in, packets_out = packets_of(rich_mkv, "audio"), packets_of(out, "audio")
    assert timed(packets_out[1:3]) == timed(packets_in[1:3])
    assert audio_seconds(out, 3) == pytest.approx(1.0, abs=0.05)

    assert [s["codec"] for s in streams_of(out, "subtitle")] == ["webvtt", "webvtt"]
    assert cues_of(out) == [plain(SRT_CUES, "subrip"), plain(ASS_CUES, "ass")]
    with av.open(str(out)) as c:
        assert len(c.chapters()) == 2


def test_mkv_to_mov_transcodes_what_mov_refuses(rich_mkv: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mov"
    warnings = remux(rich_mkv, out)

    assert "audio stream #2 (opus) cannot go into mov: transcoded to aac" in warnings
    assert "audio stream #3 (vorbis) cannot go into mov: transcoded to aac" in warnings
    assert "video stream #8 (mjpeg) cannot go into mov: dropped" in warnings
    assert [a["codec"] for a in streams_of(out, "audio")] == ["aac", "aac", "aac", "mp3"]
    assert streams_of(out, "audio")[1]["channels"] == 1
    assert cues_of(out)[0] == plain(SRT_CUES, "subrip")


def test_surround_aac_to_webm_keeps_six_channels(tmp_path: Path) -> None:
    src = tmp_path / "surround.mkv"
    with av.open(str(src), "w") as out:
        video = add_video(out)
        audio = add_audio(out, Audio("aac", 44100, "5.1(side)"))
        mux_video(out, video)
        out.mux(list(audio_packets(audio)))
    out = tmp_path / "out.webm"
    assert remux(src, out) == ["audio stream #1 (aac) cannot go into webm: transcoded to opus"]
    with av.open(str(out)) as c:
        ctx = c.streams.audio[0].codec_context
        # libopus takes neither 44.1 kHz nor side surrounds: 48 kHz, back ones.
        assert (ctx.sample_rate, ctx.layout.name) == (48000, "5.1")
    assert audio_seconds(out, 0) == pytest.approx(1.0, abs=0.05)


def test_bitmap_subtitles_copied_where_taken(tmp_path: Path) -> None:
    src = tmp_path / "dvdsub.mkv"
    with av.open(str(src), "w") as out:
        video = add_video(out)
        # A mux-only stream: packets go in as they are, no encoder involved.
        subs = out.add_mux_stream("dvd_subtitle")
        subs.metadata["language"] = "ger"
        mux_video(out, video)
        for start in (100, 600):
            packet = av.Packet(bytes(range(40)))
            packet.pts = packet.dts = start
            packet.duration, packet.time_base, packet.stream = 300, MS, subs
            out.mux(packet)

    mkv, webm = tmp_path / "out.mkv", tmp_path / "out.webm"
    assert remux(src, mkv) == []
    assert packets_of(mkv, "subtitle") == packets_of(src, "subtitle")
    assert streams_of(mkv, "subtitle")[0]["metadata"]["language"] == "ger"
    assert remux(src, webm) == ["subtitle stream #1 (dvd_subtitle) cannot go into webm: dropped"]
    assert streams_of(webm, "subtitle") == []


def test_mov_text_to_mkv_becomes_subrip(mov_text_mp4: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mkv"
    assert remux(mov_text_mp4, out) == []

    [subs] = streams_of(out, "subtitle")
    assert subs["codec"] == "subrip"
    assert subs["metadata"]["language"] == "fra"
    assert subs["metadata"]["title"] == "Français"  # from the MP4's "name"
    assert subs["disposition"] & Disposition.default
    # The MP4 muxer's empty gap-filling samples are not carried over.
    [packets] = packets_of(out, "subtitle")
    assert [p[0].decode() for p in packets] == ["Bonjour", "à tout à l'heure"]
    assert cues_of(out) == [[(0.3, 0.7, "Bonjour"), (1.5, 1.0, "à tout à l'heure")]]


def test_mp4_to_mp4_copies_mov_text(mov_text_mp4: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    assert remux(mov_text_mp4, out) == []
    assert cues_of(out) == cues_of(mov_text_mp4)
    assert streams_of(out, "subtitle")[0]["metadata"]["name"] == "Français"


def test_skipped_and_foreign_packets_are_not_wanted(rich_mkv: Path, tmp_path: Path) -> None:
    with av.open(str(rich_mkv)) as src, av.open(str(tmp_path / "o.mkv"), "w") as dst:
        add_video(dst)
        copier = StreamCopier(src, dst, {0, 1}, lambda _: None)
        carried = [s.index for s in copier.streams_in]
        # Audio #1 skipped; attachments and cover art travel with the header.
        assert carried == [2, 3, 4, 5, 6]
        assert [len(dst.streams.audio), len(dst.streams.subtitles)] == [3, 2]
        seen = {p.stream.index for p in src.demux() if copier.wants(p)}
        assert seen == set(carried)
        assert not copier.wants(av.Packet(b"x"))


def test_timecode_track_becomes_a_tag(tmp_path: Path) -> None:
    src = tmp_path / "tc.mov"
    with av.open(str(src), "w") as out:
        out.metadata["timecode"] = "01:02:03:04"  # the MOV muxer adds a tmcd track
        video = add_video(out)
        mux_video(out, video)
    with av.open(str(src)) as c:
        assert [s.type for s in c.streams] == ["video", "data"]

    mp4, mkv = tmp_path / "tc.mp4", tmp_path / "tc.mkv"
    assert remux(src, mp4) == [] and remux(src, mkv) == []
    with av.open(str(mp4)) as c:
        assert [s.type for s in c.streams] == ["video", "data"]
        assert c.streams[1].metadata["timecode"].startswith("01:02:03:")
    with av.open(str(mkv)) as c:
        assert c.metadata["TIMECODE"].startswith("01:02:03:")


def test_text_conversions() -> None:
    assert subtitle_text("ass", rb"3,0,Default,,0,0,0,,{\b1}a, b{\b0}\Nc\hd") == "a, b\nc\u00a0d"
    assert subtitle_text("ass", rb"0,0,Sign,,0,0,0,,{\p1}m 0 0 l 5 5{\p0}x") == "x"
    assert subtitle_text("subrip", b"<font color=\"red\">red</font> & <3") == "red & <3"
    assert subtitle_text("mov_text", b"\x00\x03abc" + b"\x00\x00\x00\x0cstylxxxx") == "abc"
    assert subtitle_text("mov_text", b"\x00\x00") == ""
    assert subtitle_text("mov_text", b"\x00\x06\xfe\xff\x00h\x00i") == "hi"
    assert subtitle_text("webvtt", b"<i>a</i> &lt;&amp;&gt;") == "a <&>"
    assert subtitle_payload("mov_text", "é") == b"\x00\x02\xc3\xa9"
    assert subtitle_payload("webvtt", "a<b&c") == b"a&lt;b&amp;c"
    assert subtitle_payload("subrip", "x\ny") == b"x\ny"


# --------------------------------------------------------------------------
# Tests: the project's shared sample files


def test_shared_mkv_with_srt_and_ass(tmp_path: Path) -> None:
    src = need_shared("video", "test-mkv-multi.mkv")
    expected = [(1.021, 2.5, "Hello world!"), (5.021, 2.0, "This is a test."),
                (8.521, 1.5, "Goodbye!")]
    for suffix, codecs in ((".mp4", ["mov_text", "mov_text"]), (".mkv", ["subrip", "ass"])):
        out = tmp_path / f"out{suffix}"
        warnings = remux(src, out, reencode_video=False)
        assert warnings == ([] if suffix == ".mkv" else [
            "subtitle stream #3 (ass) cannot go into mp4: converted to mov_text, styling dropped"])
        subs = streams_of(out, "subtitle")
        assert [s["codec"] for s in subs] == codecs
        assert [s["metadata"]["language"] for s in subs] == ["eng", "spa"]
        title = "name" if suffix == ".mp4" else "title"
        assert [s["metadata"][title] for s in subs] == ["English SRT", "Spanish ASS"]
        assert cues_of(out) == [expected, expected]
        [packets_out], [packets_in] = packets_of(out, "audio"), packets_of(src, "audio")
        assert same_audio(packets_out, packets_in, MS)


def test_shared_mp4_with_100_mov_text_tracks(tmp_path: Path) -> None:
    src = need_shared("video", "many_tracks.mp4")
    out = tmp_path / "out.mkv"
    assert remux(src, out, reencode_video=False) == []
    subs_in, subs_out = streams_of(src, "subtitle"), streams_of(out, "subtitle")
    assert len(subs_out) == len(subs_in) == 100
    assert {s["codec"] for s in subs_out} == {"subrip"}
    assert [s["disposition"] for s in subs_out] == [s["disposition"] for s in subs_in]
    # All "und" in the MP4; Matroska writes "und" for no language as well.
    assert {s["metadata"].get("language", "und") for s in subs_out} == {"und"}
    assert {s["metadata"]["HANDLER_NAME"] for s in subs_out} == {"SubtitleHandler"}
    cues = cues_of(out)
    assert cues == cues_of(src)
    assert cues[99][0] == (0.498, 1.329, "- This is a test!")


def test_shared_mp3_in_mp4_copied(tmp_path: Path) -> None:
    src = need_shared("video", "chaplin.mp4")
    for suffix in (".mp4", ".mkv"):
        out = tmp_path / f"out{suffix}"
        assert remux(src, out, reencode_video=False) == []
        [packets_in], [packets_out] = packets_of(src, "audio"), packets_of(out, "audio")
        assert streams_of(out, "audio")[0]["codec"] == "mp3"
        assert same_audio(packets_out, packets_in, MS)
