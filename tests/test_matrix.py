"""Every output kind x every preset x every input kind, on tiny inputs with a resizer.

The rule it enforces (docs/video.md, "Encoder and container agree before the first frame"):
each combination either writes a valid output (it decodes; right size and frame count; audio and subtitles kept where the
container holds them; depth and HDR tags kept) or is refused before the first frame
with a one-line UsageError, leaving nothing behind. Never an internal error, and
never an error after frames were upscaled. A new output kind, preset or input kind
gets a row here: presets are read from presets/ so a new one joins by itself.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from av.sidedata.sidedata import Type
from PIL import Image

import vidscale
from vidscale.errors import UsageError
from vidscale.presets import builtin_presets

from .media import VideoSpec, make_video, pattern

W, H, FRAMES = 32, 24, 3
PQ, BT2020, BT2020_NCL = 16, 9, 9  # FFmpeg's AVColorTransferCharacteristic / Primaries / Space
HDR10_PARAMS = "hdr10=1:master-display=G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,50)" \
               ":max-cll=1000,400"


@dataclass(frozen=True)
class Input:
    path: Path
    frames: int
    audio: int = 0
    subtitles: int = 0
    deep: bool = False
    hdr: bool = False


def _multi_streams(path: Path) -> Path:
    """MKV: video, two audio streams and one SRT subtitle stream."""
    ms = Fraction(1, 1000)
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=24)
        video.width, video.height, video.pix_fmt = W, H, "yuv420p"
        audios = [out.add_stream(codec, rate=48000) for codec in ("aac", "libopus")]
        for stream in audios:
            stream.layout = "stereo"
        subs = out.add_stream("subrip")
        subs.codec_context.subtitle_header = b"[Script Info]\nScriptType: v4.00+\n"
        subs.time_base = ms
        for i in range(FRAMES):
            frame = av.VideoFrame.from_ndarray(pattern(i, H, W), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 24)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        for stream in audios:
            samples = np.zeros((2, 960 * 6), np.float32)
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="stereo")
            frame.sample_rate, frame.pts = 48000, 0
            out.mux(stream.encode(frame))
            out.mux(stream.encode(None))
        packet = av.Packet(b"hello")
        packet.pts = packet.dts = 0
        packet.duration, packet.time_base, packet.stream = 100, ms, subs
        out.mux(packet)
    return path


def _alpha(path: Path) -> Path:
    """VP9 with alpha in WebM: a half-transparent picture."""
    with av.open(str(path), "w") as out:
        v = out.add_stream("libvpx-vp9", rate=24)
        v.width, v.height, v.pix_fmt = W, H, "yuva420p"
        v.codec_context.options = {"cpu-used": "8", "deadline": "realtime"}
        for i in range(FRAMES):
            rgba = np.dstack([pattern(i, H, W), np.full((H, W), 128, np.uint8)])
            frame = av.VideoFrame.from_ndarray(rgba, format="rgba").reformat(format="yuva420p")
            frame.pts, frame.time_base = i, Fraction(1, 24)
            out.mux(v.encode(frame))
        out.mux(v.encode(None))
    return path


def _still(path: Path) -> Path:
    Image.fromarray(pattern(0, H, W)).save(path)
    return path


def _animation(path: Path) -> Path:
    frames = [Image.fromarray(pattern(i, H, W)) for i in range(FRAMES)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=[40, 80, 40], loop=0)
    return path


def _inputs(folder: Path) -> dict[str, Input]:
    hdr = VideoSpec(W, H, FRAMES, codec="libx265", pix_fmt="yuv420p10le", audio=None,
                    colorspace=BT2020_NCL, primaries=BT2020, transfer=PQ, x265_params=HDR10_PARAMS)
    return {
        "8bit": Input(make_video(folder / "8bit.mp4", VideoSpec(W, H, FRAMES)), FRAMES, audio=1),
        "10bit": Input(make_video(folder / "10bit.mkv", VideoSpec(W, H, FRAMES, codec="libx265",
                                                                   pix_fmt="yuv420p10le", audio=None)),
                       FRAMES, deep=True),
        "hdr10": Input(make_video(folder / "hdr10.mkv", hdr), FRAMES, deep=True, hdr=True),
        "alpha": Input(_alpha(folder / "alpha.webm"), FRAMES),
        "vfr": Input(make_video(folder / "vfr.mp4", VideoSpec(W, H, pts=[0, 3000, 9000], audio=None)), FRAMES),
        "no-audio": Input(make_video(folder / "silent.mp4", VideoSpec(W, H, FRAMES, audio=None)), FRAMES),
        "streams": Input(_multi_streams(folder / "streams.mkv"), FRAMES, audio=2, subtitles=1),
        "still": Input(_still(folder / "still.png"), 1),
        "animation": Input(_animation(folder / "anim.gif"), FRAMES),
    }


OUTPUTS = {"mp4": "out.mp4", "mov": "out.mov", "mkv": "out.mkv", "webm": "out.webm", "avi": "out.avi",
           "gif": "out.gif", "webp": "out.webp", "pattern": "frames/%04d.png", "folder": "pictures/",
           "image": "out.png"}
VIDEO = {"mp4", "mov", "mkv", "webm", "avi"}
PRESETS = ["none", *builtin_presets()]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Input]:
    return _inputs(tmp_path_factory.mktemp("matrix-inputs"))


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("output", list(OUTPUTS))
@pytest.mark.parametrize("kind", ["8bit", "10bit", "hdr10", "alpha", "vfr", "no-audio", "streams", "still",
                                  "animation"])
def test_cell_writes_a_valid_output_or_is_refused_up_front(inputs: dict[str, Input], kind: str, output: str,
                                                           preset: str, tmp_path: Path,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    source, target = inputs[kind], tmp_path / OUTPUTS[output]
    written: list[int] = []
    caplog.set_level(logging.WARNING, logger="vidscale")
    try:
        vidscale.upscale(str(source.path), str(target), model="lanczos", segment="2f",
                         preset=None if preset == "none" else preset,
                         on_progress=lambda done, total: written.append(done))
    except UsageError as exc:
        assert not written, f"refused after {len(written)} frames: {exc}"
        assert "\n" not in str(exc)
        assert sorted(p.name for p in tmp_path.iterdir()) == [], "a refusal left something behind"
        return
    scale = builtin_presets()[preset].values.get("scale", 2) if preset != "none" else 2
    size = (H * scale, W * scale)
    said_hdr_dropped = any("HDR10" in r.getMessage() and "dropped" in r.getMessage() for r in caplog.records)
    if output not in VIDEO:
        assert said_hdr_dropped or not source.hdr, "HDR10 metadata dropped from pictures without a warning"
    if output in VIDEO:
        _check_video(target, source, size, said_hdr_dropped)
    elif output in ("gif", "webp", "image"):  # a .png from an animation is an APNG; from a video, refused
        _check_pictures([target], source.frames, size)
    else:
        folder = target.parent if output == "pattern" else target
        _check_pictures(sorted(folder.iterdir()), source.frames, size)
    assert not [p for p in tmp_path.rglob(".*")], "temporary or state files left behind"


def _check_video(path: Path, source: Input, size: tuple[int, int], said_hdr_dropped: bool) -> None:
    with av.open(str(path)) as c:
        video = c.streams.video[0]
        frames = [f for f in c.decode(video)]
        assert len(frames) == source.frames
        assert (frames[0].height, frames[0].width) == size
        assert len(c.streams.audio) == source.audio
        if path.suffix != ".avi":  # AVI holds no subtitles (a warning says they are dropped)
            assert len(c.streams.subtitles) == source.subtitles
        bits = max(comp.bits for comp in frames[0].format.components)
        assert bits >= 10 or not source.deep, f"{frames[0].format.name}: depth lost"
        if source.hdr:
            assert (video.codec_context.color_trc, video.codec_context.color_primaries) == (PQ, BT2020)
            # in the bitstream or the container (decoders hand either to the frames), or said to be dropped
            kept = {Type.MASTERING_DISPLAY_METADATA, Type.CONTENT_LIGHT_LEVEL} <= set(frames[0].side_data.keys())
            assert kept or said_hdr_dropped, "HDR10 metadata dropped without a warning"


def _check_pictures(paths: list[Path], frames: int, size: tuple[int, int]) -> None:
    count = 0
    for path in paths:
        with Image.open(path) as picture:
            for i in range(getattr(picture, "n_frames", 1)):
                picture.seek(i)
                assert (picture.height, picture.width) == size
                count += 1
    assert count == frames
