"""ICC profile, EXIF and XMP written into the AVIF files our encoder makes (HEIF boxes).

FFmpeg's AVIF muxer writes one image item and an nclx colour box. An ICC
profile becomes a second `colr` property (type `prof`) of that item; EXIF and
XMP become metadata items (`Exif`, and `mime` with type application/rdf+xml)
that describe it (`iref` `cdsc`), their bytes in an `mdat` box at the end.
The `meta` box grows, so the file offsets in `iloc` move by as much.
"""

from __future__ import annotations

import struct

_MAX_BOXES = 1024  # a bound for malformed input


def _boxes(data: bytes, start: int, end: int) -> list[tuple[bytes, bytes]]:
    """(type, whole box) for the boxes between start and end (32-bit sizes, as FFmpeg writes)."""
    boxes, pos = [], start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        if size < 8 or pos + size > end or len(boxes) > _MAX_BOXES:
            raise ValueError("malformed box structure")
        boxes.append((kind, data[pos:pos + size]))
        pos += size
    return boxes


def _box(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(body), kind) + body


def _full_box(kind: bytes, version: int, body: bytes) -> bytes:
    return _box(kind, bytes([version, 0, 0, 0]) + body)


def insert_into_avif(data: bytes, icc: bytes | None, exif: bytes | None, xmp: bytes | None) -> bytes:
    top = _boxes(data, 0, len(data))
    kinds = [k for k, _ in top]
    if kinds.count(b"meta") != 1 or b"mdat" not in kinds or kinds.index(b"meta") > kinds.index(b"mdat"):
        raise ValueError("unexpected AVIF layout")
    meta = dict(top)[b"meta"]
    children = _boxes(meta, 12, len(meta))  # after the full box header
    parts = dict(children)
    primary = struct.unpack_from(">H", parts[b"pitm"], 12)[0]
    items = _items(exif, xmp, primary)
    new_children = []
    for kind, box in children:
        if kind == b"iprp" and icc:
            box = _with_icc(box, icc, primary)
        elif kind == b"iinf" and items:
            box = _with_infe(box, items)
        new_children.append((kind, box))
    if items:
        new_children.append((b"iref", _full_box(b"iref", 0, b"".join(
            _box(b"cdsc", struct.pack(">HHH", item_id, 1, primary)) for item_id, _, _ in items))))
    # iloc last: its extents move by however much meta grows
    iloc, locations = parts[b"iloc"], [(item_id, payload) for item_id, _, payload in items]
    others = sum(len(box) for kind, box in new_children if kind != b"iloc")
    shift = 12 + others + len(_with_locations(iloc, 0, locations, 0)) - len(meta)
    tail = len(data) + shift + 8  # the metadata items' bytes: in a final mdat
    new_iloc = _with_locations(iloc, shift, locations, tail)
    new_meta = _full_box(b"meta", 0, b"".join(new_iloc if kind == b"iloc" else box
                                              for kind, box in new_children))
    out = b"".join(new_meta if kind == b"meta" else box for kind, box in top)
    if items:
        out += _box(b"mdat", b"".join(payload for _, _, payload in items))
    return out


def _items(exif: bytes | None, xmp: bytes | None, primary: int) -> list[tuple[int, bytes, bytes]]:
    """(item id, infe box, payload) for each metadata item."""
    items, next_id = [], primary + 1
    if exif:
        # the payload starts with the offset of the TIFF header after this field
        infe = _full_box(b"infe", 2, struct.pack(">HH4s", next_id, 0, b"Exif") + b"\x00")
        items.append((next_id, infe, struct.pack(">I", 0) + exif))
        next_id += 1
    if xmp:
        infe = _full_box(b"infe", 2, struct.pack(">HH4s", next_id, 0, b"mime") + b"\x00"
                         + b"application/rdf+xml\x00")
        items.append((next_id, infe, xmp))
    return items


def _with_infe(iinf: bytes, items: list[tuple[int, bytes, bytes]]) -> bytes:
    if iinf[8] != 0:
        raise ValueError("unexpected iinf version")
    count = struct.unpack_from(">H", iinf, 12)[0]
    body = struct.pack(">H", count + len(items)) + iinf[14:] + b"".join(infe for _, infe, _ in items)
    return _full_box(b"iinf", 0, body)


def _with_icc(iprp: bytes, icc: bytes, primary: int) -> bytes:
    parts = dict(_boxes(iprp, 8, len(iprp)))
    ipco, ipma = parts[b"ipco"], parts[b"ipma"]
    index = len(_boxes(ipco, 8, len(ipco))) + 1  # properties are numbered from 1
    ipco = _box(b"ipco", ipco[8:] + _box(b"colr", b"prof" + icc))
    return _box(b"iprp", ipco + _ipma_with(ipma, primary, index))


def _ipma_with(ipma: bytes, item: int, prop: int) -> bytes:
    """ipma with property `prop` associated (not essential) with `item`."""
    version, flags = ipma[8], ipma[11]
    if version != 0 or prop > 0x7F:
        raise ValueError("unexpected ipma layout")
    wide = flags & 1
    (count,) = struct.unpack_from(">I", ipma, 12)
    step = 2 if wide else 1
    pos, body = 16, bytearray(struct.pack(">I", count))
    for _ in range(count):
        item_id, n = struct.unpack_from(">HB", ipma, pos)
        assoc = ipma[pos + 3:pos + 3 + n * step]
        pos += 3 + n * step
        if item_id == item:
            assoc += struct.pack(">H", prop) if wide else bytes([prop])
        body += struct.pack(">HB", item_id, len(assoc) // step) + assoc
    return _box(b"ipma", bytes([version, 0, 0, flags]) + bytes(body))


def _with_locations(iloc: bytes, shift: int, new: list[tuple[int, bytes]], tail: int) -> bytes:
    """iloc (version 0 or 1, 4-byte offsets and lengths) with every extent moved by `shift`
    and one extent per new item at `tail` onwards."""
    version = iloc[8]
    sizes, base_index = iloc[12], iloc[13]
    offset_size, length_size, base_size = sizes >> 4, sizes & 0xF, base_index >> 4
    index_size = base_index & 0xF if version == 1 else 0
    if version not in (0, 1) or (offset_size, length_size, base_size, index_size) != (4, 4, 0, 0):
        raise ValueError("unexpected iloc layout")
    (count,) = struct.unpack_from(">H", iloc, 14)
    pos, body = 16, bytearray(struct.pack(">H", count + len(new)))
    for _ in range(count):
        method = struct.unpack_from(">H", iloc, pos + 2)[0] & 0xF if version == 1 else 0
        head_len = 4 if version == 1 else 2
        head = iloc[pos:pos + 2 + head_len]  # item id, [construction method], data reference
        (extents,) = struct.unpack_from(">H", iloc, pos + 2 + head_len)
        body += head + struct.pack(">H", extents)
        pos += 4 + head_len
        for _ in range(extents):
            offset, length = struct.unpack_from(">II", iloc, pos)
            body += struct.pack(">II", offset + shift if method == 0 else offset, length)
            pos += 8
    for item_id, payload in new:
        body += struct.pack(">HH", item_id, 0) + (b"\x00\x00" if version == 1 else b"")
        body += struct.pack(">HII", 1, tail, len(payload))
        tail += len(payload)
    return _full_box(b"iloc", version, bytes([sizes, base_index]) + bytes(body))
