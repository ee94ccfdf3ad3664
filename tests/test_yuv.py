"""The device YUV path (vidscale.media.yuv) against the CPU path (swscale via RgbConverter).

The requirement is "at most 1 code value apart". A code value is one step of
the format being converted:
* decoding 8-bit YUV: 1 of rgb24 (to_rgb's [0, 1] times 255, rounded);
* decoding 10-bit YUV: 1 step of the *source*, i.e. 65535/1023 of the CPU
  path's rgb48 (to_rgb's [0, 1] times 65535, rounded);
* encoding: 1 of the YUV sample in the format's own bits (10-bit: 1/1023).

Synthetic pictures mix gradients, noise, blocks with edges at odd positions
and single-pixel checkers, in luma and in chroma, since chroma filters only
differ on sharp chroma. They stay where swscale's fixed point holds: it wraps
around for YUV that would be more than twice white in RGB (e.g. peak luma with
peak chroma), which no real picture has.
"""

from __future__ import annotations

import functools
import itertools
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from tests.conftest import need_shared
from vidscale.media import yuv
from vidscale.media.color import (
    RANGE_FULL,
    RANGE_LIMITED,
    SPACE_BT709,
    SPACE_BT2020_NCL,
    SPACE_FCC,
    SPACE_SMPTE170M,
    SPACE_SMPTE240M,
    ColorInfo,
    RgbConverter,
    color_of,
)
from vidscale.media.image import read_image

