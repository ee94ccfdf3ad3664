"""--start: a job that begins at a time or frame of its input, with the other streams cut to match."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from tests.media import pattern
from tests.test_animated import decoded as animation_frames
from tests.test_animated import make as make_animation
from tests.test_segments import FAST, KEYINT, _lossless, decoded, interrupt_after, make_clip
from vidscale import JobSettings, run_job, upscale
from vidscale.core.position import Position, parse_start
from vidscale.errors import UsageError
from vidscale.media.image import read_image, write_image
from vidscale.media.source import VideoSource
from vidscale.media.window import Cut
from vidscale.segments.plan import SegmentLength, plan_segments
from vidscale.segments.state import state_dir_for

MS = Fraction(1, 1000)
CHAPTERS = [{"id": 1, "start": 0, "end": 1500, "time_base": MS, "metadata": {"title": "One"}},
            {"id": 2, "start": 1500, "end": 2000, "time_base": MS, "metadata": {"title": "Two"}},
            {"id": 3, "start": 2000, "end": 2500, "time_base": MS, "metadata": {"title": "Three"}}]
AAC_PACKET = Fraction(1024, 48000)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    """The CLI in this process: returns (exit code, stderr)."""
    from vidscale.cli import main

    def run(*args: object) -> tuple[int, str]:
        code = main([str(a) for a in args])
        return code, capsys.readouterr().err

    return run


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 frames at 24 fps (frame 24 at 1.000 s), a keyframe every 12, AAC, SRT cues at
    0.5-1.5 s and 2.0-2.8 s, three chapters."""
    return make_clip(tmp_path_factory.mktemp("clip") / "gop.mkv", subtitles=True, chapters=CHAPTERS)


def lossless_run(source: Path, out: Path, **settings: object) -> Path:
    run_job(str(source), str(out), JobSettings(model="bicubic", scale=2, quiet=True, encoder=_lossless(),
                                               **settings))  # type: ignore[arg-type]
    return out


