"""Segmented video jobs: cuts at keyframes, exact joins, resume after any interruption."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from tests.media import _write_tone, pattern
from tests.test_streams import SRT_CUES, add_text_subtitles, subtitle_packets
from vidscale import JobSettings, run_job
from vidscale.errors import Cancelled, UsageError, VidscaleError
from vidscale.media.atomic import TMP_MARK
from vidscale.segments.plan import SegmentLength, plan_segments
from vidscale.segments.state import JobState, state_dir_for

KEYINT = 12
FAST = ["-m", "bicubic", "--scale", "2", "--crf", "0"]  # lossless: frames compare exactly


def make_clip(path: Path, frames: int = 60, size: tuple[int, int] = (64, 48), pts: list[int] | None = None,
              time_base: Fraction = Fraction(1, 90000), subtitles: bool = False,
              chapters: list[dict] | None = None) -> Path:
    """H.264 with B-frames and a keyframe every KEYINT frames, AAC audio, optional SRT and chapters."""
    width, height = size
    with av.open(str(path), "w") as out:
        if chapters:
            out.set_chapters(chapters)
        v = out.add_stream("libx264", rate=24)
        v.width, v.height, v.pix_fmt = width, height, "yuv420p"
        v.time_base = v.codec_context.time_base = time_base
        v.codec_context.options = {"preset": "veryfast",
                                   "x264-params": f"keyint={KEYINT}:min-keyint={KEYINT}:scenecut=0:bframes=2"}
        a = out.add_stream("aac", rate=48000)
        a.layout = "stereo"
        subs = add_text_subtitles(out, "subrip", {"language": "eng"}) if subtitles else None
        step = round(1 / (Fraction(24) * time_base))
        times = pts or [i * step for i in range(frames)]
        for i, t in enumerate(times):
            frame = av.VideoFrame.from_ndarray(pattern(i, height, width), format="rgb24").reformat(format="yuv420p")
            frame.pts, frame.time_base = t, time_base
            out.mux(v.encode(frame))
        out.mux(v.encode(None))
        _write_tone(out, a, seconds=float((times[-1] + step) * time_base))
        if subs is not None:
            out.mux(list(subtitle_packets(subs, SRT_CUES, "subrip")))
    return path


def decoded(path: Path) -> tuple[list[Fraction], list[np.ndarray]]:
    with av.open(str(path)) as c:
        frames = list(c.decode(video=0))
    return [f.pts * f.time_base for f in frames], [f.to_ndarray(format="rgb24") for f in frames]


def packets_of(path: Path, kind: str) -> list[tuple[Fraction | None, bytes]]:
    with av.open(str(path)) as c:
        streams = [s for s in c.streams if s.type == kind]
        return [(p.pts * p.time_base if p.pts is not None else None, bytes(p)) for p in c.demux(*streams) if p.size]


def vidscale(*args: str, **kw: object) -> subprocess.CompletedProcess:
    """The CLI in a process of its own."""
    return subprocess.run([sys.executable, "-m", "vidscale", *args], capture_output=True, text=True, **kw)


class Ran:
    def __init__(self, returncode: int, stderr: str):
        self.returncode, self.stderr = returncode, stderr


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    """The CLI in this process (no torch import per run): returns code and stderr."""
    from vidscale.cli import main

    def run(*args: str) -> Ran:
        code = main(list(args))
        return Ran(code, capsys.readouterr().err)

    return run


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clip") / "gop.mkv", subtitles=True)


@pytest.fixture(scope="module")
def straight(clip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference: the whole clip as one segment."""
    out = tmp_path_factory.mktemp("straight") / "one.mkv"
    result = vidscale(str(clip), str(out), *FAST, "--segment", "0")
    assert result.returncode == 0, result.stderr
    return out


