"""Flicker (temporal warping error) and fidelity (mean Y-PSNR) of the temporal pass.

For each ground-truth sequence: bicubic x2 down, JPEG each frame (quality 40
by default), upscale every frame with the network once (cached, so strengths
compare without rerunning it), then run `TemporalFilter` at a few strengths.
Also times the pass against the network, on these frames and at a
540p -> 1080p size.

    python benchmarks/temporal_eval.py [--markdown benchmarks/results/DATE-temporal-cpu.md]

Not a test: it needs ../shared/media and minutes of CPU.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch

from vidscale import flicker
from vidscale.evaluate import make_lr
from vidscale.media.image import read_image, write_image
from vidscale.resample import resize
from vidscale.temporal import DEFAULT_SIGMA, TemporalFilter
from vidscale.upscaler import Upscaler, from_tensor, to_tensor

ROOT = Path(__file__).resolve().parent.parent
MEDIA = ROOT.parent / "shared" / "media"
SEQUENCES = ("sequence_calendar", "sequence_city")
SCALE = 2


def degrade(hr: np.ndarray, quality: int, tmp: Path) -> tuple[np.ndarray, np.ndarray]:
    """Ground truth cropped to a multiple of the scale, and its JPEG-compressed x2 downscale."""
    hr, lr = make_lr(hr, SCALE)
    path = tmp / "frame.jpg"
    write_image(path, lr, quality)
    return hr, read_image(path)


def load(name: str, frames: int, quality: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(ground truth, low-res input) of a shared sequence folder or of a `clip_name` video clip."""
    if "@" in name:
        hrs = clip_frames(name)
    else:
        paths = sorted((MEDIA / name).glob("Frame *.png"))[:frames]
        hrs = [read_image(p) for p in paths]
    if not hrs:
        sys.exit(f"{name}: no frames (the shared media is not here)")
    with tempfile.TemporaryDirectory() as tmp:
        pairs = [degrade(hr, quality, Path(tmp)) for hr in hrs]
    return [h for h, _ in pairs], [lr for _, lr in pairs]


def clip_name(path: str, start: str, count: str) -> str:
    return f"{path}@{int(start)}+{int(count)}"


def clip_frames(name: str) -> list[np.ndarray]:
    """RGB frames START..START+COUNT-1 of the video in 'PATH@START+COUNT'."""
    path, span = name.rsplit("@", 1)
    start, count = (int(v) for v in span.split("+"))
    frames = []
    with av.open(path) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i >= start + count:
                break
            if i >= start:
                frames.append(frame.to_ndarray(format="rgb24"))
    return frames


def upscale_all(up: Upscaler, lrs: list[np.ndarray], cache: Path) -> list[torch.Tensor]:
    """Network output of every frame (float, unquantised), cached on disk."""
    if cache.exists():
        return [sr[None] for sr in torch.load(cache)]
    size = (lrs[0].shape[0] * SCALE, lrs[0].shape[1] * SCALE)
    srs = [up.upscale(to_tensor(lr), size).cpu() for lr in lrs]
    torch.save(torch.cat(srs), cache)
    return srs


def run_filter(lrs: list[np.ndarray], srs: list[torch.Tensor], strength: float, sigma: float,
               **options: object) -> tuple[list[np.ndarray], float, int]:
    """8-bit outputs, median seconds per frame of the pass, scene cuts found."""
    filt = TemporalFilter(strength, "cpu", sigma=sigma, **options)  # type: ignore[arg-type]
    outs, times = [], []
    for lr, sr in zip(lrs, srs):
        start = time.perf_counter()
        out = filt.apply(lr, sr)
        times.append(time.perf_counter() - start)
        outs.append(from_tensor(out, np.uint8))
    return outs, float(np.median(times[1:])), filt.cuts  # the first frame has no history


def bicubic(lrs: list[np.ndarray]) -> list[np.ndarray]:
    size = (lrs[0].shape[0] * SCALE, lrs[0].shape[1] * SCALE)
    return [from_tensor(resize(to_tensor(lr).double(), size).clamp(0, 1), np.uint8) for lr in lrs]


