"""Carry every stream but the re-encoded video from the input file to the output.

Audio is copied packet for packet when the output container takes its codec,
otherwise transcoded (Opus for WebM, AAC elsewhere). Text subtitles are copied,
or rewritten as the plain-text format the container takes (SubRip, mov_text or
WebVTT). Bitmap subtitles, attachments (fonts), cover art and data streams are
copied where the container takes them. Container and stream metadata,
dispositions and chapters are kept; a job's `--start`/`--frames` cuts them as it
cuts the video (`window.Cut`). Whatever cannot be carried is named in a
warning and dropped; nothing here raises for an odd stream.
"""

from __future__ import annotations

import io
import re
import struct
from collections.abc import Callable, Collection
from fractions import Fraction

import av
import av.container
import av.error
import av.stream

from vidscale.media.containers import is_cover as _is_cover
from vidscale.media.names import local_path
from vidscale.media.window import Cut

Warn = Callable[[str], None]

# FFmpeg muxes these, but players and other tools refuse the result.
_NONSTANDARD = {"mp4": frozenset({"vorbis"})}
# Formats whose muxer takes these without error, then leaves them out.
_LEAVES_OUT_ATTACHMENTS = frozenset({"webm"})
_LEAVES_OUT_COVERS = frozenset({"mov"})

# Audio time jumps below this (seconds) are rounding, not gaps in the input.
_MIN_AUDIO_GAP = Fraction(1, 100)

_TEXT_SUBTITLES = frozenset({"subrip", "ass", "mov_text", "webvtt", "text"})
# Rewriting targets, best first: the first one the container takes wins.
_TEXT_TARGETS = ("subrip", "mov_text", "webvtt")

# Describe the input file, not ours: FFmpeg writes fresh values where needed.
_STALE_KEYS = frozenset({
    "encoder", "duration", "bps", "number_of_frames", "number_of_bytes",
    "major_brand", "minor_version", "compatible_brands", "vendor_id",
})

# The subtitle encoders refuse to open without an ASS header, and the mov_text
# one turns it into the track's sample description (font, size, colours).
_ASS_HEADER = b"""[Script Info]
ScriptType: v4.00+
PlayResX: 384
PlayResY: 288

[V4+ Styles]
Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, \
BackColour, Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, \
BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, MarginV, Encoding
Style: Default,Arial,16,&Hffffff,&Hffffff,&H0,&H0,0,0,0,0,100,100,0,0,1,1,0,2,10,10,10,1

[Events]
Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text
"""


