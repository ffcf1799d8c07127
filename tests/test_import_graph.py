"""No import cycle among the modules of ``migrator``.

The graph is read from the source with ``ast``: every ``import``, at module level or in a function,
and under ``if TYPE_CHECKING:`` too (a cycle a type checker must untangle is a cycle a reader must).
``from package import name`` is an edge to ``package.name`` when that is a module, else to
``package``. A package's ``__init__`` running before its submodule is not counted as the
submodule depending on it: it names nothing of it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import migrator

ROOT = Path(migrator.__file__).parent


def module_names() -> dict[str, Path]:
    modules = {}
    for path in ROOT.rglob("*.py"):
        if "node_modules" in path.parts:
            continue
        parts = ["migrator", *path.relative_to(ROOT).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return {target for target in found if target in known and target != name}


def import_graph() -> dict[str, set[str]]:
    modules = module_names()
    known = set(modules)
    return {name: imports_of(name, path, known) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
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


def test_no_module_of_migrator_imports_itself_through_others() -> None:
    graph = import_graph()
    assert len(graph) > 50  # the walk found the package
    assert cycles(graph) == []


def test_only_the_demo_imports_the_sandbox() -> None:
    """The core never imports ``migrator.sandbox``; ``demo.py`` starts it, imported by the CLI when a command runs."""
    graph = import_graph()
    importers = {
        name
        for name, targets in graph.items()
        if not name.startswith("migrator.sandbox") and any(t.startswith("migrator.sandbox") for t in targets)
    }
    assert importers == {"migrator.demo"}


def test_the_check_finds_a_cycle_when_there_is_one() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]


def test_relative_and_aliased_imports_are_edges(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("from . import run\nfrom .run import x\nimport migrator.cli.shared as shared\n")
    known = {"migrator.cli", "migrator.cli.run", "migrator.cli.shared", "migrator.cli.m"}
    assert imports_of("migrator.cli.m", source, known) == {"migrator.cli.run", "migrator.cli.shared"}
