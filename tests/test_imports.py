"""Architecture rules on the import graph, read from the source (pure AST: nothing is imported).

* ``ml/`` is pure Python: it imports nothing from ``streams``, ``api``, ``millrace`` nor from
  the adapter frameworks (``faust``, ``fastapi``, ``uvicorn``, ``starlette``).
* ``sqlalchemy`` and ``alembic`` are imported inside ``ml/registry/`` only (within ``ml/``).
* The project's own modules (``ml``, ``streams``, ``api``, ``millrace``, ``schemas``) have no
  import cycle. Imports inside functions count as edges; imports under ``if TYPE_CHECKING:``
  do not (they never run).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("ml", "streams", "api", "millrace", "schemas")
ML_FORBIDDEN = {"streams", "api", "millrace", "faust", "fastapi", "uvicorn", "starlette"}
REGISTRY_ONLY = {"sqlalchemy", "alembic"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _sources() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue  # alembic scripts are loaded by alembic, not imported
            modules[_module_name(path)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(module: str, path: Path) -> list[tuple[str | tuple[str, str], int]]:
    """What ``module`` imports, with line numbers, ``if TYPE_CHECKING:`` blocks skipped.

    ``import a.b`` gives ``"a.b"``; ``from a.b import c`` gives ``("a.b", "c")`` (relative
    imports made absolute), as ``c`` may be a submodule or a name of ``a.b``."""
    is_package = path.name == "__init__.py"
    found: list[tuple[str | tuple[str, str], int]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                drop = node.level - 1 if is_package else node.level
                base = base[: len(base) - drop] if drop else base
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            found.extend(((prefix, alias.name), node.lineno) for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(), filename=str(path)))
    return found


def _top(name: str | tuple[str, str]) -> str:
    return (name if isinstance(name, str) else name[0]).split(".")[0]


def _label(name: str | tuple[str, str]) -> str:
    return name if isinstance(name, str) else f"from {name[0]} import {name[1]}"


def _graph() -> dict[str, set[str]]:
    """module -> the project modules it imports (a ``from`` submodule, else the package)."""
    sources = _sources()
    graph: dict[str, set[str]] = {}
    for module, path in sources.items():
        edges = set()
        for name, _ in _imports(module, path):
            if not isinstance(name, str):
                name = f"{name[0]}.{name[1]}" if f"{name[0]}.{name[1]}" in sources else name[0]
            if name in sources and name != module:
                edges.add(name)
        graph[module] = edges
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                connect(target)
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
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return components


def test_ml_imports_no_adapter() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{line}: {_label(name)}"
        for module, path in _sources().items()
        if module.split(".")[0] == "ml"
        for name, line in _imports(module, path)
        if _top(name) in ML_FORBIDDEN
    ]
    assert not offenders, offenders


def test_sqlalchemy_and_alembic_only_in_the_registry() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{line}: {_label(name)}"
        for module, path in _sources().items()
        if module.split(".")[0] == "ml" and not (module + ".").startswith("ml.registry.")
        for name, line in _imports(module, path)
        if _top(name) in REGISTRY_ONLY
    ]
    assert not offenders, offenders


def test_no_import_cycles() -> None:
    cycles = _cycles(_graph())
    assert not cycles, cycles


def test_the_graph_sees_relative_and_function_level_imports() -> None:
    """Guards the checker itself: a graph without these edges would pass vacuously."""
    graph = _graph()
    assert "ml" in {name.split(".")[0] for name in graph}
    assert any(targets for module, targets in graph.items() if module.startswith("ml."))
    cyclic = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(cyclic) == [["a", "b", "c"]]