class StreamCopier:
    """Carries every stream but the re-encoded video from `src` into `dst`.

    Create it after adding the re-encoded video stream to `dst` and before
    muxing any packet: it adds the output streams, container metadata,
    chapters and attachments, which FFmpeg writes with the file header.
    `skip` holds the input stream indexes handled elsewhere; with `cut`, only
packets and chapters within it are kept, their times moved with it. Then pass every
    demuxed packet for which `wants()` is true to `write()`, and call
    `finish()` before closing `dst`.
    """

    def __init__(
        self,
        src: av.container.InputContainer,
        dst: av.container.OutputContainer,
        skip: Collection[int],
        warn: Warn,
        cut: Cut | None = None,
    ) -> None:
        self._src = src
        self._dst = dst
        self._warn = warn
        self._routes: dict[int, _Route] = {}
        self._cut = cut
        # MP4/MOV store times below 0 (an edit list): audio that begins before a cut stays
        self._early = bool(dst.format.flags & av.format.Flags.ts_negative.value)
        _copy_container_info(src, dst, cut)
        for stream in src.streams:
            # Discarded by the demuxer: the text track behind MP4 chapters.
            if stream.index in skip or stream.discard == av.stream.Discard.all:
                continue
            route = self._plan(stream)
            if route is not None:
                self._routes[stream.index] = route

    @property
    def streams_in(self) -> list[av.stream.Stream]:
        """Input streams whose packets `write()` takes (attachments have none)."""
        return [route.src for route in self._routes.values()]

    def wants(self, packet: av.Packet) -> bool:
        """True when `packet`, demuxed from `src`, belongs to a carried stream."""
        return self._route_of(packet) is not None

    def write(self, packet: av.Packet) -> None:
        """Mux a demuxed packet of a carried stream (converted as needed).

        The packet is consumed: its stream and timestamps may be changed.
        PyAV's empty end-of-stream packets are ignored.
        """
        route = self._route_of(packet)
        if route is None or (packet.size == 0 and packet.dts is None):
            return
        if self._cut is not None and not self._cut.place(packet, route.src.type, self._early):
            return
        route.write(packet)

    def finish(self) -> None:
        """Flush the audio encoders; call once, after the last `write()`."""
        for route in self._routes.values():
            route.finish()

    def _route_of(self, packet: av.Packet) -> _Route | None:
        # By packet.stream, not stream_index: PyAV leaves stream_index at 0
        # on the empty packets demux() ends each stream with.
        stream = packet.stream
        if stream is None or stream.container is not self._src:
            return None
        return self._routes.get(stream.index)

    # ----------------------------------------------------------------------
    # One decision per stream

    def _plan(self, stream: av.stream.Stream) -> _Route | None:
        fmt = self._dst.format.name
        if stream.type == "data" and "timecode" in stream.metadata:
            # A QuickTime tmcd track. Copied, it breaks the MP4/MOV trailer
            # (PyAV cannot set its frame rate); as a container tag, the
            # muxer rebuilds it (MOV/MP4) or stores it (Matroska).
            self._dst.metadata.setdefault("timecode", stream.metadata["timecode"])
            return None
        if _is_cover(stream) and _takes_attachments(fmt):
            self._attach_cover(stream)
            return None
        if self._takes(stream):
            return self._remux(stream)
        if stream.type == "audio":
            return self._transcode(stream)
        if stream.type == "subtitle" and _codec_name(stream) in _TEXT_SUBTITLES:
            return self._rewrite(stream)
        self._warn(f"{_describe(stream)} cannot go into {fmt}: dropped")
        return None

    def _takes(self, stream: av.stream.Stream) -> bool:
        fmt = self._dst.format.name
        if _codec_name(stream) in _NONSTANDARD.get(fmt, ()):
            return False
        if stream.type == "attachment" and fmt in _LEAVES_OUT_ATTACHMENTS:
            return False
        if _is_cover(stream) and fmt in _LEAVES_OUT_COVERS:
            return False
        return _muxer_takes(fmt, stream)

    def _attach_cover(self, stream: av.stream.Stream) -> None:
        # Copied as a stream, Matroska would make cover art a one-frame
        # video track: store it as an attachment, as it came in MKV.
        data = _read_cover(self._src, stream)
        if data is None:
            self._warn(f"{_describe(stream)} cannot be read: dropped")
            return
        png = _codec_name(stream) == "png"
        name = stream.metadata.get("filename", "cover.png" if png else "cover.jpg")
        mimetype = stream.metadata.get("mimetype", "image/png" if png else "image/jpeg")
        self._dst.add_attachment(name, mimetype, data)

    def _remux(self, stream: av.stream.Stream) -> _Route | None:
        # opaque=True: keep the input's codec; the default for video wants
        # an encoder for it, which copying does not need.
        out = self._dst.add_stream_from_template(stream, opaque=True)
        _copy_stream_info(stream, out)
        if stream.type == "attachment":
            return None  # written with the header, has no packets
        return _Route(stream, out, self._dst)

    def _transcode(self, stream: av.stream.Stream) -> _Route | None:
        fmt = self._dst.format.name
        codec = "libopus" if fmt == "webm" else "aac"
        setup = _audio_setup(stream, codec) if codec in self._dst.supported_codecs else None
        if setup is None:
            self._warn(f"{_describe(stream)} cannot go into {fmt}: dropped")
            return None
        layout, rate, sample_fmt = setup
        out = self._dst.add_stream(codec, rate=rate)
        ctx = out.codec_context
        ctx.layout = layout
        ctx.format = sample_fmt
        ctx.time_base = Fraction(1, rate)
        ctx.bit_rate = _audio_bit_rate(av.AudioLayout(layout).nb_channels)
        _copy_stream_info(stream, out)
        name = av.Codec(codec, "w").canonical_name
        self._warn(f"{_describe(stream)} cannot go into {fmt}: transcoded to {name}")
        return _AudioTranscode(stream, out, self._dst)

    def _rewrite(self, stream: av.stream.Stream) -> _Route | None:
        fmt = self._dst.format.name
        supported = self._dst.supported_codecs
        target = next((c for c in _TEXT_TARGETS if c in supported), None)
        if target is None:
            self._warn(f"{_describe(stream)} cannot go into {fmt}: dropped")
            return None
        out = self._dst.add_stream(target)
        out.codec_context.subtitle_header = _ASS_HEADER
        out.time_base = stream.time_base
        _copy_stream_info(stream, out)
        if _codec_name(stream) == "ass":
            self._warn(f"{_describe(stream)} cannot go into {fmt}: "
                       f"converted to {target}, styling dropped")
        return _TextRewrite(stream, out, self._dst, _codec_name(stream), target)


