"""Every reader is a `Source`: it answers what a job asks of its input, and takes its window
(--start, --frames) when it is opened, not by being set afterwards."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from tests.media import VideoSpec, make_video
from tests.test_animated import make as make_animation
from vidscale.core.position import Position
from vidscale.errors import UsageError
from vidscale.media import yuv
from vidscale.media.frames import Frame
from vidscale.media.image import write_image
from vidscale.media.opener import open_source
from vidscale.media.protocols import Source

H, W = 24, 32


def pictures(folder: Path, count: int) -> list[Path]:
    folder.mkdir()
    paths = [folder / f"{i:03d}.png" for i in range(count)]
    for i, path in enumerate(paths):
        write_image(path, np.full((H, W, 3), 40 * i, np.uint8))
    return paths


def frames_of(source: Source) -> list[Frame]:
    return [item for item in source.items() if isinstance(item, Frame)]


def test_every_reader_answers_the_source_questions(tmp_path: Path) -> None:
    video = make_video(tmp_path / "clip.mp4", VideoSpec(width=W, height=H, frames=6))
    animation = make_animation(tmp_path, "gif")
    folder = pictures(tmp_path / "frames", 3)
    # spec: (kind, a clip's header, a video stream, photos, root, paths, frame estimate)
    cases = {
        str(video): ("video", True, True, False, None, [video], 6),
        str(animation): ("animated", True, False, False, None, [animation], 3),
        str(tmp_path / "frames"): ("images", False, False, True, tmp_path / "frames", folder, 3),
        str(tmp_path / "frames" / "%03d.png"): ("images", False, False, False, None, folder, 3),
        str(folder[0]): ("images", False, False, True, None, folder[:1], 1),
    }
    for spec, (kind, clocked, video_stream, photos, root, paths, count) in cases.items():
        with open_source(spec) as source:
            answers = (source.kind, source.info is not None, source.video is not None, source.photos,
                       source.root, source.paths, source.frame_estimate())
            assert answers == (kind, clocked, video_stream, photos, root, paths, count), spec
            assert source.first_size() == (H, W), spec
            assert (source.start, source.limit, source.damage) == (None, None, None), spec
            assert source.plays == 0, spec  # the GIF loops forever; the rest have no loop count


def test_a_clip_takes_its_window_at_open(tmp_path: Path) -> None:
    video = make_video(tmp_path / "clip.mp4", VideoSpec(width=W, height=H, frames=6))
    with open_source(str(video), start=Position(frame=2), limit=3) as source:
        assert (source.start, source.limit, source.frame_estimate()) == (Position(frame=2), 3, 3)
        assert [f.index for f in frames_of(source)] == [0, 1, 2]
    with pytest.raises(UsageError, match="past the end"):  # from the header, before any decoding
        open_source(str(video), start=Position(frame=6))
    animation = make_animation(tmp_path, "gif")
    with open_source(str(animation), start=Position(frame=1), limit=1) as source:
        assert len(frames_of(source)) == 1 and source.frame_estimate() == 1


def test_a_sequence_takes_its_window_at_open(tmp_path: Path) -> None:
    paths = pictures(tmp_path / "frames", 5)
    pattern = str(tmp_path / "frames" / "%03d.png")
    with open_source(pattern, fps=Fraction(10), start=Position(seconds=Fraction(1, 10)), limit=2) as source:
        assert source.paths == paths[1:3] and len(frames_of(source)) == 2
    with pytest.raises(UsageError, match="no clock"):
        open_source(str(tmp_path / "frames"), start=Position(seconds=Fraction(1)))
    with pytest.raises(UsageError, match="past the end"):
        open_source(pattern, start=Position(frame=5))
    with pytest.raises(UsageError, match="single picture"):
        open_source(str(paths[0]), start=Position(frame=1))


def test_yuv_planes_are_asked_for_when_reading(tmp_path: Path) -> None:
    """The colour route is a question put to `items`, not an attribute set on the source."""
    video = make_video(tmp_path / "clip.mp4", VideoSpec(width=W, height=H, frames=2))
    with open_source(str(video)) as source:
        planes = [item for item in source.items(planes=True) if isinstance(item, Frame)]
    with open_source(str(video)) as source:
        rgb = frames_of(source)
    assert all(isinstance(f.pixels, yuv.YuvImage) for f in planes) and len(planes) == 2
    assert all(isinstance(f.pixels, np.ndarray) for f in rgb) and len(rgb) == 2


@pytest.mark.parametrize("why", ["too big", "starts past its end"])
def test_a_refused_clip_is_not_left_open(why: str, tmp_path: Path) -> None:
    from vidscale.core.limits import PixelLimits
    from vidscale.errors import VidscaleError
    from vidscale.media.source import VideoSource

    clip = make_video(tmp_path / "c.mp4", VideoSpec(frames=3))
    refuse = {"too big": {"limits": PixelLimits(input=100)}, "starts past its end": {"start": Position(frame=9)}}
    with pytest.raises(VidscaleError):
        VideoSource(clip, **refuse[why])  # type: ignore[arg-type]
    assert not [fd for fd in Path("/proc/self/fd").iterdir() if _points_at(fd, clip)]


def _points_at(fd: Path, path: Path) -> bool:
    try:
        return Path(fd.readlink()) == path.resolve()
    except OSError:
        return False