class _Scorer:
    """Table rows for one sequence, each against the plain network output."""

    def __init__(self, name: str, truth: list[np.ndarray], plain: list[np.ndarray]):
        self.label = Path(name).name if "@" in name else name.removeprefix("sequence_")
        self.truth = truth
        self.motions = {m: flicker.truth_motion(truth, m) for m in ("dis", "farneback")}
        self.base = {m: flicker.warping_error(plain, self.motions[m], SCALE) for m in self.motions}
        self.base_psnr = flicker.mean_psnr(plain, truth, SCALE)

    def row(self, method: str, outs: list[np.ndarray], pass_s: float | None = None, cuts: int = 0) -> str:
        e = {m: flicker.warping_error(outs, self.motions[m], SCALE) for m in self.motions}
        psnr = flicker.mean_psnr(outs, self.truth, SCALE)
        cost = f"{pass_s * 1e3:.1f}" if pass_s is not None else "-"
        line = (f"| {self.label} | {method} | {e['dis'] * 1e3:.3f} | {e['dis'] / self.base['dis'] - 1:+.1%} "
                f"| {e['farneback'] * 1e3:.3f} | {e['farneback'] / self.base['farneback'] - 1:+.1%} "
                f"| {psnr:.2f} | {psnr - self.base_psnr:+.2f} | {cost} | {cuts} |")
        print(line, flush=True)
        return line


def sequence_rows(name: str, args: argparse.Namespace, up: Upscaler) -> list[str]:
    truth, lrs = load(name, args.frames, args.quality)
    key = name.replace("/", "_").replace("@", "-").replace("+", "-")
    srs = upscale_all(up, lrs, args.cache / f"{key}-{args.model}-{args.frames}-q{args.quality}.pt")
    plain = [from_tensor(sr, np.uint8) for sr in srs]
    scorer = _Scorer(name, truth, plain)
    rows = [scorer.row("bicubic", bicubic(lrs)), scorer.row(f"plain {args.model}", plain)]
    variants = ([(f"temporal {s:g}", s, {}) for s in args.strengths]
                + [(f"2-frame {s:g}", s, {"recursive": False}) for s in args.two_frame]
                + [(f"no relight {s:g}", s, {"relight": 0}) for s in args.no_relight])
    for method, strength, options in variants:
        rows.append(scorer.row(method, *run_filter(lrs, srs, strength, args.sigma, **options)))
    return rows


def cost_at(size: tuple[int, int], up: Upscaler, frames: int) -> str:
    """The pass against the network at a low-res `size` (real content, a small pan).

    The two run in turn on each frame, so both see the same load on a shared machine.
    """
    hr = read_image(MEDIA / SEQUENCES[0] / "Frame 001.png")
    base = from_tensor(resize(to_tensor(hr).double(), size).clamp(0, 1), np.uint8)
    lrs = [np.roll(base, (i, 2 * i), axis=(0, 1)) for i in range(frames + 1)]
    out_size = (size[0] * SCALE, size[1] * SCALE)
    filt = TemporalFilter(device="cpu")
    filt.apply(lrs[0], up.upscale(to_tensor(lrs[0]), out_size))  # warm-up, and the first history
    net, spent = [], []
    for lr in lrs[1:]:
        start = time.perf_counter()
        sr = up.upscale(to_tensor(lr), out_size)
        net.append(time.perf_counter() - start)
        start = time.perf_counter()
        filt.apply(lr, sr)
        spent.append(time.perf_counter() - start)
    pass_s, net_s = sum(spent) / frames, sum(net) / frames
    return (f"{size[1]}x{size[0]} -> {out_size[1]}x{out_size[0]}, {frames} frames: temporal pass "
            f"{pass_s * 1e3:.0f} ms, {up.model.name if up.model else 'network'} {net_s * 1e3:.0f} ms "
            f"per frame (pass = {pass_s / net_s:.1%} of the network)")


def _size(spec: str) -> tuple[int, int]:
    h, w = spec.split(":")[0].split("x")
    return int(h), int(w)


def machine() -> str:
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next((ln.split(":", 1)[1].strip() for ln in cpu.splitlines() if ln.startswith("Model name")), "?")
    return (f"{model}, {torch.get_num_threads()} torch threads ({subprocess.getoutput('nproc')} CPUs), "
            f"Python {platform.python_version()}, torch {torch.__version__}")


