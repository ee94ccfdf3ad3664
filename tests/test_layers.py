"""The package's layers, read from its own imports: no circle, and no import up the layer order.

Every import counts: at module level, inside functions and under TYPE_CHECKING. The order,
lowest first (a module may import its own layer and those below it):

  core      vidscale/core/, errors, scale: import nothing above them
  media     readers, writers, containers, colour; models (loading files); the encoder choice
            and small leaf libraries (metrics, resampling, progress, signals)
  engine    the runtimes (PyTorch, TensorRT, ONNX) and their tiling
  compute   upscaler, transfer, the temporal and repeat passes, frame cost: no reader imports
  run       passes, pipeline, segments, the dry-run plan
  job       one job from settings (job, options, presets' application, long-job notices)
  front     cli, api, vs, web, bench, compare, evaluate, the package's own __init__
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from functools import cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "vidscale"

LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("core", ("core", "core.*", "errors", "scale")),
    ("media", ("media", "media.*", "models", "models.*", "encoding", "presets", "metrics", "resample", "degrade",
               "progress", "signals", "lazy_imports")),
    ("engine", ("engine", "engine.*")),
    ("compute", ("upscaler", "transfer", "temporal", "flicker", "repeats", "frame_cost")),
    ("run", ("passes", "pipeline", "segments", "segments.*", "dry_run")),
    ("job", ("job", "options", "long_jobs")),
    ("front", ("", "__main__", "cli", "api", "vs", "web", "web.*", "bench", "compare", "evaluate")),
]
# Readers: what the compute layer never imports (it names frames through media.frames, sources
# and sinks through media.protocols).
READERS = ("media.source", "media.animated.source", "media.opener")
# Imports up the order that are allowed: optional dependencies loaded on demand. None today.
ALLOWED_UPWARD: set[tuple[str, str]] = set()


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports_of(name: str, path: Path, known: Iterable[str]) -> set[str]:
    """The vidscale modules `name` imports (names relative to the package; "" is the package)."""
    known = set(known)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(_relative(a.name) for a in node.names if _ours(a.name))
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, package)
            if base is None:
                continue
            for alias in node.names:
                full = f"{base}.{alias.name}" if base else alias.name
                found.add(full if full in known else base)
    return {m for m in found if m in known and m != name}


def _ours(module: str) -> bool:
    return module == "vidscale" or module.startswith("vidscale.")


def _relative(module: str) -> str:
    return module.removeprefix("vidscale").removeprefix(".")


def _absolute(node: ast.ImportFrom, package: str) -> str | None:
    if node.level == 0:
        return _relative(node.module) if node.module and _ours(node.module) else None
    parts = package.split(".") if package else []
    parts = parts[:len(parts) - node.level + 1]
    return ".".join([*parts, *([node.module] if node.module else [])])


@cache
def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports_of(name, path, found) for name, path in found.items()}


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1 or node in edges.get(node, ()):
                groups.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return groups


def layer_of(module: str) -> int:
    for rank, (_, patterns) in enumerate(LAYERS):
        for pattern in patterns:
            if module == pattern or (pattern.endswith(".*") and module.startswith(pattern[:-1])):
                return rank
    raise AssertionError(f"vidscale.{module} has no layer: add it to LAYERS in {__file__}")


def test_circles_are_found_in_a_synthetic_graph() -> None:
    """The check itself: a circle through three modules is found, a chain is not one."""
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert circles(edges) == [["a", "b", "c"]]
    del edges["c"]
    assert circles(edges) == []


def test_imports_are_read_wherever_they_are(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from vidscale.job import X\n"
                      "def f():\n    from . import scale\n    import vidscale.media.source\n")
    known = {"job", "scale", "media.source", "media"}
    assert imports_of("plan", source, known) == {"job", "scale", "media.source"}


def test_the_package_has_no_import_circle() -> None:
    assert circles(graph()) == []


def test_every_module_has_a_layer() -> None:
    for module in graph():
        layer_of(module)


@pytest.mark.parametrize("layer", [name for name, _ in LAYERS])
def test_no_import_goes_up_the_layer_order(layer: str) -> None:
    edges = graph()
    rank = [name for name, _ in LAYERS].index(layer)
    upward = sorted((m, dep) for m, deps in edges.items() if layer_of(m) == rank for dep in deps
                    if layer_of(dep) > rank and (m, dep) not in ALLOWED_UPWARD)
    assert upward == [], f"imports above the {layer} layer: {upward}"


def test_core_imports_nothing_above_it() -> None:
    edges = graph()
    for module in (m for m in edges if layer_of(m) == 0):
        assert all(layer_of(dep) == 0 for dep in edges[module]), module


def test_the_compute_layer_imports_no_reader() -> None:
    edges = graph()
    compute = [name for name, _ in LAYERS].index("compute")
    found = sorted((m, dep) for m, deps in edges.items() if compute - 1 <= layer_of(m) <= compute
                   for dep in deps if dep in READERS)
    assert found == []


def test_the_source_and_sink_protocols_import_no_reader() -> None:
    """What the layers above media name a source or a sink by, without loading a reader."""
    assert graph()["media.protocols"].isdisjoint(READERS)
