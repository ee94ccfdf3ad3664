"""spandrel imports without torchvision until something calls it (vidscale/lazy_imports.py)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _python(code: str, tmp_path: Path) -> str:
    run = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                         cwd=tmp_path, env={"PYTHONPATH": f"{ROOT}:{tmp_path}", "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stderr
    return run.stdout.strip()


def test_models_load_without_torchvision_and_its_names_work_on_first_use(tmp_path: Path) -> None:
    out = _python("""
        import sys
        import vidscale
        from vidscale.models import zoo
        from vidscale.models.loading import load_descriptor
        load_descriptor(zoo.builtins()["span-x2"].path)
        print("torchvision" in sys.modules)
        import torch
        from spandrel.architectures.RestoreFormer import tv_normalize
        y = tv_normalize(torch.ones(3, 2, 2), [0.5] * 3, [0.5] * 3)
        print(float(y.max()), type(sys.modules["torchvision"]).__name__)
        """, tmp_path)
    assert out.splitlines() == ["False", "1.0 module"]


def test_torchvision_loaded_first_is_used_as_it_is(tmp_path: Path) -> None:
    out = _python("""
        import torchvision.transforms.functional as F
        import vidscale, spandrel
        from spandrel.architectures.RestoreFormer import tv_normalize
        print(tv_normalize is F.normalize)
        """, tmp_path)
    assert out == "True"


def test_a_package_that_needs_torchvision_as_it_imports_gets_the_real_one(tmp_path: Path) -> None:
    (tmp_path / "eager").mkdir()
    (tmp_path / "eager" / "__init__.py").write_text(
        "from torchvision.transforms.functional import normalize\nNAME = normalize.__name__\n")
    (tmp_path / "lazy").mkdir()
    (tmp_path / "lazy" / "__init__.py").write_text("from torchvision.transforms.functional import normalize\n")
    out = _python("""
        import sys
        from vidscale import lazy_imports
        lazy_imports.install("lazy")
        import lazy
        print("torchvision" in sys.modules)
        lazy_imports.install("eager")
        import eager
        print(eager.NAME, type(sys.modules["torchvision"]).__name__)
        """, tmp_path)
    assert out.splitlines() == ["False", "normalize module"]
