"""Resident memory of `vidscale serve` idle before and after one job, as a dated Markdown table.

    python benchmarks/web_idle_memory.py [--choice photo] [--size 240x320] [--scale 2] [--wait 20]

Each configuration runs in a fresh server process: `--release-after W` (the server gives freed
memory back once the queue has been idle W seconds) and without release (`--release-after` far
beyond the measurement). One picture job is posted (a smooth test pattern of --size, HxW); the
server's VmRSS is read from /proc when it is idle before the job, just after the job is done, and
W + 5 seconds later, with VmHWM (its peak). Linux only (glibc for the release itself).
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_pipeline import machine  # noqa: E402
from tests.media import pattern  # noqa: E402
from vidscale.media.image import write_image  # noqa: E402

NEVER_S = 10**6


def memory(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM of `pid`, in MiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    return {key: int(re.search(rf"^{key}:\s+(\d+) kB", status, re.M).group(1)) / 1024  # type: ignore[union-attr]
            for key in ("VmRSS", "VmHWM")}


def call(url: str, method: str, path: str, body: bytes | None = None) -> dict:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        conn.request(method, path, body=body)
        return json.loads(conn.getresponse().read() or b"{}")
    finally:
        conn.close()


def one_run(picture: Path, choice: str, scale: int, release_after: float, wait_s: float) -> dict[str, float]:
    out = Path(tempfile.mkdtemp(prefix="vidscale-bench-web-"))
    server = subprocess.Popen([sys.executable, "-m", "vidscale", "serve", "--port", "0", "--out", str(out),
                               "--release-after", str(release_after)], stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        while "serving" not in (line := server.stderr.readline()):  # type: ignore[union-attr]
            if server.poll() is not None:
                raise RuntimeError("the server did not start")
        url = re.search(r"http://\S+/", line).group(0)  # type: ignore[union-attr]
        time.sleep(2)
        figures = {"idle before": memory(server.pid)["VmRSS"]}
        job = call(url, "POST", f"/api/jobs?name=p.png&choice={choice}&scale={scale}", picture.read_bytes())
        started = time.monotonic()
        while _state(url, job["id"]) not in ("done", "failed"):
            time.sleep(0.2)
        figures["job s"] = time.monotonic() - started
        figures["just after"] = memory(server.pid)["VmRSS"]
        time.sleep(wait_s)
        after = memory(server.pid)
        figures[f"{wait_s:g} s later"], figures["peak"] = after["VmRSS"], after["VmHWM"]
        return figures
    finally:
        server.terminate()
        server.wait()
        server.stderr.close()  # type: ignore[union-attr]


def _state(url: str, job_id: str) -> str:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        conn.request("GET", "/api/events")
        first = conn.getresponse().readline().decode().removeprefix("data: ")
    finally:
        conn.close()
    return next(j["state"] for j in json.loads(first)["jobs"] if j["id"] == job_id)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--choice", default="photo")
    parser.add_argument("--size", default="240x320", help="HxW of the picture")
    parser.add_argument("--scale", type=int, default=2)
    parser.add_argument("--release-after", type=float, default=10)
    parser.add_argument("--out", type=Path, help="Markdown file (default: benchmarks/results/DATE-web-idle-memory.md)")
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.split("x"))
    picture = Path(tempfile.mkdtemp()) / "p.png"
    write_image(picture, pattern(0, height, width))
    wait = args.release_after + 5
    rows = [(f"--release-after {args.release_after:g}", one_run(picture, args.choice, args.scale, args.release_after, wait)),
            ("no release", one_run(picture, args.choice, args.scale, NEVER_S, wait))]
    keys = list(rows[0][1])
    today = datetime.date.today().isoformat()
    lines = [f"# `vidscale serve`: resident memory around one job ({today})", "",
             f"Machine: {machine()}. One `{args.choice}` job at {args.scale}x on a {width}x{height} PNG; "
             "resident set (VmRSS) and peak (VmHWM) in MiB, each configuration a fresh server.", "",
             "Command: `python benchmarks/web_idle_memory.py " + " ".join(sys.argv[1:]) + "`", "",
             "| server | " + " | ".join(keys) + " |", "|---|" + "---:|" * len(keys)]
    for label, figures in rows:
        lines.append(f"| {label} | " + " | ".join(f"{figures[k]:.0f}" if k != "job s" else f"{figures[k]:.1f}"
                                                  for k in keys) + " |")
    text = "\n".join(lines) + "\n"
    target = args.out or ROOT / "benchmarks" / "results" / f"{today}-web-idle-memory.md"
    target.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
