"""HDR10 static metadata (mastering display colour volume, content light level), end to end.

It is read from the source's first decoded frame (FFmpeg puts there what the
bitstream says, else what the container says) or from the container, and
written twice: into the bitstream through the encoder's own parameters
(x265, x264, SVT-AV1), and into the output container. PyAV can read stream
side data but not attach it to a new stream, while its MP4 demuxer turns
'mdcv'/'clli' boxes into exactly that side data; so the container's copy comes
from a template: a one-sample in-memory MP4 of the encoded stream with those
two boxes added, whose parameters the output stream copies.

Dynamic metadata (HDR10+, Dolby Vision RPUs, HDR Vivid) changes per frame and
is not carried; the user is told so in one line.
"""

from __future__ import annotations

import contextlib
import io
import struct
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import av
from av.sidedata.sidedata import Type

from vidscale.media.color import ColorInfo, color_of
from vidscale.media.containers import main_video
from vidscale.media.names import ffmpeg_url

TRC_PQ, TRC_HLG, PRIMARIES_BT2020 = 16, 18, 9  # FFmpeg's SMPTE ST 2084, ARIB STD-B67, BT.2020
# Containers whose muxers write mastering display and light level from the stream's side data.
CONTAINERS = ("matroska", "webm", "mp4", "mov")
# Encoders that write it into their bitstream, through this parameter string.
_PARAMS = {"libx265": "x265-params", "libx264": "x264-params", "libsvtav1": "svtav1-params"}
# Codecs whose bitstream has a place for it (SEI, metadata OBU): an encoder of one that cannot
# write it leaves the video's own copy out.
_CODECS_WITH_SEI = ("h264", "hevc", "av1")
_DYNAMIC = {Type.DYNAMIC_HDR_PLUS: "HDR10+ dynamic metadata", Type.DOVI_RPU_BUFFER: "Dolby Vision RPUs",
            Type.DOVI_METADATA: "Dolby Vision RPUs", Type.DYNAMIC_HDR_VIVID: "HDR Vivid dynamic metadata"}
_CHROMA, _LUMA = 50000, 10000  # HEVC SEI and MP4 box units: 0.00002 (chromaticity), 0.0001 cd/m2

Point = tuple[Fraction, Fraction]


@dataclass(frozen=True)
class MasteringDisplay:
    """The mastering display's colour volume: chromaticities (CIE 1931 x, y) and luminance (cd/m2)."""

    red: Point
    green: Point
    blue: Point
    white: Point
    min_luminance: Fraction
    max_luminance: Fraction


@dataclass(frozen=True)
class Hdr:
    """A stream's HDR metadata: the static part that is carried, the dynamic kinds that are not."""

    mastering: MasteringDisplay | None = None
    light: tuple[int, int] | None = None  # MaxCLL, MaxFALL (cd/m2)
    dynamic: tuple[str, ...] = ()

    @property
    def static(self) -> bool:
        return self.mastering is not None or self.light is not None


def looks_hdr(color: ColorInfo) -> bool:
    """PQ, HLG or BT.2020 colour: worth looking for HDR metadata (SDR sources skip the look)."""
    return color.transfer in (TRC_PQ, TRC_HLG) or color.primaries == PRIMARIES_BT2020


def read(path: Path, color: ColorInfo | None = None) -> Hdr | None:
    """The HDR metadata of `path`'s main video stream; None when it has none or cannot be read.
    A `color` already known to be SDR answers None without opening the file."""
    if color is not None and not looks_hdr(color):
        return None
    try:
        stat = path.stat()
        return _read(path, stat.st_size, stat.st_mtime_ns)
    except OSError:
        return None


@lru_cache(maxsize=8)  # each segment's sink asks; the file is the same
def _read(path: Path, size: int, mtime_ns: int) -> Hdr | None:
    try:
        with av.open(ffmpeg_url(path)) as container:
            stream = main_video(container)
            if stream is None:
                return None
            coded = stream.codec_context.coded_side_data
            if not coded and not looks_hdr(color_of(stream.codec_context)):
                return None  # SDR: no first frame to decode
            frame = _first_frame(container, stream)
    except (av.error.FFmpegError, OSError, StopIteration, UnicodeDecodeError):
        return None
    side = {t: bytes(d) for t, d in frame.side_data.items()} if frame is not None else {}
    mastering = _mastering(side.get(Type.MASTERING_DISPLAY_METADATA)
                           or coded.get("mastering_display_metadata"))
    light = _light(side.get(Type.CONTENT_LIGHT_LEVEL) or coded.get("content_light_level"))
    dynamic = {name for t, name in _DYNAMIC.items() if t in side}
    if "dovi_conf" in coded:
        dynamic.add("Dolby Vision RPUs")
    hdr = Hdr(mastering, light, tuple(sorted(dynamic)))
    return hdr if hdr.static or hdr.dynamic else None


