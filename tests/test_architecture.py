"""The README's architecture table is the code's: every package is listed and imports only what its line
allows, and no import circle exists inside lumicap/, neither between modules nor between packages.

Imports are read from the source (an AST walk), including those inside functions: a lazy import is still a
dependency, it only moves the failure to run time."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "lumicap"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """module -> the lumicap modules it imports (``from pkg import name`` counts as ``pkg.name`` when that is a
    module, else as ``pkg``)."""
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from .x import y
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([node.module] if node.module else []))
                targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
            else:
                continue
            for target in targets:
                while target not in modules and "." in target:
                    target = target.rpartition(".")[0]
                if target in modules and target != name:
                    graph[name].add(target)
                    break  # 'from a.b import c' names a.b.c or else a.b, not both
    return graph


def package_of(module: str) -> str:
    """The layer a module belongs to: ``lumicap.engine.train`` -> ``lumicap.engine``; root modules are their own."""
    return ".".join(module.split(".")[:2])


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_between_modules():
    assert cycles(import_graph()) == []


def test_no_import_cycle_between_packages():
    graph = import_graph()
    packages: dict[str, set[str]] = {}
    for module, targets in graph.items():
        edges = packages.setdefault(package_of(module), set())
        # Every module imports the root package first (lumicap/__init__.py); that is not a layer above it.
        edges.update(package_of(t) for t in targets if package_of(t) not in (package_of(module), "lumicap"))
    assert cycles(packages) == []


def test_the_walk_sees_a_cycle():
    """The checker itself: a two-module circle and a lazy import inside a function are both found."""
    assert cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
    graph = import_graph()
    assert "lumicap.weights.registry" in graph["lumicap.weights.store"]  # a top-level import
    assert "lumicap.losses.vgg" in graph["lumicap.losses.terms"]  # an import inside a function


def readme_table() -> dict[str, set[str] | None]:
    """package -> the packages its README line allows (None: any), from the table under '### Architecture'."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("### Architecture", 1)[1].split("\n#", 1)[0]
    table: dict[str, set[str] | None] = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`"):
            continue
        allowed = None if cells[2] == "any package" else {_module(n) for n in re.findall(r"`([^`]+)`", cells[2])}
        for name in re.findall(r"`([^`]+)`", cells[0]):
            table[_module(name)] = allowed
    return table


def _module(name: str) -> str:
    """``weights/`` -> lumicap.weights, ``files.py`` -> lumicap.files, ``__init__.py`` -> lumicap."""
    stem = name.rstrip("/").removesuffix(".py")
    return "lumicap" if stem == "__init__" else f"lumicap.{stem}"


def test_readme_architecture_lists_every_package_and_what_it_imports():
    table = readme_table()
    graph = import_graph()
    unlisted = sorted({package_of(module) for module in graph} - set(table))
    assert not unlisted, f"packages missing from the README's architecture table: {unlisted}"
    not_allowed = sorted(
        f"{module} imports {target}"
        for module, targets in graph.items()
        for target in targets
        if table[package_of(module)] is not None
        and package_of(target) not in table[package_of(module)] | {package_of(module), "lumicap"}
    )
    assert not not_allowed, "imports the README's architecture table does not allow: " + "; ".join(not_allowed)
    stale = sorted(name for name in table if name not in {package_of(m) for m in graph})
    assert not stale, f"the README's architecture table lists packages that do not exist: {stale}"
