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
    items = _items(exif, xmp, max(_item_ids(parts[b"iinf"])))
    new_children = []
    for kind, box in children:
        if kind == b"iprp" and icc:
            box = _with_icc(box, icc, primary)
        elif kind == b"iinf" and items:
            box = _with_infe(box, items)
        new_children.append((kind, box))
    if items:  # each metadata item describes the image
        refs = b"".join(_box(b"cdsc", struct.pack(">HHH", item_id, 1, primary)) for item_id, _, _ in items)
        if b"iref" in parts:
            if parts[b"iref"][8] != 0:
                raise ValueError("unexpected iref version")
            new_children = [(k, _full_box(b"iref", 0, b[12:] + refs) if k == b"iref" else b)
                            for k, b in new_children]
        else:
            new_children.append((b"iref", _full_box(b"iref", 0, refs)))
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


def _item_ids(iinf: bytes) -> list[int]:
    """The item ids of the infe boxes (version 2 or 3: 16-bit ids) in iinf (version 0)."""
    if iinf[8] != 0:
        raise ValueError("unexpected iinf version")
    ids = []
    for _, infe in _boxes(iinf, 14, len(iinf)):
        if infe[8] != 2:
            raise ValueError("unexpected infe version")
        ids.append(struct.unpack_from(">H", infe, 12)[0])
    return ids


def _items(exif: bytes | None, xmp: bytes | None, last_id: int) -> list[tuple[int, bytes, bytes]]:
    """(item id, infe box, payload) for each metadata item, numbered after `last_id`."""
    items, next_id = [], last_id + 1
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


# -- reading (any HEIF writer's AVIF) ----------------------------------------------


def read_avif_meta(data: bytes) -> tuple[bytes | None, bytes | None, bytes | None]:
    """(ICC profile, EXIF TIFF structure, XMP) of an AVIF file's primary image."""
    top = {kind: (start, end) for kind, start, end in _children(data, 0, len(data))}
    if b"meta" not in top:
        return None, None, None
    start, end = top[b"meta"]
    meta = {kind: data[s:e] for kind, s, e in _children(data, start + 4, end)}  # after version/flags
    primary = _read_id(meta[b"pitm"], 4, meta[b"pitm"][0])
    types = _item_types(meta[b"iinf"])
    icc = _primary_icc(meta[b"iprp"], primary)
    locations = _read_locations(meta[b"iloc"])
    idat = meta.get(b"idat", b"")

    def payload(item: int) -> bytes | None:
        parts = []
        for method, offset, length in locations.get(item, []):
            source = data if method == 0 else idat if method == 1 else b""
            if offset + length > len(source):
                raise ValueError("item extent past the end of the file")
            parts.append(source[offset:offset + length])
        return b"".join(parts) or None

    exif = xmp = None
    for item, (kind, content_type) in types.items():
        if kind == b"Exif" and (body := payload(item)) and len(body) >= 4:
            exif = body[4 + struct.unpack_from(">I", body)[0]:]  # skips to the TIFF header
        elif kind == b"mime" and content_type == b"application/rdf+xml":
            xmp = payload(item)
    return icc, exif or None, xmp


def _children(data: bytes, start: int, end: int) -> list[tuple[bytes, int, int]]:
    """(type, body start, body end) of the boxes between start and end, any size form."""
    boxes, pos = [], start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        head = 8
        if size == 1:
            (size,), head = struct.unpack_from(">Q", data, pos + 8), 16
        elif size == 0:
            size = end - pos  # to the end
        if size < head or pos + size > end or len(boxes) > _MAX_BOXES:
            raise ValueError("malformed box structure")
        boxes.append((kind, pos + head, pos + size))
        pos += size
    return boxes


def _read_id(body: bytes, pos: int, version: int) -> int:
    return struct.unpack_from(">I" if version else ">H", body, pos)[0]


def _item_types(iinf: bytes) -> dict[int, tuple[bytes, bytes | None]]:
    """item id -> (item type, MIME content type) from iinf (body without its box header)."""
    first = 8 if iinf[0] else 6  # version/flags, then a 32- or 16-bit entry count
    types = {}
    for kind, start, end in _children(iinf, first, len(iinf)):
        version = iinf[start] if kind == b"infe" else 0
        if kind != b"infe" or version < 2:
            continue
        pos = start + 4
        item = _read_id(iinf, pos, version == 3)
        pos += 4 if version == 3 else 2
        item_type = iinf[pos + 2:pos + 6]  # after the protection index
        strings = iinf[pos + 6:end].split(b"\x00")
        types[item] = (item_type, strings[1] if item_type == b"mime" and len(strings) > 1 else None)
    return types


def _primary_icc(iprp: bytes, primary: int) -> bytes | None:
    boxes = _children(iprp, 0, len(iprp))
    found = {kind: (s, e) for kind, s, e in boxes}
    if b"ipco" not in found or b"ipma" not in found:
        return None
    props = _children(iprp, *found[b"ipco"])
    s, e = found[b"ipma"]
    ipma = iprp[s:e]
    version, wide = ipma[0], ipma[3] & 1
    (count,), pos = struct.unpack_from(">I", ipma, 4), 8
    for _ in range(count):
        item = _read_id(ipma, pos, version)
        pos += 4 if version else 2
        n = ipma[pos]
        pos += 1
        for _ in range(n):
            raw = struct.unpack_from(">H", ipma, pos)[0] & 0x7FFF if wide else ipma[pos] & 0x7F
            pos += 2 if wide else 1
            if item != primary or not 0 < raw <= len(props):
                continue
            kind, ps, pe = props[raw - 1]
            if kind == b"colr" and iprp[ps:ps + 4] in (b"prof", b"rICC"):
                return iprp[ps + 4:pe]
    return None


def _read_locations(iloc: bytes) -> dict[int, list[tuple[int, int, int]]]:
    """item id -> [(construction method, offset, length)] from iloc (body without its box header)."""
    version = iloc[0]
    offset_size, length_size = iloc[4] >> 4, iloc[4] & 0xF
    base_size, index_size = iloc[5] >> 4, (iloc[5] & 0xF) if version else 0
    pos = 6
    count = _read_id(iloc, pos, version == 2)
    pos += 4 if version == 2 else 2

    def number(size: int) -> int:
        nonlocal pos
        value = int.from_bytes(iloc[pos:pos + size], "big") if size else 0
        pos += size
        return value

    found: dict[int, list[tuple[int, int, int]]] = {}
    for _ in range(count):
        if pos > len(iloc):  # a count larger than the box holds: malformed
            raise ValueError("iloc box too short")
        item = number(4 if version == 2 else 2)
        method = number(2) & 0xF if version else 0
        pos += 2  # data reference index
        base = number(base_size)
        extents = number(2)
        for _ in range(extents):
            if pos > len(iloc):
                raise ValueError("iloc box too short")
            number(index_size)
            offset, length = number(offset_size), number(length_size)
            found.setdefault(item, []).append((method, base + offset, length))
    if pos > len(iloc):
        raise ValueError("iloc box too short")
    return found
