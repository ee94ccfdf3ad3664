"""`vidscale --help`, `--version` and every command's help: fast (no PyTorch import) and with examples."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap

import click

from tests.conftest import ROOT
from vidscale.cli import cli, main


def _command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = []
    for name, command in group.commands.items():
        paths.append((*prefix, name))
        if isinstance(command, click.Group):
            paths += _command_paths(command, (*prefix, name))
    return paths


def test_help_and_version_do_not_import_torch() -> None:
    # A fresh interpreter: the test process has torch loaded already.
    commands = [["--help"], ["--version"], *([*path, "--help"] for path in _command_paths(cli))]
    script = textwrap.dedent(f"""
        import sys
        from vidscale.cli import main
        for args in {commands!r}:
            assert main(args) == 0, args
        heavy = sorted(m for m in ("torch", "av", "numpy", "spandrel", "cv2") if m in sys.modules)
        assert not heavy, heavy
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_every_command_has_an_example(capsys) -> None:  # type: ignore[no-untyped-def]
    for path in _command_paths(cli):
        assert main([*path, "--help"]) == 0
        text = capsys.readouterr().out
        assert re.search(r"Examples:\n +vidscale ", text), path


def test_quality_help_names_avif(capsys) -> None:  # type: ignore[no-untyped-def]
    main(["upscale", "--help"])
    assert "AVIF" in capsys.readouterr().out
