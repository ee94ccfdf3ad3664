"""Near-repeats: what reusing a near-repeat's upscale (--repeat-threshold N) changes in the output.

For each clip, the first K frames are decoded as the job decodes them (RGB on the CPU path) and
every one is upscaled with the library's upscaler for the preset (the engine and precision the CLI
picks by default on this machine). Then, for each threshold N, the frames that `Repeats(N)` would
skip are found exactly as the job finds them, and each skipped frame's reused output (the upscale of
the last frame upscaled) is compared with its own upscale: PSNR (RGB), the worst 16x16 output block's
mean absolute difference, the largest single difference and HaarPSI. For scale, the same numbers
between consecutive upscales (nothing skipped) of the frame pairs that are within N of each other:
the frame-to-frame noise the network already passes through.

Two alternative rules are simulated the same way, on the same upscales: 8x8 low-res blocks instead
of 16x16, and 16x16 blocks plus a bound on the whole frame's mean difference (fades move it, coding
noise does not), and for each clip and rule the worst skipped frame per N is cropped around its worst
block into a PNG (reused | own upscale | difference x8).

Network outputs are compared before the anti-flicker pass (it sees the same inputs either way).
Quality only: nothing here is timed.

    python benchmarks/near_repeats.py CLIP --preset anime --frames 90 --png out-prefix
    python benchmarks/near_repeats.py CLIP --preset film --frames 48 --crop 320x240+160+60
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vidscale.media.source import VideoSource  # noqa: E402
from vidscale.metrics import haarpsi, psnr  # noqa: E402
from vidscale.options import job_settings  # noqa: E402
from vidscale.passes import SizeRule  # noqa: E402
from vidscale.repeats import Repeats, block_means  # noqa: E402
from vidscale.upscaler import Upscaler, from_tensor, to_tensor  # noqa: E402

THRESHOLDS = (1, 2, 3, 4, 6, 8)  # --repeat-threshold, 16x16 blocks
THRESHOLDS_8 = (2, 3, 4, 6, 8, 12)  # the alternative rule: 8x8 blocks average less noise away
DRIFT = 0.25  # another: also bound the whole frame's mean difference (levels), which fades move
PANEL = 192  # side of a crop, output pixels
AMPLIFY = 8  # the difference panel's gain


# --- frames and their upscales ---------------------------------------------------------------------

def decode(clip: Path, frames: int, crop: tuple[int, int, int, int] | None) -> list[np.ndarray]:
    """The first `frames` frames as the job decodes them on the CPU (RGB), optionally cropped (w, h, x, y)."""
    source = VideoSource(clip, limit=frames)
    out = []
    try:
        for item in source.items():
            if hasattr(item, "pixels"):
                p = item.pixels
                if crop is not None:
                    w, h, x, y = crop
                    p = p[y:y + h, x:x + w]
                out.append(np.ascontiguousarray(p))
    finally:
        source.close()
    return out


def upscale_all(lows: list[np.ndarray], preset: str, cache: Path | None) -> tuple[list[np.ndarray], str]:
    """Every frame's own upscale (kept in `cache` between runs: the comparisons are cheap, these are not)."""
    settings = job_settings({"preset": preset}, "out.mp4")
    upscaler = Upscaler.for_job(settings, "video")
    size = SizeRule(settings, even=True)(*lows[0].shape[:2])
    precision = settings.precision or "auto"
    label = f"{upscaler.label(settings.scale or 2)}, {upscaler.backend}, precision {precision}"
    key = hashlib.sha256(b"".join(f.tobytes() for f in lows) + f"{preset}{size}".encode()).hexdigest()[:16]
    path = cache / f"{key}.npy" if cache else None
    if path is not None and path.exists():
        return list(np.load(path)), label
    outs = []
    for i, low in enumerate(lows):
        outs.append(from_tensor(upscaler.upscale_channels(to_tensor(low), size), np.uint8))
        print(f"  upscaled {i + 1}/{len(lows)}", file=sys.stderr, flush=True)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, np.stack(outs))
    return outs, label


# --- which frames a rule skips ----------------------------------------------------------------------

def worst_block(a: np.ndarray, b: np.ndarray, block: int) -> float:
    """Largest `block`x`block` mean of |a - b| (averaged over channels), as `Repeats` measures it."""
    d = np.abs(a.astype(np.float32) - b.astype(np.float32))
    return float(block_means(d.mean(axis=2) if d.ndim == 3 else d, block).max())


def drift(a: np.ndarray, b: np.ndarray) -> float:
    """|mean of a - b| over the frame, 8-bit levels: a fade moves it, zero-mean coding noise does not."""
    return abs(float(a.astype(np.float64).mean() - b.astype(np.float64).mean()))


