"""How far tiled Real-CUGAN is from an untiled run, with and without the frame's SE means.

    python benchmarks/tiling_se.py [--tile 128] [--out FILE]

Frame 60 of the shared anime clip (its top-left 320x240), each Real-CUGAN scale:
the untiled output against the tiled one with per-tile SE means (what a plain
tiler gives) and with the means recorded over the whole frame (engine/se_sync.py).
Differences are in 8-bit levels.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

import av
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_pipeline import machine  # noqa: E402
from vidscale.engine.backend import make_engine  # noqa: E402
from vidscale.models import zoo  # noqa: E402

CLIP = ROOT.parent / "shared" / "media" / "realesrgan_inputs" / "video" / "onepiece_demo.mp4"
MODELS = ("realcugan-x2-conservative", "realcugan-x3-conservative", "realcugan-x4-conservative",
          "realcugan-pro-x2-conservative")


def frame(index: int = 60) -> torch.Tensor:
    with av.open(str(CLIP)) as container:
        for i, f in enumerate(container.decode(video=0)):
            if i == index:
                rgb = torch.from_numpy(f.to_ndarray(format="rgb24"))
                return rgb.permute(2, 0, 1)[None, :, :240, :320].float() / 255
    raise SystemExit(f"{CLIP}: fewer than {index + 1} frames")


def errors(name: str, x: torch.Tensor, tile: int) -> tuple[float, float, float, float]:
    """(max, mean) 8-bit differences from untiled: per-tile means, then frame means."""
    engine = make_engine(zoo.builtins()[name], "cpu", torch.device("cpu"))
    with torch.inference_mode():
        whole = engine(x).clamp(0, 1)
        engine.fixed_tile = tile
        synced = engine(x).clamp(0, 1)
        engine.se_blocks = []  # as a plain tiler runs it
        per_tile = engine(x).clamp(0, 1)
    d_tile, d_sync = (per_tile - whole).abs() * 255, (synced - whole).abs() * 255
    return float(d_tile.max()), float(d_tile.mean()), float(d_sync.max()), float(d_sync.mean())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tile", type=int, default=128)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    x = frame()
    lines = [f"# Tiled Real-CUGAN against untiled, CPU ({datetime.date.today().isoformat()})", "",
             f"Machine: {machine()}.",
             f"Command: `{' '.join(['python', 'benchmarks/tiling_se.py', *sys.argv[1:]])}`",
             f"Input: frame 60 of onepiece_demo.mp4, top-left 320x240; {args.tile} px tiles.", "",
             "| model | per-tile SE means: max / mean | frame SE means: max / mean |", "|---|---|---|"]
    for name in MODELS:
        t_max, t_mean, s_max, s_mean = errors(name, x, args.tile)
        lines.append(f"| {name} | {t_max:.1f} / {t_mean:.2f} | {s_max:.1f} / {s_mean:.2f} |")
        print(lines[-1], file=sys.stderr)
    text = "\n".join(lines) + "\n"
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
