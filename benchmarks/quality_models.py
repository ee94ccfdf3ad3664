"""Quality of every built-in family on clean and on web-damaged inputs, as a dated Markdown file.

    python benchmarks/quality_models.py --out benchmarks/results/DATE-quality-cpu.md

The set: 216x216 centre crops of real photos from three benchmark sources in
../shared/media (Set5, Set14 and Urban100; the grayscale and screen-content
images left out). Each crop is downscaled (MATLAB-style bicubic), and for the
"web" condition also given mild Gaussian noise and JPEG quality 50 (4:2:0), as
`vidscale eval --degrade web` does; then every model and plain bicubic
upscale it back and are scored against the crop: Y-PSNR, SSIM, MS-SSIM,
HaarPSI (higher is better) and JPEG blockiness (1.0 = as blocky as the truth;
above 1 the 8x8 grid got stronger). Seconds are CPU time per image, model and scoring together;
for speed alone see bench_models.py.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_pipeline import machine  # noqa: E402
from vidscale.degrade import parse_degradation  # noqa: E402
from vidscale.evaluate import Evaluation, evaluate, pair_images  # noqa: E402
from vidscale.media.image import read_image, write_image  # noqa: E402
from vidscale.upscaler import Upscaler  # noqa: E402

MEDIA = ROOT.parent / "shared" / "media"
PHOTOS = ([MEDIA / "set5" / "HR" / f"{n}.png" for n in ("baby", "butterfly", "head", "woman")]
          + [MEDIA / "set14" / f"{n}.png" for n in ("baboon", "barbara", "coastguard", "face", "flowers",
                                                    "foreman", "monarch", "zebra")]
          + [MEDIA / "urban100" / f"{n}.png" for n in ("img_011", "img_028")])
CROP = 216  # fits every image; divisible by 2, 3, 4 and 8
# One member of each family: x2 runs the family's x2 network where it has one.
MODELS = {2: ["span-x2", "realesrgan-x4plus", "realsr-df2k-jpeg-x4", "realcugan", "realcugan-pro",
              "animevideo-x4", "realesrgan-x4plus-anime"],
          4: ["span-x4", "realesrgan-x4plus", "realsr-df2k-jpeg-x4", "realcugan", "animevideo-x4",
              "realesrgan-x4plus-anime"]}
CONDITIONS = [(2, None), (2, "web"), (4, "web")]


def make_set(folder: Path) -> Path:
    for path in PHOTOS:
        rgb = read_image(path)
        top, left = (rgb.shape[0] - CROP) // 2, (rgb.shape[1] - CROP) // 2
        write_image(folder / path.name, np.ascontiguousarray(rgb[top:top + CROP, left:left + CROP, :3]))
    return folder


def run_condition(hr: Path, scale: int, degrade: str | None, models: list[str]) -> list[tuple[Evaluation, float]]:
    pairs = pair_images(hr, None, scale)
    spec = parse_degradation(degrade) if degrade else None
    results = []
    for name in models:
        up = Upscaler(name, "cpu")
        start = time.process_time()
        ev = evaluate(pairs, scale, up, degrade=spec)
        seconds = (time.process_time() - start) / len(pairs)
        print(f"x{scale} {degrade or 'clean'} {ev.label}: HaarPSI {ev.mean('model').haarpsi:.4f} "
              f"({seconds:.1f} s/image)", file=sys.stderr)
        results.append((ev, seconds))
    return results


def _cell(v: float | None, digits: int) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def table(results: list[tuple[Evaluation, float]]) -> list[str]:
    rows = ["| model | Y-PSNR | SSIM | MS-SSIM | HaarPSI | blockiness | CPU s / image (with scoring) |",
            "|---|---|---|---|---|---|---|"]
    bic = results[0][0].mean("bicubic")
    rows.append(f"| bicubic | {bic.psnr:.2f} | {bic.ssim:.4f} | {_cell(bic.ms_ssim, 4)} | "
                f"{_cell(bic.haarpsi, 4)} | {_cell(bic.blockiness, 3)} | - |")
    for ev, seconds in results:
        m = ev.mean("model")
        rows.append(f"| {ev.label} | {m.psnr:.2f} | {m.ssim:.4f} | {_cell(m.ms_ssim, 4)} | "
                    f"{_cell(m.haarpsi, 4)} | {_cell(m.blockiness, 3)} | {seconds:.1f} |")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the Markdown here (default: print)")
    parser.add_argument("--only", help="comma-separated models (default: all built-in families)")
    args = parser.parse_args()
    missing = [p for p in PHOTOS if not p.is_file()]
    if missing:
        raise SystemExit(f"missing shared media: {missing[0]}")
    lines = [f"# Built-in models on clean and web-damaged photos, CPU ({datetime.date.today().isoformat()})",
             "", f"Machine: {machine()}.",
             f"Command: `{' '.join(['python', 'benchmarks/quality_models.py', *sys.argv[1:]])}`", "",
             f"Set: {len(PHOTOS)} {CROP}x{CROP} centre crops: " + ", ".join(p.stem for p in PHOTOS) + ".",
             "Means over the set; higher is better except blockiness (1.0 = the truth's own).", ""]
    with tempfile.TemporaryDirectory(prefix="vidscale-quality-") as tmp:
        hr = make_set(Path(tmp))
        for scale, degrade in CONDITIONS:
            models = [m for m in MODELS[scale] if not args.only or m in args.only.split(",")]
            spec = parse_degradation(degrade).spec if degrade else "none (clean bicubic downscale)"
            lines += [f"## x{scale}, damage: {degrade or 'clean'} ({spec})", ""]
            lines += table(run_condition(hr, scale, degrade, models)) + [""]
    text = "\n".join(lines)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
