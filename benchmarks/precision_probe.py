"""How far reduced precision moves each built-in's output, and how sensitive the network is.

    python benchmarks/precision_probe.py [--models span-x2,...] [--threads 2]

For each model and each crop (a noisy tree from OST_009.png, the crop where
`cpu_runtimes.py` saw bf16 SPAN differ by 255/255, and a smooth crop of
samples/bunny.png), against PyTorch fp32 NCHW: the fp32 output's own range
before clamping, then the clamped difference (max, 99.9th percentile and mean,
in 1/255) of fp64, fp32 channels_last, fp32 with the input moved by +-0.05/255
(uniform noise), the input alone rounded to bf16, the weights alone rounded to
bf16, and the whole network in bf16 and fp16 (CPU kernels). A network whose
output moves by tens of levels when its input moves by a twentieth of one is
ill-conditioned there: no 8-bit-mantissa format can match its fp32 output.
"""

from __future__ import annotations

import argparse
import copy
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vidscale.engine.torch_engine import TorchEngine  # noqa: E402
from vidscale.media.image import read_image  # noqa: E402
from vidscale.models import zoo  # noqa: E402
from vidscale.models.loading import load_descriptor  # noqa: E402
from vidscale.upscaler import to_tensor  # noqa: E402

TREE = ROOT.parent / "shared" / "media" / "realesrgan_inputs" / "OST_009.png"
CROPS = {"OST_009 tree (rows 100-195, cols 352-447)": (TREE, 100, 352, 96),
         "bunny.png smooth (rows 100-163, cols 200-263)": (ROOT / "samples" / "bunny.png", 100, 200, 64)}
MODELS = "span-x2,span-x4,animevideo-x4,realesrgan-x4plus-anime,realesrgan-x4plus"


def crop(path: Path, top: int, left: int, side: int) -> torch.Tensor:
    rgb = read_image(path)[top:top + side, left:left + side, :3]
    return to_tensor(np.ascontiguousarray(rgb))


def variants(model: torch.nn.Module, x: torch.Tensor) -> dict[str, Callable[[], torch.Tensor]]:
    noise = (torch.rand(x.shape, generator=torch.Generator().manual_seed(0)) - 0.5) * 0.1 / 255
    last = torch.channels_last
    return {
        "fp64": lambda: copy.deepcopy(model).double()(x.double()).float(),
        "fp32 channels_last": lambda: copy.deepcopy(model).to(memory_format=last)(x.contiguous(memory_format=last)),
        "fp32, input +-0.05/255": lambda: model(x + noise),
        "input rounded to bf16": lambda: model(x.bfloat16().float()),
        "weights rounded to bf16": lambda: copy.deepcopy(model).bfloat16().float()(x),
        "bf16": lambda: copy.deepcopy(model).bfloat16()(x.bfloat16()).float(),
        "fp16": lambda: copy.deepcopy(model).half()(x.half()).float(),
    }


def difference(y: torch.Tensor, ref: torch.Tensor) -> str:
    d = ((y.clamp(0, 1) - ref.clamp(0, 1)).abs() * 255).flatten()
    p999 = float(torch.quantile(d[torch.randperm(d.numel(), generator=torch.Generator().manual_seed(0))[:2**20]],
                                0.999))
    return f"{float(d.max()):.2f} / {p999:.2f} / {float(d.mean()):.3f}"


@torch.inference_mode()
def probe(name: str, x: torch.Tensor) -> list[str]:
    desc = load_descriptor(zoo.resolve(name).path)  # type: ignore[arg-type]
    model = TorchEngine(desc, torch.device("cpu"), channels_last=False).model  # folded, fp32, NCHW
    ref = model(x)
    rows = [f"fp32 output before clamping: {float(ref.min()):.2f} to {float(ref.max()):.2f}, "
            f"{float(((ref < -0.05) | (ref > 1.05)).float().mean()) * 100:.2f}% of samples outside [-0.05, 1.05]"]
    for label, run in variants(model, x).items():
        rows.append(f"| {label} | {difference(run(), ref)} |")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=MODELS)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for label, (path, top, left, side) in CROPS.items():
        if not path.is_file():
            print(f"{label}: {path} not found, skipped")
            continue
        x = crop(path, top, left, side)
        for name in args.models.split(","):
            rows = probe(name, x)
            print(f"\n{name}, {label}: {rows[0]}\n\n| variant | max / 99.9th pct / mean (1/255) |\n|---|---|")
            print("\n".join(rows[1:]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
