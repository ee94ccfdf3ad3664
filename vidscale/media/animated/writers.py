"""The three animation writers: APNG and GIF through FFmpeg's muxers, WebP through
`libwebp_anim`, which returns the whole file as one packet. The muxers derive every delay
but the last from the frames' times, so the last frame's duration is set afterwards
(packet duration for GIF, the last fcTL/ANMF chunk for APNG/WebP)."""

from __future__ import annotations

import contextlib
import struct
import zlib
from fractions import Fraction
from pathlib import Path
from typing import Protocol

import av
import numpy as np

from vidscale.errors import VidscaleError
from vidscale.media.animated.formats import NDARRAY_FORMATS, reason
from vidscale.media.animated.gif_palette import GifQuantizer


class Writer(Protocol):
    def write(self, pixels: np.ndarray, pts: int) -> None: ...
    def finish(self, last_duration: int) -> None: ...
    def abort(self) -> None: ...


def open_writer(fmt: str, path: Path, size: tuple[int, int], time_base: Fraction, plays: int, quality: int,
                first: np.ndarray) -> Writer:
    """The writer for `fmt` ("apng", "webp", "gif"); `first`: the first frame's pixels, which set the
    layout (APNG) or whether alpha is kept (WebP)."""
    height, width = size
    if fmt == "gif":
        return _GifWriter(path, width, height, time_base, plays)
    if fmt == "webp":
        return _WebpWriter(path, width, height, time_base, plays, quality, alpha=first.shape[2] == 4)
    return _ApngWriter(path, width, height, time_base, plays, first)


class _MuxWriter:
    """One encoder into one muxer. The newest packet is held back: only at the
    end is it known to be the last, whose duration the muxer may need."""

    def __init__(self, path: Path, muxer: str, codec: str, pix_fmt: str, width: int, height: int,
                 time_base: Fraction, muxer_options: dict[str, str], codec_options: dict[str, str]):
        self.path = path
        self.fh = open(path, "wb")  # a file object: no pattern or protocol reading of the name
        try:
            self.container = av.open(self.fh, "w", format=muxer, options=muxer_options)
        except av.error.FFmpegError:
            self.fh.close()
            raise
        self.stream = self.container.add_stream(codec, options=codec_options)
        self.stream.width, self.stream.height, self.stream.pix_fmt = width, height, pix_fmt
        self.stream.time_base = self.stream.codec_context.time_base = time_base
        self.time_base = time_base
        self.held: av.Packet | None = None

    def encode(self, frame: av.VideoFrame, pts: int) -> None:
        frame.pts, frame.time_base = pts, self.time_base
        self._mux(self.stream.encode(frame))

    def _mux(self, packets: list[av.Packet]) -> None:
        for packet in packets:
            if self.held is not None:
                self.container.mux(self.held)
            self.held = packet

    def finish(self, last_duration: int) -> None:
        try:
            self._mux(self.stream.encode(None))
            if self.held is not None:
                self.held.duration = round(last_duration * self.time_base / self.held.time_base)
                self.container.mux(self.held)
            self.container.close()
        except av.error.FFmpegError as exc:
            raise VidscaleError(f"{self.path}: cannot write animation ({reason(exc)})") from None
        finally:
            self.fh.close()

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self.container.close()
        self.fh.close()


class _ApngWriter(_MuxWriter):
    def __init__(self, path: Path, width: int, height: int, time_base: Fraction, plays: int,
                 first: np.ndarray):
        self.layout = ({1: "gray", 3: "rgb", 4: "rgba"}[first.shape[2]], first.dtype == np.uint16)
        # PNG stores big-endian samples; swscale swaps from our little-endian arrays.
        pix_fmt = {("gray", False): "gray", ("gray", True): "gray16be", ("rgb", False): "rgb24",
                   ("rgb", True): "rgb48be", ("rgba", False): "rgba", ("rgba", True): "rgba64be"}[self.layout]
        super().__init__(path, "apng", "apng", pix_fmt, width, height, time_base,
                         {"plays": str(plays)}, {"pred": "mixed"})

    def write(self, pixels: np.ndarray, pts: int) -> None:
        pixels = _fit(pixels, *self.layout)
        data = pixels[..., 0] if pixels.shape[2] == 1 else pixels
        fmt = NDARRAY_FORMATS[self.layout]
        self.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(data), format=fmt), pts)

    def finish(self, last_duration: int) -> None:
        super().finish(last_duration)
        # The muxer gives the last frame the delay before it: write the real one.
        _set_last_apng_delay(self.path, last_duration * self.time_base)


class _GifWriter(_MuxWriter):
    def __init__(self, path: Path, width: int, height: int, time_base: Fraction, plays: int):
        # The GIF loop field counts repeats after the first play; -1 writes none (one play).
        loop = 0 if plays == 0 else -1 if plays == 1 else plays - 1
        super().__init__(path, "gif", "gif", "pal8", width, height, time_base, {"loop": str(loop)}, {})
        self.quantize = GifQuantizer()

    def write(self, pixels: np.ndarray, pts: int) -> None:
        indices, palette = self.quantize(_fit(pixels, "rgba" if pixels.shape[2] == 4 else "rgb", False))
        self.encode(av.VideoFrame.from_ndarray((indices, palette), format="pal8"), pts)