def skips(lows: list[np.ndarray], within: Callable[[np.ndarray, np.ndarray], bool]) -> list[tuple[int, int]]:
    """(frame, the frame whose upscale it reuses) for each frame the rule skips, the reference being
    the last frame upscaled (as in `Repeats`)."""
    out, ref = [], 0
    for n in range(1, len(lows)):
        if within(lows[n], lows[ref]):
            out.append((n, ref))
        else:
            ref = n
    return out


def library_skips(lows: list[np.ndarray], threshold: float) -> list[tuple[int, int]]:
    """What the job itself skips at `threshold` (checked against the simulation of the same rule)."""
    finder, out, ref = Repeats(threshold), [], 0
    for n, low in enumerate(lows):
        if finder.check(low):
            out.append((n, ref))
        else:
            ref = n
    return out


# --- comparisons ------------------------------------------------------------------------------------

@dataclass
class Diff:
    psnr: float
    block: float  # worst 16x16 output block's mean |difference|
    peak: int  # largest single difference
    haarpsi: float | None
    at: tuple[int, int]  # where the worst block is (y, x), output pixels


def compare(a: np.ndarray, b: np.ndarray) -> Diff:
    d = np.abs(a.astype(np.float32) - b.astype(np.float32))
    means = block_means(d.mean(axis=2), 16)
    y, x = np.unravel_index(int(means.argmax()), means.shape)
    return Diff(psnr(a, b), float(means.max()), int(d.max()), haarpsi(a, b), (int(y) * 16, int(x) * 16))


class Pairs:
    """Comparisons of two frames' upscales, each pair computed once."""

    def __init__(self, outs: list[np.ndarray]):
        self.outs = outs
        self._done: dict[tuple[int, int], Diff] = {}

    def __call__(self, n: int, ref: int) -> Diff:
        if (n, ref) not in self._done:
            self._done[(n, ref)] = compare(self.outs[ref], self.outs[n])
        return self._done[(n, ref)]


def fmt_psnr(v: float) -> str:
    return "inf" if v == float("inf") else f"{v:.1f}"


def row(name: str, n_frames: int, skipped: list[tuple[int, int]], held: list[Diff], pairs: Pairs,
        threshold: float) -> str:
    """One table row: the skipped frames' reused-vs-own numbers, and the consecutive upscales' for scale."""
    diffs = [pairs(n, r) for n, r in skipped]
    if not diffs:
        return f"| {name} | {threshold:g} | 0 | 0% | - | - | - | - | {_scale(held)} |"
    psnrs = [d.psnr for d in diffs]
    blocks = [d.block for d in diffs]
    hp = [d.haarpsi for d in diffs if d.haarpsi is not None]
    worst = max(diffs, key=lambda d: d.block)
    return (f"| {name} | {threshold:g} | {len(diffs)} | {len(diffs) / n_frames:.0%} | "
            f"{fmt_psnr(min(psnrs))} / {fmt_psnr(statistics.median(psnrs))} | "
            f"{worst.block:.2f} / {statistics.median(blocks):.2f} | {max(d.peak for d in diffs)} | "
            f"{min(hp):.4f} / {statistics.median(hp):.4f} | {_scale(held)} |")


def _scale(held: list[Diff]) -> str:
    if not held:
        return "-"
    return (f"{len(held)}: {fmt_psnr(statistics.median(d.psnr for d in held))} / "
            f"{statistics.median(d.block for d in held):.2f} / {max(d.block for d in held):.2f}")


# --- crops ------------------------------------------------------------------------------------------

