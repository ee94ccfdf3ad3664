"""Photo metadata carried from input files to outputs: EXIF, ICC profile, XMP, DPI.

FFmpeg decodes pixels but drops most of this, so it is read from, and
written into, the file structure directly: JPEG segments, PNG chunks,
WebP RIFF chunks, TIFF directories (`tiff_meta`) and AVIF boxes
(`avif_meta`). The DPI stays the source's, as image editors keep it on a
resample (the print grows with the pixels). EXIF orientation is applied to the pixels (see
`upright`) and reset to 1 in the copied EXIF, so it is never applied twice.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, replace

import numpy as np

from vidscale.media import avif_meta, tiff_meta
from vidscale.media.limits import inflate

EXIF_HEADER = b"Exif\x00\x00"
XMP_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"
ICC_HEADER = b"ICC_PROFILE\x00"
JFIF_HEADER = b"JFIF\x00"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ORIENTATION_TAG = 0x0112
_MAX_SEGMENT = 65533  # JPEG segment payload limit (length field counts itself)


@dataclass(frozen=True)
class PhotoMeta:
    exif: bytes | None = None  # a TIFF structure ("II*\0..." or "MM\0*...")
    icc: bytes | None = None
    xmp: bytes | None = None
    jpeg_quality: int | None = None  # estimated from a JPEG's quantisation table
    dpi: tuple[float, float] | None = None  # horizontal and vertical dots per inch

    @property
    def orientation(self) -> int:
        return exif_orientation(self.exif) if self.exif else 1

    def any(self) -> bool:
        return bool(self.exif or self.icc or self.xmp or self.dpi)


def read_meta(data: bytes) -> PhotoMeta:
    """Metadata of an encoded JPEG, PNG, WebP, TIFF or AVIF file (empty for other types).

    Compressed chunks that inflate past `limits.MAX_INFLATED_BYTES` raise VidscaleError.
    """
    try:
        if data.startswith(b"\xff\xd8"):
            return _with_exif_dpi(_jpeg_meta(data))
        if data.startswith(PNG_SIGNATURE):
            return _png_meta(data)
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return _with_exif_dpi(_webp_meta(data))
        if data[:4] in (b"II*\x00", b"MM\x00*"):
            return _tiff_meta(data)
        if data[4:8] == b"ftyp" and data[8:12] in (b"avif", b"avis", b"mif1"):
            return _avif_meta(data)
    except (struct.error, IndexError, zlib.error, ValueError):
        pass  # malformed metadata is dropped, the picture itself still decodes
    return PhotoMeta()


def _with_exif_dpi(meta: PhotoMeta) -> PhotoMeta:
    """The EXIF resolution where the file structure gave none (a WebP, a JPEG without JFIF density)."""
    if meta.dpi or not meta.exif:
        return meta
    try:
        return replace(meta, dpi=tiff_meta.dpi_of(tiff_meta.read_ifd(meta.exif)))
    except (struct.error, ValueError):
        return meta


def write_meta(data: bytes, meta: PhotoMeta) -> bytes:
    """Insert `meta` into an encoded file written by our encoders.

    PNG and TIFF always pass through: FFmpeg writes their resolution as 0
    (from an unset sample aspect), which is replaced or removed.
    """
    if data.startswith(PNG_SIGNATURE):
        return _png_insert(data, meta)
    if data[:4] == b"II*\x00":
        return tiff_meta.insert_into_tiff(data, meta.dpi, meta.icc, meta.xmp, meta.exif)
    if not meta.any():
        return data
    if data.startswith(b"\xff\xd8"):
        return _jpeg_insert(data, meta)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp_insert(data, replace(meta, exif=exif_with_dpi(meta.exif, meta.dpi)))
    if data[4:12] == b"ftypavif":
        return avif_meta.insert_into_avif(data, meta.icc, meta.exif, meta.xmp)
    return data


def carries_meta(suffix: str) -> bool:
    return suffix.lower() in (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".avif")


def exif_with_dpi(exif: bytes | None, dpi: tuple[float, float] | None) -> bytes | None:
    """EXIF that states `dpi`: for formats whose only resolution field is EXIF's (WebP).

    EXIF that already has a resolution is the source's own and is kept as it is.
    """
    if dpi is None:
        return exif
    try:
        if exif and tiff_meta.value(tiff_meta.read_ifd(exif), tiff_meta.X_RESOLUTION):
            return exif
        parsed = tiff_meta.parse_exif(exif, whole=True) if exif else tiff_meta.Exif([], [], [])
    except (struct.error, ValueError):
        return exif  # unreadable EXIF: carried as it was
    return tiff_meta.exif_blob(parsed, tiff_meta.dpi_entries(dpi))


def _avif_meta(data: bytes) -> PhotoMeta:
    """ICC, EXIF and XMP of an AVIF file. HEIF orients with its own boxes (FFmpeg's business),
    never with EXIF's tag, so that tag is reset to 1."""
    try:
        icc, exif, xmp = avif_meta.read_avif_meta(data)
    except KeyError:  # a box HEIF requires is missing
        return PhotoMeta()
    return _with_exif_dpi(without_orientation(PhotoMeta(exif, icc, xmp)))


def _tiff_meta(data: bytes) -> PhotoMeta:
    """DPI, ICC, XMP and the EXIF tags of a TIFF file (orientation is not read: FFmpeg's business)."""
    entries = tiff_meta.read_ifd(data)
    parts = tiff_meta.parse_exif(data)
    exif = tiff_meta.exif_blob(parts) if parts.ifd0 or parts.exif or parts.gps else None

    def raw(tag: int) -> bytes | None:
        return next((e.data for e in entries if e.tag == tag), None)

    return PhotoMeta(exif, raw(tiff_meta.ICC_TAG), raw(tiff_meta.XMP_TAG), dpi=tiff_meta.dpi_of(entries))


# -- orientation -------------------------------------------------------------


def exif_orientation(tiff: bytes) -> int:
    entry = _orientation_entry(tiff)
    if entry is None:
        return 1
    order = "<" if tiff[:2] == b"II" else ">"
    value = struct.unpack_from(order + "H", tiff, entry + 8)[0]
    return value if 1 <= value <= 8 else 1


def without_orientation(meta: PhotoMeta) -> PhotoMeta:
    """The same metadata with EXIF orientation set to 1 (pixels are upright)."""
    if not meta.exif or (entry := _orientation_entry(meta.exif)) is None:
        return meta
    order = "<" if meta.exif[:2] == b"II" else ">"
    tiff = bytearray(meta.exif)
    struct.pack_into(order + "H", tiff, entry + 8, 1)
    return replace(meta, exif=bytes(tiff))


def upright(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1-8) to HxW(xC) pixels."""
    ops = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.swapaxes(0, 1),
        6: lambda a: np.rot90(a, k=-1),
        7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
        8: lambda a: np.rot90(a, k=1),
    }
    op = ops.get(orientation)
    return np.ascontiguousarray(op(pixels)) if op else pixels


def _orientation_entry(tiff: bytes) -> int | None:
    """Offset of the orientation entry in IFD0, if any."""
    if len(tiff) < 8 or tiff[:2] not in (b"II", b"MM"):
        return None
    order = "<" if tiff[:2] == b"II" else ">"
    (ifd,) = struct.unpack_from(order + "I", tiff, 4)
    (count,) = struct.unpack_from(order + "H", tiff, ifd)
    for i in range(count):
        entry = ifd + 2 + 12 * i
        tag, kind = struct.unpack_from(order + "HH", tiff, entry)
        if tag == ORIENTATION_TAG and kind == 3:  # SHORT
            return entry
    return None


# -- JPEG ----------------------------------------------------------------------


def _jpeg_segments(data: bytes) -> list[tuple[int, int, int]]:
    """(marker, payload start, payload end) of the header segments before the scan."""
    segments, pos = [], 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        (length,) = struct.unpack_from(">H", data, pos + 2)
        segments.append((marker, pos + 4, pos + 2 + length))
        if marker == 0xDA:  # start of scan: entropy-coded data follows
            break
        pos += 2 + length
    return segments


def _jpeg_meta(data: bytes) -> PhotoMeta:
    exif = xmp = dpi = None
    icc_parts: dict[int, bytes] = {}
    quality = None
    for marker, start, end in _jpeg_segments(data):
        body = data[start:end]
        if marker == 0xE1 and body.startswith(EXIF_HEADER):
            exif = body[len(EXIF_HEADER):]
        elif marker == 0xE1 and body.startswith(XMP_HEADER):
            xmp = body[len(XMP_HEADER):]
        elif marker == 0xE2 and body.startswith(ICC_HEADER):
            icc_parts[body[len(ICC_HEADER)]] = body[len(ICC_HEADER) + 2:]
        elif marker == 0xDB and quality is None:
            quality = _estimate_jpeg_quality(body)
        elif marker == 0xE0 and body.startswith(JFIF_HEADER):
            dpi = _jfif_dpi(body)
    icc = b"".join(icc_parts[k] for k in sorted(icc_parts)) or None
    return PhotoMeta(exif, icc, xmp, quality, dpi)


def _jfif_dpi(app0: bytes) -> tuple[float, float] | None:
    unit, x, y = struct.unpack_from(">BHH", app0, len(JFIF_HEADER) + 2)
    per_inch = {1: 1.0, 2: 2.54}.get(unit)  # 0: aspect ratio only
    return (x * per_inch, y * per_inch) if per_inch and x and y else None


def _jfif(dpi: tuple[float, float]) -> bytes:
    """A JFIF 1.02 APP0 body stating `dpi`, without thumbnail."""
    x, y = (min(max(round(d), 1), 0xFFFF) for d in dpi)
    return JFIF_HEADER + struct.pack(">BBBHHBB", 1, 2, 1, x, y, 0, 0)


# The IJG (libjpeg) luminance table at quality 50, in zigzag order as stored.
_IJG_LUMA = np.array([
    16, 11, 12, 14, 12, 10, 16, 14, 13, 14, 18, 17, 16, 19, 24, 40, 26, 24, 22, 22, 24, 49, 35, 37,
    29, 40, 58, 51, 61, 60, 57, 51, 56, 55, 64, 72, 92, 78, 64, 68, 87, 69, 55, 56, 80, 109, 81, 87,
    95, 98, 103, 104, 103, 62, 77, 113, 121, 112, 100, 120, 92, 101, 103, 99], dtype=np.float64)


def _estimate_jpeg_quality(dqt: bytes) -> int | None:
    """IJG quality whose luminance table is closest to the file's first table."""
    precision, table_id = dqt[0] >> 4, dqt[0] & 0x0F
    if table_id != 0:
        return None
    table = np.frombuffer(dqt[1:1 + 64 * (precision + 1)], dtype=">u2" if precision else np.uint8)
    scale = float(np.mean(table.astype(np.float64) / _IJG_LUMA)) * 100  # IJG scale percent
    quality = (200 - scale) / 2 if scale <= 100 else 5000 / scale
    return int(min(max(round(quality), 1), 100))


def _jpeg_segment(marker: int, body: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(body) + 2) + body


def _jpeg_insert(data: bytes, meta: PhotoMeta) -> bytes:
    extra = b""
    if meta.exif:
        extra += _jpeg_segment(0xE1, EXIF_HEADER + meta.exif)
    if meta.xmp:
        extra += _jpeg_segment(0xE1, XMP_HEADER + meta.xmp)
    if meta.icc:
        room = _MAX_SEGMENT - len(ICC_HEADER) - 2
        chunks = [meta.icc[i:i + room] for i in range(0, len(meta.icc), room)]
        for n, chunk in enumerate(chunks, start=1):
            extra += _jpeg_segment(0xE2, ICC_HEADER + bytes([n, len(chunks)]) + chunk)
    # after SOI and a leading JFIF APP0, where readers expect APPn segments
    pos = 2
    segments = _jpeg_segments(data)
    if segments and segments[0][0] == 0xE0:
        pos = segments[0][2]
    head = data[:pos]
    if meta.dpi:  # a JFIF APP0 carries the density; it comes first (FFmpeg writes none)
        head = b"\xff\xd8" + _jpeg_segment(0xE0, _jfif(meta.dpi))
    return head + extra + data[pos:]


# -- PNG -----------------------------------------------------------------------


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes, int, int]]:
    """(type, body, chunk start, chunk end) for each chunk."""
    chunks, pos = [], len(PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        end = pos + 12 + length
        chunks.append((kind, data[pos + 8:pos + 8 + length], pos, end))
        if kind == b"IEND":
            break
        pos = end
    return chunks


def _png_meta(data: bytes) -> PhotoMeta:
    exif = icc = xmp = dpi = None
    for kind, body, _, _ in _png_chunks(data):
        if kind == b"eXIf":
            exif = body[len(EXIF_HEADER):] if body.startswith(EXIF_HEADER) else body
        elif kind == b"iCCP":
            name_end = body.index(b"\x00")
            icc = inflate(body[name_end + 2:], "its PNG iCCP chunk")
        elif kind == b"iTXt" and body.startswith(b"XML:com.adobe.xmp\x00"):
            xmp = _itxt_text(body)
        elif kind == b"pHYs":
            x, y, unit = struct.unpack(">IIB", body[:9])
            dpi = (x * _INCH_M, y * _INCH_M) if unit == 1 and x and y else None  # 0: aspect only
    return PhotoMeta(exif, icc, xmp, dpi=dpi)


_INCH_M = 0.0254  # pHYs counts pixels per metre


def _itxt_text(body: bytes) -> bytes:
    keyword_end = body.index(b"\x00")
    compressed = body[keyword_end + 1]
    rest = body[keyword_end + 3:]
    rest = rest[rest.index(b"\x00") + 1:]  # language tag
    rest = rest[rest.index(b"\x00") + 1:]  # translated keyword
    return inflate(rest, "its PNG iTXt chunk") if compressed else rest


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_insert(data: bytes, meta: PhotoMeta) -> bytes:
    chunks = _png_chunks(data)
    extra = b""
    if meta.icc:
        extra += _png_chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(meta.icc))
    if meta.exif:
        extra += _png_chunk(b"eXIf", meta.exif)
    if meta.xmp:
        extra += _png_chunk(b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + meta.xmp)
    if meta.dpi:
        ppm = [round(d / _INCH_M) for d in meta.dpi]
        extra += _png_chunk(b"pHYs", struct.pack(">IIB", *ppm, 1))
    # an embedded profile overrides the encoder's colour chunks (PNG forbids sRGB with iCCP);
    # the encoder's pHYs says 0x0 without a sample aspect: replaced, or gone
    dropped = {b"sRGB", b"iCCP", b"gAMA", b"cHRM"} if meta.icc else set()
    dropped.add(b"pHYs")
    out = bytearray(data[:len(PNG_SIGNATURE)])
    for kind, _, start, end in chunks:
        if kind in dropped:
            continue
        out += data[start:end]
        if kind == b"IHDR":
            out += extra
    return bytes(out)