HEADER = ("| sequence | method | warp err DIS (x1e-3) | vs plain | warp err Farneback (x1e-3) | vs plain "
          "| mean Y-PSNR (dB) | vs plain | pass ms/frame | cuts |\n"
          "|---|---|---|---|---|---|---|---|---|---|")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--frames", type=int, default=31)
    p.add_argument("--quality", type=int, default=40, help="JPEG quality of the low-res frames")
    p.add_argument("--strengths", type=float, nargs="+", default=[0.5, 0.6, 0.7, 0.8, 0.9])
    p.add_argument("--two-frame", type=float, nargs="*", default=[0.5],
                   help="strengths to run non-recursively (blend with the previous plain upscale)")
    p.add_argument("--no-relight", type=float, nargs="*", default=[],
                   help="strengths to run without the brightness correction of the history")
    p.add_argument("--clip", nargs=3, action="append", default=[], metavar=("VIDEO", "START", "COUNT"),
                   help="also score these frames of a video (its frames are the ground truth)")
    p.add_argument("--sigma", type=float, default=DEFAULT_SIGMA)
    p.add_argument("--model", default="span-x2")
    p.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "vidscale-temporal-cache")
    p.add_argument("--cost", nargs="*", default=["180x320:10", "540x960:3"], metavar="HxW:FRAMES",
                   help="low-res sizes to time the pass against the network at")
    p.add_argument("--markdown", type=Path, help="also write the results here")
    args = p.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    up = Upscaler(args.model, "cpu")
    load = [os.getloadavg()[0]]
    print(HEADER)
    names = [*SEQUENCES, *(clip_name(*c) for c in args.clip)]
    rows = [r for name in names for r in sequence_rows(name, args, up)]
    cost = [cost_at(_size(spec), up, int(spec.split(":")[1])) for spec in args.cost]
    print("\n".join(cost))
    load.append(os.getloadavg()[0])
    if args.markdown:
        command = "python " + " ".join(sys.argv)
        args.markdown.write_text(_report(rows, cost, command, args, load))


def _report(rows: list[str], cost: list[str], command: str, args: argparse.Namespace, load: list[float]) -> str:
    return "\n".join([
        f"# Temporal pass: flicker and fidelity ({time.strftime('%Y-%m-%d')}, CPU)",
        "",
        f"Machine: {machine()}; shared, 1-minute load average {load[0]:.1f} at the start and "
        f"{load[1]:.1f} at the end, so read times as ratios taken in the same run.",
        f"Command: `{command}`",
        "",
        f"Input: the first {args.frames} frames of each sequence, whole frames. Ground truth: the "
        "shared frames (calendar 180x144; city cropped from 177 to 176 wide). Low-res: MATLAB-style "
        f"bicubic x{SCALE} down (90x72, 88x72), then JPEG quality {args.quality} per frame."
        + (" Clips: the listed frames of a video, its decoded frames as ground truth (already coded, "
           "so fidelity there includes the source's own noise), degraded the same way." if args.clip else "")
        + f" Network: {args.model} on the CPU, float output cached; the "
        "temporal pass runs on its float output and everything is scored after 8-bit rounding.",
        "Warping error (Lai et al. 2018): mean over frame pairs of the squared RGB difference "
        "([0, 1] values, summed over channels) between output t and output t-1 warped by the "
        "ground truth's motion, on pixels visible in both (forward-backward check), border "
        f"crop {SCALE}; shown x1e-3, with the motion from DIS (MEDIUM) and, as a check that the "
        "gain does not depend on the flow estimator, Farneback. PSNR: Y channel, crop = scale.",
        "\"temporal s\" is the shipped recursive pass (blends the previous *output*); \"2-frame s\" "
        "blends the previous plain upscale instead; \"no relight s\" leaves out the brightness "
        "correction of the history. Pass times are medians per frame.",
        "",
        HEADER,
        *rows,
        "",
        "Cost, the pass and the network timed in turn on the same frames:" if cost else "",
        "",
        *(f"- {line}" for line in cost),
        "",
    ])


if __name__ == "__main__":
    main()
