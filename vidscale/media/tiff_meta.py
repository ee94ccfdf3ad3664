"""TIFF directories (IFDs): metadata read from TIFF files and EXIF blobs, and written into TIFFs.

EXIF is itself a TIFF structure, so one reader and one writer serve both:
the DPI, ICC profile, XMP and EXIF tags of a TIFF input, and those of our
TIFF outputs (FFmpeg's encoder writes none of them). Entries are held in
little-endian byte order whatever the source's, and written little-endian.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

# bytes per value of each TIFF field type (BYTE, ASCII, SHORT, LONG, RATIONAL, SBYTE,
# UNDEFINED, SSHORT, SLONG, SRATIONAL, FLOAT, DOUBLE, IFD)
_ITEM = {1: ("B", 1), 2: ("B", 1), 3: ("H", 1), 4: ("I", 1), 5: ("I", 2), 6: ("b", 1), 7: ("B", 1),
         8: ("h", 1), 9: ("i", 1), 10: ("i", 2), 11: ("f", 1), 12: ("d", 1), 13: ("I", 1)}
SHORT, LONG, RATIONAL, UNDEFINED, BYTE = 3, 4, 5, 7, 1

X_RESOLUTION, Y_RESOLUTION, RESOLUTION_UNIT = 282, 283, 296
XMP_TAG, ICC_TAG, EXIF_IFD, GPS_IFD, INTEROP_IFD = 700, 34675, 34665, 34853, 40965
SOFTWARE = 305
# IFD0 tags of an EXIF blob that describe the photo rather than the file's layout
DESCRIPTIVE = (270, 271, 272, 305, 306, 315, 33432)
_MAX_ENTRIES = 4096  # more than any real directory; a bound for malformed files


@dataclass(frozen=True)
class Entry:
    tag: int
    kind: int
    count: int
    data: bytes  # the values, little-endian


def read_ifd(tiff: bytes, offset: int | None = None) -> list[Entry]:
    """The entries of the directory at `offset` (default: IFD0) of a TIFF structure."""
    order = _order(tiff)
    if offset is None:
        (offset,) = struct.unpack_from(order + "I", tiff, 4)
    (count,) = struct.unpack_from(order + "H", tiff, offset)
    if count > _MAX_ENTRIES:
        raise ValueError("TIFF directory too large")
    entries = []
    for i in range(count):
        tag, kind, n = struct.unpack_from(order + "HHI", tiff, offset + 2 + 12 * i)
        if kind not in _ITEM:
            continue  # a type we do not know: its size is unknown, skip it
        code, per = _ITEM[kind]
        size = n * per * struct.calcsize(code)
        field = offset + 2 + 12 * i + 8
        start = field if size <= 4 else struct.unpack_from(order + "I", tiff, field)[0]
        if start + size > len(tiff):
            raise ValueError("TIFF entry points past the end of the data")
        values = struct.unpack_from(f"{order}{n * per}{code}", tiff, start)
        entries.append(Entry(tag, kind, n, struct.pack(f"<{n * per}{code}", *values)))
    return entries


def _order(tiff: bytes) -> str:
    if tiff[:4] == b"II*\x00":
        return "<"
    if tiff[:4] == b"MM\x00*":
        return ">"
    raise ValueError("not a TIFF structure")


def value(entries: list[Entry], tag: int) -> tuple[int | float, ...] | None:
    """The values of `tag` (a rational as a float), or None when absent."""
    for e in entries:
        if e.tag == tag:
            code, per = _ITEM[e.kind]
            raw = struct.unpack(f"<{e.count * per}{code}", e.data)
            if per == 2:
                return tuple(a / b if b else 0.0 for a, b in zip(raw[::2], raw[1::2], strict=True))
            return raw
    return None


def dpi_of(entries: list[Entry]) -> tuple[float, float] | None:
    """X and Y resolution in dots per inch, from XResolution/YResolution/ResolutionUnit."""
    x, y, unit = value(entries, X_RESOLUTION), value(entries, Y_RESOLUTION), value(entries, RESOLUTION_UNIT)
    per_inch = {2: 1.0, 3: 2.54}.get(int(unit[0]) if unit else 2)  # 1: no unit (aspect only)
    if not x or not y or per_inch is None or x[0] <= 0 or y[0] <= 0:
        return None
    return float(x[0]) * per_inch, float(y[0]) * per_inch


def dpi_entries(dpi: tuple[float, float] | None) -> list[Entry]:
    """Resolution entries for `dpi`; None: no unit, square pixels (TIFF requires the fields)."""
    def rational(v: float) -> bytes:
        return struct.pack("<II", round(v * 1000), 1000)

    x, y, unit = (dpi[0], dpi[1], 2) if dpi else (1.0, 1.0, 1)
    return [Entry(X_RESOLUTION, RATIONAL, 1, rational(x)), Entry(Y_RESOLUTION, RATIONAL, 1, rational(y)),
            Entry(RESOLUTION_UNIT, SHORT, 1, struct.pack("<H", unit))]


# -- EXIF as directories ---------------------------------------------------------


@dataclass(frozen=True)
class Exif:
    """The parts of an EXIF blob a file can carry: descriptive IFD0 tags, Exif and GPS directories."""

    ifd0: list[Entry]
    exif: list[Entry]
    gps: list[Entry]


def parse_exif(tiff: bytes, whole: bool = False) -> Exif:
    """Split an EXIF blob (or a TIFF file's IFD0) into what can be carried elsewhere.

    IFD0 keeps its `DESCRIPTIVE` tags, or with `whole` every tag but the
    resolution, the pointers and the thumbnail's.
    """
    ifd0 = read_ifd(tiff)
    keep = (lambda tag: tag not in _LAYOUT) if whole else (lambda tag: tag in DESCRIPTIVE)
    return Exif([e for e in ifd0 if keep(e.tag)],
                _sub_ifd(tiff, ifd0, EXIF_IFD), _sub_ifd(tiff, ifd0, GPS_IFD))


_LAYOUT = frozenset({X_RESOLUTION, Y_RESOLUTION, RESOLUTION_UNIT, EXIF_IFD, GPS_IFD, INTEROP_IFD,
                     513, 514})  # 513/514: the thumbnail's offset and length


def _sub_ifd(tiff: bytes, ifd0: list[Entry], tag: int) -> list[Entry]:
    pointer = value(ifd0, tag)
    if not pointer:
        return []
    # the Interoperability directory is nested a level deeper: rarely used, dropped
    return [e for e in read_ifd(tiff, int(pointer[0])) if e.tag != INTEROP_IFD]


def exif_blob(exif: Exif, extra: list[Entry] = ()) -> bytes:
    """A little-endian EXIF blob ("II*\\0...") holding `exif` and `extra` IFD0 entries."""
    out = bytearray(b"II*\x00\x00\x00\x00\x00")
    ifd0 = write_ifd(out, [*exif.ifd0, *extra], exif)
    struct.pack_into("<I", out, 4, ifd0)
    return bytes(out)


def write_ifd(out: bytearray, entries: list[Entry], exif: Exif | None = None) -> int:
    """Append a directory (with the Exif and GPS directories it points to) to `out`; its offset."""
    entries = list(entries)
    if exif is not None:
        for tag, sub in ((EXIF_IFD, exif.exif), (GPS_IFD, exif.gps)):
            if sub:
                entries.append(Entry(tag, LONG, 1, struct.pack("<I", write_ifd(out, sub))))
    entries.sort(key=lambda e: e.tag)
    _pad(out)
    start = len(out)
    data_at = start + 2 + 12 * len(entries) + 4
    table, data = bytearray(struct.pack("<H", len(entries))), bytearray()
    for e in entries:
        table += struct.pack("<HHI", e.tag, e.kind, e.count)
        if len(e.data) <= 4:
            table += e.data.ljust(4, b"\x00")
        else:
            table += struct.pack("<I", data_at + len(data))
            data += e.data
            _pad(data)
    out += table + b"\x00\x00\x00\x00" + data  # next-directory offset 0: one image
    return start


def _pad(buf: bytearray) -> None:
    if len(buf) & 1:
        buf += b"\x00"  # values start on word boundaries


# -- our TIFF outputs ------------------------------------------------------------


def insert_into_tiff(data: bytes, dpi: tuple[float, float] | None, icc: bytes | None,
                     xmp: bytes | None, exif: bytes | None) -> bytes:
    """A TIFF written by FFmpeg with a new IFD0 appended that adds the metadata.

    Nothing already in the file moves (strip offsets stay right); the new
    directory takes the old one's entries, minus those it replaces (FFmpeg's
    resolution, which is 0 without a sample aspect).
    """
    if _order(data) != "<":
        raise ValueError("expected a little-endian TIFF")
    replaced = {X_RESOLUTION, Y_RESOLUTION, RESOLUTION_UNIT, ICC_TAG, XMP_TAG, EXIF_IFD, GPS_IFD, SOFTWARE}
    carried = parse_exif(exif) if exif else Exif([], [], [])
    taken = {e.tag for e in carried.ifd0}
    entries = [e for e in read_ifd(data) if e.tag not in replaced | taken] + carried.ifd0 + dpi_entries(dpi)
    if icc:
        entries.append(Entry(ICC_TAG, UNDEFINED, len(icc), icc))
    if xmp:
        entries.append(Entry(XMP_TAG, BYTE, len(xmp), xmp))
    out = bytearray(data)
    struct.pack_into("<I", out, 4, write_ifd(out, entries, carried))
    return bytes(out)