def same_output(a: Path, b: Path) -> None:
    times_a, frames_a = decoded(a)
    times_b, frames_b = decoded(b)
    assert times_a == times_b
    assert len(frames_a) == len(frames_b) and all(np.array_equal(x, y) for x, y in zip(frames_a, frames_b))
    for kind in ("audio", "subtitle"):
        assert packets_of(a, kind) == packets_of(b, kind)


# ----------------------------------------------------------------------------------------------
# The plan


def test_plan_cuts_at_keyframes_and_covers_every_frame(clip: Path) -> None:
    plan = plan_segments(clip, SegmentLength(None, KEYINT))
    assert [s.first_frame for s in plan.segments] == [0, 12, 24, 36, 48]
    assert sum(s.frames for s in plan.segments) == plan.frames == 60
    with av.open(str(clip)) as c:
        keys = {p.pts for p in c.demux(video=0) if p.is_keyframe}
    assert {s.start for s in plan.segments} <= keys
    assert all(a.end == b.start for a, b in zip(plan.segments, plan.segments[1:]))
    assert plan.segments[-1].end is None


def test_plan_length_and_limit(clip: Path) -> None:
    assert len(plan_segments(clip, SegmentLength(None, 30)).segments) == 2  # next keyframe at or after 30
    assert len(plan_segments(clip, SegmentLength(0.0)).segments) == 1  # 0: no cutting
    limited = plan_segments(clip, SegmentLength(None, KEYINT), limit=20)
    assert limited.frames == 20 and [s.frames for s in limited.segments] == [12, 8]
    assert limited.segments[-1].end is not None  # stops at frame 20's pts


def test_segment_length_parsing() -> None:
    assert SegmentLength.parse("20") == SegmentLength(20.0) == SegmentLength.parse("20s")
    assert SegmentLength.parse("500f") == SegmentLength(None, 500)
    assert SegmentLength.parse("0").frames_at(Fraction(24)) == 0
    for bad in ("x", "-1", "nan", "5q", "-3f"):
        with pytest.raises(UsageError):
            SegmentLength.parse(bad)


# ----------------------------------------------------------------------------------------------
# Joins


def test_segments_join_exactly(clip: Path, straight: Path, tmp_path: Path, cli) -> None:
    out = tmp_path / "cut.mkv"
    result = cli(str(clip), str(out), *FAST, "--segment", f"{KEYINT}f")
    assert result.returncode == 0, result.stderr
    same_output(out, straight)
    times, _ = decoded(out)
    assert times == decoded(clip)[0]  # the source's timestamps, none dropped or repeated
    assert not state_dir_for(out).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.mkv"]


def test_mp4_joins_keep_rising_decode_times(clip: Path, tmp_path: Path, cli) -> None:
    cut, one = tmp_path / "cut.mp4", tmp_path / "one.mp4"
    for out, length in ((cut, f"{KEYINT}f"), (one, "0")):
        assert cli(str(clip), str(out), *FAST, "--segment", length).returncode == 0
    same_output(cut, one)
    with av.open(str(cut)) as c:
        dts = [p.dts for p in c.demux(video=0) if p.size]
    assert dts == sorted(dts) and len(set(dts)) == len(dts)


def test_frames_limit_cuts_the_plan(clip: Path, tmp_path: Path, cli) -> None:
    out = tmp_path / "out.mkv"
    assert cli(str(clip), str(out), *FAST, "--segment", f"{KEYINT}f", "--frames", "20").returncode == 0
    assert decoded(out)[0] == decoded(clip)[0][:20]


def test_variable_frame_rate_keeps_its_timestamps(tmp_path: Path, cli) -> None:
    rng = np.random.default_rng(3)
    pts = np.cumsum(rng.choice([1500, 3750, 6000], size=36)).tolist()
    src = make_clip(tmp_path / "vfr.mp4", pts=[0, *pts[:-1]])
    out = tmp_path / "out.mp4"
    assert cli(str(src), str(out), *FAST, "--segment", f"{KEYINT}f").returncode == 0
    assert decoded(out)[0] == decoded(src)[0]


