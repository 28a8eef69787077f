"""The layering holds: no import cycles, and each layer imports only the layers below it.

Imports are read from the source (every import statement, at module level or inside a
function), so a function-local import cannot hide a cycle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("monitor", "dashboard")

# Lower layers first; a module may import its own layer and the layers before it.
LAYERS = [
    ("monitor.domain",),
    ("monitor.config.types",),
    ("monitor.targets",),
    ("monitor.config",),
    ("monitor.probing", "monitor.store"),
    ("monitor.alerts",),
    ("monitor.agent",),
    ("monitor.demo",),
    ("dashboard",),
    ("monitor.cli", "monitor.__main__"),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            found[module_name(path)] = path
    return found


def imports_of(path: Path, name: str, known: set[str]) -> Iterator[str]:
    """The project modules a file imports (each submodule and the packages that hold it)."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                here = name.split(".") if is_package else name.split(".")[:-1]
                here = here[: len(here) - (node.level - 1)]
                base = ".".join([*here, base] if base else here)
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                yield target
            parts = target.split(".")
            for i in range(1, len(parts)):  # importing a.b.c runs a and a.b too...
                package = ".".join(parts[:i])
                # ...unless the importer is inside them: they are already being imported.
                if package in known and not name.startswith(package + "."):
                    yield package


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: set(imports_of(path, name, known)) for name, path in found.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

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
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


# Packages whose __init__ imports nothing: importing them costs nothing, so any layer may.
NEUTRAL = {"monitor", "monitor.config"}


def layer_of(module: str) -> int | None:
    """The layer of the longest prefix that names the module."""
    if module in NEUTRAL:
        return 0
    matches = [
        (len(prefix), level)
        for level, prefixes in enumerate(LAYERS)
        for prefix in prefixes
        if module == prefix or module.startswith(prefix + ".")
    ]
    return max(matches)[1] if matches else None


def test_there_is_no_import_cycle() -> None:
    assert cycles(graph()) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_each_layer_imports_only_layers_below_it() -> None:
    wrong = []
    for module, imported in graph().items():
        mine = layer_of(module)
        if mine is None:
            continue
        for other in imported:
            theirs = layer_of(other)
            if theirs is not None and theirs > mine:
                wrong.append(f"{module} (layer {mine}) imports {other} (layer {theirs})")
    assert wrong == []


def test_the_neutral_packages_import_nothing() -> None:
    edges = graph()
    assert {p: edges[p] for p in NEUTRAL} == {p: set() for p in NEUTRAL}


def test_every_module_belongs_to_a_layer() -> None:
    loose = [m for m in modules() if layer_of(m) is None]
    assert loose == []


def test_the_domain_imports_nothing_else_of_monitor() -> None:
    edges = graph()
    outside = {
        f"{m} -> {o}"
        for m, imported in edges.items()
        if m.startswith("monitor.domain")
        for o in imported
        if not o.startswith("monitor.domain") and o not in NEUTRAL
    }
    assert outside == set()


# ------------------------------------------------------------------ SQL lives in the store

# What builds a query (or a statement) in SQLAlchemy; importing one outside monitor/store/
# means SQL is being written there.
SQL_BUILDERS = frozenset(
    {
        "select",
        "insert",
        "update",
        "delete",
        "func",
        "text",
        "and_",
        "or_",
        "not_",
        "tuple_",
        "exists",
        "union",
        "union_all",
        "case",
        "literal",
        "literal_column",
        "Query",
    }
)
SQL_MODULES = ("sqlalchemy", "sqlalchemy.sql", "sqlalchemy.orm", "sqlalchemy.future")
# Outside the store: every package, and the benchmarks, which must time the store's own reads.
# (alembic/ holds the migrations and tests/ may set up fixtures with SQL: not scanned.)
SQL_FREE = ("monitor", "dashboard", "benchmarks")
SQL_HOME = ROOT / "monitor" / "store"


def sql_built_in(path: Path) -> list[str]:
    """Where a file builds SQL itself: `from sqlalchemy import select`, `sa.update(...)`,
    anything from sqlalchemy.sql, `session.query(...)`, `conn.exec_driver_sql(...)`."""
    return [f"line {line}: {what}" for line, what in sorted(set(_sql_nodes(path)))]


def _sql_nodes(path: Path) -> Iterator[tuple[int, str]]:
    tree = ast.parse(path.read_text())
    aliases = set()  # names bound to sqlalchemy (or one of its SQL modules)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            module = node.module
            for alias in node.names:
                if module.startswith("sqlalchemy.sql") or (
                    module in SQL_MODULES and alias.name in SQL_BUILDERS
                ):
                    yield node.lineno, f"from {module} import {alias.name}"
                elif module == "sqlalchemy" and alias.name in ("sql", "orm", "future"):
                    aliases.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "sqlalchemy" or alias.name.startswith("sqlalchemy."):
                    aliases.add(alias.asname or alias.name.split(".")[0])
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in SQL_BUILDERS:
            base = node.value
            while isinstance(base, ast.Attribute):
                base = base.value
            if isinstance(base, ast.Name) and base.id in aliases:
                yield node.lineno, ast.unparse(node)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("query", "exec_driver_sql")
        ):
            yield node.lineno, f"{ast.unparse(node.func)}(...)"


def test_no_sql_is_built_outside_the_store() -> None:
    found = []
    for top in SQL_FREE:
        for path in sorted((ROOT / top).rglob("*.py")):
            if path.is_relative_to(SQL_HOME):
                continue
            found += [f"{path.relative_to(ROOT)} {where}" for where in sql_built_in(path)]
    assert found == []


def test_the_sql_finder_finds_sql(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text(
        "import sqlalchemy as sa\n"
        "from sqlalchemy import Engine, select\n"
        "from sqlalchemy.sql import functions\n"
        "from sqlalchemy.orm import Session\n"
        "q = sa.update(T)\n"
        "rows = session.query(T).all()\n"
        "conn.exec_driver_sql('DELETE FROM t')\n"
        "fine = Session(Engine)\n"
    )
    assert [where.split(":")[0] for where in sql_built_in(source)] == [
        "line 2",
        "line 3",
        "line 5",
        "line 6",
        "line 7",
    ]