class _WebpWriter:
    """libwebp's animation encoder hands back the finished file as one packet,
    so no muxer is involved: the bytes are patched and written here."""

    def __init__(self, path: Path, width: int, height: int, time_base: Fraction, plays: int,
                 quality: int, alpha: bool):
        self.path, self.plays, self.time_base = path, plays, time_base
        self.alpha = alpha
        self.codec = av.CodecContext.create("libwebp_anim", "w")
        self.codec.width, self.codec.height, self.codec.time_base = width, height, time_base
        if quality == 100:  # lossless needs RGB(A) input: from YUV it is far from exact
            self.codec.pix_fmt, self.codec.options = "bgra", {"lossless": "1"}
        else:
            self.codec.pix_fmt = "yuva420p" if alpha else "yuv420p"
            self.codec.options = {"quality": str(quality)}
        self.packets: list[av.Packet] = []

    def write(self, pixels: np.ndarray, pts: int) -> None:
        layout = "rgba" if self.alpha else "rgb"
        pixels = _fit(pixels, layout, False)
        frame = av.VideoFrame.from_ndarray(pixels, format=NDARRAY_FORMATS[(layout, False)])
        frame.pts, frame.time_base = pts, self.time_base
        self.packets += self.codec.encode(frame)

    def finish(self, last_duration: int) -> None:
        try:
            self.packets += self.codec.encode(None)
        except av.error.FFmpegError as exc:
            raise VidscaleError(f"{self.path}: cannot write animation ({reason(exc)})") from None
        data = b"".join(bytes(p) for p in self.packets)
        last_ms = max(1, round(last_duration * self.time_base * 1000))
        try:
            self.path.write_bytes(_patch_webp(data, last_ms, self.plays))
        except OSError as exc:
            raise VidscaleError(f"{self.path}: cannot write file: {exc.strerror or exc}") from None

    def abort(self) -> None:
        self.packets.clear()


def _fit(pixels: np.ndarray, layout: str, deep: bool) -> np.ndarray:
    """Pixels in `layout` (gray, rgb, rgba) at 8 or 16 bits."""
    if pixels.dtype == np.uint16 and not deep:
        pixels = ((pixels.astype(np.uint32) + 128) // 257).astype(np.uint8)  # round, don't truncate
    elif pixels.dtype == np.uint8 and deep:
        pixels = pixels.astype(np.uint16) * 257
    channels = pixels.shape[2]
    if layout == "gray":
        return pixels if channels == 1 else pixels[..., :1]  # only gray sources ask for gray
    rgb = np.repeat(pixels, 3, axis=2) if channels == 1 else pixels[..., :3]
    if layout == "rgb":
        return np.ascontiguousarray(rgb)
    alpha = pixels[..., 3:] if channels == 4 else np.full(rgb.shape[:2] + (1,), np.iinfo(rgb.dtype).max,
                                                          rgb.dtype)
    return np.ascontiguousarray(np.concatenate([rgb, alpha], axis=2))



# --------------------------------------------------------------------------
# Timing fixes in the written files


def _set_last_apng_delay(path: Path, seconds: Fraction) -> None:
    """Rewrite the delay of the last fcTL chunk (u16/u16 seconds) and its CRC."""
    delay = Fraction(seconds).limit_denominator(0xFFFF)
    num, den = min(delay.numerator, 0xFFFF), max(delay.denominator, 1)
    with open(path, "r+b") as fh:
        last = None
        pos = 8
        while True:
            fh.seek(pos)
            head = fh.read(8)
            if len(head) < 8:
                break
            length, kind = struct.unpack(">I4s", head)
            if kind == b"fcTL":
                last = pos
            if kind == b"IEND":
                break
            pos += 12 + length
        if last is None:
            return
        fh.seek(last + 8)
        data = bytearray(fh.read(26))
        data[20:24] = struct.pack(">HH", num, den)
        fh.seek(last + 8)
        fh.write(bytes(data) + struct.pack(">I", zlib.crc32(b"fcTL" + bytes(data))))


def _patch_webp(data: bytes, last_ms: int, plays: int) -> bytes:
    """Set the loop count (ANIM) and the last frame's duration (ANMF) of an animated WebP."""
    out = bytearray(data)
    pos, last = 12, None
    while pos + 8 <= len(out):
        kind, size = struct.unpack_from("<4sI", out, pos)
        if kind == b"ANIM":
            struct.pack_into("<H", out, pos + 12, min(plays, 0xFFFF))
        elif kind == b"ANMF":
            last = pos
        pos += 8 + size + (size & 1)
    if last is not None:  # duration: 24 bits after offsets and size
        out[last + 20:last + 23] = min(last_ms, 0xFFFFFF).to_bytes(3, "little")
    return bytes(out)