def test_temporal_joins_stay_close_to_a_straight_run(clip: Path, tmp_path: Path, cli) -> None:
    cut, one = tmp_path / "cut.mkv", tmp_path / "one.mkv"
    for out, length in ((cut, f"{KEYINT}f"), (one, "0")):
        result = cli(str(clip), str(out), *FAST, "--temporal", "--segment", length)
        assert result.returncode == 0, result.stderr
    times_cut, frames_cut = decoded(cut)
    times_one, frames_one = decoded(one)
    assert times_cut == times_one
    worst = max(np.abs(a.astype(int) - b.astype(int)).mean() for a, b in zip(frames_cut, frames_one))
    assert worst < 0.5  # mean absolute difference, in 8-bit levels, on the worst frame


# ----------------------------------------------------------------------------------------------
# Resume


def interrupt_after(clip: Path, out: Path, frames: int, **settings: object) -> None:
    """Run through the library and cancel once `frames` frames are written: a real interruption
    in the middle of a segment."""
    cancel = threading.Event()

    def listener(done: int, total: int | None) -> None:
        if done >= frames:
            cancel.set()

    base = {"model": "bicubic", "scale": 2, "quiet": True, "segment": f"{KEYINT}f", "on_progress": listener,
            "cancel": cancel}
    with pytest.raises(Cancelled):
        run_job(str(clip), str(out), JobSettings(**{**base, **settings}))  # type: ignore[arg-type]
    assert not out.exists()


def test_resume_reuses_finished_segments(clip: Path, straight: Path, tmp_path: Path, cli) -> None:
    out = tmp_path / "out.mkv"
    interrupt_after(clip, out, 30, encoder=_lossless())
    state = state_dir_for(out)
    assert sorted(p.name for p in state.glob("*.json") if p.name != "job.json") == ["00000.json", "00001.json"]
    assert not list(tmp_path.rglob(f"*{TMP_MARK}*"))  # the torn third segment is gone
    result = cli(str(clip), str(out), *FAST, "--segment", f"{KEYINT}f", "-v")
    assert result.returncode == 0, result.stderr
    assert "resuming: 2 of 5 segments (24 frames) already done" in result.stderr
    assert "60 frames (24 from the earlier run) in" in result.stderr  # the rate counts this run's 36
    same_output(out, straight)
    assert not state.exists()


def test_torn_or_tampered_segment_is_redone(clip: Path, straight: Path, tmp_path: Path, cli) -> None:
    out = tmp_path / "out.mkv"
    interrupt_after(clip, out, 30, encoder=_lossless())
    state = state_dir_for(out)
    first = next(p for p in state.glob("00000.*") if p.suffix != ".json")  # the segment, not its record
    first.write_bytes(first.read_bytes()[:-100])  # torn: shorter than its record says
    result = cli(str(clip), str(out), *FAST, "--segment", f"{KEYINT}f", "-v")
    assert result.returncode == 0, result.stderr
    assert "resuming: 1 of 5 segments (12 frames) already done" in result.stderr
    same_output(out, straight)


def test_changed_settings_or_fresh_start_afresh(clip: Path, tmp_path: Path, cli) -> None:
    out = tmp_path / "out.mkv"
    interrupt_after(clip, out, 30, encoder=_lossless())
    result = cli(str(clip), str(out), "-m", "bicubic", "--scale", "2", "--crf", "10", "-v",
                      "--segment", f"{KEYINT}f")
    assert result.returncode == 0, result.stderr
    assert "starting afresh" in result.stderr and "encoder" in result.stderr
    assert "resuming" not in result.stderr
    out.unlink()
    interrupt_after(clip, out, 30, encoder=_lossless())
    result = cli(str(clip), str(out), *FAST, "--segment", f"{KEYINT}f", "--fresh", "-v")
    assert result.returncode == 0 and "--fresh" in result.stderr and "resuming" not in result.stderr


