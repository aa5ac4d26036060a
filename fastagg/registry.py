"""Functions on a connection: which ones a statement calls, registering and unregistering them.

Registering compiles (numba loads on the first registration, not at import:
the compiler is imported inside :func:`register_specs`), so this module is
importable without numba. It sits below the front end (database, dask, cli)
and beside the engine, which registers the same specs on its worker
connections; it imports neither.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable

from .compile.spec import AggregateSpec, FunctionSpec, spec_of
from .sqlite import capi as _capi

__all__ = ["builtins_used", "called_functions", "dialect", "register", "register_specs", "unregister_specs"]


def register(con, *aggregates: type) -> None:
    """Register compiled aggregates (and scalar functions) on any :class:`sqlite3.Connection`.

    Each aggregate compiles once per process, at its first registration. The
    compiled code lives for the rest of the process, so the connection may
    use it for as long as it is open. A :class:`fastagg.Database` is accepted
    too (anything with a ``connection`` attribute).

    Parameters
    ----------
    con : sqlite3.Connection or fastagg.Database
    *aggregates : classes decorated with :func:`fastagg.aggregate`, or
        functions decorated with :func:`fastagg.function`

    Raises
    ------
    fastagg.CompileError
        A class is not decorated, or numba cannot compile it.
    sqlite3.ProgrammingError
        The connection is closed.

    Examples
    --------
    >>> import sqlite3, fastagg
    >>> @fastagg.aggregate
    ... class Span:
    ...     lo: float
    ...     hi: float
    ...     seen: bool
    ...     def step(self, x: float):
    ...         if not self.seen or x < self.lo:
    ...             self.lo = x
    ...         if not self.seen or x > self.hi:
    ...             self.hi = x
    ...         self.seen = True
    ...     def finalize(self) -> float | None:
    ...         return self.hi - self.lo if self.seen else None
    >>> con = sqlite3.connect(":memory:")
    >>> fastagg.register(con, Span)
    >>> con.execute("SELECT span(value) FROM (SELECT 3 AS value UNION SELECT 10)").fetchone()
    (7.0,)
    """
    if not isinstance(con, sqlite3.Connection) and hasattr(con, "connection"):
        con = con.connection  # a fastagg.Database, without importing the front end
    register_specs(con, [spec_of(agg) for agg in aggregates])


def register_specs(con: sqlite3.Connection, specs: Iterable[AggregateSpec | FunctionSpec]) -> None:
    """Compile *specs* (once per process) and create their functions on *con*.

    A mergeable aggregate ``f`` also gets ``f_partial``, ``f_combine`` and
    ``f_merge``. Calls ``sqlite3_create_function_v2`` /
    ``sqlite3_create_window_function``.
    """
    from .compile.cache import compile_spec  # numba loads here, not at import

    specs = list(specs)
    handle = _capi.connection_handle(con)
    for spec in specs:
        compiled = compile_spec(spec)
        if isinstance(spec, FunctionSpec):
            _capi.create_scalar(
                handle, spec.name, spec.narg, compiled.address("call"), deterministic=spec.deterministic
            )
            continue
        _capi.create_aggregate(
            handle,
            spec.name,
            spec.narg,
            compiled.address("step"),
            compiled.address("finalize"),
            compiled.address("value"),
            compiled.address("inverse"),
        )
        if spec.is_mergeable:
            partial, combine, merge = spec.partial_names
            step, final = compiled.address("step"), compiled.address("finalize")
            merge_step, partial_final = compiled.address("merge_step"), compiled.address("partial_final")
            _capi.create_aggregate(handle, partial, spec.narg, step, partial_final)
            _capi.create_aggregate(handle, combine, 1, merge_step, partial_final)
            _capi.create_aggregate(handle, merge, 1, merge_step, final)


def unregister_specs(con: sqlite3.Connection, specs: Iterable[AggregateSpec | FunctionSpec]) -> None:
    """Delete the functions :func:`register_specs` created for *specs* on *con*.

    Calls ``sqlite3_create_function_v2`` with no callbacks.
    """
    handle = _capi.connection_handle(con)
    for spec in specs:
        try:
            _capi.delete_function(handle, spec.name, spec.narg)
            if isinstance(spec, AggregateSpec) and spec.is_mergeable:
                partial, combine, merge = spec.partial_names
                _capi.delete_function(handle, partial, spec.narg)
                _capi.delete_function(handle, combine, 1)
                _capi.delete_function(handle, merge, 1)
        except sqlite3.OperationalError:
            # SQLite refuses while another statement of the caller's is
            # active. Leaving the function registered is safe: its code
            # lives for the whole process.
            pass


# --------------------------------------------------------------------------
# Names of called functions

#: Every identifier followed by "(": a superset of the functions a statement
#: calls (it also matches ``INSERT INTO t(a)`` and text in string literals).
_CALLED_NAME = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*\(")

_DIALECT = None


def dialect():
    """Return SQLite's sqlglot dialect with every function call parsed as written.

    sqlglot maps known function names to typed nodes (``var_samp`` to
    VarianceSamp, ``ifnull`` to Coalesce) and may spell them differently
    when generating SQL. fastagg's aggregates reuse such names, so calls stay
    ``Anonymous`` nodes (named as the statement spells them) in this dialect.
    """
    global _DIALECT
    if _DIALECT is None:
        from sqlglot.dialects.sqlite import SQLite

        class _Parser(SQLite.Parser):
            FUNCTIONS: dict = {}

        _DIALECT = type("FastaggSQLite", (SQLite,), {"Parser": _Parser})
    return _DIALECT


def called_functions(sql_text: str) -> set[str]:
    """Return the lower-case names of the functions *sql_text* calls.

    Parsed with sqlglot (:func:`dialect`). A call that sqlglot still turns
    into a typed node (``min_by`` -> ArgMin) contributes every name of that
    node (``arg_min``, ``argmin``, ``min_by``): a superset, never a miss.
    A statement sqlglot cannot parse (SQLite accepts syntax sqlglot does
    not know) falls back to every identifier followed by ``(``, again a
    superset of the calls: the query must still run as SQLite runs it.

    Examples
    --------
    >>> sorted(called_functions("SELECT g, median(x), 'f(y)' FROM df GROUP BY g"))
    ['median']
    """
    import sqlglot
    from sqlglot import exp

    try:
        trees = sqlglot.parse(sql_text, read=dialect())
    except sqlglot.errors.SqlglotError:
        return {name.lower() for name in _CALLED_NAME.findall(sql_text)}
    names: set[str] = set()
    for tree in trees:
        if tree is None:
            continue
        for node in tree.find_all(exp.Func):
            if isinstance(node, exp.Anonymous):
                names.add(node.name.lower())
            else:
                names.update(n.lower() for n in node.sql_names())
    return names


def builtins_used(sql_text: str) -> list[AggregateSpec]:
    """Return the built-in aggregates *sql_text* may call (a superset is harmless).

    Built-ins compile lazily: registering all of them on every query would
    cost a compile (or a cache load) per function. Registering ``f`` also
    registers ``f_partial``, ``f_combine`` and ``f_merge``, so a call of any
    of them selects ``f``. A statement that names no built-in even by the
    identifier-before-``(`` test is not parsed at all, so plain SQL never
    imports sqlglot.
    """
    from .builtins import BUILTINS

    candidates = {name.lower() for name in _CALLED_NAME.findall(sql_text)}
    specs = []
    for cls in BUILTINS:
        spec = spec_of(cls)
        names = {n.lower() for n in (spec.name, *(spec.partial_names if spec.is_mergeable else ()))}
        if candidates & names:
            specs.append((spec, names))
    if not specs:
        return []
    called = called_functions(sql_text)
    return [spec for spec, names in specs if called & names]
