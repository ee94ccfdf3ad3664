"""Put the segments together: their video packets remuxed (no re-encode) with every carried
stream of the source, into the output file."""

from __future__ import annotations

import contextlib
import heapq
import math
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av

from vidscale.errors import VidscaleError
from vidscale.media import hdr
from vidscale.media.containers import (
    clock_for,
    main_video,
    muxer_of,
    muxer_options,
    remux_packets,
    tag_for_apple,
)
from vidscale.media.names import ffmpeg_url
from vidscale.media.sinks import Warn, copy_video_stream_tags
from vidscale.media.streams import StreamCopier
from vidscale.media.window import Cut

# Carried packets are read from this long before a cut's start (a subtitle that shows
# across it sits where it begins) to this long after its end.
_READ_MARGIN = Fraction(30)


def assemble(source: Path, segments: list[Path], output: Path, warn: Warn, cut: Cut | None = None) -> int:
    """Write `output` (a temporary path of the right suffix) from the segment files, in
    order, and the source's other streams (within `cut`, and moved with it as the video
    is); returns the number of video packets."""
    with av.open(ffmpeg_url(source)) as src:
        video_in = main_video(src)
        assert video_in is not None  # the segments were made from it
        first = av.open(ffmpeg_url(segments[0]))
        try:
            fmt = muxer_of(output.suffix)
            with av.open(ffmpeg_url(output), "w", format=fmt, options=muxer_options(fmt)) as out:
                video = hdr.add_video_stream(out, first.streams.video[0], hdr.read(source))
                # AVI: one slot per frame at the source's rate (the segments' QuickTime clock is finer)
                video.time_base = clock_for(output.suffix, video.time_base, video_in.average_rate)
                copy_video_stream_tags(video_in, video)
                tag_for_apple(video, fmt)
                if first.streams.video[0].metadata.get("alpha_mode") == "1":
                    # VP9 alpha (Matroska side data): the muxer marks the track from the format
                    video.codec_context.pix_fmt = "yuva420p"
                copier = StreamCopier(src, out, skip={video_in.index}, warn=warn, cut=cut)
                packets = _SegmentPackets(segments, first, video, fmt)
                others = _carried(src, copier.streams_in, cut or Cut()) if copier.streams_in else iter(())
                for packet in heapq.merge(packets, others, key=_when):
                    if packet.stream is video:
                        if cut is not None and cut.start:
                            _move_back(packet, cut.start)
                        out.mux(packet)
                    else:
                        copier.write(packet)
                copier.finish()
                return packets.count
        finally:
            first.close()


class _SegmentPackets:
    """The segments' video packets in order, their decode times kept rising across joins."""

    def __init__(self, paths: list[Path], first: av.container.InputContainer, stream: av.stream.Stream, muxer: str):
        self.paths, self.first, self.stream, self.muxer = paths, first, stream, muxer
        self.count = 0
        self._last_dts: int | None = None
        self._extradata = first.streams.video[0].codec_context.extradata
        self._time_base = first.streams.video[0].time_base

    def __iter__(self) -> Iterator[av.Packet]:
        for i, path in enumerate(self.paths):
            container = self.first if i == 0 else av.open(ffmpeg_url(path))
            try:
                yield from self._packets(container, path)
            finally:
                if i:
                    container.close()

    def _packets(self, container: av.container.InputContainer, path: Path) -> Iterator[av.Packet]:
        stream = container.streams.video[0]
        if stream.codec_context.extradata != self._extradata or stream.time_base != self._time_base:
            raise VidscaleError(f"{path.name}: its stream headers differ from the first segment's, so "
                                "the segments cannot be joined (use --segment 0)")
        for packet in remux_packets(container.demux(stream), stream, self.stream, self.muxer):
            self._rise(packet, path)
            self.count += 1
            yield packet

    def _rise(self, packet: av.Packet, path: Path) -> None:
        """A fresh encoder starts its decode times before its first pts (B-frame delay), which
        can fall at or before the previous segment's last: move them up by the least amount."""
        if packet.dts is None:
            packet.dts = packet.pts
        if self._last_dts is not None and packet.dts <= self._last_dts:
            packet.dts = self._last_dts + 1
            if packet.pts is not None and packet.dts > packet.pts:
                raise VidscaleError(f"{path.name}: the segments' timestamps cannot be joined in this "
                                    "time base (use --segment 0)")
        self._last_dts = packet.dts


def _carried(src: av.container.InputContainer, streams: list[av.stream.Stream], cut: Cut) -> Iterator[av.Packet]:
    """The carried streams' packets, read from a little before the cut's start to a little
    after its end (a file interleaves its streams by time, within seconds)."""
    if cut.start:
        with contextlib.suppress(av.error.FFmpegError):  # not seekable: read from the start
            src.seek(max(0, math.floor((cut.start - _READ_MARGIN) * 1_000_000)))  # to a keyframe before
    for packet in src.demux(*streams):
        ts = packet.dts if packet.dts is not None else packet.pts
        if cut.end is not None and ts is not None and packet.time_base and ts * packet.time_base > cut.end + \
                _READ_MARGIN:
            return
        yield packet


def _move_back(packet: av.Packet, start: Fraction) -> None:
    """A video packet onto the output's clock: the first output frame at 0."""
    shift = round(start / packet.time_base)
    packet.pts = packet.pts - shift if packet.pts is not None else None
    packet.dts = packet.dts - shift if packet.dts is not None else None


def _when(packet: av.Packet) -> Fraction:
    """When a packet is due, for interleaving the streams."""
    ts = packet.dts if packet.dts is not None else packet.pts
    if ts is None or packet.time_base is None:
        return Fraction(-1)  # e.g. attachments' and end packets: they go early and do no harm
    return ts * packet.time_base
