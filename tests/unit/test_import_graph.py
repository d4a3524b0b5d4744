"""The module graph of pool/ as docs/architecture.md draws it: no import cycle between
modules (lazy imports inside functions count; imports under `if TYPE_CHECKING:` do not), and
each layer imports only the layers below it."""

from __future__ import annotations

import ast
import functools
from collections.abc import Collection, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "pool"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_only(tree: ast.AST) -> set[int]:
    """Ids of the nodes under `if TYPE_CHECKING:`."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(child) for child in ast.walk(node))
    return skip


@functools.cache
def import_graph() -> dict[str, frozenset[str]]:
    """module -> the pool modules it imports (at run time)."""
    files = {_module_name(p): p for p in ROOT.rglob("*.py")}
    graph: dict[str, frozenset[str]] = {}
    for name, path in files.items():
        tree = ast.parse(path.read_text())
        skip = _type_only(tree)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                targets.add(module)
                targets.update(f"{module}.{alias.name}" for alias in node.names)
        graph[name] = frozenset(t for t in targets if t in files and t != name)
    return graph


def cycles(graph: Mapping[str, Collection[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle_between_modules() -> None:
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


#: (layer, a layer it must never import): each layer knows only the layers below it.
#: pool/units.py and pool/errors.py are below every layer.
FORBIDDEN = [
    ("pool.hashing", "pool."),
    ("pool.units", "pool."),
    ("pool.errors", "pool."),
    ("pool.chain", "pool.stratum"),
    ("pool.chain", "pool.ledger"),
    ("pool.chain", "pool.accounting"),
    ("pool.ledger", "pool.stratum"),
    ("pool.ledger", "pool.accounting"),
    ("pool.ledger", "pool.api"),
    ("pool.accounting", "pool.stratum"),
    ("pool.accounting", "pool.api"),
    ("pool.stratum", "pool.accounting"),
    ("pool.stratum", "pool.api"),
    ("pool.stratum", "pool.alerts"),
    ("pool.alerts", "pool.accounting"),
    ("pool.alerts", "pool.api"),
    ("pool.api", "pool.stratum"),
    ("pool.sim", "pool.stratum"),
    ("pool.service", "pool.cli"),
    ("pool.api", "pool.cli"),
    ("pool.accounting", "pool.cli"),
    ("pool.api", "pool.service"),
    ("pool.stratum", "pool.service"),
    ("pool.accounting", "pool.service"),
]


@pytest.mark.parametrize(("layer", "below_it_never"), FORBIDDEN)
def test_each_layer_imports_only_layers_below(layer: str, below_it_never: str) -> None:
    graph = import_graph()
    wrong = sorted(
        f"{module} -> {target}"
        for module, targets in graph.items()
        if module == layer or module.startswith(layer + ".")
        for target in targets
        if target.startswith(below_it_never)
        and not target.startswith(layer)
        and target not in ("pool.units", "pool.errors")
    )
    assert wrong == []
