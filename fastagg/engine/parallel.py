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
Each worker registers the same buffers zero-copy (those pinned by the
caller's registration, never the frame object again: the frame may have
changed since, and a stream can be read once) and runs its statement
through :func:`fastagg.reader.read_query`, which steps it with the GIL
released (compiled callbacks need none). Worker connections, their frame
registrations and the shared-cache databases live for one query.
"""

from __future__ import annotations

import concurrent.futures
import os
import sqlite3
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
#: The merge connection ATTACHes every other worker's database, and SQLite
#: attaches at most SQLITE_MAX_ATTACHED (10 unless compiled otherwise, 125
#: at most): ``workers`` is capped to one more than this build allows (see
#: :func:`_attach_limit`); this is the cap no build exceeds.
MAX_WORKERS = 125 + 1


def default_workers(nrows: int) -> int:
    """Return the number of workers used when ``workers=None``.

    1 below :data:`PARALLEL_MIN_ROWS` rows, else ``min(os.cpu_count(), 4)``.
    """
    if nrows < PARALLEL_MIN_ROWS:
        return 1
    return max(1, min(os.cpu_count() or 1, MAX_DEFAULT_WORKERS))


# --------------------------------------------------------------------------
# Running


def query_parallel(
    con: sqlite3.Connection,
    sql: str,
    registered: Mapping[str, Any],
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
        Table name -> registration (:func:`fastagg.table.register_frame`) of
        every frame registered on *con*; only these tables qualify, and each
        worker registers the registration's pinned buffers again.
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
    registered = {name: reg for name, reg in registered.items() if not reg.released}
    if not registered:
        return None
    if workers is None and max(reg.nrows for reg in registered.values()) < PARALLEL_MIN_ROWS:
        return None  # nothing is big enough: skip parsing
    columns = {name: [c.name for c in reg.columns] for name, reg in registered.items()}
    plan = plan_query(con, sql, columns, specs, params)
    if plan is None:
        return None
    registration = registered[plan.table]
    nrows = registration.nrows
    if not all(_sum_cannot_overflow(registration, name) for name in plan.sum_args):
        return None  # one connection: SQLite's row-order sum, and its overflow error
    if workers is None:
        workers = default_workers(nrows)
    workers = min(workers, nrows, MAX_WORKERS)
    if workers < 2:
        return None
    return run_plan(plan, registration, nrows, specs, workers)


#: The largest magnitude of each integer column kind (table.columns' K_* codes:
#: int8..int32, uint8..uint32, Arrow bool); int64 is measured, uint64 (REAL
#: past the int64 range) and every other kind is not bounded here.
_KIND_MAX = {1: 2**7, 2: 2**15, 3: 2**31, 5: 2**8 - 1, 6: 2**16 - 1, 7: 2**32 - 1, 11: 1}
_K_I64, _FLOAT_KINDS = 4, (9, 10)


def _sum_cannot_overflow(registration, name) -> bool:
    """Can SQLite's ``sum(name)`` over the frame be added from row ranges' partial sums?

    Integer addition is exact, so partial sums give SQLite's answer, except
    that SQLite raises "integer overflow" when the running sum in row order
    leaves int64, which partial sums cannot tell (a range may overflow where
    the row order does not, and the other way round). So: a float column
    (its sum is REAL and never overflows), or an integer column whose row
    count times its largest magnitude fits in int64. An expression (None),
    a text column (SQLite converts its values) or a dictionary-coded column
    is not split.
    """
    import numpy as np

    if name is None:
        return False
    column = next((c for c in registration.columns if c.name == name), None)
    if column is None or column.codes:
        return False
    if column.kind in _FLOAT_KINDS:
        return True
    if column.kind == _K_I64 and column.data and column.nrows:
        import ctypes

        # NULL slots hold arbitrary values: counted too, which only errs towards not splitting.
        values = np.frombuffer((ctypes.c_char * (8 * column.nrows)).from_address(column.data), np.int64)
        largest = max(-int(values.min()), int(values.max()))
    elif column.kind in _KIND_MAX:
        largest = _KIND_MAX[column.kind]
    else:
        return False
    return column.nrows * largest <= np.iinfo(np.int64).max


def _split(nrows: int, workers: int) -> list[tuple[int, int]]:
    """Return *workers* contiguous inclusive rowid ranges covering 1..nrows."""
    edges = [1 + (nrows * i) // workers for i in range(workers + 1)]
    return [(edges[i], edges[i + 1] - 1) for i in range(workers)]


def _attach_limit(con: sqlite3.Connection, wanted: int) -> int:
    """Raise *con*'s limit of attached databases towards *wanted*; return the limit now.

    SQLite caps the limit at its compile-time SQLITE_MAX_ATTACHED.
    """
    con.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, wanted)
    return con.getlimit(sqlite3.SQLITE_LIMIT_ATTACHED)


def run_plan(plan: Plan, registration, nrows: int, specs, workers: int) -> pa.Table:
    """Run *plan* over *registration*'s pinned buffers on *workers* connections and threads.

    *registration* is the live :class:`fastagg.table.Registration` of the
    frame on the caller's connection: every worker registers its columns
    (the buffers it pins), so all read exactly what was registered. More
    workers than the merge connection can ATTACH are reduced to that many.
    Returns the result.
    """
    from sqlglot import exp

    from ..reader import read_query
    from ..registry import register_specs
    from ..table import register_frame

    tag = uuid.uuid4().hex
    cons: list[sqlite3.Connection] = []
    uris: list[str] = []
    regs = []
    try:
        while len(cons) < workers:
            uri = f"file:fastagg-{tag}-{len(cons)}?mode=memory&cache=shared"
            # check_same_thread=False: built here, stepped on a reader thread.
            con = sqlite3.connect(uri, uri=True, check_same_thread=False)
            cons.append(con)
            uris.append(uri)
            if len(cons) == 1:
                workers = min(workers, 1 + _attach_limit(con, workers - 1))
            register_specs(con, specs)
            regs.append(register_frame(con, plan.table, registration))
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
