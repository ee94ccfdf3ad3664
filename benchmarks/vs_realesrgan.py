"""vidscale against Real-ESRGAN's own video script: same clip, same network, same machine.

    bash benchmarks/peers_venv.sh          # once: basicsr + realesrgan in .cache/peers-venv
    python benchmarks/vs_realesrgan.py --script PATH/TO/inference_realesrgan_video.py

The script is xinntao/Real-ESRGAN's `inference_realesrgan_video.py` (a checkout
of that repository; none of it is kept here), run unchanged through
`realesrgan_shim.py`. Both runs use realesr-animevideov3 (our `animevideo-x4`;
the script's `.pth` is written from `engines/animevideo-x4.safetensors`), fp32
on the CPU, x4, libx264 CRF 23 preset medium yuv420p (the script's encoder
settings), on the first `--frames` frames of onepiece_demo.mp4. Runs are paired
and interleaved (the order alternates each round), so on a shared machine the
ratios hold where absolute times drift. Peak memory is the largest sum of the
resident sets of each run's process tree (the script's two ffmpeg processes
included), sampled every 20 ms.
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_pipeline import machine  # noqa: E402

CLIP = ROOT.parent / "shared" / "media" / "realesrgan_inputs" / "video" / "onepiece_demo.mp4"
PEER_PYTHON = ROOT / ".cache" / "peers-venv" / "bin" / "python"
SHIM = ROOT / "benchmarks" / "realesrgan_shim.py"
PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass
class Run:
    wall_s: float
    cpu_s: float
    peak_rss: int  # bytes, the process tree's sampled maximum
    faults: int  # minor page faults, the tree's (reaped children included)


def cut_clip(src: Path, dst: Path, frames: int) -> None:
    """The first `frames` video frames, re-encoded near-losslessly (no audio: both tools copy it)."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        vin = inp.streams.video[0]
        vout = out.add_stream("libx264", rate=vin.average_rate)
        vout.width, vout.height, vout.pix_fmt = vin.width, vin.height, "yuv420p"
        vout.options = {"crf": "8", "preset": "fast"}
        for i, frame in enumerate(inp.decode(vin)):
            if i == frames:
                break
            frame.pict_type = av.video.frame.PictureType.NONE
            out.mux(vout.encode(frame.reformat(format="yuv420p")))
        out.mux(vout.encode(None))


def write_weights(dst: Path) -> None:
    """realesr-animevideov3 as the script loads it ({'params': state dict}), from our engines/ file."""
    state = load_file(str(ROOT / "engines" / "animevideo-x4.safetensors"))
    torch.save({"params": {k: v.float() for k, v in state.items()}}, dst)


def _tree(pid: int) -> list[int]:
    pids, i = [pid], 0
    while i < len(pids):
        try:
            for task in os.listdir(f"/proc/{pids[i]}/task"):
                with open(f"/proc/{pids[i]}/task/{task}/children") as f:
                    pids += [int(p) for p in f.read().split()]
        except OSError:
            pass
        i += 1
    return pids


def _tree_rss(pid: int) -> int:
    total = 0
    for p in _tree(pid):
        try:
            with open(f"/proc/{p}/statm") as f:
                total += int(f.read().split()[1]) * PAGE
        except OSError:
            pass
    return total