# --------------------------------------------------------------------------
# Routes: what happens to each packet of a carried stream


class _Route:
    """Copies packets unchanged; the muxer rescales timestamps if it must."""

    def __init__(self, src: av.stream.Stream, out: av.stream.Stream,
                 dst: av.container.OutputContainer) -> None:
        self.src = src
        self.out = out
        self.dst = dst
        self._last_dts = 0

    def write(self, packet: av.Packet) -> None:
        self._fill_timestamps(packet)
        packet.stream = self.out
        self.dst.mux(packet)

    def finish(self) -> None:
        pass

    def _fill_timestamps(self, packet: av.Packet) -> None:
        # Cover art and some subtitles come without timestamps, which the
        # muxers reject: borrow the other one, or the stream's last time.
        if packet.dts is None:
            packet.dts = packet.pts if packet.pts is not None else self._last_dts
        if packet.pts is None:
            packet.pts = packet.dts
        self._last_dts = packet.dts


class _TextRewrite(_Route):
    """Rewrites text subtitle payloads into another text format."""

    def __init__(self, src: av.stream.Stream, out: av.stream.Stream,
                 dst: av.container.OutputContainer, codec: str, target: str) -> None:
        super().__init__(src, out, dst)
        self._codec = codec
        self._target = target

    def write(self, packet: av.Packet) -> None:
        text = subtitle_text(self._codec, bytes(packet))
        if not text.strip():
            return  # mov_text gap fillers: the target muxer makes its own
        new = av.Packet(subtitle_payload(self._target, text))
        new.pts, new.dts = packet.pts, packet.dts
        new.duration = packet.duration
        new.time_base = packet.time_base
        new.is_keyframe = True
        super().write(new)


class _AudioTranscode(_Route):
    """Decodes, resamples and re-encodes audio the container cannot take."""

    def __init__(self, src: av.stream.Stream, out: av.stream.Stream,
                 dst: av.container.OutputContainer) -> None:
        super().__init__(src, out, dst)
        self._resampler: av.AudioResampler | None = None
        self._next_pts: int | None = None

    def write(self, packet: av.Packet) -> None:
        try:
            frames = self.src.codec_context.decode(packet)
        except av.error.InvalidDataError:
            return  # a damaged packet: skip it, as the ffmpeg tool does
        for frame in frames:
            self._encode(frame)

    def finish(self) -> None:
        for frame in self.src.codec_context.decode(None):
            self._encode(frame)
        self._encode(None)
        self.dst.mux(self.out.encode(None))

    def _encode(self, frame: av.AudioFrame | None) -> None:
        ctx = self.out.codec_context
        if self._resampler is None:
            # The encoder's frame size is known once it is open.
            ctx.open(strict=False)
            self._resampler = av.AudioResampler(
                format=ctx.format, layout=ctx.layout, rate=ctx.sample_rate,
                frame_size=ctx.frame_size or None,
            )
        for out_frame in self._resampler.resample(frame):
            self._retime(out_frame)
            # Stream.encode, not CodecContext.encode: only the former tags
            # the packets with their stream (the latter leaves #0).
            self.dst.mux(self.out.encode(out_frame))

    def _retime(self, frame: av.AudioFrame) -> None:
        # Times from the input (Matroska keeps milliseconds) and from the
        # resampler jitter by a few samples: go on from the previous frame
        # unless the input has a real gap. Times end up in samples.
        rate = frame.sample_rate
        pts = None
        if frame.pts is not None and frame.time_base is not None:
            pts = round(frame.pts * frame.time_base * rate)
        expected = self._next_pts
        if expected is not None and (pts is None or abs(pts - expected) < rate * _MIN_AUDIO_GAP):
            pts = expected
        frame.pts = pts if pts is not None else 0
        frame.time_base = Fraction(1, rate)
        self._next_pts = frame.pts + frame.samples


