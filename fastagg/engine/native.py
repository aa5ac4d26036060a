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

__all__ = ["Explanation", "explain_statement", "last_run", "native_query", "run_remembered", "warm_native", "ENGINES"]

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


def native_query(db, sql: str, specs, options, numba_loaded: bool | None = None, remember=None):
    """Run *sql* natively on session *db*: a pyarrow Table, or None to run it on SQLite.

    *numba_loaded*: whether numba was imported before the statement's
    aggregates were compiled (see :data:`NATIVE_MIN_ROWS`). *remember*:
    ``(specs, decimals)`` for a one-shot session (its own fresh in-memory
    connection, its frames registered with *decimals*, *specs* what
    :meth:`.QueryOptions.spec_groups` gave): a direct result is remembered
    for :func:`run_remembered`.

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
    if remember is not None and _rememberable(plan, options):
        _remember(db, sql, remember[0], plan, options, remember[1])
    return table


# --------------------------------------------------------------------------
# One-shot statements answered again without SQLite
#
# ``fastagg.query(frame, sql)`` opens a connection, registers the frames,
# the functions, prepares the statement and closes it all again: ~1 ms of a
# statement whose compiled loop may take 0.1 ms. When the native engine
# built such a statement's result itself (a direct plan: no WHERE, no
# parameters, no constants for SQLite to evaluate), the only things SQLite
# contributed were the result's names and declared types and the
# verdict that the statement prepares; all depend on nothing but the
# statement text, the frames' names and column names/kinds/declared types
# and the specs, on a fresh in-memory connection (the one-shot session's,
# which nobody else sees). So they are remembered under exactly that, and
# the next call with the same key reads the frames' buffers straight away.
# The buffers themselves are never remembered: every call takes them from
# the frame as it is now (a mutated or replaced column gives the new answer).

#: key -> (specs of the key, Plan, result names, declared types).
_remembered: dict = {}
#: The statement texts of _remembered's keys: a statement never remembered
#: (a join, a WHERE) costs the one-shot path a set lookup and nothing else.
_remembered_texts: set = set()
_REMEMBERED_KEPT = 256


def _remember_key(sql, tables, specs, options, decimals):
    """Everything the remembered result names and plan depend on (the specs by identity)."""
    frames = tuple((name, tuple((c.name, c.kind, c.decl) for c in cols)) for name, cols in tables.items())
    return (sql, frames, tuple(map(id, specs)), options.engine, options.workers, options.builtins, decimals)


def _rememberable(plan, options) -> bool:
    return (plan.direct is not None and plan.where is None and not plan.constants and options.params is None
            and not options.read_only)


def _remember(db, sql, specs, plan, options, decimals) -> None:
    """Remember *plan*'s result names and types for :func:`run_remembered` (one-shot sessions only)."""
    from ..reader import _column_info, _prepare
    from ..sqlite import capi as _capi

    handle = _capi.connection_handle(db._con)
    try:
        stmt = _prepare(handle, sql)  # prepared a moment ago by run_native: it prepares
    except Exception:  # noqa: BLE001 - then nothing is remembered; the result stands
        return
    try:
        names, decltypes = _column_info(stmt)
        nparams = _capi.lib.sqlite3_bind_parameter_count(stmt)
    finally:
        _capi.lib.sqlite3_finalize(stmt)
    if nparams:
        return
    tables = {name: reg.columns for name, reg in db._tables.items()}
    if len(_remembered) >= _REMEMBERED_KEPT:
        _remembered.clear()
        _remembered_texts.clear()
    _remembered[_remember_key(sql, tables, specs, options, decimals)] = (
        tuple(specs), plan, list(names), list(decltypes))
    _remembered_texts.add(sql)


class _Buffers:
    """What :func:`.grouped.compute_grouped` reads of a registration, for frames SQLite never sees."""

    __slots__ = ("columns", "nrows", "_descriptor")

    def __init__(self, columns):
        from ..table.columns import build_table

        self.columns = columns
        self.nrows = columns[0].nrows
        self._descriptor = build_table(columns, None)  # pinned by this object while the run reads it


