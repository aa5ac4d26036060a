"""Which engine runs a statement, and running it natively when it can.

The front end calls :func:`native_query` before its SQLite path: None means
"run on SQLite" (the statement is outside the shape, or the native run
stopped on an error SQLite must report itself). :func:`explain_statement`
says which engine runs and why. Imports no numba until a statement is in
the shape.
"""

from __future__ import annotations

import dataclasses
import re
import sys
import threading

__all__ = ["Explanation", "explain_statement", "last_run", "native_query", "ENGINES"]

_last = threading.local()


def last_run():
    """The :class:`Explanation` of this thread's latest :func:`native_query` (what actually ran), or None."""
    return getattr(_last, "value", None)

ENGINES = ("auto", "sqlite", "native")


@dataclasses.dataclass(frozen=True)
class Explanation:
    """Which engine runs a statement.

    Attributes
    ----------
    engine : {"native", "sqlite"}
    reason : str
        For SQLite, the first construct the native engine does not handle
        (or that ``engine="sqlite"`` forced it); for native, what it runs.
    """

    engine: str
    reason: str

    def __str__(self) -> str:
        return f"{self.engine}: {self.reason}"


# Leading whitespace and comments, then SELECT.
_SELECT = re.compile(r"(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/)*select\b", re.IGNORECASE | re.DOTALL)
_CALL = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*\(")
_GROUP = re.compile(r"\bgroup\s+by\b", re.IGNORECASE)


#: Below this many rows, in a process that has not loaded numba yet, SQLite
#: answers sooner than the native engine can start (see :func:`_plan`).
NATIVE_MIN_ROWS = 200_000


def _plan(db, sql: str, specs, engine: str = "auto", numba_loaded: bool | None = None):
    """A :class:`.shape.Plan` or the reason; a cheap textual test first, so that
    plain SQL (``SELECT * FROM df``) pays no parse and never imports sqlglot.

    *numba_loaded*: whether numba was imported before the statement compiled
    its aggregates (default: whether it is now).
    """
    from .shape import SQLITE_AGGREGATES, analyse

    tables = {name: reg.columns for name, reg in db._tables.items()}
    if not tables:
        return "no frame is registered in this session"
    if not _SELECT.match(sql):
        return "not a SELECT statement"
    aggregates = set(SQLITE_AGGREGATES) | {s.name.lower() for s in specs}
    if not _GROUP.search(sql) and not {n.lower() for n in _CALL.findall(sql)} & aggregates:
        return "no aggregate and no GROUP BY"
    if numba_loaded is None:
        numba_loaded = "numba" in sys.modules
    if engine == "auto" and not numba_loaded and all(
        reg.nrows < NATIVE_MIN_ROWS for reg in db._tables.values()
    ):
        # Start-up: SQLite answers a small frame from native images without
        # numba; the native engine would first import numba and load its
        # kernels (~0.6 s), more than it saves below this size. A new aggregate
        # compiled for this statement (numba imported just now) counts as not
        # loaded: its array entry points would be a second compile (~0.9 s).
        return f"frames under {NATIVE_MIN_ROWS:,} rows and numba not loaded yet: SQLite answers sooner"
    # Whether SQLite's own plan reads each group's rows in frame order (an
    # index may answer the WHERE) is checked when the statement runs
    # (grouped._check_scan_order): it depends on the indexes built so far.
    return _analysed(sql, tables, specs, analyse)


#: Analyses by statement text, the registered tables' column names and kinds, and the specs:
#: the sqlglot parse and rewrite cost milliseconds, a statement run again costs a lookup.
_plans: dict = {}
_PLANS_KEPT = 256


def _analysed(sql, tables, specs, analyse):
    key = (sql, tuple((name, tuple((c.name, c.kind) for c in cols)) for name, cols in tables.items()),
           tuple(map(id, specs)))
    hit = _plans.get(key)
    if hit is not None and len(hit[0]) == len(specs) and all(a is b for a, b in zip(hit[0], specs)):
        return hit[1]
    plan = analyse(sql, tables, specs)  # a Plan is never changed after analysis: shared safely
    if len(_plans) >= _PLANS_KEPT:
        _plans.clear()
    _plans[key] = (tuple(specs), plan)
    return plan


def explain_statement(db, sql: str, specs, engine: str = "auto") -> Explanation:
    """Return the :class:`Explanation` for *sql* on session *db* with *specs* registered."""
    if engine == "sqlite":
        return Explanation("sqlite", 'engine="sqlite"')
    plan = _plan(db, sql, specs, engine)
    if isinstance(plan, str):
        return Explanation("sqlite", plan)
    what = f"{len(plan.aggregates)} aggregate(s) over {plan.table!r}"
    what += f" grouped by {len(plan.keys)} key(s)" if plan.grouped else " without GROUP BY"
    if plan.where is not None:
        what += ", WHERE in compiled code"
    return Explanation("native", what)


def native_query(db, sql: str, specs, options, numba_loaded: bool | None = None):
    """Run *sql* natively on session *db*: a pyarrow Table, or None to run it on SQLite.

    *numba_loaded*: whether numba was imported before the statement's
    aggregates were compiled (see :data:`NATIVE_MIN_ROWS`).

    Raises
    ------
    fastagg.Error
        ``engine="native"`` and the statement is outside the shape.
    """
    plan = _plan(db, sql, specs, options.engine, numba_loaded)
    _last.value = Explanation("sqlite", plan) if isinstance(plan, str) else None
    if isinstance(plan, str):
        if options.engine == "native":
            from ..errors import Error

            raise Error(f'engine="native": the statement is outside the native shape: {plan}')
        return None
    from .grouped import NativeFailed, run_native

    try:
        table = run_native(db._con, sql, plan, db._tables[plan.table], options.params, options.workers)
    except NativeFailed as exc:
        _last.value = Explanation("sqlite", f"the native run stopped: {exc}")
        return None  # SQLite runs it and reports its own error, if any
    _last.value = Explanation("native", "ran natively")
    return table
