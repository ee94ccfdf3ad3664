"""Realistic damage for `vidscale eval` inputs: blur, sensor noise, JPEG.

A clean bicubic downscale flatters models trained on clean bicubic data; real
pictures arrive soft, noisy and compressed. `Degradation.apply` runs on the
8-bit low-res image, in this fixed order:

1. Gaussian blur, sigma in low-res pixels (edges mirrored);
2. additive Gaussian noise, sigma in 8-bit levels, drawn independently for
   each pixel and RGB channel from a generator seeded by (seed, image name),
   then rounded and clipped to 0-255;
3. JPEG at the given quality (IJG scale), 4:2:0 chroma as web JPEGs have,
   encoded and decoded with OpenCV's libjpeg.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import asdict, dataclass, replace

import cv2
import numpy as np

from vidscale.errors import UsageError

KEYS = ("blur", "noise", "jpeg")


@dataclass(frozen=True)
class Degradation:
    """Damage applied after the bicubic downscale; zero / None leaves a step out."""

    blur: float = 0.0  # Gaussian sigma, low-res pixels
    noise: float = 0.0  # Gaussian sigma, 8-bit levels
    jpeg: int | None = None  # quality 1-100

    @property
    def spec(self) -> str:
        """Canonical `key=value,...` form ("none" when nothing is applied)."""
        parts = [f"blur={self.blur:g}"] if self.blur else []
        parts += [f"noise={self.noise:g}"] if self.noise else []
        parts += [f"jpeg={self.jpeg}"] if self.jpeg is not None else []
        return ",".join(parts) or "none"

    def to_dict(self) -> dict[str, float | int | None]:
        return asdict(self)

    def apply(self, rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """HxWx3 uint8 RGB -> the same, degraded."""
        x = rgb.astype(np.float32)
        if self.blur:
            x = gaussian_blur(x, self.blur)
        if self.noise:
            x = x + rng.normal(0.0, self.noise, x.shape).astype(np.float32)
        out = np.clip(np.rint(x), 0, 255).astype(np.uint8)
        return jpeg_roundtrip(out, self.jpeg) if self.jpeg is not None else out


PRESETS = {
    "none": Degradation(),
    # a decent camera photo: slight softness, faint noise, high-quality JPEG
    "mild": Degradation(blur=0.5, noise=1.0, jpeg=85),
    # a picture from the internet: re-saved at quality 50 over mild noise
    "web": Degradation(noise=2.0, jpeg=50),
}


def parse_degradation(spec: str) -> Degradation:
    """`web`, `blur=0.8,noise=3,jpeg=50`, or a preset then overrides (`web,jpeg=30`)."""
    tokens = [t.strip() for t in spec.split(",")]
    if not any(tokens):
        raise UsageError("--degrade: empty spec (give a preset or key=value pairs)")
    result = Degradation()
    seen: set[str] = set()
    for i, token in enumerate(tokens):
        if "=" not in token:
            result = _preset(token, first=i == 0)
            continue
        key, value = (s.strip() for s in token.split("=", 1))
        key = key.lower()
        if key not in KEYS:
            raise UsageError(f"--degrade: unknown key {key!r} (known: {', '.join(KEYS)})")
        if key in seen:
            raise UsageError(f"--degrade: {key} given twice")
        seen.add(key)
        result = replace(result, **{key: _value(key, value)})
    return result


def _preset(name: str, first: bool) -> Degradation:
    if name.lower() not in PRESETS:
        raise UsageError(f"--degrade: {name!r} is neither a preset ({', '.join(PRESETS)}) nor key=value")
    if not first:
        raise UsageError(f"--degrade: preset {name!r} must come first")
    return PRESETS[name.lower()]


def _value(key: str, text: str) -> float | int:
    if key == "jpeg":
        try:
            quality = int(text)
        except ValueError:
            raise UsageError(f"--degrade: jpeg quality must be an integer 1-100, got {text!r}") from None
        if not 1 <= quality <= 100:
            raise UsageError(f"--degrade: jpeg quality must be 1-100, got {quality}")
        return quality
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"--degrade: {key} must be a number, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise UsageError(f"--degrade: {key} must be finite and >= 0, got {text}")
    return value


def image_rng(seed: int, name: str) -> np.random.Generator:
    """One reproducible noise stream per (seed, image name); crc32, not hash(), is stable across runs."""
    return np.random.default_rng([seed, zlib.crc32(name.encode("utf-8"))])


def gaussian_blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """Float HxWxC blur; the kernel reaches 4 sigma (OpenCV's choice for float images)."""
    radius = max(1, math.ceil(4 * sigma))
    return cv2.GaussianBlur(x, (2 * radius + 1, 2 * radius + 1), sigmaX=sigma, sigmaY=sigma,
                            borderType=cv2.BORDER_REFLECT_101)


def jpeg_bytes(rgb: np.ndarray, quality: int) -> bytes:
    """Encode HxWx3 uint8 RGB as a baseline 4:2:0 JPEG."""
    params = [cv2.IMWRITE_JPEG_QUALITY, quality,
              cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420]
    ok, data = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]), params)
    if not ok:
        raise RuntimeError("OpenCV could not encode a JPEG")
    return data.tobytes()


def jpeg_roundtrip(rgb: np.ndarray, quality: int) -> np.ndarray:
    """What a viewer shows after saving `rgb` as JPEG at `quality`."""
    data = np.frombuffer(jpeg_bytes(rgb, quality), np.uint8)
    return np.ascontiguousarray(cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1])
