"""What every reader and every writer is: a `Source` and a `Sink`.

The readers (`source.VideoSource`, `source.ImageSource`, `animated.source.AnimatedSource`)
are opened by `opener.open_source` with their window (--start, --frames) and are not
configured afterwards; the questions a job asks of its input are answered here, by
each reader, rather than by asking which reader it is. The writers are in `sinks` and
`animated.sink`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from vidscale.core.position import Position
from vidscale.media.frames import Failure, Frame, VideoInfo

if TYPE_CHECKING:
    import av


class Source(Protocol):
    """Frames (and, from a video, the packets of the streams a sink carries), in file order."""

    kind: str  # "video", "animated" or "images"
    info: VideoInfo | None  # a clip's header facts, its clock among them; None: pictures, timed by --fps
    video: VideoInfo | None  # a decoded video stream's facts the encoder matches (depth, pixel format,
    #                          colour, HDR); None for animations and pictures
    paths: list[Path]  # the files read: a clip's one file, or a sequence's pictures in order
    root: Path | None  # the folder whose pictures are read (names relative to it); None otherwise
    photos: bool  # unrelated pictures (a folder, or one picture): no motion or repeats between
    #               them, and counted as pictures, not frames
    start: Position | None  # where reading begins (--start), given at open
    limit: int | None  # the most frames (or files) read (--frames), given at open
    plays: int  # how often an animation runs, 0 = forever (0 for the rest)
    damage: str | None  # why decoding skipped frames or stopped early, if it did

    def items(self, extra: Sequence[av.stream.Stream] = (),
              planes: bool = False) -> Iterator[Frame | Failure | av.Packet]:
        """The frames; from a video also the packets of `extra` streams, in file order.
        `planes`: a video's frames as the decoder's YUV planes where the format allows (the
        device converts them); the other readers always give arrays."""

    def first_size(self) -> tuple[int, int]:
        """(height, width) of the first frame, from the header (a sequence: its first picture)."""

    def frame_estimate(self) -> int | None:
        """Frames (or files) the window holds: exact for a sequence, else from the header, which
        may not say (None)."""

    def close(self) -> None: ...

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Sink(Protocol):
    """Where a pass puts its results. Every sink in `media/` has these four."""

    def write(self, frame: Frame) -> None: ...

    def write_packet(self, packet: object) -> None:
        """A packet of a carried stream, or a `Failure` of an input that did not decode."""

    def close(self) -> None:
        """The pass is complete: flush and finish the file."""

    def abort(self) -> None:
        """The pass failed or was interrupted: release the file (the caller deletes it)."""
