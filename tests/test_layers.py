"""The package's floors (STYLE.md): no module imports from a stage later in the data's journey,
and no two modules import each other. Read from the source with `ast`, so an import inside a
function (which hides a cycle from Python until it runs) counts as much as one at the top."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "molstrata"

# Each top-level module or folder of molstrata/ and its floor: a module may import from its own
# floor and the ones below, never from a higher one.
LAYERS: dict[str, int] = {
    "molstrata": 0,  # the package itself: imported for __version__ only (see ROOT below)
    "errors": 0, "units": 0, "_files": 0, "tables": 0, "wording": 0, "progress": 0,
    "data": 1,
    "models": 2,
    "training": 3,
    "evaluation": 4,
    "report": 5,
    "study": 6, "sweep": 6, "deploy": 6,
    "api": 7, "ase": 7, "cli": 7, "__main__": 7,
}

ROOT = "molstrata"
"""molstrata/__init__.py holds __version__, which every floor may read, and re-exports
molstrata.api lazily (`molstrata.train(...)`): its own imports are the top floor's."""

KNOWN_UPWARD: dict[tuple[str, str], str] = {}
"""Upward imports that exist today, each with why; the test fails once one is gone, so that
it is deleted here, and for any new one."""


def _modules() -> dict[str, Path]:
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The molstrata modules `name` imports anywhere in its file (by `import`, `from ...
    import` or `importlib.import_module("...")`), each the deepest module of the name."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([node.module] if node.module else [])])
            names = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        elif isinstance(node, ast.Call) and getattr(node.func, "id", getattr(
                node.func, "attr", None)) == "import_module" and node.args \
                and isinstance(node.args[0], ast.Constant):
            names = [str(node.args[0].value)]
        else:
            continue
        for target in names:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target.startswith(ROOT) and target != name:
                found.add(target)
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _floor(module: str) -> int:
    stage = module.split(".")[1] if "." in module else ROOT
    if stage not in LAYERS:
        pytest.fail(f"molstrata/{stage} has no floor: add it to LAYERS in {__file__}")
    return LAYERS[stage]


def test_the_reader_finds_every_kind_of_import(tmp_path):
    """Guards the reader itself: imports at the top, relative, in functions and by name."""
    source = tmp_path / "example.py"
    source.write_text(
        "import numpy\n"
        "from molstrata.evaluation.compare import RunResult\n"
        "from . import plan\n"
        "def later():\n"
        "    from molstrata.api import study\n"
        "    return import_module('molstrata.report.html')\n")
    assert _imports("molstrata.study.example", source) == {
        "molstrata.evaluation.compare", "molstrata.study", "molstrata.study.plan",
        "molstrata.api", "molstrata.report.html"}
    assert "molstrata.study.results" in GRAPH["molstrata.study.report"]
    assert all(module in MODULES for targets in GRAPH.values() for module in targets)


def test_no_module_imports_from_a_later_stage():
    upward = {(name, target) for name, targets in GRAPH.items() if name != ROOT
              for target in targets if _floor(target) > _floor(name)}
    new = sorted(upward - set(KNOWN_UPWARD))
    assert not new, "imports from a later stage: " + ", ".join(f"{a} -> {b}" for a, b in new)
    gone = sorted(set(KNOWN_UPWARD) - upward)
    assert not gone, f"fixed, delete from KNOWN_UPWARD: {gone}"


def test_no_two_modules_import_each_other():
    known = {frozenset(pair) for pair in KNOWN_UPWARD}  # each closes a loop with a downward one
    mutual = sorted((a, b) for a, targets in GRAPH.items() for b in targets
                    if a < b and a in GRAPH.get(b, ()) and frozenset((a, b)) not in known)
    assert not mutual, "modules that import each other: " + ", ".join(
        f"{a} <-> {b}" for a, b in mutual)
