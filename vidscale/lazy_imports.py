"""Import spandrel without importing torchvision until something calls it.

Two of spandrel's architectures (LaMa inpainting, RestoreFormer faces) import
torchvision functions at module level and call them only when those networks
run. torchvision's own import registers its operators with torch, which pulls
in sympy and more: here it took 1.6 s and 158 MiB of resident memory in every
process that loads a model, for code no upscaler calls. While spandrel imports,
`torchvision` and its submodules are stand-ins whose names become the real
objects on first use (torchvision is imported then). If spandrel ever needs
torchvision while it imports, the import is simply done again the plain way.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
from collections.abc import Sequence
from typing import Any

DEFERRED = "torchvision"


class _Deferred:
    """A name from a stand-in module: resolved (and torchvision imported) on first use."""

    def __init__(self, path: str):
        self._path = path

    def _target(self) -> Any:
        if _StandIns.active:
            raise ImportError(f"{self._path} was used while spandrel imported")
        module, _, name = self._path.rpartition(".")
        return getattr(importlib.import_module(module), name)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target(), name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._target()(*args, **kwargs)


class _StandInModule(types.ModuleType):
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _Deferred(f"{self.__name__}.{name}")


class _StandIns(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves stand-ins for torchvision modules while `active`."""

    active = False

    def find_spec(self, name: str, path: Sequence[str] | None, target: types.ModuleType | None = None
                  ) -> importlib.machinery.ModuleSpec | None:
        if _StandIns.active and (name == DEFERRED or name.startswith(DEFERRED + ".")):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return _StandInModule(spec.name)

    def exec_module(self, module: types.ModuleType) -> None:
        module.__path__ = []  # a package, so its submodules can be imported (as stand-ins)


class _FirstImport(importlib.abc.MetaPathFinder):
    """Finds `package` as the other finders do, but has it execute with torchvision stand-ins."""

    def __init__(self, package: str):
        self.package = package

    def find_spec(self, name: str, path: Sequence[str] | None, target: types.ModuleType | None = None
                  ) -> importlib.machinery.ModuleSpec | None:
        if name != self.package:
            return None
        sys.meta_path.remove(self)  # once is enough
        if DEFERRED in sys.modules:  # the real one is loaded already: nothing to save
            return None
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _WithStandIns(spec.loader)
        return spec


class _WithStandIns(importlib.abc.Loader):
    def __init__(self, loader: importlib.abc.Loader):
        self.loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        stand_ins = _StandIns()
        sys.meta_path.insert(0, stand_ins)
        _StandIns.active = True
        try:
            self.loader.exec_module(module)
        except ImportError:  # a spandrel that uses torchvision as it imports: the plain way
            _StandIns.active = False
            _forget(module.__name__ + ".")
            _forget(DEFERRED)
            self.loader.exec_module(module)
        finally:
            _StandIns.active = False
            sys.meta_path.remove(stand_ins)
            _forget(DEFERRED)


def _forget(prefix: str) -> None:
    """Drop the modules of a package ("pkg"), or only its submodules ("pkg."); of torchvision, stand-ins only."""
    names = [n for n in sys.modules if n.startswith(prefix) and (prefix.endswith(".") or n == prefix
                                                                   or n.startswith(prefix + "."))]
    for name in names:
        if prefix != DEFERRED or isinstance(sys.modules[name], _StandInModule):
            del sys.modules[name]


def install(package: str = "spandrel") -> None:
    """Have `package`'s first import (whoever asks for it) run with torchvision stand-ins."""
    if package not in sys.modules and not any(isinstance(f, _FirstImport) and f.package == package
                                              for f in sys.meta_path):
        sys.meta_path.insert(0, _FirstImport(package))
