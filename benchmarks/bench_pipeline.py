"""Pipeline throughput: `vidscale bench` over a set of cases, results as a dated Markdown file.

    python benchmarks/bench_pipeline.py                 # CPU cases on the shared clip
    python benchmarks/bench_pipeline.py --gpu           # the GPU cases (1080p synthetic, H100/H200)

Run it on a quiet machine: every figure in one file comes from one run, so
ratios between them hold even where absolute speed varies.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLIP = ROOT.parent / "shared" / "media" / "video" / "trim-buck-bunny.webm"

# span-x2 named: the figures stay comparable with earlier runs (the default is now far heavier)
CPU_CASES = [
    ["bench", str(CLIP), "--frames", "48", "-m", "span-x2", "--batch", "1"],
    ["bench", str(CLIP), "--frames", "48", "-m", "span-x2", "--batch", "2"],
]
GPU_CASES = [
    ["bench", "--synthetic", "1920x1080", "--frames", "240", "-m", "span-x2", "--batch", str(b),
     "--encoder-preset", preset]
    for b in (1, 2, 4) for preset in ("ultrafast", "medium")
] + [  # what colour conversion on the device buys: the same case with swscale on the CPU threads
    ["bench", "--synthetic", "1920x1080", "--frames", "240", "-m", "span-x2", "--batch", "4",
     "--encoder-preset", "ultrafast", "--host-color"],
]


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        model = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name"))
        cpu = model
    except (OSError, StopIteration):
        pass
    text = f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}"
    try:
        gpu = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20).stdout.strip()
        if gpu:
            text += f", GPU {gpu}"
    except (OSError, subprocess.TimeoutExpired):
        pass
    return text


def run_case(args: list[str]) -> dict[str, object]:
    proc = subprocess.run([sys.executable, "-m", "vidscale", *args, "--json"], capture_output=True,
                          text=True, cwd=ROOT, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gpu", action="store_true", help="run the GPU cases")
    parser.add_argument("--out", type=Path, help="results file (default: benchmarks/results/DATE-...md)")
    args = parser.parse_args()
    cases = GPU_CASES if args.gpu else CPU_CASES
    today = datetime.date.today().isoformat()
    out = args.out or ROOT / "benchmarks" / "results" / f"{today}-pipeline-{'gpu' if args.gpu else 'cpu'}.md"
    lines = [f"# Pipeline benchmark, {today}", "", f"Machine: {machine()}", "",
             f"Command: `python benchmarks/bench_pipeline.py{' --gpu' if args.gpu else ''}`", "",
             "| case | decode | upload | infer | download | encode | pipeline | efficiency |",
             "|---|---|---|---|---|---|---|---|"]
    for case in cases:
        r = run_case(case)
        s = r["stages"]
        label = f"{r['source']} {r['input'][0]}x{r['input'][1]} {r['model']} batch {r['batch']} ({r['device']})"
        label += "".join(f" {a}" for a in case if a in ("ultrafast", "medium", "--host-color"))
        lines.append(f"| {label} | {s['decode']:.1f} | {s['upload']:.1f} | {s['infer']:.2f} | "
                     f"{s['download']:.1f} | {s['encode']:.1f} | {r['pipeline_fps']:.2f} | {r['efficiency']:.2f} |")
        print(lines[-1], flush=True)
    lines += ["", "Figures are frames per second; efficiency = pipeline / slowest stage."]
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
