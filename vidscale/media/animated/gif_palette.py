"""GIF palettes: frames to 255 colours and a transparent index, one palette kept while
later frames fit it."""

from __future__ import annotations

import cv2
import numpy as np

GIF_TRANSPARENT = 255  # the palette index kept for transparent pixels
_PALETTE_SAMPLE = 10_000  # pixels k-means and the fit check see: a stable palette, fast at any size
_CELL_BITS = 6  # lookup cells: 64 levels a channel, at most ~3.5 off the nearest colour
_REFIT = 1.5  # a palette is rebuilt when a frame's error exceeds its first frame's this many times (+1)


class GifQuantizer:
    """Frames -> (HxW uint8 palette indices, 256x4 palette rows in PyAV's A,R,G,B order).

    A palette of up to 255 colours (the frame's own colours when it has no
    more, else k-means on a pixel sample) is kept while later frames still
    fit it: static areas then keep their indices, which the GIF encoder
    turns into skipped pixels, and one colour table serves the whole file.
    A frame that fits badly (a new scene) gets a new palette. Pixels take
    their nearest colour, undithered, through a lookup table filled as cells
    appear. Alpha below half becomes index GIF_TRANSPARENT, always kept free.
    """

    def __init__(self) -> None:
        self.colours = np.zeros((0, 3), np.uint8)
        self.codes = np.zeros(0, np.int32)  # packed RGB of `colours`, sorted, when exact
        self.exact = False  # the palette holds a frame's exact colours
        self.fit = 0.0  # mean error on the frame the palette was built from
        self.lut = np.full(1 << 3 * _CELL_BITS, -1, np.int16)

    def __call__(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h, w = pixels.shape[:2]
        rgb = pixels[..., :3].reshape(-1, 3)
        opaque = pixels[..., 3].reshape(-1) >= 128 if pixels.shape[2] == 4 else np.ones(h * w, bool)
        indices = np.full(h * w, GIF_TRANSPARENT, np.uint8)
        indices[opaque] = self._indices(rgb[opaque])
        return indices.reshape(h, w), self._palette()

    def _indices(self, rgb: np.ndarray) -> np.ndarray:
        cells = _cell_codes(rgb)
        if np.count_nonzero(np.bincount(cells, minlength=len(self.lut))) <= GIF_TRANSPARENT:
            codes = _packed(rgb)
            colours = np.unique(codes)
            if len(colours) <= GIF_TRANSPARENT:  # few colours: kept exactly
                if not (self.exact and np.isin(colours, self.codes).all()):
                    self._rebuild(_unpacked(colours), exact=True)
                return np.searchsorted(self.codes, codes).astype(np.uint8)
        if len(self.colours):
            indices = self._lookup(cells)
            if _error(rgb, self.colours, indices) <= _REFIT * self.fit + 1:
                return indices
        self._rebuild(_kmeans(rgb, GIF_TRANSPARENT), exact=False)
        indices = self._lookup(cells)
        self.fit = _error(rgb, self.colours, indices)
        return indices

    def _rebuild(self, colours: np.ndarray, exact: bool) -> None:
        self.colours, self.exact, self.fit = colours, exact, 0.0
        self.codes = _packed(colours)  # sorted when exact: np.unique's order
        self.lut.fill(-1)

    def _lookup(self, cells: np.ndarray) -> np.ndarray:
        present = np.zeros(len(self.lut), bool)
        present[cells] = True
        missing = np.flatnonzero(present & (self.lut < 0))
        if len(missing):
            self.lut[missing] = _nearest(_cell_centres(missing), self.colours)
        return self.lut[cells].astype(np.uint8)

    def _palette(self) -> np.ndarray:
        # Unused rows are opaque black: FFmpeg takes the row of lowest alpha (the first
        # of equals) as the transparent one.
        palette = np.zeros((256, 4), np.uint8)
        palette[:, 0] = 255
        palette[:len(self.colours), 1:] = self.colours
        palette[GIF_TRANSPARENT] = 0
        return palette


def gif_quantize(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One picture's palette indices and palette (see GifQuantizer)."""
    return GifQuantizer()(pixels)


def _packed(rgb: np.ndarray) -> np.ndarray:
    return (rgb[:, 0].astype(np.int32) << 16) | (rgb[:, 1].astype(np.int32) << 8) | rgb[:, 2]


def _unpacked(codes: np.ndarray) -> np.ndarray:
    return np.stack([codes >> 16, (codes >> 8) & 255, codes & 255], axis=1).astype(np.uint8)


def _cell_codes(rgb: np.ndarray) -> np.ndarray:
    shift, bits = 8 - _CELL_BITS, _CELL_BITS
    q = (rgb >> shift).astype(np.int32)
    return (q[:, 0] << 2 * bits) | (q[:, 1] << bits) | q[:, 2]


def _cell_centres(cells: np.ndarray) -> np.ndarray:
    mask, bits, size = (1 << _CELL_BITS) - 1, _CELL_BITS, 1 << (8 - _CELL_BITS)
    q = np.stack([cells >> 2 * bits, (cells >> bits) & mask, cells & mask], axis=1)
    return (q * size + size // 2).astype(np.uint8)


def _sample(n: int) -> np.ndarray:
    """The same positions for the same count: a given frame always gets the same palette."""
    if n <= _PALETTE_SAMPLE:
        return np.arange(n)
    return np.random.default_rng(0).choice(n, _PALETTE_SAMPLE, replace=False)


def _error(rgb: np.ndarray, colours: np.ndarray, indices: np.ndarray) -> float:
    pick = _sample(len(rgb))
    if not len(pick):
        return 0.0
    return float(np.abs(colours[indices[pick]].astype(np.int16) - rgb[pick]).mean())


def _kmeans(rgb: np.ndarray, k: int) -> np.ndarray:
    samples = rgb[_sample(len(rgb))].astype(np.float32)
    cv2.setRNGSeed(0)  # k-means++ seeding draws from OpenCV's own generator
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_MAX_ITER, 10, 0.5)
    _, _, centres = cv2.kmeans(samples, k, None, criteria, 1, cv2.KMEANS_PP_CENTERS)
    return np.clip(np.rint(centres), 0, 255).astype(np.uint8)


def _nearest(colours: np.ndarray, centres: np.ndarray, chunk: int = 8192) -> np.ndarray:
    """Index of the nearest centre (Euclidean RGB) for each colour, in chunks to bound memory."""
    c = centres.astype(np.float32)
    c_sq = (c * c).sum(axis=1)
    out = np.empty(len(colours), np.int16)
    for start in range(0, len(colours), chunk):
        x = colours[start:start + chunk].astype(np.float32)
        # |x - c|^2 = |x|^2 - 2 x.c + |c|^2, and |x|^2 is the same for every centre
        out[start:start + chunk] = np.argmin(c_sq[None, :] - 2 * x @ c.T, axis=1)
    return out

