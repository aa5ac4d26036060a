"""Functions on a connection: which ones a statement calls, registering and unregistering them.

Registering compiles (numba loads on the first registration, not at import:
the compiler is imported inside :func:`register_specs`), so this module is
importable without numba. It sits below the front end (database, dask, cli)
and beside the engine, which registers the same specs on its worker
connections; it imports neither.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import sqlite3
import threading
from collections.abc import Iterable

from .compile.spec import AggregateSpec, FunctionSpec, check_distinct_names, spec_of
from .errors import Error
from .sqlite import capi as _capi

__all__ = [
    "QueryFunctions",
    "acquire",
    "builtins_used",
    "called_functions",
    "dialect",
    "function_names",
    "register",
    "register_specs",
    "release",
    "unregister_specs",
]


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

    Registering is the caller's own decision, so a function of the same
    name the connection already has (its own, or an earlier registration)
    is replaced; SQLite's own functions (``sum``, ``count``, ...) never
    are. Queries that are given the same aggregate again reuse this
    registration and leave it in place.

    Raises
    ------
    fastagg.CompileError
        A class is not decorated, or numba cannot compile it.
    fastagg.Error
        A name is one of SQLite's own functions.
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
    specs = [spec_of(agg) for agg in aggregates]
    check_distinct_names(specs)  # before any is created: nothing half-registered
    handle = _capi.connection_handle(con)  # TypeError for what is no connection
    existing = function_names(con)
    for spec in specs:
        _refuse_sqlite_name(spec, existing)
    for spec in specs:
        register_specs(con, [spec])
        with _owned_lock:
            owned = _owned_on(con, handle, function_names(con))
            for name, narg in _names(spec):
                users = owned[name].users if name in owned else 0
                owned[name] = _Owned(spec, narg, permanent=True, users=users)


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
# Whose name is it: registering for one query without touching the caller's


@dataclasses.dataclass
class _Owned:
    """A function fastagg created on a connection."""

    spec: AggregateSpec | FunctionSpec
    narg: int
    permanent: bool  # by register(): the caller's now, never deleted by a query
    users: int  # queries running with it now


#: (id(connection), sqlite3* handle) -> (marker, lower-case function name -> _Owned).
#: sqlite3.Connection takes no weak reference, and a new connection may get
#: a closed one's address and handle: the first function fastagg keeps on a
#: connection comes with a marker, a no-op scalar function of a unique name
#: (``fastagg_owner_<hex>``); an entry whose connection does not list its
#: marker is another connection's, and is dropped.
_owned: dict[tuple[int, int], tuple[str, dict[str, _Owned]]] = {}
_owned_lock = threading.RLock()


def _marker() -> None:
    return None


def _owned_on(con: sqlite3.Connection, handle: int, existing: dict[str, bool]) -> dict[str, _Owned]:
    """Return what fastagg owns on *con* (an empty dict, marked, if nothing yet)."""
    import uuid

    key = (id(con), handle)
    entry = _owned.get(key)
    if entry is not None and entry[0] in existing:
        owned = entry[1]
        for name in [n for n in owned if n not in existing]:
            del owned[name]  # deleted by the caller: no longer ours
        return owned
    marker = f"fastagg_owner_{uuid.uuid4().hex[:16]}"
    con.create_function(marker, 0, _marker)
    existing[marker] = False
    _owned[key] = (marker, {})
    return _owned[key][1]


@dataclasses.dataclass
class QueryFunctions:
    """What :func:`acquire` did on a connection for one query; give it back to :func:`release`.

    Attributes
    ----------
    usable : list of AggregateSpec or FunctionSpec
        The specs whose compiled code answers their names on the connection
        during the query (registered now, or earlier by fastagg). A built-in
        whose name the connection already had is not among them: the
        connection's own function answers.
    """

    con: sqlite3.Connection
    handle: int
    usable: list
    held: list  # lower-case names whose users count this query raised


def _names(spec) -> list[tuple[str, int]]:
    """Every (lower-case name, narg) that registering *spec* creates."""
    names = [(spec.name.lower(), spec.narg)]
    if isinstance(spec, AggregateSpec) and spec.is_mergeable:
        partial, combine, merge = spec.partial_names
        names += [(partial.lower(), spec.narg), (combine.lower(), 1), (merge.lower(), 1)]
    return names


def function_names(con: sqlite3.Connection, names: Iterable[str] | None = None) -> dict[str, bool]:
    """Map the lower-case name of every function *con* has to whether SQLite itself defines it.

    Reads ``PRAGMA function_list`` (``builtin`` is 1 for SQLite's own).
    *names* (lower-case): only these are wanted. SQLite then filters the
    list, and Python converts a handful of rows instead of every function
    (~0.1 ms of each query's :func:`acquire`); the answer for each wanted
    name is the full list's. Names outside ASCII always come back, since
    SQLite's ``lower`` folds ASCII only and ``str.lower`` folds the rest.
    """
    out: dict[str, bool] = {}
    if names is None:
        rows = con.execute("SELECT name, builtin FROM pragma_function_list")
    else:
        wanted = sorted(set(names))
        rows = []
        for i in range(0, max(len(wanted), 1), 500):  # below any SQLITE_MAX_VARIABLE_NUMBER
            chunk = wanted[i:i + 500]
            marks = ", ".join("?" * len(chunk)) or "NULL"
            rows += con.execute(
                f"SELECT name, builtin FROM pragma_function_list WHERE lower(name) IN ({marks}) "
                f"OR name GLOB '*[^ -~]*'", chunk).fetchall()
    for name, builtin in rows:
        out[name.lower()] = out.get(name.lower(), False) or bool(builtin)
    return out


def _refuse_sqlite_name(spec, existing: dict[str, bool]) -> None:
    for name, _ in _names(spec):
        if existing.get(name):
            what = "function" if isinstance(spec, FunctionSpec) else "aggregate"
            raise Error(
                f"{what} {spec.name!r} is named like SQLite's own function {name}(); fastagg does not "
                f"replace SQLite's functions: give it another name "
                f"(@fastagg.{'function' if what == 'function' else 'aggregate'}(name=...))"
            )


def acquire(con: sqlite3.Connection, given: Iterable, builtins: Iterable = ()) -> QueryFunctions:
    """Make *given* and *builtins* callable on *con* for one query, touching no function of the caller's.

    A name belongs to whoever created it. *given* (the aggregates and
    functions passed to the query) must not be named like one of SQLite's
    own functions, nor like a function of the caller's: both raise. A
    built-in whose name the connection already has is skipped, so the
    caller's function answers. A name fastagg created itself with the same
    spec (with :func:`register`, or left by an earlier query) is reused.

    Raises
    ------
    fastagg.Error
        A given aggregate or function is named like one of SQLite's own
        functions, or like a function fastagg did not create.
    fastagg.CompileError
        A spec does not compile.
    """
    given, builtins = list(given), list(builtins)
    check_distinct_names(given)  # two of the caller's own: the last would silently win
    handle = _capi.connection_handle(con)
    if not given and not builtins:
        return QueryFunctions(con, handle, [], [])  # plain SQL: nothing to look up
    done = QueryFunctions(con, handle, [], [])
    with _owned_lock:
        # The names this call decides about, and every name fastagg owns on
        # the connection (_owned_on drops an owned name the list lacks).
        wanted = {name for spec in (*given, *builtins) for name, _ in _names(spec)}
        entry = _owned.get((id(con), handle))
        if entry is not None:
            wanted.add(entry[0])
            wanted.update(entry[1])
        existing = function_names(con, wanted)
        for spec in given:
            _refuse_sqlite_name(spec, existing)
        owned = _owned_on(con, handle, existing)
        todo = []
        for spec in given:
            entry = owned.get(spec.name.lower())
            if entry is not None and entry.spec is spec:
                _hold(done, owned, spec)
                continue
            for name, _ in _names(spec):
                if name not in existing:
                    continue
                other = owned.get(name)
                if other is None:
                    raise Error(
                        f"the connection already has a function named {name!r} that fastagg did not "
                        f"register; {spec.name!r} would replace it: rename the aggregate "
                        f"(@fastagg.aggregate(name=...)) or remove the connection's function"
                    )
                if other.permanent or other.users:
                    how = "with fastagg.register" if other.permanent else "by a query still running"
                    raise Error(
                        f"{name!r} is already registered on this connection {how}, for "
                        f"{other.spec.qualname}; "
                        f"pass that one, or give this aggregate another name"
                    )
            todo.append(spec)
        for spec in builtins:
            entry = owned.get(spec.name.lower())
            if entry is not None and entry.spec is spec:
                _hold(done, owned, spec)
                continue
            clash = [n for n, _ in _names(spec) if n in existing]
            # A leftover of an earlier query (not yet deleted) may be replaced;
            # any other name of the connection's is the caller's: keep it.
            if all(n in owned and not owned[n].permanent and not owned[n].users for n in clash):
                todo.append(spec)
        try:
            for spec in todo:
                register_specs(con, [spec])
                for name, narg in _names(spec):
                    owned[name] = _Owned(spec, narg, permanent=False, users=0)
                _hold(done, owned, spec)
        except BaseException:
            release(done)
            raise
    return done


def _hold(done: QueryFunctions, owned: dict, spec) -> None:
    for name, _ in _names(spec):
        owned[name].users += 1
        done.held.append(name)
    done.usable.append(spec)


def release(done: QueryFunctions) -> None:
    """Delete the functions fastagg created for queries that no query uses any more.

    The query of *done* is over. Functions it (or an earlier query) created
    are deleted unless another query uses them; one SQLite refuses to delete
    (a statement of the caller's is still active) stays until a later
    release, and is reused by later queries meanwhile: its code lives for
    the process. Functions made with :func:`register` stay. Never raises,
    and runs no statement (after Ctrl-C the connection may refuse them).
    """
    with _owned_lock:
        key = (id(done.con), done.handle)
        if key not in _owned:
            return
        marker, owned = _owned[key]
        for name in done.held:
            if name in owned:
                owned[name].users -= 1
        done.held = []
        try:
            done.con.total_changes  # noqa: B018 - raises on a closed connection, runs nothing
        except sqlite3.Error:
            _owned.pop(key, None)  # closed: its functions are gone with it
            return
        for name, entry in list(owned.items()):
            if entry.permanent or entry.users > 0:
                continue
            try:
                _capi.delete_function(done.handle, name, entry.narg)
            except sqlite3.Error:
                continue  # refused while a statement is active: retried by the next release
            del owned[name]
        if not owned:
            try:
                _capi.delete_function(done.handle, marker, 0)
            except sqlite3.Error:
                return  # kept, with its marker, until a later release
            del _owned[key]


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
            # arg_min / min_by / ... have parsers of their own that make typed
            # nodes (ArgMin) and lose the name as written: parse them as calls too.
            FUNCTION_PARSERS = {k: v for k, v in SQLite.Parser.FUNCTION_PARSERS.items()
                                if k not in ("ARG_MAX", "ARGMAX", "MAX_BY", "ARG_MIN", "ARGMIN", "MIN_BY")}

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
    return set(_called_functions(sql_text))


@functools.lru_cache(maxsize=256)
def _called_functions(sql_text: str) -> frozenset:
    # Cached by statement text: a script or a loop runs the same statements,
    # and sqlglot's parse (~1 ms) was the largest Python cost of a built-in's
    # statement on the native engine.
    import sqlglot
    from sqlglot import exp

    try:
        trees = sqlglot.parse(sql_text, read=dialect())
    except sqlglot.errors.SqlglotError:
        return frozenset(name.lower() for name in _CALLED_NAME.findall(sql_text))
    names: set[str] = set()
    for tree in trees:
        if tree is None:
            continue
        for node in tree.find_all(exp.Func):
            if isinstance(node, exp.Anonymous):
                names.add(node.name.lower())
            else:
                names.update(n.lower() for n in node.sql_names())
    return frozenset(names)


#: SQL names of the built-in aggregates (their f_partial / f_combine / f_merge
#: companions are these plus a suffix).
BUILTIN_NAMES = frozenset({
    "any_value", "approx_count_distinct", "approx_quantile", "arg_max", "arg_min", "bit_and", "bit_or", "bit_xor",
    "bool_and", "bool_or", "corr", "covar_pop", "covar_samp", "entropy", "geomean", "histogram",
    "kurtosis", "kurtosis_pop", "max_by", "median", "min_by", "mode", "product", "quantile_cont",
    "quantile_disc", "regr_avgx", "regr_avgy", "regr_count", "regr_intercept", "regr_r2", "regr_slope",
    "regr_sxx", "regr_sxy", "regr_syy", "skewness", "stddev", "stddev_pop", "stddev_samp", "var_pop",
    "var_samp", "variance", "weighted_avg",
})  # fmt: skip


def builtins_used(sql_text: str) -> list[AggregateSpec]:
    """Return the built-in aggregates *sql_text* may call (a superset is harmless).

    Built-ins compile lazily: registering all of them on every query would
    cost a compile (or a cache load) per function. Registering ``f`` also
    registers ``f_partial``, ``f_combine`` and ``f_merge``, so a call of any
    of them selects ``f``. A statement that names no built-in even by the
    identifier-before-``(`` test is not parsed at all, so plain SQL never
    imports sqlglot.
    """
    candidates = {name.lower() for name in _CALLED_NAME.findall(sql_text)}
    # The built-in modules import numba; a statement calling none of their
    # names (plain SQL) must not import them (tests/test_startup.py checks
    # that this list is complete).
    if not {re.sub(r"_(partial|combine|merge)$", "", c) for c in candidates} & BUILTIN_NAMES:
        return []
    from .builtins import BUILTINS

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
