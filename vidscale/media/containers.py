"""What each video container holds, learned by trying, not from tables.

FFmpeg's own codec lists are not enough: the mov muxer lists AV1 and VP9 but
refuses them outside MP4 mode when it writes the header, and the AVI muxer
takes H.264 but not in the MP4 packaging that a QuickTime segment stores. So
each question here is answered by a trial: one small frame encoded with the
real settings, written into the container in memory, and (for the segment
stores) remuxed into the output's container as the join does. A trial costs
milliseconds and its answer is cached for the process.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable
from fractions import Fraction
from functools import lru_cache

import av
import av.bitstream
import av.logging

MUXERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm", ".avi": "avi"}
# Segment files store each packet's decode time (the join needs them; Matroska has none):
# QuickTime takes the most codecs (ProRes, ...), MP4 mode the ones mov refuses (AV1, VP9).
SEGMENT_STORES = (".mov", ".mp4")
# Containers that want H.264/HEVC in Annex B (start codes), not the length-prefixed
# packets an MP4/QuickTime segment stores; their muxers do not convert by themselves.
_ANNEXB = {"avi": {"h264": "h264_mp4toannexb", "hevc": "hevc_mp4toannexb"}}
TRIAL_SIZE = 256  # above GPU encoders' minimum sizes
# Trial encoders say nothing: x265 prints to stderr past FFmpeg's logging (settings given win).
QUIET = {"libx265": {"x265-params": "log-level=none"}}
# a few frames: one alone leaves some encoders' (x265's) first decode time unset
TRIAL_FRAMES = 3


def is_cover(stream: av.stream.Stream) -> bool:
    """A video stream that is cover art (an attached picture), not the clip."""
    return stream.type == "video" and bool(stream.disposition & av.stream.Disposition.attached_pic)


def main_video(container: av.container.Container) -> av.VideoStream | None:
    """The video a job reads and writes: the first video stream that is not cover art."""
    return next((s for s in container.streams.video if not is_cover(s)), None)


def muxer_of(suffix: str) -> str:
    return MUXERS[suffix.lower()]


def annexb_filter(muxer: str, codec_name: str) -> str | None:
    """The bitstream filter a remux into `muxer` needs for `codec_name` packets, if any."""
    return _ANNEXB.get(muxer, {}).get(codec_name)


def clock_for(suffix: str, time_base: Fraction, rate: Fraction | None) -> Fraction:
    """The time base frames are written in: the source's own, but AVI keeps no timestamps
    (each frame fills the next slot at a fixed rate), so there frames go on 1/rate."""
    if suffix.lower() == ".avi" and rate:
        return Fraction(1) / Fraction(rate)
    return Fraction(time_base)


def tag_for_apple(stream: av.stream.Stream, muxer: str) -> None:
    """HEVC in MP4/QuickTime as `hvc1`, the tag Apple players look for (FFmpeg writes hev1)."""
    if stream.codec_context.codec.canonical_name == "hevc" and muxer in ("mp4", "mov"):
        stream.codec_context.codec_tag = "hvc1"


def muxer_options(muxer: str, finished: bool = True) -> dict[str, str]:
    """Options for writing `muxer` files. A `finished` file (not a segment) gets its index
    first, so playback starts before the end arrives. AVI keeps no negative times: FFmpeg
    would move every stream by the audio's priming delay, and a video slot by a frame."""
    if muxer in ("mp4", "mov"):
        return {"movflags": "+faststart"} if finished else {}
    return {"avoid_negative_ts": "disabled"} if muxer == "avi" else {}


Options = tuple[tuple[str, str], ...]


def trial(codec: str, pix_fmt: str, options: dict[str, str], time_base: Fraction, muxer: str,
          via: str | None = None) -> str | None:
    """None if a frame encoded with these settings can be written into `muxer` (through a
    `via` segment store first, remuxed as a join does), else the reason in FFmpeg's words."""
    return _trial(codec, pix_fmt, tuple(sorted(options.items())), time_base, muxer, via)


@lru_cache(maxsize=256)
def _trial(codec: str, pix_fmt: str, options: Options, time_base: Fraction, muxer: str,
           via: str | None) -> str | None:
    os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its whole configuration otherwise
    try:
        with av.logging.Capture():
            encoded = _encode_one(codec, pix_fmt, dict(options), time_base, via or muxer)
            if via is not None:
                _remux(encoded, muxer)
    except (av.error.FFmpegError, ValueError, TypeError) as exc:
        return str(exc).split(": 'file:")[0] or type(exc).__name__
    return None


def _encode_one(codec: str, pix_fmt: str, options: dict[str, str], time_base: Fraction, muxer: str) -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=muxer) as out:
        stream = out.add_stream(codec, rate=Fraction(25))
        ctx = stream.codec_context
        ctx.width = ctx.height = TRIAL_SIZE
        ctx.pix_fmt, ctx.time_base, stream.time_base = pix_fmt, time_base, time_base
        ctx.options = {**QUIET.get(codec, {}), **options}
        step = max(1, round(1 / (25 * time_base)))
        for i in range(TRIAL_FRAMES):
            frame = _black(pix_fmt)
            frame.pts, frame.time_base = i * step, time_base
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return buffer.getvalue()


def _black(pix_fmt: str) -> av.VideoFrame:
    """A trial frame of zeros: a new frame's memory is whatever was there, and 10-bit x264
    asserts (aborting the process) on samples above 1023."""
    frame = av.VideoFrame(TRIAL_SIZE, TRIAL_SIZE, pix_fmt)
    for plane in frame.planes:
        plane.update(bytes(plane.buffer_size))
    return frame


def _remux(encoded: bytes, muxer: str) -> None:
    with av.open(io.BytesIO(encoded)) as src, av.open(io.BytesIO(), "w", format=muxer) as out:
        stream_in = src.streams.video[0]
        stream = out.add_stream_from_template(stream_in, opaque=True)
        for packet in remux_packets(src.demux(stream_in), stream_in, stream, muxer):
            out.mux(packet)


def remux_packets(packets: Iterable[av.Packet], stream_in: av.stream.Stream, stream_out: av.stream.Stream,
                  muxer: str) -> Iterable[av.Packet]:
    """`packets` of `stream_in`, packaged for `stream_out` in `muxer` (empty ones dropped)."""
    name = annexb_filter(muxer, stream_in.codec_context.name)
    bsf = av.bitstream.BitStreamFilterContext(name, stream_in, stream_out) if name else None
    for packet in packets:
        if packet.size == 0:
            continue
        for out in bsf.filter(packet) if bsf else (packet,):
            out.stream = stream_out
            yield out
    if bsf:
        for out in bsf.filter(None):
            out.stream = stream_out
            yield out


def segment_store(codec: str, pix_fmt: str, options: dict[str, str], time_base: Fraction,
                  muxer: str) -> str | None:
    """The segment files' suffix for this encoder into an output of `muxer`: the first store
    that takes it and joins into `muxer`; None where none does (the segments then use the
    output's own container)."""
    for suffix in SEGMENT_STORES:
        if trial(codec, pix_fmt, options, time_base, muxer, via=MUXERS[suffix]) is None:
            return suffix
    return None
