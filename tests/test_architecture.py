"""The package layout holds: no import cycles, each package imports only the steps before it, small modules.

The layers are ARCHITECTURE.md's: a spec flows spec -> render -> output / check, the pipeline runs those
over a whole repository, the side entrances (edit, pr, serve) use them, and the CLI sits on top.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent
PACKAGE = PROJECT / "generator"
LAYERS = [  # a package may import from the packages of earlier layers, and from itself
    {"generator"},  # the shared modules at the top: problems.py, layout.py
    {"spec"},
    {"render"},
    {"output"},
    {"check"},
    {"pipeline"},
    {"edit", "pr", "serve"},
    {"cli"},
]
RANK = {package: rank for rank, packages in enumerate(LAYERS) for package in packages}
MAX_LINES = 450


def module_of(path: Path) -> str:
    parts = list(path.relative_to(PROJECT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(module: str) -> str:
    """The layer package of a module: generator.spec.rules -> spec; generator.layout -> generator."""
    parts = module.split(".")
    if len(parts) > 2 or (PACKAGE / parts[-1]).is_dir():
        return parts[1]
    return "cli" if parts[-1] == "__main__" else "generator"


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """Every generator module `path` imports, at the top or inside a function (a lazy import is still a dependency)."""
    module = module_of(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "generator"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if base.split(".")[0] != "generator":
                continue
            for alias in node.names:  # `from generator.spec import rules` imports the module generator.spec.rules
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    return found - {module}


def import_graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {module_of(p) for p in paths}
    return {module_of(p): imports_of(p, modules) for p in paths}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_top_level_and_lazy_imports() -> None:
    graph = import_graph()
    assert "generator.spec.loader" in graph["generator.spec.repository"]  # from .loader import ...
    assert "generator.pipeline.sweep" in graph["generator.pipeline.generate"]  # imported inside full_render
    assert "generator.edit.commands" in graph["generator.cli.edit"]  # from ..edit import commands


def test_no_import_cycles() -> None:
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_cycles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"f"}, "f": {"e"}}
    assert cycles(graph) == [["a", "b", "c"], ["e", "f"]]


def test_every_package_imports_only_earlier_steps() -> None:
    wrong = []
    for module, targets in import_graph().items():
        here = package_of(module)
        assert here in RANK, f"{module}: package {here!r} has no layer; add it to LAYERS and ARCHITECTURE.md"
        wrong += [f"{module} -> {target}" for target in sorted(targets)
                  if package_of(target) != here and RANK[package_of(target)] >= RANK[here]]
    assert wrong == []


@pytest.mark.parametrize("folder", ["generator", "bench"])
def test_no_module_is_much_over_400_lines(folder: str) -> None:
    sizes = {str(p.relative_to(PROJECT)): len(p.read_text(encoding="utf-8").splitlines())
             for p in sorted((PROJECT / folder).rglob("*.py"))}
    assert sizes, folder
    assert {path: n for path, n in sizes.items() if n > MAX_LINES} == {}


def test_architecture_md_names_every_package() -> None:
    text = (PROJECT / "ARCHITECTURE.md").read_text(encoding="utf-8")
    packages = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file())
    assert [p for p in packages if f"`{p}/`" not in text] == []
    assert sorted(RANK) == sorted(packages + ["generator"])
