"""TorchScript files are refused in one line, before PyTorch reads them (they carry code)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from spandrel.architectures.Compact import Compact

from tests.conftest import SAMPLES
from vidscale.cli import main


@pytest.fixture(scope="module")
def scripted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    net = Compact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=2).eval()
    path = tmp_path_factory.mktemp("ts") / "net.pt"
    with warnings.catch_warnings():  # torch.jit.save's own deprecation notice
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.trace(net, torch.rand(1, 3, 16, 16)), str(path))
    return path


@pytest.mark.parametrize("command", ["upscale", "import"])
def test_torchscript_gets_one_line_and_no_warning(tmp_path: Path, scripted: Path, command: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    args = ([str(SAMPLES / "bunny.png"), str(tmp_path / "o.png"), "-m", str(scripted)] if command == "upscale"
            else ["models", "import", str(scripted)])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(args) == 2
    assert [str(w.message) for w in caught] == []
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "TorchScript files are not supported because they carry code" in lines[0]
    assert "weights_only" not in lines[0]
    assert not (tmp_path / "o.png").exists()