# --------------------------------------------------------------------------
# Decisions


def _muxer_takes(fmt: str, stream: av.stream.Stream) -> bool:
    """True when an output of format `fmt` accepts a copy of `stream`."""
    return _muxer_accepts(fmt, lambda probe: probe.add_stream_from_template(stream, opaque=True))


def _takes_attachments(fmt: str) -> bool:
    return fmt not in _LEAVES_OUT_ATTACHMENTS and _muxer_accepts(
        fmt, lambda probe: probe.add_attachment("probe.bin", "application/octet-stream", b"x"))


def _muxer_accepts(fmt: str, add: Callable[[av.container.OutputContainer], object]) -> bool:
    """Whether a throwaway `fmt` output takes what `add` puts in it.

    avformat_query_codec alone misses muxers that refuse a codec only when
    writing the header (Opus or FLAC in mov, fonts in mp4) or the trailer.
    """
    probe = av.open(io.BytesIO(), "w", format=fmt)
    try:
        add(probe)
        probe.start_encoding()
        probe.close()
    except (ValueError, av.error.FFmpegError):  # refused by PyAV or by FFmpeg
        return False
    finally:
        probe.close()  # no-op once closed; frees a refused probe
    return True


def _read_cover(src: av.container.InputContainer,
                stream: av.stream.Stream) -> bytes | None:
    """The picture of an attached-picture stream, or None if unreadable.

    FFmpeg hands it out only as the stream's first packet, and PyAV has no
    other way to it: read it through a second demuxer of the same file, so
    that the caller's demuxing stays untouched.
    """
    try:
        with open(local_path(src.name), "rb") as fh, av.open(fh) as probe:
            for packet in probe.demux(probe.streams[stream.index]):
                return bytes(packet) or None
    except (OSError, IndexError, av.error.FFmpegError):
        pass
    return None


def _audio_setup(stream: av.stream.Stream, codec: str) -> tuple[str, int, str] | None:
    """(layout, sample rate, sample format) that `codec` encodes `stream` with.

    The input's layout and rate are kept when the encoder takes them (libopus
    takes neither 44100 Hz nor "5.1(side)"); None when no setup opens.
    """
    src = stream.codec_context
    if src is None or not src.sample_rate:
        return None
    encoder = av.Codec(codec, "w")
    rate = _pick_rate(encoder.audio_rates, src.sample_rate)
    sample_fmt = _pick_sample_format(encoder.audio_formats, src.format)
    channels = src.layout.nb_channels
    for layout in (src.layout.name, f"{channels}c", "stereo"):
        if _encoder_opens(codec, layout, rate, sample_fmt):
            return layout, rate, sample_fmt
    return None


def _pick_rate(rates: list[int] | None, rate: int) -> int:
    if not rates or rate in rates:
        return rate
    higher = [r for r in rates if r > rate]
    return min(higher) if higher else max(rates)


def _pick_sample_format(formats: list[av.AudioFormat] | None,
                        src: av.AudioFormat | None) -> str:
    names = [f.name for f in formats or ()]
    if src is not None and (not names or src.name in names):
        return src.name
    # Prefer float: no clipping and no dither from the conversion.
    return next((n for n in names if n.startswith("flt")), names[0] if names else "fltp")


def _encoder_opens(codec: str, layout: str, rate: int, sample_fmt: str) -> bool:
    try:
        ctx = av.CodecContext.create(codec, "w")
        ctx.layout = layout
        ctx.sample_rate = rate
        ctx.format = sample_fmt
        ctx.time_base = Fraction(1, rate)
        ctx.open()
    except (ValueError, av.error.FFmpegError):
        return False
    return True


def _audio_bit_rate(channels: int) -> int:
    return {1: 128_000, 2: 192_000}.get(channels, 64_000 * channels)