def test_a_second_run_on_the_same_output_is_refused(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mkv"
    with JobState(out):
        with pytest.raises(VidscaleError, match="another vidscale run"):
            run_job(str(clip), str(out), JobSettings(model="bicubic", scale=2, quiet=True))


def test_stale_temporary_of_the_target_is_removed(clip: Path, tmp_path: Path, cli) -> None:
    out = tmp_path / "out.mkv"
    stale = tmp_path / f".out.mkv{TMP_MARK}dead.mkv"
    stale.write_bytes(b"left by a killed run")
    other = tmp_path / f".other.mkv{TMP_MARK}dead.mkv"
    other.write_bytes(b"another target's")
    assert cli(str(clip), str(out), *FAST).returncode == 0
    assert not stale.exists() and other.exists()


def _lossless():  # type: ignore[no-untyped-def]
    from vidscale.core.settings import EncoderSettings

    return EncoderSettings(crf=0)


# ----------------------------------------------------------------------------------------------
# Real processes: kill -9 and SIGTERM


def _start(clip: Path, out: Path, *extra: str) -> subprocess.Popen:
    args = [sys.executable, "-m", "vidscale", str(clip), str(out), "-m", "span-x2", "--crf", "0",
            "--segment", f"{KEYINT}f", *extra]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_record(proc: subprocess.Popen, state: Path, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not (state / "00000.json").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.01)


@pytest.fixture(scope="module")
def big_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("big") / "big.mkv", frames=96, size=(96, 64), subtitles=True)