@pytest.fixture(scope="module")
def reference(clip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The whole clip upscaled losslessly: its frame N is the upscale of the source's frame N."""
    return lossless_run(clip, tmp_path_factory.mktemp("ref") / "ref.mkv", segment="0")


def timed_packets(path: Path, kind: str) -> list[tuple[Fraction, Fraction, bytes]]:
    """(start s, duration s, payload) of each packet of the streams of `kind`."""
    with av.open(str(path)) as c:
        streams = [s for s in c.streams if s.type == kind]
        return [(p.pts * p.time_base, (p.duration or 0) * p.time_base, bytes(p))
                for p in c.demux(*streams) if p.size]


def chapters_of(path: Path) -> list[tuple[Fraction, Fraction, str]]:
    with av.open(str(path)) as c:
        return [(ch["start"] * ch["time_base"], ch["end"] * ch["time_base"], ch["metadata"]["title"])
                for ch in c.chapters()]


# ----------------------------------------------------------------------------------------------
# The syntax


def test_start_takes_seconds_clock_times_and_frame_numbers() -> None:
    s = Position(seconds=Fraction(167, 2))
    assert parse_start("83.5") == parse_start("83.5s") == parse_start("1:23.5") == parse_start("00:01:23.500") == s
    assert parse_start("200f") == parse_start("200F") == Position(frame=200)
    assert parse_start(83.5) == s and parse_start(0) == Position(seconds=Fraction(0))
    for bad in ("x", "-1", "1:75", "1:60:00", "1/2", "1e3", "nan", "5q", "-3f", "1:2:3:4", float("nan"), -1.0):
        with pytest.raises(UsageError, match="--start"):
            parse_start(bad)  # type: ignore[arg-type]
    assert SegmentLength.parse("1:30") == SegmentLength(90.0)  # --segment shares the parser


# ----------------------------------------------------------------------------------------------
# The video


def test_the_plan_covers_the_clip_from_the_start_frame(clip: Path) -> None:
    with av.open(str(clip)) as c:
        packets = [(p.pts, p.is_keyframe) for p in c.demux(video=0) if p.size]
    pts, keys = sorted(t for t, _ in packets), {t for t, key in packets if key}
    plan = plan_segments(clip, SegmentLength(None, KEYINT), start=Position(frame=17))
    assert [s.first_frame for s in plan.segments] == [17, 36, 48]  # 17 is no keyframe: decoded up to it
    assert plan.segments[0].start == pts[17] and {s.start for s in plan.segments[1:]} <= keys
    assert sum(s.frames for s in plan.segments) == plan.frames == 43
    limited = plan_segments(clip, SegmentLength(None, KEYINT), limit=20, start=Position(frame=17))
    assert [s.frames for s in limited.segments] == [19, 1] and limited.segments[-1].end == pts[37]
    # a time keeps the first frame at or after it: frame 23 shows at 0.958 s, frame 24 at 1.000 s
    at = {t: plan_segments(clip, SegmentLength(0.0), start=parse_start(t)).segments[0].first_frame
          for t in ("1", "0.959", "0.958")}
    assert at == {"1": 24, "0.959": 24, "0.958": 23}


@pytest.mark.parametrize("segment", ["0", f"{KEYINT}f"])
def test_a_frame_start_is_frame_exact(clip: Path, reference: Path, tmp_path: Path, cli, segment: str) -> None:
    out = tmp_path / "out.mkv"
    code, err = cli(clip, out, *FAST, "--segment", segment, "--start", "17f", "--frames", "20")
    assert code == 0, err
    times, frames = decoded(out)
    ref_times, ref_frames = decoded(reference)
    assert len(frames) == 20 and all(np.array_equal(a, b) for a, b in zip(frames, ref_frames[17:37]))
    assert times == [t - ref_times[17] for t in ref_times[17:37]]  # from 0, the source's spacing kept
    assert "damaged" not in err


@pytest.mark.parametrize("suffix, start", [(".mkv", "1s"), (".mp4", "0:01")])
def test_a_time_start_moves_audio_subtitles_and_chapters_with_the_video(
        clip: Path, reference: Path, tmp_path: Path, cli, suffix: str, start: str) -> None:
    out = tmp_path / f"out{suffix}"
    code, err = cli(clip, out, *FAST, "--segment", f"{KEYINT}f", "--start", start)
    assert code == 0, err
    times, frames = decoded(out)
    ref_times, ref_frames = decoded(reference)
    assert ref_times[24] == 1 and times[0] == 0 and len(frames) == 36
    assert all(np.array_equal(a, b) for a, b in zip(frames, ref_frames[24:]))

    # every audio packet that sounds after 1 s, the same bytes 1 s earlier: in sync with the video
    source = timed_packets(clip, "audio")
    carried = [(t + 1, d, data) for t, d, data in timed_packets(out, "audio")]
    after = [p for p in source if p[0] + p[1] > 1]
    straddling = [p for p in after if p[0] < 1]
    assert len(straddling) == 1
    if suffix == ".mp4":  # an edit list stores the packet that begins before 0: the sound starts at 0
        assert [(t, data) for t, _, data in carried] == [(t, data) for t, _, data in after]
        assert -AAC_PACKET < carried[0][0] - 1 < 0
    else:  # Matroska cannot store times below 0: that packet goes, the sound begins up to one late
        assert [(t, data) for t, _, data in carried] == [(t, data) for t, _, data in after[1:]]
        assert 0 <= carried[0][0] - 1 < AAC_PACKET
    if suffix == ".mkv":
        subtitles = [(t, d, data) for t, d, data in timed_packets(out, "subtitle")]
        assert subtitles == [(0, Fraction(1, 2), b"Hello, world"),  # 0.5-1.5 s: its last half second
                             (1, Fraction(4, 5), b"Second line\nwith <i>two</i> rows")]
    assert chapters_of(out) == [(0, Fraction(1, 2), "One"), (Fraction(1, 2), 1, "Two"),
                                (1, Fraction(3, 2), "Three")]


def test_start_and_frames_cut_the_other_streams_at_both_ends(clip: Path, reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mkv"
    summary = upscale(str(clip), str(out), model="bicubic", scale=2, crf=0, start=1.0, frames=12)  # the library
    assert summary.frames == 12
    times, frames = decoded(out)
    assert times[-1] == decoded(reference)[0][35] - 1 and all(
        np.array_equal(a, b) for a, b in zip(frames, decoded(reference)[1][24:36]))
    audio = timed_packets(out, "audio")
    assert audio[-1][0] < Fraction(1, 2) <= audio[-1][0] + audio[-1][1]  # to the video's end (0.5 s)
    assert [t for t, _, _ in timed_packets(out, "subtitle")] == [0]
    assert chapters_of(out) == [(0, Fraction(1, 2), "One")]


def test_frames_alone_end_the_other_streams_with_the_video(clip: Path, tmp_path: Path, cli) -> None:
    out = tmp_path / "out.mkv"
    code, err = cli(clip, out, *FAST, "--segment", f"{KEYINT}f", "--frames", "12")
    assert code == 0, err
    assert decoded(out)[0] == decoded(clip)[0][:12]  # no start: the source's times
    audio = timed_packets(out, "audio")
    assert audio[0][:2] == timed_packets(clip, "audio")[0][:2]  # from where it began
    assert audio[-1][0] < Fraction(1, 2) <= audio[-1][0] + audio[-1][1]
    assert timed_packets(out, "subtitle") == []  # the first cue begins as the video ends, at 0.5 s
    assert chapters_of(out) == [(0, Fraction(1, 2), "One")]


def test_an_unseekable_container_is_decoded_up_to_the_start(tmp_path: Path, cli) -> None:
    """MPEG-TS seeks are inexact: the frames before the start are decoded and dropped, and the
    output still starts at 0 (the source's first frame is at 1/12 s) with its audio."""
    ts = make_clip(tmp_path / "in.ts")
    ref = lossless_run(ts, tmp_path / "ref.mkv", segment="0")
    out = tmp_path / "out.mkv"
    code, err = cli(ts, out, *FAST, "--start", "17f", "--frames", "5")
    assert code == 0, err
    times, frames = decoded(out)
    src_times = decoded(ts)[0]
    assert src_times[0] > 0 and times[0] == 0
    assert all(abs(t - (s - src_times[17])) <= MS for t, s in zip(times, src_times[17:22], strict=True))  # Matroska: ms
    assert all(np.array_equal(a, b) for a, b in zip(frames, decoded(ref)[1][17:22]))
    # the packets that sound from the start to the fifth frame's end, moved as the video was
    end = src_times[21] + Fraction(1, 24)
    expected = [t - src_times[17] for t, _, _ in timed_packets(ts, "audio") if src_times[17] <= t < end]
    carried = [t for t, _, _ in timed_packets(out, "audio")]
    assert len(carried) == len(expected) and all(abs(a - b) <= MS for a, b in zip(carried, expected))
    assert 0 <= carried[0] < AAC_PACKET


def test_video_into_pictures_from_a_start(clip: Path, tmp_path: Path, cli) -> None:
    whole, part = tmp_path / "whole", tmp_path / "part"
    assert cli(clip, whole / "%03d.png", "-m", "bicubic", "--frames", "27")[0] == 0
    code, err = cli(clip, part / "%03d.png", "-m", "bicubic", "--start", "1", "--frames", "3")
    assert code == 0, err
    assert sorted(p.name for p in part.iterdir()) == ["001.png", "002.png", "003.png"]
    for i in range(3):
        assert np.array_equal(read_image(part / f"{i + 1:03d}.png"), read_image(whole / f"{i + 25:03d}.png"))


# ----------------------------------------------------------------------------------------------
# Resume


def test_a_resumed_job_keeps_its_start_and_another_start_starts_afresh(
        clip: Path, reference: Path, tmp_path: Path, cli) -> None:
    out = tmp_path / "out.mkv"
    interrupt_after(clip, out, 25, encoder=_lossless(), start=parse_start("17f"))
    code, err = cli(clip, out, *FAST, "--segment", f"{KEYINT}f", "--start", "17f", "-v")
    assert code == 0, err
    assert "resuming: 1 of 3 segments (19 frames) already done" in err
    assert np.array_equal(decoded(out)[1][0], decoded(reference)[1][17])
    out.unlink()
    interrupt_after(clip, out, 25, encoder=_lossless(), start=parse_start("17f"))
    code, err = cli(clip, out, *FAST, "--segment", f"{KEYINT}f", "--start", "18f", "-v")
    assert code == 0, err
    assert "(the settings changed (start)): starting afresh" in err and "resuming" not in err, err
    times, frames = decoded(out)
    assert len(frames) == 42 and np.array_equal(frames[0], decoded(reference)[1][18])


def test_the_fingerprint_holds_the_start_through_its_json_round_trip(clip: Path, tmp_path: Path) -> None:
    import json

    from vidscale.segments.run import _fingerprint
    from vidscale.upscaler import Upscaler

    def print_(start: str) -> dict:
        settings = JobSettings(scale=2, model="bicubic", start=parse_start(start))
        return _fingerprint(clip, tmp_path / "o.mkv", settings, Upscaler("bicubic", "cpu"))

    assert json.loads(json.dumps(print_("1:23.5"))) == print_("83.5s") != print_("83f")


# ----------------------------------------------------------------------------------------------
# Errors


def one_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("vidscale: error: --start"), err
    return lines[0]


@pytest.mark.parametrize("start, says", [
    ("60f", "past the end of"),  # frames 0-59: Matroska gives no count, the scan finds it
    ("2.47", "the last at 2.458s"),  # within the header's 2.5 s, after the last frame
    ("3", "2.500s long"),  # refused from the header, before a model loads
    ("x", "give seconds"), ("-1", "0 or more"), ("1:75", "0-59")])
def test_a_start_past_the_end_or_malformed_is_one_line_exit_2(clip: Path, tmp_path: Path, cli, start: str,
                                                              says: str) -> None:
    out = tmp_path / "out.mkv"
    code, err = cli(clip, out, *FAST, "--start", start)
    assert code == 2 and says in one_line(err)
    assert list(tmp_path.iterdir()) == [] and not state_dir_for(out).exists()


def test_photos_and_folders(tmp_path: Path, cli) -> None:
    photo = tmp_path / "a.png"
    write_image(photo, pattern(0, 12, 16))
    code, err = cli(photo, tmp_path / "big.png", "-m", "lanczos", "--start", "1")
    assert code == 2 and "single picture" in one_line(err)
    code, err = cli(tmp_path, tmp_path / "out", "-m", "lanczos", "--start", "1")
    assert code == 2 and "no clock" in one_line(err)


# ----------------------------------------------------------------------------------------------
# Sequences and animations


def test_a_sequence_skips_files_by_count_or_by_time_at_its_fps(tmp_path: Path, cli) -> None:
    frames = tmp_path / "in"
    frames.mkdir()
    for i in range(6):
        write_image(frames / f"{i + 1:02d}.png", pattern(i, 12, 16))
    whole = tmp_path / "whole"
    assert cli(frames / "%02d.png", whole / "%02d.png", "-m", "lanczos")[0] == 0
    for name, args in (("count", ("--start", "2f")), ("time", ("--start", "0.5", "--fps", "4"))):
        out = tmp_path / name
        code, err = cli(frames / "%02d.png", out / "%02d.png", "-m", "lanczos", *args)
        assert code == 0, err
        assert sorted(p.name for p in out.iterdir()) == ["01.png", "02.png", "03.png", "04.png"]
        assert all(np.array_equal(read_image(out / f"{i:02d}.png"), read_image(whole / f"{i + 2:02d}.png"))
                   for i in range(1, 5))
    code, err = cli(frames / "%02d.png", tmp_path / "x" / "%02d.png", "-m", "lanczos", "--start", "6f")
    assert code == 2 and "past the end" in one_line(err) and "6 files" in err


def test_an_animation_starts_at_the_frame_at_or_after_the_time(tmp_path: Path, cli) -> None:
    gif = make_animation(tmp_path, "gif")  # frames at 0, 0.1 and 0.15 s
    whole, part = tmp_path / "whole.gif", tmp_path / "part.gif"
    assert cli(gif, whole, "-m", "lanczos")[0] == 0
    code, err = cli(gif, part, "-m", "lanczos", "--start", "0.12")
    assert code == 0, err
    (start, duration, pixels), = animation_frames(part)
    assert start == 0 and duration == pytest.approx(0.2)
    assert np.array_equal(pixels, animation_frames(whole)[2][2])


# ----------------------------------------------------------------------------------------------
# The plan


def test_dry_run_states_the_start_and_counts_from_it(clip: Path, tmp_path: Path, cli) -> None:
    code, err = cli(clip, tmp_path / "out.mkv", *FAST, "--start", "1", "--dry-run")
    assert code == 0, err
    assert "start:" in err and "at 1s: the first frame at or after it" in err
    assert "estimate for 36 frames" in err
    assert list(tmp_path.iterdir()) == []


def test_cut_places_packets_and_chapters() -> None:
    cut = Cut(Fraction(1), Fraction(2))
    packet = av.Packet(b"x")
    packet.time_base, packet.pts, packet.dts, packet.duration = MS, 900, 900, 300
    assert cut.place(packet, "subtitle", early=False) and (packet.pts, packet.duration) == (0, 200)
    for kind, early, kept in (("audio", True, True), ("audio", False, False), ("data", True, False)):
        packet.pts = packet.dts = 990
        assert cut.place(packet, kind, early) is kept
    packet.pts = packet.dts = 2000
    assert not cut.place(packet, "audio", True)  # begins at the end
    assert cut.chapters([{"id": 1, "start": 500, "end": 1500, "time_base": MS, "metadata": {}},
                         {"id": 2, "start": 1500, "end": 3000, "time_base": MS, "metadata": {}},
                         {"id": 3, "start": 2000, "end": 3000, "time_base": MS, "metadata": {}}]) == [
        {"id": 1, "start": 0, "end": 500, "time_base": MS, "metadata": {}},
        {"id": 2, "start": 500, "end": 1000, "time_base": MS, "metadata": {}}]


def test_video_source_seeks_to_the_start(clip: Path) -> None:
    source = VideoSource(clip, start=Position(frame=30), limit=2)
    try:
        frames = list(source.items())
    finally:
        source.close()
    assert [f.index for f in frames] == [0, 1] and frames[0].pts == 1250  # frame 30 at 1.25 s (ms)