# --------------------------------------------------------------------------
# Text subtitles

_SRT_TAG = re.compile(r"</?(?:i|b|u|s|font)\b[^>]*>", re.IGNORECASE)
_ASS_BLOCK = re.compile(r"(\{[^}]*\})")
_ASS_DRAWING = re.compile(r"\\p(\d+)")


def subtitle_text(codec: str, payload: bytes) -> str:
    """The plain text of one subtitle packet in codec `codec`."""
    if codec == "mov_text":
        return _mov_text_text(payload)
    text = payload.decode("utf-8", "replace")
    if codec == "ass":
        return _ass_text(text)
    if codec == "webvtt":
        text = _SRT_TAG.sub("", text)
        return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return _ASS_BLOCK.sub("", _SRT_TAG.sub("", text))  # subrip may carry {\an8}


def subtitle_payload(codec: str, text: str) -> bytes:
    """One packet of codec `codec` showing plain `text`."""
    if codec == "mov_text":
        # 16-bit length, then the text; style boxes would follow.
        data = text.encode()[:0xFFFF]
        return struct.pack(">H", len(data)) + data
    if codec == "webvtt":
        text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.encode()


def _mov_text_text(payload: bytes) -> str:
    if len(payload) < 2:
        return ""
    (size,) = struct.unpack(">H", payload[:2])
    data = payload[2:2 + size]
    if data.startswith(b"\xfe\xff"):  # tx3g allows UTF-16 marked by a BOM
        return data[2:].decode("utf-16-be", "replace")
    return data.decode("utf-8", "replace")


def _ass_text(event: str) -> str:
    # Matroska ASS packets: ReadOrder,Layer,Style,Name,MarginL,MarginR,
    # MarginV,Effect,Text; the text itself may hold commas.
    fields = event.split(",", 8)
    text = fields[8] if len(fields) == 9 else event
    parts = []
    drawing = False
    for part in _ASS_BLOCK.split(text):
        if part.startswith("{"):
            # \p1 and up switch to vector drawing commands, not text.
            for level in _ASS_DRAWING.findall(part):
                drawing = level != "0"
        elif not drawing:
            parts.append(part)
    text = "".join(parts)
    return text.replace("\\N", "\n").replace("\\n", "\n").replace("\\h", "\u00a0")


# --------------------------------------------------------------------------
# Metadata


def _copy_container_info(src: av.container.InputContainer,
                         dst: av.container.OutputContainer, cut: Cut | None) -> None:
    for key, value in _kept_metadata(src.metadata).items():
        dst.metadata.setdefault(key, value)  # what the caller set wins
    chapters = src.chapters()
    if cut is not None:
        chapters = cut.chapters(chapters)
    if chapters:
        dst.set_chapters(chapters)


def _copy_stream_info(src: av.stream.Stream, out: av.stream.Stream) -> None:
    # Stream.metadata is a dict PyAV writes out with the header; assigning
    # a new dict to it is silently ignored, so update it in place.
    metadata = _kept_metadata(src.metadata)
    # FFmpeg reads MP4 track titles back as "name" (and writes "title").
    if "name" in metadata and "title" not in metadata:
        metadata["title"] = metadata.pop("name")
    out.metadata.update(metadata)
    out.disposition = src.disposition


def _kept_metadata(metadata: dict[str, str]) -> dict[str, str]:
    # Matroska statistics tags may carry a language suffix ("BPS-eng").
    return {
        key: value for key, value in metadata.items()
        if key.lower().split("-")[0] not in _STALE_KEYS
        and not key.lower().startswith("_statistics")
    }


def _codec_name(stream: av.stream.Stream) -> str:
    """FFmpeg's codec name ("subrip", "ass"), not the decoder's ("srt", "ssa")."""
    ctx = stream.codec_context
    if ctx is not None:
        return ctx.codec.canonical_name
    return getattr(stream, "name", None) or "unknown"


def _describe(stream: av.stream.Stream) -> str:
    if stream.type == "attachment":
        return f"attachment #{stream.index} ({stream.metadata.get('filename', '?')})"
    return f"{stream.type} stream #{stream.index} ({_codec_name(stream)})"