# -- WebP ----------------------------------------------------------------------

_VP8X_ICC, _VP8X_ALPHA, _VP8X_EXIF, _VP8X_XMP = 0x20, 0x10, 0x08, 0x04


def _webp_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    chunks, pos = [], 12
    while pos + 8 <= len(data):
        kind, length = struct.unpack_from("<4sI", data, pos)
        chunks.append((kind, data[pos + 8:pos + 8 + length]))
        pos += 8 + length + (length & 1)
    return chunks


def _webp_meta(data: bytes) -> PhotoMeta:
    found = dict(_webp_chunks(data))
    exif = found.get(b"EXIF")
    if exif and exif.startswith(EXIF_HEADER):
        exif = exif[len(EXIF_HEADER):]
    return PhotoMeta(exif, found.get(b"ICCP"), found.get(b"XMP "))


def _webp_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack("<4sI", kind, len(body)) + body + (b"\x00" if len(body) & 1 else b"")


def _webp_insert(data: bytes, meta: PhotoMeta) -> bytes:
    chunks = [(k, b) for k, b in _webp_chunks(data) if k not in (b"ICCP", b"EXIF", b"XMP ")]
    vp8x = next((b for k, b in chunks if k == b"VP8X"), None)
    image = [(k, b) for k, b in chunks if k != b"VP8X"]
    flags = vp8x[0] if vp8x else 0
    if any(k == b"ALPH" for k, _ in image) or any(k == b"VP8L" and b[4] & 0x10 for k, b in image):
        flags |= _VP8X_ALPHA
    flags |= (_VP8X_ICC if meta.icc else 0) | (_VP8X_EXIF if meta.exif else 0) | (_VP8X_XMP if meta.xmp else 0)
    canvas = vp8x[4:10] if vp8x else _webp_canvas(image)
    body = _webp_chunk(b"VP8X", bytes([flags, 0, 0, 0]) + canvas)
    if meta.icc:
        body += _webp_chunk(b"ICCP", meta.icc)
    body += b"".join(_webp_chunk(k, b) for k, b in image)
    if meta.exif:
        body += _webp_chunk(b"EXIF", meta.exif)
    if meta.xmp:
        body += _webp_chunk(b"XMP ", meta.xmp)
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body


def _webp_canvas(image: list[tuple[bytes, bytes]]) -> bytes:
    """Canvas width-1 and height-1 (24 bits each) from the VP8/VP8L bitstream header."""
    for kind, body in image:
        if kind == b"VP8 ":
            w, h = struct.unpack_from("<HH", body, 6)
            w, h = w & 0x3FFF, h & 0x3FFF
            break
        if kind == b"VP8L":
            bits = int.from_bytes(body[1:5], "little")
            w, h = (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
            break
    else:
        raise ValueError("WebP without an image chunk")
    return (w - 1).to_bytes(3, "little") + (h - 1).to_bytes(3, "little")