def crops_png(path: Path, outs: list[np.ndarray], worst: list[tuple[str, int, int, Diff]]) -> None:
    """One row per entry (label, frame, reference, its Diff): reused | own | |difference| x AMPLIFY."""
    from PIL import Image, ImageDraw

    rows = []
    for label, n, ref, diff in worst:
        h, w = outs[n].shape[:2]
        y = min(max(diff.at[0] + 8 - PANEL // 2, 0), h - PANEL)
        x = min(max(diff.at[1] + 8 - PANEL // 2, 0), w - PANEL)
        reused, own = (outs[i][y:y + PANEL, x:x + PANEL] for i in (ref, n))
        d = np.abs(reused.astype(np.int16) - own.astype(np.int16)) * AMPLIFY
        gap = np.full((PANEL, 4, 3), 255, np.uint8)
        strip = np.concatenate([reused, gap, own, gap, np.clip(d, 0, 255).astype(np.uint8)], axis=1)
        head = Image.new("RGB", (strip.shape[1], 16), "white")
        text = (f"{label}: frame {n} reuses {ref}; worst block {diff.block:.2f}, PSNR {fmt_psnr(diff.psnr)}; "
                f"block at x={diff.at[1]} y={diff.at[0]}")
        ImageDraw.Draw(head).text((2, 2), text, fill="black")
        rows += [np.asarray(head), strip]
    Image.fromarray(np.concatenate(rows, axis=0)).save(path)


# --- main -------------------------------------------------------------------------------------------

def parse_crop(text: str | None) -> tuple[int, int, int, int] | None:
    if not text:
        return None
    size, x, y = text.split("+")
    w, h = size.split("x")
    return int(w), int(h), int(x), int(y)


def study(clip: Path, args: argparse.Namespace) -> None:
    crop = parse_crop(args.crop)
    lows = decode(clip, args.frames, crop)
    outs, label = upscale_all(lows, args.preset, args.cache)
    pairs = Pairs(outs)
    steps = [(n, n - 1) for n in range(1, len(lows))]
    step16 = {n: worst_block(lows[n], lows[r], 16) for n, r in steps}
    step8 = {n: worst_block(lows[n], lows[r], 8) for n, r in steps}
    shift = {n: drift(lows[n], lows[r]) for n, r in steps}
    area = f", crop {args.crop}" if crop else ""
    print(f"\n### {clip.name}: first {len(lows)} frames, {lows[0].shape[1]}x{lows[0].shape[0]}{area}; "
          f"--preset {args.preset}: {label}\n")
    print(f"Exact repeats (threshold 0): {len(library_skips(lows, 0))}. Consecutive low-res frames' worst "
          f"16x16 block mean: {_spread(step16)}; 8x8: {_spread(step8)}; |frame mean difference| "
          f"{_spread(shift)}.\n")
    print("| rule | N | skipped | of frames | PSNR worst / median dB | worst block worst / median | max diff "
          "| HaarPSI worst / median | consecutive upscales within N, no skip: pairs: PSNR median / block "
          "median / block worst |")
    print("|---|---|---|---|---|---|---|---|---|")
    rules = (("16x16 mean", "16x16", THRESHOLDS, lambda a, b, t: worst_block(a, b, 16) <= t),
             ("8x8 mean", "8x8", THRESHOLDS_8, lambda a, b, t: worst_block(a, b, 8) <= t),
             (f"16x16 mean, frame mean <= {DRIFT}", "drift", THRESHOLDS,
              lambda a, b, t: worst_block(a, b, 16) <= t and drift(a, b) <= DRIFT))
    worst: dict[str, list[tuple[str, int, int, Diff]]] = {}
    for name, tag, levels, within in rules:
        for t in levels:
            skipped = skips(lows, lambda a, b: within(a, b, t))
            if tag == "16x16":
                assert skipped == library_skips(lows, t), "the simulated rule is not what Repeats does"
            held = [pairs(n, n - 1) for n in range(1, len(lows)) if within(lows[n], lows[n - 1], t)]
            print(row(name, len(lows), skipped, held, pairs, t))
            if skipped:
                n, r = max(skipped, key=lambda p: pairs(*p).block)
                worst.setdefault(tag, []).append((f"{name} N={t}", n, r, pairs(n, r)))
    if args.png:
        for tag, entries in worst.items():
            path = Path(f"{args.png}-{clip.stem}-{tag}.png")
            crops_png(path, outs, entries)
            print(f"\nCrops: {path.name}")
        if args.top:
            t = THRESHOLDS[-1]
            ranked = sorted(library_skips(lows, t), key=lambda p: -pairs(*p).block)[:args.top]
            if ranked:
                path = Path(f"{args.png}-{clip.stem}-top.png")
                entries = [(f"16x16 N={t} #{i + 1}", n, r, pairs(n, r)) for i, (n, r) in enumerate(ranked)]
                crops_png(path, outs, entries)
                print(f"Crops of the {len(ranked)} skipped frames with the largest output block difference "
                      f"at N={t}: {path.name}")


def _spread(values: dict[int, float]) -> str:
    v = sorted(values.values())
    low, high = v[len(v) // 4], v[3 * len(v) // 4]
    return f"median {statistics.median(v):.2f}, quartiles {low:.2f}-{high:.2f}, max {v[-1]:.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clips", nargs="+", type=Path)
    parser.add_argument("--frames", type=int, default=60, help="first K frames of each clip")
    parser.add_argument("--preset", default="anime", help="the preset whose model upscales (anime, film)")
    parser.add_argument("--crop", help="WxH+X+Y: a window of each frame (the whole clip is this window)")
    parser.add_argument("--cache", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "near-repeats",
                        help="where the upscales are kept between runs")
    parser.add_argument("--png", help="path prefix of the crops PNGs (none: no crops)")
    parser.add_argument("--top", type=int, default=6,
                        help="also crop this many worst skipped frames at the largest N (with --png)")
    args = parser.parse_args()
    print(f"Machine: {platform.machine()}, {os.cpu_count()} CPUs; frames {args.frames}, preset {args.preset}")
    for clip in args.clips:
        study(clip, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
