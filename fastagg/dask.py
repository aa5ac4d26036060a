"""Grouped queries over a dask DataFrame: partial states per partition, a tree reduction, a merge.

``import fastagg`` does not import this module (nor dask); ``import
fastagg.dask`` does. Install with ``pip install fastagg[dask]``.

The statement is split by :mod:`fastagg.engine.split`, as :mod:`fastagg.engine.parallel` splits it for threads:

1. per partition, ``fastagg.query`` runs the *partial* statement (keys,
   ``f_partial(...)`` states, counts, sums, ...) and returns a
   ``pyarrow.Table``;
2. groups of ``split_every`` partial tables are concatenated and reduced by
   the *combine* statement (``f_combine``, sums of counts, ...) into a table
   of the same columns, level by level, until one is left;
3. the *final* statement (``f_merge``, HAVING, ORDER BY, LIMIT) runs on it.

These are ``dask.delayed`` tasks, so the graph runs on the threaded
scheduler or on a ``dask.distributed`` cluster (whichever ``compute`` uses).
Aggregate classes reach workers by cloudpickle, by reference when their
module is importable there, else by value; each worker process compiles an
aggregate at its first use (numba's cache serves it where the class's code
is cacheable).

A statement outside the supported shape (see :mod:`fastagg.engine.split`),
or one that names the ``rowid`` (numbered from 1 in every partition),
cannot be split: it runs on the whole frame, gathered into one pandas
DataFrame (``ddf.compute()``), which gives the same answer but needs the
frame to fit in memory.

Partial rows travel between tasks as Arrow tables, so values take Arrow's
types on the way: a key expression whose values mix text and numbers within
one partition becomes text (see :mod:`fastagg.reader`). Keys that are
frame columns, or expressions of one SQLite type, are unaffected.

Sums are added per partition, then across partitions: SQLite's float
``sum``/``avg``/``total`` may differ from one connection's row-order sums
in the last digits, and an integer ``sum`` raises "integer overflow" where
a partition's or the merged sum leaves int64, not where the running sum in
row order would (:func:`fastagg.engine.parallel.query_parallel`, on threads
over one frame, splits an integer sum only where it cannot overflow).
"""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa

from .database import Database
from .database import query as _query
from .engine.split import PARTS, match_types, plan_query
from .errors import Error
from .options import QueryOptions
from .output import convert
from .registry import acquire, release

__all__ = ["query"]


def query(ddf, sql: str, aggregates: Iterable[type] = (), *, functions: Iterable = (), params=None,
          output: str = "pandas", builtins: bool = True, table: str = "df", split_every: int = 8,
          compute: bool = True, **compute_kw):
    """Run a grouped *sql* statement over the dask DataFrame *ddf*.

    Parameters
    ----------
    ddf : dask.dataframe.DataFrame
        Visible to *sql* as table *table*.
    sql : str
        ``SELECT keys, aggregates FROM df [WHERE ...] [GROUP BY keys]
        [HAVING ...] [ORDER BY ...] [LIMIT ...]`` with SQLite's
        ``count``/``sum``/``total``/``min``/``max``/``avg`` and aggregates
        that define ``merge``. Other statements run on ``ddf.compute()``.
    aggregates, functions, params, output, builtins
        As for :func:`fastagg.query` (one :class:`fastagg.options.QueryOptions`);
        ``output`` is ``"pandas"``, ``"arrow"`` or ``"polars"``.
    table : str, default "df"
        The table name *sql* uses for *ddf*.
    split_every : int, default 8
        Partial tables combined per task of the tree reduction.
    compute : bool, default True
        False: return the ``dask.delayed`` object of the result instead.
    **compute_kw
        Passed to ``dask.compute`` (``scheduler=...``).

    Returns
    -------
    pandas.DataFrame, pyarrow.Table, polars.DataFrame, or dask.delayed.Delayed

    Examples
    --------
    >>> import pandas as pd, dask.dataframe as dd, fastagg.dask
    >>> ddf = dd.from_pandas(pd.DataFrame({"g": [1, 1, 2, 2], "x": [1.0, 3.0, 5.0, 9.0]}), npartitions=2)
    >>> fastagg.dask.query(ddf, "SELECT g, avg(x) AS m FROM df GROUP BY g ORDER BY g")["m"].tolist()
    [2.0, 7.0]
    """
    import dask

    options = QueryOptions(aggregates, functions, params=params, output=output, builtins=builtins, workers=1)
    if not isinstance(split_every, int) or isinstance(split_every, bool) or split_every < 2:
        raise Error(f"split_every must be an int >= 2; got {split_every!r}")
    given, builtins = options.spec_groups(sql)

    plan = _plan(ddf, sql, table, given, builtins, params)
    if plan is not None and plan.reads_rowid:
        plan = None  # rowid restarts at 1 in every partition: only the whole frame has the right one
    if plan is None:
        result = dask.delayed(_whole)(ddf, table, sql, options)
    else:
        # The derived statements call f_partial / f_combine / f_merge, which
        # fastagg.query would not find by name among the built-ins: pass them.
        given = options.aggregates
        classes = given + tuple(s.cls for s in plan.specs if s.cls not in given)
        run = options.replace(aggregates=classes, params=plan.params, output="arrow")
        partial = plan.partial_sql()
        level = [dask.delayed(_partial)(part, table, partial, run) for part in ddf.to_delayed()]
        combine = plan.combine_sql()
        while len(level) > 1:
            level = [
                dask.delayed(_combine)(level[i : i + split_every], combine, run)
                for i in range(0, len(level), split_every)
            ]
        result = dask.delayed(_final)(level[0], plan.final_sql(), plan.decltypes, run)
    if not compute:
        return result
    (table_out,) = dask.compute(result, **compute_kw)
    return convert(table_out, output)


def _plan(ddf, sql, table, given, builtins, params):
    """Plan *sql* against an empty frame of *ddf*'s columns and dtypes.

    Registers as a query would (:func:`fastagg.registry.acquire`), so an
    aggregate named like one of SQLite's functions is refused here, before
    any task runs.
    """
    meta = ddf._meta
    with Database() as db:
        db.register(table, meta)
        functions = acquire(db.connection, given, builtins)
        try:
            columns = [str(c) for c in meta.columns]
            return plan_query(db.connection, sql, {table: columns}, functions.usable, params)
        finally:
            release(functions)


def _run(data, sql, options: QueryOptions) -> pa.Table:
    """Run *sql* over *data* on one connection; an Arrow table, whatever the caller's output."""
    return _query(data, sql, options.aggregates, functions=options.functions, params=options.params,
                  output="arrow", builtins=options.builtins, workers=1)


def _partial(part, table: str, sql: str, run: QueryOptions) -> pa.Table:
    """Partial states of one partition."""
    return _run({table: part}, sql, run)


def _concat(tables) -> pa.Table:
    # An empty or all-NULL partial column is typed null; promotion widens it.
    return pa.concat_tables(tables, promote_options="permissive")


def _combine(tables, sql: str, run: QueryOptions) -> pa.Table:
    """Combine partial tables into one of the same columns."""
    if len(tables) == 1:
        return tables[0]
    return _run({PARTS: _concat(tables)}, sql, run)


def _final(parts: pa.Table, sql: str, decltypes, run: QueryOptions) -> pa.Table:
    """Merge the last partial table and finish the statement."""
    return match_types(_run({PARTS: parts}, sql, run), decltypes)


def _whole(frame, table: str, sql: str, options: QueryOptions) -> pa.Table:
    """The unsplittable statement, on the gathered frame (dask computes *frame* first)."""
    return _run({table: frame}, sql, options)