def _plain_frames(frames: dict) -> bool:
    """Whether *frames* is non-empty and every frame a pandas DataFrame or a pyarrow Table (read any number of times)."""
    pd, pa = sys.modules.get("pandas"), sys.modules.get("pyarrow")
    return bool(frames) and all((pd is not None and type(f) is pd.DataFrame) or (pa is not None and type(f) is pa.Table)
                                for f in frames.values())


def run_remembered(frames: dict, sql, options, decimals: str):
    """The result of a remembered one-shot statement over *frames*, or None for the usual path.

    Anything unusual (a frame that is not a pandas DataFrame or a pyarrow
    Table, a column that does not convert, a key not remembered, a native
    run that stops) returns None: the one-shot session then runs the
    statement as always and reports its errors itself.
    """
    if not isinstance(sql, str) or sql not in _remembered_texts or options.params is not None or options.read_only:
        return None
    if not _plain_frames(frames):
        return None  # an Arrow stream is read once: only the usual path may read it
    try:
        given, builtins = options.spec_groups(sql)
        from ..table.columns import frame_columns

        tables = {name: frame_columns(frame, decimals=decimals) for name, frame in frames.items()}
    except Exception:  # noqa: BLE001 - the usual path raises it, in its own order
        return None
    specs = given + builtins
    hit = _remembered.get(_remember_key(sql, tables, specs, options, decimals))
    if hit is None or len(hit[0]) != len(specs) or not all(a is b for a, b in zip(hit[0], specs)):
        return None
    _, plan, names, decltypes = hit
    columns = tables[plan.table]
    if not columns or len({c.nrows for c in columns}) != 1:
        return None
    from .grouped import NativeFailed, compute_grouped
    from .kinds import NotInShape
    from .result import direct_table

    buffers = _Buffers(columns)
    try:
        keys, results, ngroups = compute_grouped(plan, buffers, None, options.workers, {})
    except (NativeFailed, NotInShape):
        return None  # the usual path runs it again and hands over to SQLite, which reports
    table = direct_table(plan, names, decltypes, keys, results, ngroups)
    _last.value = Explanation("native", "ran natively")
    return table


def warm_native(frames: dict, sql, options, decimals: str, numba_loaded: bool) -> bool:
    """Compile what the native engine will run for *sql* over *frames*, without SQLite; whether it ran.

    From an empty cache the first statement waits for the virtual table's
    image (built by child processes) before the native engine starts, and
    only then compiles its kernels (seconds). Called while those children
    build (:func:`fastagg.database.query`), this runs the engine once over
    the frames' buffers, as :func:`run_remembered` does, so its kernels are
    compiled (and cached) meanwhile; the result is dropped (the statement
    then runs as always). Nothing happens for a statement the engine would
    not take (outside the shape, SQLite's small-frame rule with
    *numba_loaded*, parameters, constants SQLite must evaluate) or frames
    that are not pandas DataFrames or pyarrow Tables. Errors are ignored:
    the statement's own run reports them.
    """
    if not isinstance(sql, str) or options.engine == "sqlite" or options.params is not None or options.read_only:
        return False
    if not _plain_frames(frames):
        return False
    try:
        from ..table.columns import frame_columns
        from .shape import analyse

        given, builtins = options.spec_groups(sql)
        tables = {name: frame_columns(frame, decimals=decimals) for name, frame in frames.items()}
        if not numba_loaded and all((cols[0].nrows if cols else 0) < NATIVE_MIN_ROWS for cols in tables.values()):
            return False  # SQLite will answer (see _plan)
        plan = _analysed(sql, tables, given + builtins, analyse)
        if isinstance(plan, str) or plan.constants:
            return False
        columns = tables[plan.table]
        if not columns or len({c.nrows for c in columns}) != 1:
            return False
        from .grouped import compute_grouped

        compute_grouped(plan, _Buffers(columns), None, options.workers, {})
        return True
    except Exception:  # noqa: BLE001 - an early compile only: the statement's own run reports errors
        return False