EIGHT = ["yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "nv12"]
DEEP = ["yuv420p10le", "yuv422p10le", "yuv444p10le", "p010le"]
FORMATS = EIGHT + DEEP
SUBSAMPLED = [f for f in FORMATS if "444" not in f]
BT709, BT601 = ColorInfo(SPACE_BT709, RANGE_LIMITED), ColorInfo(SPACE_SMPTE170M, RANGE_LIMITED)
BT709_FULL, BT2020 = ColorInfo(SPACE_BT709, RANGE_FULL), ColorInfo(SPACE_BT2020_NCL, RANGE_LIMITED)
BT2020_FULL = ColorInfo(SPACE_BT2020_NCL, RANGE_FULL)


def _colors(fmt: str) -> list[ColorInfo]:
    if fmt.startswith("yuvj"):
        return [BT709_FULL]
    return [BT709, BT601, BT709_FULL] + ([BT2020, BT2020_FULL] if fmt in DEEP else [])


CASES = [(fmt, color) for fmt in FORMATS for color in _colors(fmt)]


def _shift(fmt: str) -> int:
    return 6 if fmt == "p010le" else 0  # p010 keeps its 10 bits in the top of 16


def _pattern(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Values in [0, 1]: ramp + noise | blocks | blocks + 1-pixel checker, side by side."""
    yy, xx = np.mgrid[0:h, 0:w]
    ramp = (xx / max(w - 1, 1) + yy / max(h - 1, 1)) / 2 + rng.normal(0, 0.06, (h, w))
    blocks = rng.random((h // 3 + 1, w // 5 + 1))[yy // 3, xx // 5]
    third = xx * 3 // w
    checker = (blocks + (xx + yy) % 2) / 2
    return np.clip(np.where(third == 0, ramp, np.where(third == 1, blocks, checker)), 0, 1)


def _image(fmt: str, h: int, w: int, color: ColorInfo, seed: int = 0, location: int = 0) -> yuv.YuvImage:
    """Synthetic planes of `fmt`; chroma kept to the middle of its range (see the module doc)."""
    rng = np.random.default_rng(seed)
    blank = yuv.from_frame(av.VideoFrame(w, h, fmt))
    step = 1 << (blank.bits - 8)
    full = color.full_range or fmt.startswith("yuvj")
    spans = [(0, 255) if full else (16, 235), (48, 208) if full else (64, 192)]
    planes = []
    for i, plane in enumerate(blank.planes):
        lo, hi = (s * step for s in spans[min(i, 1)])
        parts = range(plane.ndim - 1)  # nv12/p010: U and V in one plane
        values = np.stack([_pattern(plane.shape[0], plane.shape[1], rng) for _ in parts], -1)
        codes = np.rint(lo + (hi - lo) * values.reshape(plane.shape)).astype(np.int64) << _shift(fmt)
        planes.append(codes.astype(plane.dtype))
    return yuv.YuvImage(fmt, tuple(planes), location)


def _rgb(h: int, w: int, deep: bool, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rgb = np.stack([_pattern(h, w, rng) for _ in range(3)], -1)
    return np.rint(rgb * 65535).astype(np.uint16) if deep else np.rint(rgb * 255).astype(np.uint8)


def _batch(image: yuv.YuvImage) -> list[torch.Tensor]:
    return [torch.from_numpy(p[None]) for p in image.planes]


def _decode_gap(frame: av.VideoFrame, color: ColorInfo) -> float:
    """Largest |torch - swscale| of a decoded frame's RGB, in code values of the source."""
    image = yuv.from_frame(frame)
    want = RgbConverter().to_rgb(frame, color, image.deep).astype(np.float64)
    top = 65535 if image.deep else 255
    got = yuv.to_rgb(_batch(image), image.pix_fmt, color, image.chroma_location)[0].permute(1, 2, 0)
    step = top / ((1 << image.bits) - 1)
    return float(np.abs(np.rint(got.double().numpy() * top) - want).max() / step)


def _encode_gap(rgb: np.ndarray, fmt: str, color: ColorInfo) -> int:
    """Largest |torch - swscale| of the YUV samples made from `rgb`, in the format's own bits."""
    want = yuv.from_frame(RgbConverter().from_rgb(rgb, fmt, color))
    x = torch.from_numpy(rgb.astype(np.float32) / (65535 if rgb.dtype == np.uint16 else 255))
    got = yuv.unstack_planes([t.numpy() for t in yuv.from_rgb(x.permute(2, 0, 1)[None], fmt, color)], fmt)[0]
    assert [p.shape for p in got.planes] == [p.shape for p in want.planes]
    return max(int(np.abs((g.astype(np.int64) - s.astype(np.int64)) >> _shift(fmt)).max())
               for g, s in zip(got.planes, want.planes, strict=True))


def _rows(frame: av.VideoFrame, index: int, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A plane read row by row from its bytes: an independent reading of the line-size layout."""
    plane, size = frame.planes[index], np.dtype(dtype).itemsize * int(np.prod(shape[1:]))
    data = bytes(plane)
    starts = [r * plane.line_size for r in range(shape[0])]
    rows: list[np.ndarray] = [np.frombuffer(data[s:s + size], dtype) for s in starts]
    return np.stack(rows).reshape(shape)


# --- supported formats -----------------------------------------------------------------------


def test_supports_planar_and_semi_planar_yuv_only() -> None:
    assert all(yuv.supports(f) for f in FORMATS)
    for other in ("rgb24", "rgb48le", "gbrp", "gray", "gray10le", "pal8", "yuva420p", "yuva444p10le", "bgra",
                  "yuv420p12le", "nv21", "yuyv422", ""):
        assert not yuv.supports(other), other


@pytest.mark.parametrize("fmt", ["rgb24", "yuva420p", "pal8", "gray"])
def test_unsupported_formats_raise_value_error(fmt: str) -> None:
    planes = [torch.zeros(1, 4, 4, dtype=torch.uint8) for _ in range(3)]
    with pytest.raises(ValueError, match=fmt):
        yuv.to_rgb(planes, fmt, BT709)
    with pytest.raises(ValueError, match=fmt):
        yuv.from_rgb(torch.zeros(1, 3, 4, 4), fmt, BT709)
    with pytest.raises(ValueError, match=fmt):
        yuv.from_frame(av.VideoFrame(4, 4, fmt))
    with pytest.raises(ValueError, match=fmt):
        yuv.to_frame(yuv.YuvImage(fmt, (np.zeros((4, 4), np.uint8),)))


def test_bad_shapes_raise_value_error() -> None:
    image = _image("yuv420p", 8, 8, BT709)
    planes = _batch(image)
    with pytest.raises(ValueError, match="shapes"):
        yuv.to_rgb([planes[0], planes[2][:, :2], planes[2]], "yuv420p", BT709)
    with pytest.raises(ValueError, match="planes"):
        yuv.to_rgb(planes[:2], "yuv420p", BT709)
    with pytest.raises(ValueError, match="N x 3"):
        yuv.from_rgb(torch.zeros(1, 4, 8, 8), "yuv420p", BT709)
    with pytest.raises(ValueError, match="batch"):
        yuv.stack_planes([image, _image("yuv420p", 8, 10, BT709)])
    with pytest.raises(ValueError, match="not a batch"):
        yuv.unstack_planes([p.numpy() for p in planes], "yuv444p")


# --- frames <-> planes ----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("size", [(20, 1918), (36, 642), (17, 33), (34, 18), (9, 21)])
def test_frame_planes_round_trip_exactly(fmt: str, size: tuple[int, int]) -> None:
    h, w = size
    if fmt in ("nv12", "p010le"):
        h += h % 2  # FFmpeg's nv12/p010 want even heights
    deep = fmt in DEEP
    frame = RgbConverter().from_rgb(_rgb(h, w, deep), fmt, BT709)
    assert frame.format.name == fmt
    image = yuv.from_frame(frame)
    assert (image.height, image.width, image.deep, image.bits) == (h, w, deep, 10 if deep else 8)
    # against a row-by-row reading of the frame's bytes, which honours the line padding
    for i, plane in enumerate(image.planes):
        assert plane.flags.c_contiguous
        np.testing.assert_array_equal(plane, _rows(frame, i, plane.shape, plane.dtype))
    assert frame.planes[0].line_size > image.planes[0][0].nbytes  # rows are padded: cropping is tested
    again = yuv.to_frame(image)
    assert (again.format.name, again.width, again.height) == (fmt, w, h)
    for i, plane in enumerate(image.planes):
        np.testing.assert_array_equal(_rows(again, i, plane.shape, plane.dtype), plane)
    back = yuv.from_frame(again)
    for a, b in zip(back.planes, image.planes, strict=True):
        np.testing.assert_array_equal(a, b)


def test_from_frame_copies_the_decoder_buffers() -> None:
    frame = RgbConverter().from_rgb(_rgb(16, 16, False), "yuv420p", BT709)
    image = yuv.from_frame(frame)
    before = image.planes[0].copy()
    np.frombuffer(frame.planes[0], np.uint8)[:] = 0
    np.testing.assert_array_equal(image.planes[0], before)


def test_chroma_location_travels_with_the_image() -> None:
    frame = RgbConverter().from_rgb(_rgb(16, 16, False), "yuv420p", BT709)
    frame.chroma_location = 1
    image = yuv.from_frame(frame)
    assert image.chroma_location == 1
    assert yuv.to_frame(image).chroma_location == 1


def test_stack_and_unstack_planes() -> None:
    images = [_image("p010le", 8, 12, BT2020, seed=s) for s in range(3)]
    stacked = yuv.stack_planes(images)
    assert [a.shape for a in stacked] == [(3, 8, 12), (3, 4, 6, 2)]
    assert all(a.dtype == np.uint16 for a in stacked)
    as_int16 = [a.view(np.int16) for a in stacked]  # how 16-bit words come back from the device
    for got, image in zip(yuv.unstack_planes(as_int16, "p010le"), images, strict=True):
        assert got.pix_fmt == "p010le" and got.planes[1].dtype == np.uint16
        for a, b in zip(got.planes, image.planes, strict=True):
            np.testing.assert_array_equal(a, b)


# --- decoding: to_rgb against RgbConverter.to_rgb ----------------------------------------------------


@pytest.mark.parametrize(("fmt", "color"), CASES, ids=[f"{f}-{c.matrix}-{c.range}" for f, c in CASES])
def test_to_rgb_matches_swscale_on_synthetic_pictures(fmt: str, color: ColorInfo) -> None:
    locations = [0, 1] if fmt in SUBSAMPLED else [0]  # untagged (centre), and H.264's "left"
    for (h, w), location in itertools.product([(48, 70), (31, 45)], locations):
        if fmt in ("nv12", "p010le") and h % 2:
            continue  # FFmpeg's nv12/p010 want even heights
        image = _image(fmt, h, w, color, seed=h + location, location=location)
        assert _decode_gap(yuv.to_frame(image), color) <= 1, (h, w, location)


@pytest.mark.parametrize("location", [0, 1])
@pytest.mark.parametrize("at", [(0, 0), (5, 7), (11, 15)])
def test_chroma_impulse_response_matches_swscale(location: int, at: tuple[int, int]) -> None:
    """The filter itself, measured as it was on swscale: one 10-bit chroma sample raised in a flat
    picture; blue's change around it is the 2-D tap pattern (at the edges too), to ~1e-3 of a tap."""
    flat = tuple(np.full(shape, value, np.uint16) for shape, value in (((24, 32), 300), ((12, 16), 512)))
    base = yuv.YuvImage("yuv420p10le", (flat[0], flat[1], flat[1]), location)
    raised = flat[1].copy()
    raised[at] += 200
    impulse = yuv.YuvImage("yuv420p10le", (flat[0], raised, flat[1]), location)
    unit = 65535 / 1023 * 200 * 2 * (1 - 0.0722)  # blue per unit tap, in rgb48

    def cpu(image: yuv.YuvImage) -> np.ndarray:
        return RgbConverter().to_rgb(yuv.to_frame(image), BT709_FULL, True)[..., 2].astype(np.float64)

    def device(image: yuv.YuvImage) -> np.ndarray:
        return yuv.to_rgb(_batch(image), "yuv420p10le", BT709_FULL, location)[0, 2].double().numpy() * 65535

    want, got = (cpu(impulse) - cpu(base)) / unit, (device(impulse) - device(base)) / unit
    assert want.max() > 0.7 and (want < -0.02).any()  # a real cubic response was measured
    np.testing.assert_allclose(got, want, atol=3e-3)


@pytest.mark.parametrize("fmt", ["yuv420p", "yuv422p", "yuv420p10le", "nv12"])
def test_to_rgb_saturated_chroma_edges(fmt: str) -> None:
    """Chroma swinging 16 <-> 240 sample by sample overshoots past the top of the range in the
    cubic's horizontal pass, where swscale saturates. Luma stays low enough that blue keeps
    under twice white (see the module doc)."""
    rng = np.random.default_rng(7)
    blank = yuv.from_frame(av.VideoFrame(40, 24, fmt))
    step = 1 << (blank.bits - 8)
    luma = rng.integers(16 * step, 160 * step, blank.planes[0].shape)
    chroma = [np.where(rng.random(p.shape) < 0.5, 16, 240) * step for p in blank.planes[1:]]
    planes = tuple(p.astype(b.dtype) for p, b in zip([luma, *chroma], blank.planes, strict=True))
    image = yuv.YuvImage(fmt, planes, yuv.CHROMA_LEFT)
    assert _decode_gap(yuv.to_frame(image), BT709) <= 1


@pytest.mark.parametrize("fmt", ["yuv420p", "yuv422p", "nv12", "yuv420p10le"])
@pytest.mark.parametrize("size", [(4, 6), (10, 12), (12, 9), (6, 14)])
def test_tiny_pictures_both_ways(fmt: str, size: tuple[int, int]) -> None:
    """swscale narrows its windows when there are few samples (chroma under 7 wide or high).
    Not 7 or 8 rows deep: swscale's 16-bit output is wrong (by hundreds) with 4 chroma rows."""
    h, w = size
    assert _decode_gap(yuv.to_frame(_image(fmt, h, w, BT709, location=1)), BT709) <= 1
    assert _encode_gap(_rgb(h, w, fmt in DEEP), fmt, BT709) <= 1


@pytest.mark.parametrize("location", range(7))
def test_to_rgb_follows_every_chroma_location(location: int) -> None:
    image = _image("yuv420p", 40, 60, BT709, seed=location, location=location)
    assert _decode_gap(yuv.to_frame(image), BT709) <= 1


@pytest.mark.parametrize("matrix", [SPACE_SMPTE240M, SPACE_FCC])
def test_to_rgb_other_matrices(matrix: int) -> None:
    color = ColorInfo(matrix, RANGE_LIMITED)
    assert _decode_gap(yuv.to_frame(_image("yuv420p", 40, 60, color)), color) <= 1


def test_siting_and_filter_matter_on_this_content() -> None:
    """The comparisons above can fail: the wrong siting, or a plain bilinear chroma, is off by far more."""
    image = _image("yuv420p", 48, 70, BT709, location=1)
    frame = yuv.to_frame(image)
    want = RgbConverter().to_rgb(frame, BT709, False).astype(np.float64)
    centred = yuv.to_rgb(_batch(image), "yuv420p", BT709, yuv.CHROMA_CENTER)[0].permute(1, 2, 0).numpy()
    assert np.abs(np.rint(centred * 255) - want).max() > 3
    y, u, v = _batch(image)
    up = [torch.nn.functional.interpolate(c[None].float(), size=(48, 70), mode="bilinear")[0].round().byte()
          for c in (u, v)]
    bilinear = yuv.to_rgb([y, *up], "yuv444p", BT709)[0].permute(1, 2, 0).numpy()
    assert np.abs(np.rint(bilinear * 255) - want).max() > 3


def test_to_rgb_takes_16_bit_words_as_uint16_int16_or_int32() -> None:
    image = _image("p010le", 16, 24, BT2020)
    reference = yuv.to_rgb(_batch(image), "p010le", BT2020)
    as_int16 = [t.view(torch.int16) for t in _batch(image)]
    as_int32 = [t.view(torch.int16).to(torch.int32) & 0xFFFF for t in _batch(image)]
    assert torch.equal(yuv.to_rgb(as_int16, "p010le", BT2020), reference)
    assert torch.equal(yuv.to_rgb(as_int32, "p010le", BT2020), reference)


@pytest.mark.parametrize("fmt", ["yuv420p", "p010le", "yuv422p10le"])
def test_conversions_never_read_tensor_values_on_the_host(fmt: str) -> None:
    """On the meta device (shapes, no data) any host read (.item(), numpy, bool(tensor)) would fail:
    the conversions queue device work only, as a CUDA stream wants."""
    shapes = [p.shape for p in yuv.from_frame(av.VideoFrame(30, 20, fmt)).planes]
    words = torch.uint16 if fmt in DEEP else torch.uint8
    planes = [torch.empty((2, *shape), dtype=words, device="meta") for shape in shapes]
    rgb = yuv.to_rgb(planes, fmt, BT709, yuv.CHROMA_LEFT)
    assert rgb.shape == (2, 3, 20, 30) and rgb.device.type == "meta"
    assert [tuple(p.shape[1:]) for p in yuv.from_rgb(rgb, fmt, BT2020)] == shapes


def test_to_rgb_batches_like_single_frames() -> None:
    images = [_image("yuv420p10le", 20, 30, BT2020, seed=s) for s in range(3)]
    batch = yuv.to_rgb([torch.from_numpy(a) for a in yuv.stack_planes(images)], "yuv420p10le", BT2020)
    assert batch.shape == (3, 3, 20, 30) and batch.dtype == torch.float32
    for i, image in enumerate(images):
        assert torch.allclose(batch[i], yuv.to_rgb(_batch(image), "yuv420p10le", BT2020)[0], atol=1e-6)


# --- decoding real video --------------------------------------------------------------------------


REAL_CLIPS = ["realesrgan_inputs/video/onepiece_demo.mp4", "video/many_tracks.mp4",
              "video/big_buck_bunny_432_433.webm"]


def _real_frame(name: str) -> av.VideoFrame:
    return _decoded(need_shared(*name.split("/")))


@functools.lru_cache(maxsize=4)
def _decoded(path: Path) -> av.VideoFrame:
    """The 12th frame (past any fade-in); read-only for the tests, so decoded once."""
    with av.open(str(path)) as container:
        return next(itertools.islice(container.decode(video=0), 11, None))


@pytest.mark.parametrize("name", REAL_CLIPS)
def test_to_rgb_matches_swscale_on_real_video(name: str) -> None:
    frame = _real_frame(name)
    assert yuv.supports(frame.format.name)
    assert _decode_gap(frame, color_of(frame)) <= 1


@pytest.mark.parametrize("fmt", FORMATS)
def test_to_rgb_matches_swscale_on_real_video_in_each_format(fmt: str) -> None:
    frame = _real_frame("realesrgan_inputs/video/onepiece_demo.mp4")
    color = BT2020 if fmt in DEEP else BT601
    converted = frame.reformat(format=fmt)  # real picture content in that layout and depth
    assert converted.chroma_location == frame.chroma_location == 1
    assert _decode_gap(converted, color) <= 1


# --- encoding: from_rgb against RgbConverter.from_rgb --------------------------------------------------


MAIN_ENCODES = ["yuv420p", "yuv444p", "yuv420p10le"]


@pytest.mark.parametrize(("fmt", "color"), [(f, c) for f, c in CASES if f in MAIN_ENCODES])
def test_from_rgb_matches_swscale(fmt: str, color: ColorInfo) -> None:
    for h, w in [(48, 70), (31, 45)]:
        assert _encode_gap(_rgb(h, w, fmt in DEEP, seed=h), fmt, color) <= 1, (h, w)


@pytest.mark.parametrize("fmt", [f for f in FORMATS if f not in MAIN_ENCODES])
def test_from_rgb_matches_swscale_other_formats(fmt: str) -> None:
    color = BT2020 if fmt in DEEP else BT709
    assert _encode_gap(_rgb(40, 62, fmt in DEEP), fmt, color) <= 1


@pytest.mark.parametrize(("picture", "rows"), [("baboon.png", slice(0, 240)), ("ppt3.png", slice(200, 331))])
@pytest.mark.parametrize("fmt", MAIN_ENCODES)
def test_from_rgb_matches_swscale_on_real_pictures(picture: str, rows: slice, fmt: str) -> None:
    rgb = np.ascontiguousarray(read_image(need_shared("set14", picture))[rows])  # ppt3: odd width (529)
    if fmt in DEEP:
        rgb = rgb.astype(np.uint16) * 257
    assert _encode_gap(rgb, fmt, BT709) <= 1


def test_from_rgb_matches_swscale_on_real_video_frames() -> None:
    frame = _real_frame("video/big_buck_bunny_432_433.webm")
    color = color_of(frame)
    rgb = RgbConverter().to_rgb(frame, color, False)
    assert _encode_gap(rgb, "yuv420p", color) <= 1
    assert _encode_gap(rgb.astype(np.uint16) * 257, "yuv420p10le", BT2020) <= 1


def test_from_rgb_output_layout() -> None:
    rgb = torch.rand(2, 3, 10, 14)
    planes = yuv.from_rgb(rgb, "yuv420p10le", BT2020)
    assert [tuple(p.shape) for p in planes] == [(2, 10, 14), (2, 5, 7), (2, 5, 7)]
    assert all(p.dtype == torch.int16 for p in planes)
    semi = yuv.from_rgb(rgb, "nv12", BT709)
    assert [tuple(p.shape) for p in semi] == [(2, 10, 14), (2, 5, 7, 2)] and semi[0].dtype == torch.uint8


def test_deep_white_is_white_in_both_paths() -> None:
    """swscale's own 16-bit RGB puts white at 255 << 8; RgbConverter stretches it to 65535,
    so 16-bit white encodes to code 940 and 940 decodes to 65535, on the host and here."""
    cpu = yuv.from_frame(RgbConverter().from_rgb(np.full((2, 2, 3), 65535, np.uint16), "p010le", BT709))
    device = yuv.from_rgb(torch.ones(1, 3, 2, 2), "p010le", BT709)
    got = yuv.unstack_planes([t.numpy() for t in device], "p010le")[0]
    assert int(got.planes[0][0, 0]) == int(cpu.planes[0][0, 0]) == 940 << 6
    limited_white = [torch.full((1, 2, 2), v, dtype=torch.int32) for v in (940, 512, 512)]
    assert torch.equal(yuv.to_rgb(limited_white, "yuv444p10le", BT2020), torch.ones(1, 3, 2, 2))
    frame = yuv.to_frame(yuv.YuvImage("yuv444p10le", tuple(np.full((2, 2), v, np.uint16) for v in (940, 512, 512))))
    assert (RgbConverter().to_rgb(frame, BT2020, deep=True) == 65535).all()
    opaque = av.VideoFrame.from_ndarray(np.full((2, 2, 4), 65535, np.uint16), format="rgba64le")
    opaque = opaque.reformat(format="yuva444p10le")  # alpha 1023, which swscale widens to 65472
    assert (RgbConverter().to_rgb(opaque, BT709, deep=True, alpha=True)[..., 3] == 65535).all()


# --- round trip -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "color", "inner", "mean"), [
    ("yuv420p", BT709, 3, 0.75), ("yuv422p", BT601, 2.5, 0.6), ("yuv444p", BT601, 2, 0.6),
    ("yuv420p10le", BT2020, 2, 0.4), ("p010le", BT2020, 2, 0.4)])
def test_round_trip_of_smooth_content_returns_the_input(fmt: str, color: ColorInfo, inner: float,
                                                        mean: float) -> None:
    """from_rgb then to_rgb: bounds in 1/255; chroma subsampling loses a little on curved gradients,
    more at the borders, where swscale's windows are cut asymmetrically."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 40), torch.linspace(0, 1, 64), indexing="ij")
    rgb = torch.stack([0.1 + 0.8 * xx, 0.5 + 0.4 * torch.sin(3 * yy), 0.9 - 0.7 * xx * yy])[None]
    back = yuv.to_rgb(yuv.from_rgb(rgb, fmt, color), fmt, color)
    assert back.shape == rgb.shape
    error = (back - rgb).abs() * 255
    assert float(error[..., 2:-2, 2:-2].max()) <= inner
    assert float(error.mean()) <= mean
    assert float(error.max()) <= 6


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("fmt", ["yuv420p", "nv12", "yuv422p10le", "p010le"])
def test_cuda_gives_what_the_cpu_gives(fmt: str) -> None:
    """The same conversions on CUDA tensors: equal to the CPU's within float rounding both ways."""
    image = _image(fmt, 36, 50, BT709, location=yuv.CHROMA_LEFT)
    cpu = yuv.to_rgb(_batch(image), fmt, BT709, yuv.CHROMA_LEFT)
    cuda = yuv.to_rgb([t.cuda() for t in _batch(image)], fmt, BT709, yuv.CHROMA_LEFT)
    assert (cuda.cpu() - cpu).abs().max().item() < 1e-5
    host = yuv.unstack_planes([t.numpy() for t in yuv.from_rgb(cpu, fmt, BT709)], fmt)[0]
    device = yuv.unstack_planes([t.cpu().numpy() for t in yuv.from_rgb(cpu.cuda(), fmt, BT709)], fmt)[0]
    for a, b in zip(host.planes, device.planes, strict=True):  # in codes: p010 keeps them in the high bits
        assert np.abs((a.astype(np.int32) >> _shift(fmt)) - (b.astype(np.int32) >> _shift(fmt))).max() <= 1