def _first_frame(container: av.container.InputContainer, stream: av.VideoStream) -> av.VideoFrame | None:
    with contextlib.suppress(av.error.FFmpegError, StopIteration):
        return next(container.decode(stream))
    return None


def _mastering(data: bytes | None) -> MasteringDisplay | None:
    """FFmpeg's AVMasteringDisplayMetadata: rationals R, G, B, white (x, y), min and max
    luminance, then has_primaries and has_luminance; native byte order."""
    if data is None or len(data) < 88:
        return None
    v = struct.unpack("=22i", data[:88])
    if not (v[20] and v[21]) or any(d <= 0 for d in v[1:20:2]):
        return None  # both halves are needed: encoders and boxes take all of it or nothing
    q = [Fraction(v[i], v[i + 1]) for i in range(0, 20, 2)]
    return MasteringDisplay((q[0], q[1]), (q[2], q[3]), (q[4], q[5]), (q[6], q[7]), q[8], q[9])


def _light(data: bytes | None) -> tuple[int, int] | None:
    if data is None or len(data) < 8:
        return None
    return struct.unpack("=2I", data[:8])


# --- the encoder's copy -------------------------------------------------------------------------

def encoder_options(codec: str, options: dict[str, str], hdr: Hdr | None) -> dict[str, str]:
    """`options` with `hdr`'s static metadata added to `codec`'s parameter string (the user's own
    settings of the same keys win); unchanged for encoders that take none."""
    key = _PARAMS.get(codec)
    if hdr is None or not hdr.static or key is None:
        return options
    given = [p for p in options.get(key, "").split(":") if p]
    names = {p.split("=", 1)[0] for p in given}
    added = [p for p in _params(codec, hdr) if p.split("=", 1)[0] not in names]
    return {**options, key: ":".join(given + added)}


def _params(codec: str, hdr: Hdr) -> list[str]:
    md, light = hdr.mastering, hdr.light
    if codec == "libsvtav1":  # SVT-AV1 takes real values
        out = [f"mastering-display={_points(md, _decimal, _decimal)}"] if md else []
        return out + ([f"content-light={light[0]},{light[1]}"] if light else [])
    # x265 and x264 take the SEI's integer units
    out = ["hdr10=1"] if codec == "libx265" else []
    if md:
        out.append(f"{'master-display' if codec == 'libx265' else 'mastering-display'}="
                   + _points(md, lambda v: str(round(v * _CHROMA)), lambda v: str(round(v * _LUMA))))
    if light:
        out.append(f"{'max-cll' if codec == 'libx265' else 'cll'}={light[0]},{light[1]}")
    return out


def _points(md: MasteringDisplay, chroma: Callable[[Fraction], str], luma: Callable[[Fraction], str]) -> str:
    def pair(p: Point) -> str:
        return f"({chroma(p[0])},{chroma(p[1])})"
    return (f"G{pair(md.green)}B{pair(md.blue)}R{pair(md.red)}WP{pair(md.white)}"
            f"L({luma(md.max_luminance)},{luma(md.min_luminance)})")


def _decimal(v: Fraction) -> str:
    return f"{float(v):.5f}"


def in_bitstream(codec: str) -> bool:
    """Whether the encoder `codec` writes the static metadata into its bitstream."""
    return codec in _PARAMS


# --- the container's copy -----------------------------------------------------------------------

def add_video_stream(out: av.container.OutputContainer, template: av.VideoStream,
                     hdr: Hdr | None) -> av.VideoStream:
    """A stream of `out` copied from `template` (for remuxing its packets) that carries `hdr`'s
    static metadata where the container can."""
    movie = _carrier(template, hdr) if hdr is not None and out.format.name in CONTAINERS else None
    if movie is None:
        return out.add_stream_from_template(template, opaque=True)
    with av.open(io.BytesIO(movie), format="mov") as carrier:
        stream = out.add_stream_from_template(carrier.streams.video[0], opaque=True)
    stream.time_base = template.time_base  # the carrier's muxer chose its own
    return stream


def _carrier(template: av.VideoStream, hdr: Hdr) -> bytes | None:
    """An in-memory MP4 (QuickTime for codecs MP4 does not take) of `template`'s stream whose
    sample entry holds the metadata: its demuxer reads it back as side data. None when no
    such file can be made."""
    if not hdr.static:
        return None
    try:
        movie = _one_sample_movie(template)
        return _with_boxes(movie, _mdcv(hdr.mastering) + _clli(hdr.light)) if movie else None
    except (ValueError, OSError, av.error.FFmpegError):
        return None


