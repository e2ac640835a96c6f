"""The package's layout: imports point down the layers, and no module reaches into another's privates."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "dbtools"

# what each part of the package may import (besides itself); docs/development.md explains the layers
BASE = {"dbtools", "errors", "metrics", "device", "parallel"}
ALLOWED = {
    "base": set(),
    "io": {"base"},
    "bank": {"io", "base"},
    "engine": {"bank", "io", "base"},
    "train": {"bank", "io", "base"},
    "significance": {"engine", "train", "bank", "io", "base"},
    "score": {"significance", "engine", "bank", "io", "base"},
    "scan": {"score", "significance", "engine", "bank", "io", "base"},
    "vareffect": {"score", "significance", "engine", "bank", "io", "base"},
    "mutmap": {"score", "significance", "engine", "bank", "io", "base"},
    "evaluate": {"score", "significance", "engine", "train", "bank", "io", "base"},
}
# the public Python API (dbtools/api.py) stands on every other part
ALLOWED["api"] = set(ALLOWED)


def part(module: str) -> str:
    """The layer of a module 'dbtools.a.b': its subpackage, or 'base' for the modules at the bottom."""
    first = module.split(".")[1] if "." in module else "dbtools"
    return "base" if first in BASE else first


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def imports(module: str, source: str, is_package: bool = False) -> list[tuple[int, str, list[str]]]:
    """(line, imported module, names) of every import of a dbtools module in `source`."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = module if is_package else module.rsplit(".", 1)[0]
                for _ in range(node.level - 1):
                    base = base.rsplit(".", 1)[0]
                mod = f"{base}.{node.module}" if node.module else base
            else:
                mod = node.module or ""
            if mod == "dbtools" or mod.startswith("dbtools."):
                out.append((node.lineno, mod, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out.extend((node.lineno, a.name, []) for a in node.names if a.name.startswith("dbtools"))
    return out


def is_module(name: str) -> bool:
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def targets(mod: str, names: list[str]) -> list[str]:
    """The modules an import reaches: `from dbtools.engine import native` reaches dbtools.engine.native."""
    return [f"{mod}.{n}" if is_module(f"{mod}.{n}") else mod for n in names] or [mod]


def layer_violations(module: str, source: str) -> list[str]:
    me = part(module)
    bad = []
    for line, mod, names in imports(module, source):
        for target in targets(mod, names):
            them = part(target)
            if them != me and them not in ALLOWED[me]:
                bad.append(f"{module}:{line}: {me} may not import {target} ({them})")
    return bad


def private_imports(module: str, source: str) -> list[str]:
    return [f"{module}:{line}: imports {n} from {mod}" for line, mod, names in imports(module, source)
            for n in names if n.startswith("_") and not n.startswith("__")]


MODULES = sorted(PACKAGE.rglob("*.py"))
ID = {"ids": lambda p: str(p.relative_to(PACKAGE))}


def test_the_layers_cover_every_part_of_the_package():
    parts = {part(module_name(p)) for p in MODULES}
    assert parts <= set(ALLOWED), parts - set(ALLOWED)


@pytest.mark.parametrize("path", MODULES, **ID)
def test_imports_point_down_the_layers(path):
    assert layer_violations(module_name(path), path.read_text()) == []


@pytest.mark.parametrize("path", MODULES, **ID)
def test_no_module_imports_a_private_name_of_another(path):
    assert private_imports(module_name(path), path.read_text()) == []


def test_the_checks_catch_bad_imports():
    source = ("from dbtools.engine.bank_engine import BankEngine\n"
              "from dbtools.io.encode import _table, encode\n"
              "from dbtools import score\n")
    assert len(layer_violations("dbtools.bank.store", source)) == 2  # the engine, and score above the bank
    assert private_imports("dbtools.bank.store", source) == ["dbtools.bank.store:2: imports _table from dbtools.io.encode"]
    assert layer_violations("dbtools.scan.run", source) == []


def test_no_import_cycles_between_modules():
    graph = {}
    for p in MODULES:
        name = module_name(p)
        graph[name] = {t for _, mod, names in imports(name, p.read_text(), p.name == "__init__.py")
                       for t in targets(mod, names)}
    graph = {k: {m for m in v if m in graph and m != k} for k, v in graph.items()}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            assert state.get(nxt) != 1, "import cycle: " + " -> ".join(trail + [node, nxt])
            if nxt not in state:
                visit(nxt, trail + [node])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])


def test_every_subpackage_is_packaged():
    """pyproject.toml lists the packages by name: a new subpackage missing there is missing from the wheel."""
    import tomllib

    declared = set(tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {module_name(p.parent) for p in PACKAGE.rglob("__init__.py")}
    assert found <= declared, f"not in pyproject.toml [tool.setuptools] packages: {sorted(found - declared)}"