def measure(cmd: list[str], cwd: Path, env: dict[str, str]) -> Run:
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            peak[0] = max(peak[0], _tree_rss(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[:4]} failed ({proc.returncode}):\n{err[-3000:]}")
    return Run(wall, usage.ru_utime + usage.ru_stime, peak[0], usage.ru_minflt)


def read_video(path: Path) -> tuple[list[np.ndarray], list[float]]:
    frames, times = [], []
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        for f in c.decode(s):
            frames.append(f.to_ndarray(format="rgb24"))
            times.append(float(f.pts * s.time_base))
    return frames, times


def match(a: Path, b: Path, fps: Fraction) -> str:
    fa, ta = read_video(a)
    fb, tb = read_video(b)
    n = min(len(fa), len(fb))
    dt = max((abs(x - y) for x, y in zip(ta, tb)), default=0.0) if len(ta) == len(tb) else math.nan
    mse = [np.mean((x.astype(np.float64) - y) ** 2) for x, y in zip(fa[:n], fb[:n])]
    psnr = [10 * math.log10(255**2 / m) if m else math.inf for m in mse]
    return (f"frames {len(fa)} / {len(fb)}; largest timestamp difference {dt * 1000:.1f} ms "
            f"(frame period {1000 / float(fps):.1f} ms); RGB PSNR between the outputs "
            f"mean {statistics.mean(psnr):.2f} dB, min {min(psnr):.2f} dB")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--script", type=Path, required=True, help="Real-ESRGAN's inference_realesrgan_video.py")
    parser.add_argument("--peer-python", type=Path, default=PEER_PYTHON)
    parser.add_argument("--clip", type=Path, default=CLIP)
    parser.add_argument("--frames", type=int, default=27)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--vidscale-arg", action="append", default=[], help="extra vidscale option (repeat)")
    parser.add_argument("--out", type=Path, help="results file (default: benchmarks/results/DATE-vs-realesrgan-cpu.md)")
    args = parser.parse_args()
    today = datetime.date.today().isoformat()
    out_file = args.out or ROOT / "benchmarks" / "results" / f"{today}-vs-realesrgan-cpu.md"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CUDA_VISIBLE_DEVICES": ""}
    with tempfile.TemporaryDirectory(prefix="vs-realesrgan-") as tmp:
        work = Path(tmp)
        clip = work / "clip.mp4"
        cut_clip(args.clip, clip, args.frames)
        (work / "weights").mkdir()
        write_weights(work / "weights" / "realesr-animevideov3.pth")
        with av.open(str(clip)) as c:
            vs = c.streams.video[0]
            fps, size = vs.average_rate, (vs.width, vs.height)
        peer_out, ours_out = work / "peer", work / "vidscale.mp4"
        peer = [str(args.peer_python), str(SHIM), str(args.script.resolve()), "-i", str(clip), "-o",
                str(peer_out), "-n", "realesr-animevideov3", "-s", "4", "--fp32", "--suffix", "out"]
        ours = [sys.executable, "-m", "vidscale", str(clip), str(ours_out), "-m", "animevideo-x4",
                "--scale", "4", "--crf", "23", "--encoder-preset", "medium", "--pix-fmt", "yuv420p",
                "--overwrite", "--quiet", *args.vidscale_arg]
        runs: dict[str, list[Run]] = {"vidscale": [], "Real-ESRGAN": []}
        for r in range(args.rounds):
            order = [("vidscale", ours), ("Real-ESRGAN", peer)]
            for name, cmd in order if r % 2 == 0 else order[::-1]:
                runs[name].append(run := measure(cmd, work, env))
                print(f"round {r + 1} {name}: {run.wall_s:.2f} s wall, {run.cpu_s:.2f} s CPU, "
                      f"{run.peak_rss / 2**20:.0f} MiB", file=sys.stderr)
        check = match(ours_out, peer_out / "clip_out.mp4", fps)
    text = report(runs, args, today, size, fps, check)
    out_file.write_text(text, encoding="utf-8")
    print(text)
    return 0


def report(runs: dict[str, list[Run]], args: argparse.Namespace, today: str, size: tuple[int, int],
           fps: Fraction, check: str) -> str:
    ours, peer = runs["vidscale"], runs["Real-ESRGAN"]
    lines = [
        f"# vidscale against Real-ESRGAN's video script, CPU ({today})", "",
        f"Machine: {machine()}; torch {torch.__version__}; shared with other jobs, so read the ratios.",
        f"Command: `python benchmarks/vs_realesrgan.py {' '.join(sys.argv[1:])}`", "",
        f"Clip: the first {args.frames} frames of onepiece_demo.mp4 ({size[0]}x{size[1]}, {float(fps):.3f} fps) "
        f"to {size[0] * 4}x{size[1] * 4}; realesr-animevideov3 (animevideo-x4), fp32, x264 CRF 23 medium.",
        "", "| round | tool | wall s | CPU s | peak memory MiB | minor faults |", "|---|---|---|---|---|---|",
    ]
    for i, (a, b) in enumerate(zip(ours, peer), 1):
        for name, r in (("vidscale", a), ("Real-ESRGAN", b)):
            lines.append(f"| {i} | {name} | {r.wall_s:.2f} | {r.cpu_s:.2f} | {r.peak_rss / 2**20:.0f} | {r.faults:,} |")
    ratio = lambda f: statistics.median(f(a) / f(b) for a, b in zip(ours, peer))  # noqa: E731
    lines += [
        "", "Ratios vidscale / Real-ESRGAN (median over the rounds; below 1: vidscale uses less):", "",
        f"- wall time {ratio(lambda r: r.wall_s):.3f}",
        f"- CPU time {ratio(lambda r: r.cpu_s):.3f}",
        f"- peak memory {ratio(lambda r: r.peak_rss):.3f}",
        f"- minor page faults {ratio(lambda r: r.faults):.3f}",
        "", f"Outputs: {check}.", "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
