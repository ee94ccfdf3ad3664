"""bf16 against float32 on the CPU, per built-in: speed and the picture (issue 22).

    python benchmarks/cpu_precision.py [--models a,b] [--sets set5,set14] [--out results.json]

For each model, the same `--degrade web` inputs (bicubic x-scale downscales of Set5 and Set14,
noise and JPEG 50, seed 0) are upscaled in float32 (PyTorch, today's CPU path), bf16 on OpenVINO
and bf16 in PyTorch, taking turns image by image in one process, so the time ratios hold on a
shared machine. Reported: seconds per set, HaarPSI and MS-SSIM against the ground truth (mean
over the images, and the change from float32: mean and worst image), and the largest and mean
difference of the outputs from float32 in 1/255. Needs a CPU with native bf16.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vidscale.degrade import parse_degradation  # noqa: E402
from vidscale.engine.cpu_features import native_bf16  # noqa: E402
from vidscale.evaluate import _load_pair, _quantize, pair_images, score  # noqa: E402
from vidscale.upscaler import Upscaler, to_tensor  # noqa: E402

MEDIA = ROOT.parent / "shared" / "media"
RUNS = {"fp32": dict(precision="fp32"), "bf16 openvino": dict(precision="bf16"),
        "bf16 torch": dict(precision="bf16", backend="torch")}


def inputs(sets: list[str], scale: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, ground truth, damaged low-res) for every image of the sets."""
    web = parse_degradation("web")
    out = []
    for name in sets:
        folder = MEDIA / name / "HR" if (MEDIA / name / "HR").is_dir() else MEDIA / name
        for hr_path, _ in pair_images(folder, None, scale):
            truth, lr = _load_pair(hr_path, None, scale, web, 0)  # as `vidscale eval --degrade web`
            out.append((f"{name}/{hr_path.stem}", truth, lr))
    return out


def run_model(model: str, images: list, threads: int) -> dict:
    torch.set_num_threads(threads)
    ups = {k: Upscaler(model, "cpu", **v) for k, v in RUNS.items()}
    seconds = {k: 0.0 for k in RUNS}
    scores: dict[str, list] = {k: [] for k in RUNS}
    diffs: dict[str, list] = {k: [] for k in RUNS}
    for name, truth, lr in images:
        x = to_tensor(lr)
        size = (truth.shape[0], truth.shape[1])
        outs = {}
        for k, up in ups.items():
            up.upscale(x[..., :16, :16], (16 * size[0] // lr.shape[0], 16 * size[1] // lr.shape[1]))  # warm
            t = time.perf_counter()
            outs[k] = _quantize(up.upscale(x, size))
            seconds[k] += time.perf_counter() - t
            scores[k].append(score(outs[k], truth, size[0] // lr.shape[0]))
            d = np.abs(outs[k].astype(np.int16) - outs["fp32"].astype(np.int16))
            diffs[k].append((float(d.max()), float(d.mean())))
    return {"model": model, "images": len(images), "seconds": seconds, "summary": _summary(scores, diffs)}


def _summary(scores: dict, diffs: dict) -> dict:
    out = {}
    for k in scores:
        row = {}
        for metric in ("haarpsi", "ms_ssim"):
            vals = [getattr(s, metric) for s in scores[k]]
            base = [getattr(s, metric) for s in scores["fp32"]]
            deltas = [v - b for v, b in zip(vals, base, strict=True) if v is not None and b is not None]
            row[metric] = statistics.mean(v for v in vals if v is not None)
            row[f"{metric}_delta_mean"] = statistics.mean(deltas)
            row[f"{metric}_delta_worst"] = min(deltas)
        row["max_diff_255"] = max(d[0] for d in diffs[k])
        row["mean_diff_255"] = statistics.mean(d[1] for d in diffs[k])
        out[k] = row
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="realesrgan-x4plus,realesrgan-x4plus-anime,realsr-df2k-jpeg-x4,"
                                        "animevideo-x4,span-x2,span-x4,realcugan-x2-no-denoise")
    ap.add_argument("--sets", default="set5,set14")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if not native_bf16():
        sys.exit("this CPU has no native bf16 (AVX512-BF16 or AMX)")
    results = []
    for model in args.models.split(","):
        scale = Upscaler(model, "cpu", precision="fp32").chain[0].scale or 4
        res = run_model(model, inputs(args.sets.split(","), scale), args.threads)
        results.append(res)
        print(json.dumps(res), flush=True)
        if args.out:
            args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
