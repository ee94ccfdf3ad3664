"""`vidscale bench` reports every stage, the pipeline and the efficiency."""

from __future__ import annotations

import json
import weakref
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from tests.conftest import SAMPLES
from vidscale.bench import StageClock, StreamClock, _infer, clock_for
from vidscale.cli import main
from vidscale.upscaler import Upscaler


def test_bench_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--synthetic", "64x48", "--frames", "6", "-m", "lanczos", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {"decode", "upload", "infer", "download", "encode"} <= set(report["stages"])
    assert all(v > 0 for v in report["stages"].values())
    assert report["pipeline_fps"] > 0 and report["frames"] == 6
    slowest = min(report["stages"].values())
    assert report["efficiency"] == pytest.approx(report["pipeline_fps"] / slowest, rel=0.01)
    assert report["output"] == [128, 96]
    assert report["color"] == "host"  # the CPU keeps swscale unless told otherwise


def test_bench_with_colour_conversion_on_the_device(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--synthetic", "64x48", "--frames", "4", "-m", "bicubic", "--device-color",
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["color"] == "device"
    assert all(v > 0 for v in report["stages"].values()) and report["pipeline_fps"] > 0


def test_bench_times_the_temporal_pass(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--synthetic", "64x48", "--frames", "6", "-m", "lanczos", "--temporal", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["stages"]["temporal"] > 0 and report["pipeline_fps"] > 0


def test_bench_table_on_a_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", str(SAMPLES / "bunny.webm"), "--frames", "4", "-m", "bicubic"]) == 0
    out = capsys.readouterr().out
    assert "slowest" in out and "efficiency" in out and "320x180 -> 640x360" in out


def test_bench_needs_a_source(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench"]) == 2
    assert main(["bench", "--synthetic", "big"]) == 2


def _fading_clip(path: Path, frames: int, dark: int) -> Path:
    """`dark` black frames, then mid-grey ones (a fade from black, as trim-buck-bunny.webm opens)."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=24, options={"crf": "0", "preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(frames):
            level = 0 if i < dark else 128
            picture = np.full((48, 64, 3), level, np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")))
        out.mux(stream.encode(None))
    return path


def test_stages_are_timed_over_the_frames_the_pipeline_rate_counts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """On a clock that only inference moves, a black frame costing 10 s and any other 1 s, the
    inference stage runs at 1 fps: the black opening (frames 1-4 of 16) falls before the window
    that the pipeline's steady rate counts, and so before the stage's. Averaged over every frame,
    as the stage once was, it read 16 / 52 s = 0.31 fps against the same frames' 1 fps in the pipeline."""
    now = [0.0]
    upscale = Upscaler.upscale

    def costly(self: Upscaler, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        now[0] += 10.0 if float(x.mean()) < 0.05 else 1.0
        return upscale(self, x, size)

    monkeypatch.setattr(Upscaler, "upscale", costly)
    monkeypatch.setattr(StageClock, "now", staticmethod(lambda: now[0]))
    clip = _fading_clip(tmp_path / "fade.mkv", 16, dark=4)
    assert main(["bench", str(clip), "--frames", "16", "-m", "bicubic", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["timed_frames"] == [5, 12]  # 0-based, end excluded: progress.steady_window
    assert report["stages"]["infer"] == pytest.approx(1.0)


def test_the_pipeline_runs_the_stages_upscaler(monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """One engine for both: the same tile size, layout and warm state (a second one was loaded once)."""
    callers: list[int] = []
    upscale = Upscaler.upscale

    def spy(self: Upscaler, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        callers.append(id(self))
        return upscale(self, x, size)

    monkeypatch.setattr(Upscaler, "upscale", spy)
    assert main(["bench", "--synthetic", "64x48", "--frames", "6", "-m", "bicubic", "--rounds", "1",
                 "--json"]) == 0
    capsys.readouterr()
    assert len(callers) == 1 + 6 + 6  # warm-up, the inference stage, the pipeline
    assert len(set(callers)) == 1


def test_the_inference_stage_frees_each_network_output() -> None:
    """As the pipeline does once a batch is converted: outputs kept where the network allocates
    them made the heap grow a frame's activations at a time (page faults the pipeline never took)."""
    up = Upscaler("bicubic", "cpu")
    made: list[weakref.ref[torch.Tensor]] = []
    run = up.upscale

    def tracked(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        y = run(x, size)
        made.append(weakref.ref(y))
        return y

    up.upscale = tracked  # type: ignore[method-assign]
    batches = [torch.full((1, 3, 8, 8), i / 4) for i in range(4)]
    outputs = _infer(up, batches, (16, 16), StageClock(torch.device("cpu")))
    assert len(made) == 5 and all(ref() is None for ref in made)  # the warm-up's too
    assert [round(float(y.mean()), 3) for y in outputs] == [0.0, 0.25, 0.5, 0.75]


def test_rounds_take_turns_with_the_same_upscaler(monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """--rounds 2: inference alone, the pipeline, inference alone, the pipeline; each its fastest."""
    calls: list[int] = []
    upscale = Upscaler.upscale

    def spy(self: Upscaler, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        calls.append(id(self))
        return upscale(self, x, size)

    monkeypatch.setattr(Upscaler, "upscale", spy)
    assert main(["bench", "--synthetic", "64x48", "--frames", "6", "-m", "bicubic", "--rounds", "2",
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert len(calls) == 2 * (1 + 6 + 6) and len(set(calls)) == 1  # each round: a warm-up call, 6 and 6
    rounds = report["rounds"]
    assert len(rounds) == 2 and all(r["infer"] > 0 and r["pipeline"] > 0 for r in rounds)
    assert report["stages"]["infer"] == max(r["infer"] for r in rounds)
    assert report["pipeline_fps"] == max(r["pipeline"] for r in rounds)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_inference_on_cuda_is_timed_on_its_stream() -> None:
    """Batches queue back to back, timed by events: no wait after each (the pipeline keeps several
    in flight), each frame still given its time."""
    device = torch.device("cuda")
    clock = clock_for(device, on_stream=True)
    assert isinstance(clock, StreamClock)
    up = Upscaler("bicubic", device)
    batches = [torch.rand(2, 3, 64, 64, device=device) for _ in range(5)]
    outputs = _infer(up, batches, (128, 128), clock)
    assert clock.rate() > 0 and len(clock.frame_times) == 10 and all(t > 0 for t in clock.frame_times)
    assert [tuple(y.shape) for y in outputs] == [(2, 3, 128, 128)] * 5


def test_host_stages_and_the_cpu_use_host_time() -> None:
    assert type(clock_for(torch.device("cpu"), on_stream=True)) is StageClock
    assert type(clock_for(torch.device("cuda"), on_stream=False)) is StageClock
