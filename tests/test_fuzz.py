"""A fixed-seed fuzz run: damaged copies of real pictures and clips through the CLI.

Each corpus file is truncated at several points, has random bytes flipped, or
has a chunk edited (a PNG's size fields set huge with a valid CRC, a range of
bytes deleted or repeated). One worker process runs every case through
`vidscale.cli.main` under a cap on its address space and a time limit per case
(faulthandler ends the process if one hangs). No case may end in a traceback,
an internal error (exit 3), a hang or a left-over file, and no input may change.
"""

from __future__ import annotations

import hashlib
import json
import random
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import av
import pytest

from tests.conftest import ROOT, SAMPLES, SHARED_MEDIA

SEED = 13
PER_CASE_S = 60  # generous for a shared, loaded machine; a hang is far past it
MEMORY_CAP_GIB = 3  # above the worker's address space once torch is loaded

WORKER = r"""
import contextlib, faulthandler, io, json, resource, sys
from vidscale.cli import main
import vidscale.job  # torch and the rest, loaded before the cap
cases, cap_gib, per_case = json.loads(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
with open("/proc/self/status") as fh:
    vm = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmSize:"))
cap = vm + int(cap_gib * (1 << 30))
resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
for source, output in cases:
    print(json.dumps({"start": source}), flush=True)
    faulthandler.dump_traceback_later(per_case, exit=True)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["-q", "-m", "bicubic", "--scale", "2", source, output])
    faulthandler.cancel_dump_traceback_later()
    print(json.dumps({"source": source, "code": code, "stderr": err.getvalue()}), flush=True)
"""


def _short_clip(src: Path, dst: Path, packets: int) -> Path:
    """The first `packets` video packets of a real clip, copied (not re-encoded)."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        stream = out.add_stream_from_template(inp.streams.video[0])
        for i, packet in enumerate(inp.demux(inp.streams.video[0])):
            if packet.dts is None:
                continue
            if i >= packets:
                break
            packet.stream = stream
            out.mux(packet)
    return dst


def _gif_from(clip: Path, dst: Path, frames: int = 4) -> Path:
    """An animated GIF of a real clip's first frames, downscaled (keeps the case fast)."""
    with av.open(str(clip)) as inp, av.open(str(dst), "w", format="gif") as out:
        stream = out.add_stream("gif", rate=10)
        stream.width, stream.height, stream.pix_fmt = 80, 45, "rgb8"
        for i, frame in enumerate(inp.decode(video=0)):
            if i == frames:
                break
            small = frame.reformat(width=80, height=45, format="rgb8")
            small.pts = i
            out.mux(stream.encode(small))
        out.mux(stream.encode(None))
    return dst


def _png_chunk_edit(data: bytes, rng: random.Random) -> bytes:
    """IHDR width and height set to a huge value, with a valid CRC: the header lies about the size."""
    body = bytearray(data[16:29])
    side = rng.choice([0x7FFF, 0xFFFF, 0x7FFFFFFF])
    struct.pack_into(">II", body, 0, side, side)
    return data[:16] + bytes(body) + struct.pack(">I", zlib.crc32(b"IHDR" + bytes(body))) + data[33:]


def _variants(data: bytes, rng: random.Random, png: bool) -> list[tuple[str, bytes]]:
    n = len(data)
    out = [(f"cut{int(f * 100)}", data[: int(n * f)]) for f in (0.05, 0.6)]
    for k in range(2):
        flipped = bytearray(data)
        for _ in range(rng.choice([1, 16, 64])):
            pos = rng.randrange(n)
            flipped[pos] ^= 1 << rng.randrange(8)
        out.append((f"flip{k}", bytes(flipped)))
    a = rng.randrange(n // 8, n // 2)
    b = min(n, a + rng.randrange(16, max(17, n // 10)))
    out.append(("delete", data[:a] + data[b:]))
    out.append(("repeat", data[:b] + data[a:b] + data[b:]))
    if png:
        out.append(("ihdr", _png_chunk_edit(data, rng)))
    return out


def _corpus(folder: Path) -> list[Path]:
    real = [SAMPLES / "bunny.png", _short_clip(SAMPLES / "bunny.webm", folder / "bunny.webm", 12),
            _gif_from(SAMPLES / "bunny.webm", folder / "bunny.gif")]
    photo = SHARED_MEDIA / "realesrgan_inputs" / "0014.jpg"
    if photo.is_file():
        real.append(photo)
    film = SHARED_MEDIA / "video" / "chaplin.mp4"
    if film.is_file():
        real.append(_short_clip(film, folder / "chaplin.mp4", 8))
    return real


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_fuzzed_real_media_never_crash_hang_or_leave_files(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    inputs, outputs = tmp_path / "in", tmp_path / "out"
    inputs.mkdir(), outputs.mkdir()
    cases = []
    for real in _corpus(tmp_path):
        data = real.read_bytes()
        for tag, mutated in _variants(data, rng, data.startswith(b"\x89PNG")):
            src = inputs / f"{real.stem}-{tag}{real.suffix}"
            src.write_bytes(mutated)
            out_suffix = {".webm": ".mkv", ".mp4": ".mp4"}.get(real.suffix, real.suffix)
            cases.append((str(src), str(outputs / f"{src.stem}{out_suffix}")))
    before = {p.name: _digest(p) for p in inputs.iterdir()}
    proc = subprocess.run([sys.executable, "-c", WORKER, json.dumps(cases), str(MEMORY_CAP_GIB), str(PER_CASE_S)],
                          capture_output=True, text=True, cwd=ROOT, timeout=PER_CASE_S * len(cases))
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    results = {e["source"]: e for e in events if "code" in e}
    started = [e["start"] for e in events if "start" in e]
    hung = [s for s in started if s not in results]
    assert not hung and proc.returncode == 0, f"stopped at {hung} (hang or crash): {proc.stderr[-2000:]}"
    assert len(results) == len(cases)
    bad = {Path(s).name: (r["code"], r["stderr"]) for s, r in results.items()
           if r["code"] not in (0, 1, 2) or "Traceback" in r["stderr"]
           or (r["code"] != 0 and len([ln for ln in r["stderr"].splitlines() if ln.strip()]) != 1)}
    assert not bad, bad
    for source, output in cases:
        failed = results[source]["code"] != 0
        assert not (failed and Path(output).exists()), f"{output}: left behind by a failed run"
    assert not [p.name for p in outputs.iterdir() if "vidscale-tmp" in p.name]
    assert {p.name: _digest(p) for p in inputs.iterdir()} == before
    codes = sorted(r["code"] for r in results.values())
    assert codes.count(0) and codes.count(1), codes  # the corpus exercises both outcomes
