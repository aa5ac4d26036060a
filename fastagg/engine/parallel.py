"""Parallel grouped queries in one process: split the rows, aggregate, merge.

A statement of the shape :mod:`fastagg.engine.split` handles is split into
a partial statement, run once per rowid range on its own connection and
thread, and a final statement over the union of the partial rows. Any other
statement makes :func:`query_parallel` return None, and the caller runs it
unchanged on one connection.

Threads and memory. Each worker is a new connection to its own in-memory
database, opened as a shared-cache URI (``file:fastagg-<id>-<i>?mode=memory
&cache=shared``) so that worker 0 can ATTACH the others' partial tables and
read them in place: SQLite values (types, affinities, blobs) reach the merge
exactly as the partial statement produced them, with no Arrow round trip.
Each worker registers the same frame zero-copy and runs its statement
through :func:`fastagg.reader.read_query`, which steps it with the GIL
released (compiled callbacks need none). Worker connections, their frame
registrations and the shared-cache databases live for one query.
"""

from __future__ import annotations

import concurrent.futures
import os
import sqlite3
import sys
import uuid
from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from .split import PARTS, Plan, match_types, plan_query

__all__ = ["PARTS", "Plan", "default_workers", "match_types", "plan_query", "query_parallel", "run_plan"]

#: Below this many rows the fixed cost of a parallel run (a connection, a
#: frame registration and a thread per worker, then the merge: about a
#: millisecond each) is a visible share of the query; above it a grouped
#: query takes 100 ms or more and splitting pays off.
PARALLEL_MIN_ROWS = 1_000_000
#: Grouped aggregation is bound by memory bandwidth and the merge grows with
#: workers x groups: more than four workers rarely helps.
MAX_DEFAULT_WORKERS = 4


def default_workers(nrows: int) -> int:
    """Return the number of workers used when ``workers=None``.

    1 below :data:`PARALLEL_MIN_ROWS` rows, else ``min(os.cpu_count(), 4)``.
    """
    if nrows < PARALLEL_MIN_ROWS:
        return 1
    return max(1, min(os.cpu_count() or 1, MAX_DEFAULT_WORKERS))


# --------------------------------------------------------------------------
# Running


def _shareable(frame):
    """Return *frame* with the columns that registration converts converted once.

    Registering a frame is zero-copy except for object (and tz-aware
    datetime) columns, which become Arrow arrays; doing that once here
    instead of on every worker connection. The result is what
    :func:`fastagg.table.frame_columns` would read from *frame*.
    """
    pd = sys.modules.get("pandas")
    if pd is None or not isinstance(frame, pd.DataFrame):
        return frame
    converted = {}
    for i, (name, dtype) in enumerate(frame.dtypes.items()):
        if isinstance(dtype, pd.DatetimeTZDtype):
            return frame  # rendered as text by fastagg.table; rare, left to it
        if getattr(dtype, "kind", None) == "O" and not isinstance(dtype, pd.CategoricalDtype):
            try:
                array = pa.array(frame.iloc[:, i].to_numpy(), from_pandas=True)
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
                return frame
            converted[i] = pd.Series(pd.arrays.ArrowExtensionArray(array), index=frame.index, copy=False)
    if not converted:
        return frame
    out = frame.copy(deep=False)
    for i, series in converted.items():
        out.isetitem(i, series)
    return out


def query_parallel(
    con: sqlite3.Connection,
    sql: str,
    registered: Mapping[str, tuple[Any, Any]],
    specs,
    params,
    workers: int | None,
) -> pa.Table | None:
    """Run *sql* with *workers* threads, or return None to run it on one connection.

    Parameters
    ----------
    con : sqlite3.Connection
        The caller's connection: *specs* are registered on it already, and
        the statement is planned (prepared, never run) there.
    sql : str
    registered : mapping
        Table name -> ``(frame, registration)`` of every frame registered on
        *con* (:func:`fastagg.table.register_frame`); only these tables
        qualify, and each worker registers the same frame again.
    specs : list of AggregateSpec or FunctionSpec
    params : sequence, mapping or None
    workers : int or None
        None: :func:`default_workers` of the frame's row count.

    Returns
    -------
    pyarrow.Table or None
        The result, equal to the single-connection one (row order aside
        where there is no ORDER BY; floating-point sums within rounding).
    """
    if not registered:
        return None
    if workers is None and max(reg.nrows for _, reg in registered.values()) < PARALLEL_MIN_ROWS:
        return None  # nothing is big enough: skip parsing
    columns = {name: [c.name for c in reg.columns] for name, (_, reg) in registered.items()}
    plan = plan_query(con, sql, columns, specs, params)
    if plan is None:
        return None
    frame, registration = registered[plan.table]
    nrows = registration.nrows
    if workers is None:
        workers = default_workers(nrows)
    workers = min(workers, nrows)
    if workers < 2:
        return None
    return run_plan(plan, frame, nrows, specs, workers)


def _split(nrows: int, workers: int) -> list[tuple[int, int]]:
    """Return *workers* contiguous inclusive rowid ranges covering 1..nrows."""
    edges = [1 + (nrows * i) // workers for i in range(workers + 1)]
    return [(edges[i], edges[i + 1] - 1) for i in range(workers)]


def run_plan(plan: Plan, frame, nrows: int, specs, workers: int) -> pa.Table:
    """Run *plan* over *frame* on *workers* connections and threads; return the result."""
    from sqlglot import exp

    from ..reader import read_query
    from ..registry import register_specs
    from ..table import register_frame

    tag = uuid.uuid4().hex
    uris = [f"file:fastagg-{tag}-{i}?mode=memory&cache=shared" for i in range(workers)]
    shared = _shareable(frame)
    cons: list[sqlite3.Connection] = []
    regs = []
    try:
        for uri in uris:
            # check_same_thread=False: built here, stepped on a reader thread.
            con = sqlite3.connect(uri, uri=True, check_same_thread=False)
            cons.append(con)
            register_specs(con, specs)
            regs.append(register_frame(con, plan.table, shared))
        statements = [f"CREATE TABLE {PARTS} AS {plan.partial_sql(lo, hi)}" for lo, hi in _split(nrows, workers)]
        with concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="fastagg-partial") as pool:
            futures = [pool.submit(read_query, con, s, plan.params) for con, s in zip(cons, statements)]
            try:
                done, _ = concurrent.futures.wait(futures, return_when=concurrent.futures.FIRST_EXCEPTION)
                failed = [f for f in done if f.exception() is not None]
                if failed:
                    raise failed[0].exception()
            except BaseException:
                for con in cons:
                    con.interrupt()  # stop the other partial statements early
                concurrent.futures.wait(futures)
                raise
        # The partial tables are read where they are: ATTACH the other workers' databases.
        merge_con = cons[0]
        arms = [exp.select("*").from_(exp.Table(this=exp.to_identifier(PARTS), db=exp.to_identifier("main")))]
        for i, uri in enumerate(uris[1:], 1):
            merge_con.execute(f"ATTACH DATABASE ? AS fastagg_part{i}", (uri,))
            arms.append(exp.select("*").from_(
                exp.Table(this=exp.to_identifier(PARTS), db=exp.to_identifier(f"fastagg_part{i}"))
            ))
        union = arms[0]
        for arm in arms[1:]:
            union = exp.union(union, arm, distinct=False)
        source = exp.Subquery(this=union, alias=exp.TableAlias(this=exp.to_identifier(PARTS)))
        table = read_query(merge_con, plan.final_sql(source), plan.params)
    finally:
        for reg in regs:
            reg.close()
        for con in reversed(cons):
            con.close()
    return match_types(table, plan.decltypes)
