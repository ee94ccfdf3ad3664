"""Encoder and container agree before the first frame: defaults, presets' preferences, refusals."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import pytest

import vidscale
from vidscale.cli import main
from vidscale.core.settings import EncoderSettings
from vidscale.encoding import fit_container, choose_encoder
from vidscale.errors import UsageError
from vidscale.media import containers
from vidscale.options import job_settings

from .media import VideoSpec, make_video

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "bunny.webm"
MS = Fraction(1, 1000)


def test_segment_stores_are_found_by_trying() -> None:
    """QuickTime lists AV1 and VP9 but refuses them when it writes the header: MP4 mode holds them."""
    assert containers.segment_store("libx264", "yuv420p", {}, MS, "matroska") == ".mov"
    assert containers.segment_store("prores_ks", "yuv422p10le", {}, MS, "mov") == ".mov"
    assert containers.segment_store("libsvtav1", "yuv420p", {}, MS, "webm") == ".mp4"
    assert containers.segment_store("libvpx-vp9", "yuv420p", {}, MS, "matroska") == ".mp4"
    assert containers.trial("libsvtav1", "yuv420p", {}, MS, "mov") is not None
    assert containers.trial("libx264", "yuv420p", {}, MS, "webm") is not None


def test_the_bundled_webm_sample_upscales_into_webm(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.webm"
    assert main([str(SAMPLE), str(out), "-m", "lanczos", "--frames", "6", "--segment", "3f"]) == 0, \
        capsys.readouterr().err
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.name in ("libdav1d", "av1")
        assert [s.codec_context.name for s in c.streams.audio] == ["opus"]
        assert sum(1 for _ in c.decode(video=0)) == 6


@pytest.mark.parametrize("flags,named", [
    (["--codec", "libx264"], "--codec libx264: .webm files cannot hold its video; they take libsvtav1, libvpx-vp9"),
    (["--codec", "prores_ks"], "--codec prores_ks: .webm files cannot hold its video"),
])
def test_an_explicit_codec_the_container_cannot_hold_is_refused_up_front(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], named: str) -> None:
    src = make_video(tmp_path / "in.mp4", VideoSpec(frames=3))
    out = tmp_path / "out.webm"
    assert main([str(src), str(out), "-m", "lanczos", *flags]) == 2
    err = capsys.readouterr().err
    assert named in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def test_refusal_comes_before_any_frame(tmp_path: Path) -> None:
    src = make_video(tmp_path / "in.mp4", VideoSpec(frames=3))
    written: list[int] = []
    with pytest.raises(UsageError, match="cannot hold"):
        vidscale.upscale(str(src), str(tmp_path / "out.avi"), model="lanczos", codec="libx265",
                         on_progress=lambda done, total: written.append(done))
    assert written == []


def test_a_codec_that_cannot_keep_the_clock_is_refused_with_what_works() -> None:
    """MPEG-4 part 2 takes no time base finer than 1/65535 (MP4 sources are often 1/90000)."""
    with pytest.raises(UsageError, match=r"--codec mpeg4: it cannot keep this clip's timestamps .* use libx264"):
        choose_encoder(".mp4", False, "yuv420p", EncoderSettings(codec="mpeg4"), Fraction(1, 90000))
    assert choose_encoder(".mp4", False, "yuv420p", EncoderSettings(codec="mpeg4"), Fraction(1, 24)).codec == "mpeg4"


@pytest.mark.parametrize("preset,suffix,codec,options", [
    ("film", ".webm", "libsvtav1", {"crf": "28", "preset": "6"}),  # x264 crf 16 slow, tune=film dropped
    ("fast", ".webm", "libsvtav1", {"crf": "32", "preset": "10"}),  # x264 crf 20 veryfast
    ("anime", ".webm", "libsvtav1", {"crf": "25", "preset": "6"}),  # x265 crf 18 slow, 10-bit kept
    ("anime", ".avi", "libx264", {"crf": "13", "preset": "slow"}),  # AVI holds no HEVC
])
def test_a_presets_codec_gives_way_to_the_containers_at_an_equivalent_quality(
        preset: str, suffix: str, codec: str, options: dict[str, str]) -> None:
    settings = job_settings({"preset": preset}, f"out{suffix}").encoder
    fitted, note = fit_container(settings, suffix, False, "yuv420p")
    plan = choose_encoder(suffix, False, "yuv420p", fitted)
    assert plan.codec == codec and {k: plan.options[k] for k in options} == options
    assert "tune" not in plan.options
    assert note is not None and f"cannot hold the preset's {settings.codec}: encoding {codec}" in note
    if preset == "anime":
        assert plan.pix_fmt == "yuv420p10le"


def test_a_presets_codec_the_container_holds_is_kept() -> None:
    settings = job_settings({"preset": "film"}, "out.mkv").encoder
    assert fit_container(settings, ".mkv", False, "yuv420p") == (settings, None)


def test_flags_given_beside_a_preset_are_kept_when_its_codec_gives_way() -> None:
    settings = job_settings({"preset": "film", "crf": 40, "encoder_opt": ["g=48"]}, "out.webm").encoder
    fitted, _ = fit_container(settings, ".webm", False, "yuv420p")
    plan = choose_encoder(".webm", False, "yuv420p", fitted)
    assert (plan.codec, plan.options["crf"], plan.options["g"]) == ("libsvtav1", "40", "48")


def test_the_note_is_said_once_and_the_video_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = make_video(tmp_path / "in.mp4", VideoSpec(frames=3, audio=None))
    out = tmp_path / "out.webm"
    assert main([str(src), str(out), "--preset", "fast", "-m", "lanczos", "--segment", "2f"]) == 0
    err = capsys.readouterr().err
    assert err.count(".webm files cannot hold the preset's libx264: encoding libsvtav1 yuv420p "
                     "crf=32 preset=10 instead") == 1
    with av.open(str(out)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 3


def test_a_video_into_one_picture_is_refused_before_decoding_unless_one_frame(tmp_path: Path) -> None:
    src = make_video(tmp_path / "in.mp4", VideoSpec(frames=3, audio=None))
    with pytest.raises(UsageError, match="one picture cannot hold 3 frames"):
        vidscale.upscale(str(src), str(tmp_path / "one.png"), model="lanczos")
    vidscale.upscale(str(src), str(tmp_path / "one.png"), model="lanczos", frames=1)
    assert (tmp_path / "one.png").is_file()


def test_a_video_into_webp_is_an_animation(tmp_path: Path) -> None:
    src = make_video(tmp_path / "in.mp4", VideoSpec(frames=3, audio=None))
    vidscale.upscale(str(src), str(tmp_path / "clip.webp"), model="lanczos")
    from PIL import Image

    with Image.open(tmp_path / "clip.webp") as picture:
        assert picture.n_frames == 3


def _packets(pts: list[int], dts: list[int | None]) -> list[av.Packet]:
    out = []
    for p, d in zip(pts, dts):
        packet = av.Packet(b"x")
        packet.pts, packet.dts = p, d
        out.append(packet)
    return out


@pytest.mark.parametrize("pts,dts,repaired", [
    ([0], [-219043332147], [0]),  # x265's lone frame
    ([0, 1], [-160000000000000000, -159999999999999999], [0, 1]),
    ([0, 2, 1], [5, 6, 7], [-1, 0, 1]),  # reordered: the least delay that keeps dts <= pts
    ([0, 2, 1], [-1, 0, 1], [-1, 0, 1]),  # valid times are left alone
])
def test_decode_times_an_encoder_left_unset_are_repaired(pts: list[int], dts: list[int], repaired: list[int]) -> None:
    from vidscale.media.sinks import repair_decode_times

    packets = _packets(pts, dts)
    repair_decode_times(packets)
    assert [p.dts for p in packets] == repaired


def test_x265_segments_of_two_frames_join(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """x265 leaves the decode times of a clip shorter than its B-frame delay unset (garbage)."""
    src = make_video(tmp_path / "in.mkv", VideoSpec(frames=6, codec="libx265", pix_fmt="yuv420p10le", audio=None,
                                                    x265_params="keyint=2:min-keyint=2"))
    out = tmp_path / "out.mp4"
    assert main([str(src), str(out), "-m", "bicubic", "--segment", "2f"]) == 0, capsys.readouterr().err
    with av.open(str(out)) as c, av.open(str(src)) as s:
        assert [f.time for f in c.decode(video=0)] == [f.time for f in s.decode(video=0)]