def test_kill_9_then_the_same_command_finishes_the_job(big_clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mkv"
    proc = _start(big_clip, out)
    _wait_for_record(proc, state_dir_for(out))
    proc.kill()
    proc.wait()
    assert not out.exists()
    resumed = _start(big_clip, out, "-v")
    _, err = resumed.communicate()
    assert resumed.returncode == 0, err
    assert "resuming:" in err and "already done" in err
    reference = tmp_path / "reference.mkv"
    whole = _start(big_clip, reference)
    assert whole.wait() == 0
    same_output(out, reference)
    assert not list(tmp_path.rglob(f"*{TMP_MARK}*")) and not state_dir_for(out).exists()


def test_sigterm_stops_cleanly(big_clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mkv"
    proc = _start(big_clip, out)
    _wait_for_record(proc, state_dir_for(out))
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert err.strip().splitlines()[-1] == "vidscale: terminated"
    assert "Traceback" not in err
    assert not out.exists() and not list(tmp_path.rglob(f"*{TMP_MARK}*"))
    assert (state_dir_for(out) / "00000.json").exists()  # kept for the next run


# ----------------------------------------------------------------------------------------------
# Parallel


def test_two_workers_give_the_same_output(clip: Path, straight: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mkv"
    result = vidscale(str(clip), str(out), *FAST, "--segment", f"{KEYINT}f", "--workers", "2")
    assert result.returncode == 0, result.stderr
    same_output(out, straight)


def test_ray_gives_the_same_output(clip: Path, straight: Path, tmp_path: Path) -> None:
    pytest.importorskip("ray")
    env = {**os.environ, "RAY_DISABLE_USAGE_STATS": "1"}
    out = tmp_path / "out.mkv"
    result = vidscale(str(clip), str(out), *FAST, "--segment", f"{KEYINT}f", "--ray", "--workers", "2", env=env)
    assert result.returncode == 0, result.stderr
    same_output(out, straight)


def test_fingerprint_survives_its_json_round_trip(clip: Path, tmp_path: Path) -> None:
    """Every setting compares equal after the state file is read back (tuples, Fractions...)."""
    import json

    from vidscale.core.settings import EncoderSettings
    from vidscale.segments.run import _fingerprint
    from vidscale.upscaler import Upscaler

    settings = JobSettings(scale=2, model="bicubic", encoder=EncoderSettings(crf=0, fps=Fraction(30000, 1001),
                                                                             options={"tune": "film"}))
    print_ = _fingerprint(clip, tmp_path / "o.mkv", settings, Upscaler("bicubic", "cpu"))
    assert json.loads(json.dumps(print_)) == print_


def test_a_long_multibyte_name_has_a_state_folder_that_fits(clip: Path, tmp_path: Path, cli) -> None:
    out = tmp_path / ("é" * 124 + ".mkv")  # 252 bytes
    assert len(state_dir_for(out).name.encode()) <= 255
    result = cli(str(clip), str(out), *FAST, "--segment", f"{KEYINT}f")
    assert result.returncode == 0, result.stderr
    assert decoded(out)[0] == decoded(clip)[0]


def test_hevc_in_mp4_keeps_the_apple_tag_through_the_join(clip: Path, tmp_path: Path, cli) -> None:
    out = tmp_path / "out.mp4"
    result = cli(str(clip), str(out), "-m", "bicubic", "--scale", "2", "--codec", "libx265", "--segment", "24f")
    assert result.returncode == 0, result.stderr
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_tag == "hvc1"
    assert decoded(out)[0] == decoded(clip)[0]


# ----------------------------------------------------------------------------------------------
# Every container and its default or usual codecs, segmented and not, resumed


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("short") / "short.mkv", frames=3 * KEYINT)


@pytest.mark.parametrize("suffix,codec", [(".webm", None), (".webm", "libvpx-vp9"), (".mp4", "libsvtav1"),
                                          (".mkv", "libsvtav1"), (".avi", None), (".avi", "libsvtav1")])
def test_each_container_joins_and_resumes(short_clip: Path, tmp_path: Path, suffix: str, codec: str | None,
                                          cli) -> None:
    """AV1 and VP9 segments are stored as MP4 (QuickTime refuses them), H.264 joins into AVI in
    Annex B: an interrupted run resumed gives the same file as an uninterrupted one, and one
    segment gives the same frames and times."""
    from vidscale.core.settings import EncoderSettings

    flags = ["-m", "bicubic", "--scale", "2", *(["--codec", codec] if codec else [])]
    whole, one, resumed = tmp_path / f"whole{suffix}", tmp_path / f"one{suffix}", tmp_path / f"resumed{suffix}"
    for out, length in ((whole, f"{KEYINT}f"), (one, "0")):
        result = cli(str(short_clip), str(out), *flags, "--segment", length)
        assert result.returncode == 0, result.stderr
    interrupt_after(short_clip, resumed, KEYINT + 3, encoder=EncoderSettings(codec=codec))
    result = cli(str(short_clip), str(resumed), *flags, "--segment", f"{KEYINT}f", "-v")
    assert result.returncode == 0, result.stderr
    assert "resuming: 1 of 3 segments (12 frames) already done" in result.stderr
    times, frames = decoded(resumed)
    assert len(frames) == 3 * KEYINT and frames[0].shape[:2] == (96, 128)
    assert (times, packets_of(resumed, "audio")) == (decoded(whole)[0], packets_of(whole, "audio"))
    assert all(np.array_equal(a, b) for a, b in zip(frames, decoded(whole)[1]))
    assert decoded(one)[0] == times
    source_times = decoded(short_clip)[0]
    if suffix == ".avi":  # a constant rate: frames at i/24 s (FFmpeg reads H.264 in AVI one slot late)
        times = [t - times[0] for t in times]
        source_times = [Fraction(round(t * 24), 24) for t in source_times]
    assert times == source_times
    assert not list(tmp_path.glob(".*"))


def test_a_job_from_before_a_setting_existed_resumes(clip: Path, straight: Path, tmp_path: Path, cli) -> None:
    """Settings added since (with their defaults) do not discard an older run's segments: its
    saved fingerprint lacks them, as one written by the release before them does."""
    import json

    out = tmp_path / "out.mkv"
    interrupt_after(clip, out, 30, encoder=_lossless())
    job = state_dir_for(out) / "job.json"
    saved = json.loads(job.read_text())
    del saved["fingerprint"]["repeat_threshold"]
    del saved["fingerprint"]["encoder"]["preferred"]
    job.write_text(json.dumps(saved))
    result = cli(str(clip), str(out), *FAST, "--segment", f"{KEYINT}f", "-v")
    assert result.returncode == 0, result.stderr
    assert "resuming: 2 of 5 segments (24 frames) already done" in result.stderr
    same_output(out, straight)


def _before_split() -> dict:
    """Settings away from their defaults, those that change no byte of a video among them."""
    from vidscale.core.settings import EncoderSettings

    encoder = EncoderSettings(crf=0, preset="veryfast", options={"tune": "film"}, fps=Fraction(30000, 1001))
    return dict(model="bicubic", scale=2, segment=f"{KEYINT}f", tile=128, precision="fp32", device_color=False,
                background=(0, 0, 0), batch=2, skip_repeats=False, quality=80, image_format=".png", workers=1,
                encoder=encoder)


# The fingerprint vidscale 2627bb4 (before JobSettings was split by purpose) wrote into job.json
# for `_before_split()` on `clip`, less "source" and "version" (the clip's path and times, the package's).
FINGERPRINT_BEFORE_SPLIT = {
    "backend": "cpu", "background": [0, 0, 0], "denoise": None, "device": "cpu", "device_color": False,
    "dry_run": False, "encoder": {"codec": None, "crf": 0, "fps": "30000/1001", "options": {"tune": "film"},
                                  "pix_fmt": None, "preferred": [], "preset": "veryfast"},
    "height": None, "max_frames": None, "model": "bicubic", "model_files": [], "output": ".mkv",
    "precision": "fp32", "repeat_threshold": 0.0, "scale": 2, "segment": "12f", "start": None, "temporal": None,
    "tile": 128, "width": None}


def test_a_job_from_before_the_settings_split_resumes(clip: Path, straight: Path, tmp_path: Path) -> None:
    """The same settings give the same fingerprint as before the split: a state folder whose
    job.json that release wrote resumes, its finished segments reused."""
    import json

    out = tmp_path / "out.mkv"
    interrupt_after(clip, out, 30, **_before_split())
    job = state_dir_for(out) / "job.json"
    saved = json.loads(job.read_text())
    written = saved["fingerprint"]
    assert {k: v for k, v in written.items() if k not in ("source", "version")} == FINGERPRINT_BEFORE_SPLIT
    old = {**FINGERPRINT_BEFORE_SPLIT, "source": written["source"], "version": written["version"]}
    job.write_text(json.dumps({"format": 1, "fingerprint": old, "plan": saved["plan"]}))
    summary = run_job(str(clip), str(out), JobSettings(quiet=True, **_before_split()))
    assert (summary.frames, summary.reused) == (60, 24)
    same_output(out, straight)
    assert not state_dir_for(out).exists()


def test_a_segment_job_pickles_without_the_callbacks(clip: Path, tmp_path: Path) -> None:
    """What a worker gets holds what to produce and how to run it; the caller's listener and
    event (which do not pickle) stay with the caller."""
    import pickle

    from vidscale.media.source import VideoSource
    from vidscale.segments.encode import SegmentJob

    settings = JobSettings(on_progress=lambda done, total: None, cancel=threading.Event(), **_before_split())
    source = VideoSource(clip)
    try:
        plan = plan_segments(clip, SegmentLength.parse(f"{KEYINT}f"))
        job = SegmentJob.of(source, tmp_path / "out.mkv", settings, plan)
    finally:
        source.close()
    copy = pickle.loads(pickle.dumps(job))
    assert copy.settings == JobSettings(settings.product, execution=settings.execution)
    assert (copy.settings.on_progress, copy.settings.cancel) == (None, None)