def _one_sample_movie(template: av.VideoStream) -> bytes | None:
    """An MP4 (or QuickTime) file of `template`'s stream holding its file's first packet (MP4
    muxers leave out tracks without samples); its moov box comes last."""
    with av.open(template.container.name) as source:  # a fresh reader: the caller's keeps its place
        stream = source.streams[template.index]
        packet = next((p for p in source.demux(stream) if p.size), None)
        if packet is None:
            return None
        for fmt in ("mp4", "mov"):
            buffer = io.BytesIO()
            try:
                with av.open(buffer, "w", format=fmt) as movie:
                    packet.stream = movie.add_stream_from_template(stream, opaque=True)
                    movie.mux(packet)
            except (ValueError, av.error.FFmpegError):
                continue
            return buffer.getvalue()
    return None


def _mdcv(md: MasteringDisplay | None) -> bytes:
    """ISO/IEC 23001-8's MasteringDisplayColourVolumeBox: G, B, R, white, then max and min luminance."""
    if md is None:
        return b""
    chroma = [round(c * _CHROMA) for p in (md.green, md.blue, md.red, md.white) for c in p]
    luma = [round(md.max_luminance * _LUMA), round(md.min_luminance * _LUMA)]
    return _box(b"mdcv", struct.pack(">8H2I", *chroma, *luma))


def _clli(light: tuple[int, int] | None) -> bytes:
    return _box(b"clli", struct.pack(">2H", *light)) if light else b""


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


_PATH = (b"moov", b"trak", b"mdia", b"minf", b"stbl", b"stsd")
_STSD_HEADER = 16  # size, type, version and flags, entry count


def _with_boxes(movie: bytes, boxes: bytes) -> bytes:
    """`movie` with `boxes` appended to its first sample entry, the sizes around them grown.
    Nothing after the moov box moves, so sample offsets stay right."""
    data = bytearray(movie)
    chain, start, end = [], 0, len(data)
    for kind in _PATH:
        at, size = _find(data, start, end, kind)
        chain.append(at)
        start, end = at + (_STSD_HEADER if kind == b"stsd" else 8), at + size
    entry_size = struct.unpack_from(">I", data, start)[0]
    chain.append(start)
    data[start + entry_size:start + entry_size] = boxes
    for at in chain:
        struct.pack_into(">I", data, at, struct.unpack_from(">I", data, at)[0] + len(boxes))
    return bytes(data)


def _find(data: bytearray, start: int, end: int, kind: bytes) -> tuple[int, int]:
    while start + 8 <= end:
        size, found = struct.unpack_from(">I4s", data, start)
        if size < 8:
            break  # 64-bit or open-ended sizes: not in the small files made here
        if found == kind:
            return start, size
        start += size
    raise ValueError(f"no {kind.decode()} box")


# --- what is lost -------------------------------------------------------------------------------

# Output types whose container keeps the static metadata (see CONTAINERS).
CONTAINER_SUFFIXES = (".mkv", ".webm", ".mp4", ".m4v", ".mov")


def losses(hdr: Hdr, codec: str | None, suffix: str) -> list[str]:
    """One line per part of `hdr` that an output of type `suffix` written by encoder `codec`
    (None: pictures, no encoder's bitstream) cannot keep."""
    lines = []
    bitstream = codec is not None and in_bitstream(codec)
    if hdr.static and suffix.lower() not in CONTAINER_SUFFIXES and not bitstream:
        where = f"{suffix} with {codec}" if codec else f"{suffix} outputs"
        lines.append(f"HDR10 mastering-display and light-level metadata cannot go into {where}: dropped")
    elif hdr.static and codec and not bitstream and av.Codec(codec, "w").canonical_name in _CODECS_WITH_SEI:
        lines.append(f"{codec} cannot write HDR10 mastering-display and light-level metadata into the video: "
                     f"kept in the {suffix} container only")
    if hdr.dynamic:
        lines.append(f"{' and '.join(hdr.dynamic)} cannot be carried: dropped")
    return lines


def warn_losses(path: Path, color: ColorInfo, codec: str | None, suffix: str,
                warn: Callable[[str], None]) -> None:
    """Say in one line each what of `path`'s HDR metadata the output will not keep."""
    found = read(path, color)
    for line in losses(found, codec, suffix) if found else ():
        warn(f"warning: {path}: {line}")
