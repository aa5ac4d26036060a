"""The package layout holds: no import cycle, no oversized module, one-way layers.

The import graph is read from the source with ``ast``, not by importing:
every ``import fastagg.x`` / ``from fastagg.x import y`` / relative import,
at module level or inside a function (a deferred import still ties the two
modules together), becomes an edge between modules of the tree under test.
``from package import name`` is an edge to the submodule when ``name`` is
one, else to the package's ``__init__``.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parent.parent / "fastagg"
MAX_LINES = 800

# Layers, bottom up. Front end -> stages -> native -> sqlite.
FRONT_END = ("fastagg.database", "fastagg.cli", "fastagg.dask", "fastagg.accessor")
STAGES = ("fastagg.table", "fastagg.reader", "fastagg.engine", "fastagg.compile", "fastagg.builtins")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE_DIR.rglob("*.py"))}


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


@dataclass(frozen=True)
class Import:
    source: str  # importing module
    target: str  # imported module, as written and resolved (may not exist)
    line: int

    def __str__(self) -> str:
        return f"{self.source} -> {self.target} ({MODULES[self.source].relative_to(PACKAGE_DIR.parent)}:{self.line})"


def _resolve_from(source: str, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    package = source if _is_package(source) else source.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def _is_ours(name: str) -> bool:
    return name == "fastagg" or name.startswith("fastagg.")


def imports_of(source: str) -> list[Import]:
    """Every intra-package import in module *source*, wherever it appears."""
    tree = ast.parse(MODULES[source].read_text(encoding="utf-8"), filename=str(MODULES[source]))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [Import(source, alias.name, node.lineno) for alias in node.names if _is_ours(alias.name)]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve_from(source, node)
            if not _is_ours(base):
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.append(Import(source, sub if sub in MODULES else base, node.lineno))
    return found


IMPORTS = [imp for name in MODULES for imp in imports_of(name)]


def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {name: set() for name in MODULES}
    for imp in IMPORTS:
        if imp.target in MODULES and imp.target != imp.source:
            edges[imp.source].add(imp.target)
    return edges


def find_cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Return one cycle per strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return [_cycle_through(edges, set(c)) for c in components]


def _cycle_through(edges: dict[str, set[str]], component: set[str]) -> list[str]:
    """A shortest cycle from the component's first module back to itself, to name in a message."""
    start = min(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt_frontier = []
        for node in frontier:
            for nxt in sorted(edges[node] & component):
                if nxt == start:
                    return paths[node] + [start]
                if nxt not in paths:
                    paths[nxt] = paths[node] + [nxt]
                    nxt_frontier.append(nxt)
        frontier = nxt_frontier
    return sorted(component)


def _within(name: str, prefixes) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


# ---------------------------------------------------------------- the checks


def test_the_walk_sees_the_package():
    assert {"fastagg", "fastagg.errors", "fastagg.database", "fastagg.sqlite.capi"} <= set(MODULES)
    # Relative, absolute and deferred (function-level) imports are all read.
    tree = ast.parse("from . import errors\nfrom ..sqlite import capi\nimport fastagg.errors\n")
    relative, parent, absolute = tree.body
    assert _resolve_from("fastagg", relative) == "fastagg"
    assert _resolve_from("fastagg.compile.spec", relative) == "fastagg.compile"
    assert _resolve_from("fastagg.compile.spec", parent) == "fastagg.sqlite"
    assert absolute.names[0].name == "fastagg.errors"
    assert any(imp.target == "fastagg.errors" for imp in IMPORTS)
    deferred = [
        imp
        for name in MODULES
        for node in ast.walk(ast.parse(MODULES[name].read_text(encoding="utf-8")))
        if isinstance(node, ast.FunctionDef)
        for inner in ast.walk(node)
        if isinstance(inner, ast.ImportFrom) and inner.level
        for imp in imports_of(name)
        if imp.line == inner.lineno
    ]
    assert deferred, "no function-level import found: the walk must read them"


def test_cycle_finder_names_a_cycle():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycles(edges) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_every_internal_import_names_a_module_of_the_tree():
    # An import of a module that is not in this tree can still succeed (an
    # editable install elsewhere, a stale .pyc) and run other code.
    missing = [str(imp) for imp in IMPORTS if imp.target not in MODULES]
    assert not missing, "imports of modules not in fastagg/: " + "; ".join(missing)


def test_no_import_cycle():
    cycles = find_cycles(graph())
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_no_module_over_800_lines():
    sizes = {name: len(path.read_text(encoding="utf-8").splitlines()) for name, path in MODULES.items()}
    over = {name: n for name, n in sorted(sizes.items()) if n > MAX_LINES}
    assert not over, f"modules over {MAX_LINES} lines: " + ", ".join(f"{k} ({v})" for k, v in over.items())


def _violations(importers, allowed) -> list[str]:
    return [
        str(imp)
        for imp in IMPORTS
        if _within(imp.source, importers) and not _within(imp.target, allowed)
    ]


def test_sqlite_layer_imports_only_itself_and_errors():
    bad = _violations(["fastagg.sqlite"], ["fastagg.sqlite", "fastagg.errors"])
    assert not bad, "fastagg.sqlite must import no other fastagg package: " + "; ".join(bad)


def test_native_layer_imports_only_native_sqlite_and_errors():
    bad = _violations(["fastagg.native"], ["fastagg.native", "fastagg.sqlite", "fastagg.errors"])
    assert not bad, "fastagg.native may import only native, sqlite and errors: " + "; ".join(bad)


def test_stages_do_not_import_the_front_end():
    # The package itself counts as front end: fastagg/__init__ imports database.
    bad = [
        str(imp)
        for imp in IMPORTS
        if _within(imp.source, STAGES) and (_within(imp.target, FRONT_END) or imp.target == "fastagg")
    ]
    assert not bad, "stages must not import the front end: " + "; ".join(bad)


def test_a_query_runs_only_code_of_this_tree():
    from conftest import run_isolated

    proc = run_isolated(
        f"""
        import json, os, sys
        import pandas as pd
        import fastagg
        df = pd.DataFrame({{"g": [1, 2, 1, 3] * 50, "x": [0.5, 1.5, 2.5, 3.5] * 50}})
        fastagg.query(df, "SELECT g, count(*), avg(x) FROM df GROUP BY g", workers=2)
        fastagg.query(df, "SELECT g, var_samp(x) FROM df GROUP BY g")
        root = {str(PACKAGE_DIR)!r}
        foreign = sorted(
            f"{{name}}: {{module.__file__}}"
            for name, module in sys.modules.items()
            if (name == "fastagg" or name.startswith("fastagg."))
            and getattr(module, "__file__", None)
            and not os.path.realpath(module.__file__).startswith(os.path.realpath(root) + os.sep)
        )
        print(json.dumps(foreign))
        """
    )
    assert proc.returncode == 0, proc.stderr
    foreign = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not foreign, "modules loaded from outside fastagg/: " + "; ".join(foreign)
