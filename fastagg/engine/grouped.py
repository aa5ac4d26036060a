"""The native grouped-aggregate engine: compiled loops over the frame's column buffers.

For a statement in the shape (:mod:`.shape`), :func:`run_native`

1. evaluates ``WHERE`` over Arrow columns (:mod:`.predicate`);
2. numbers the groups by the key columns' dense ranks in SQLite's GROUP BY
   order (:func:`.kernels.group_rows`, the table stage's ordering);
3. runs each aggregate: SQLite's ``count``/``sum``/``total``/``avg``/
   ``min``/``max`` as 3.40's ``func.c`` computes them (one thread, rows in
   order, so float sums are bit-identical); a compiled fastagg aggregate
   through the array entry points generated beside its SQLite callbacks
   (:func:`fastagg.compile.codegen.generate_array_source`: the same
   ``__init__``/``step``/``finalize``/``merge``), one state record per group
   in an arena of its state dtype, split over threads when it has ``merge``
   and no growable fields (per-thread arenas merged in row-range order);
4. registers the grouped result (keys taken from each group's first row,
   one column per aggregate) as a table and lets SQLite run the rest of the
   statement over it (select-list expressions, ``HAVING``, ``ORDER BY``,
   ``LIMIT``, names), so result names and types are SQLite's own.

Any error (an aggregate raising, integer overflow, a value the WHERE cannot
compare exactly) raises :class:`NativeFailed`: the caller runs the statement
on SQLite, which raises exactly its own error (the first in its order, also
under ``LIMIT``, where SQLite may never reach the failing group). A failing
statement therefore costs the native attempt plus the SQLite run.

Exactness. SQLite here is 3.40: ``sum``/``total``/``avg`` add doubles in row
order; 3.43 added Kahan-Babuska-Neumaier compensation, so on SQLite >= 3.43
the shape check (:data:`.shape.KBN_SUMMATION`) leaves those three to SQLite.
Rows reach SQLite's aggregates in frame order within each group only when
the virtual table scans once: ``IN`` on a numeric column (and an ``OR`` of
equalities, which SQLite turns into ``IN``) is scanned one value at a time,
so those stay on SQLite. SQLite's own aggregates always run on one thread
(bit-identical). A user aggregate with ``merge`` and no ``fastagg.vector``
field is split into row ranges over threads (per-thread arenas, merged in
range order): its floats may then differ from SQLite's by summation order
(the tests allow 1e-12 relative), and its ``__init__`` runs once per group
per range that reaches the group (as in the workers / partial-state path).
One thread: ``__init__`` once per group, at the group's first row, as the
SQLite callback does.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import itertools
import os
import sys
import threading

import numpy as np

from .kinds import FLOAT_KINDS, NotInShape
from .shape import Plan

__all__ = ["run_native", "NativeFailed"]

#: Rows below which one thread does all the work.
THREAD_MIN_ROWS = 1_000_000

_pool = None
_pool_lock = threading.Lock()
_names = itertools.count()


class NativeFailed(Exception):
    """The native run stopped; the statement runs on SQLite (the message says why)."""


def _executor(n: int):
    global _pool
    with _pool_lock:
        if _pool is None or _pool._max_workers < n:
            _pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(n, os.cpu_count() or 1),
                                                          thread_name_prefix="fastagg-engine")
        return _pool


def threads_for(nrows: int, workers: int | None) -> int:
    """Threads for *nrows* rows: *workers*, or by default 1 below a million rows, else min(cores, 4)."""
    if workers is not None:
        return max(1, min(workers, max(nrows, 1)))
    return 1 if nrows < THREAD_MIN_ROWS else min(os.cpu_count() or 1, 4)


# --------------------------------------------------------------------------
# Columns


def _column_array(frame, i):
    """Column *i* of *frame* as a pyarrow array (NaN stays NaN; predicate marks it NULL)."""
    import pyarrow as pa

    pd = sys.modules.get("pandas")
    if pd is not None and isinstance(frame, pd.DataFrame):
        return pa.array(frame.iloc[:, i], from_pandas=True)
    return frame.column(i)


def _key_frame(frame, positions, take):
    """The key columns of *frame* at rows *take*, keeping their dtypes (so SQLite sees the same values)."""
    pd = sys.modules.get("pandas")
    if pd is not None and isinstance(frame, pd.DataFrame):
        return frame.iloc[take, list(positions)].reset_index(drop=True)
    import pyarrow as pa

    return frame.select(list(positions)).take(pa.array(take, pa.int64()))


def _with_columns(keys, frame_is_pandas, columns: dict, nrows: int):
    """Append result *columns* (name -> (values, null mask or None)) to the key table."""
    import pyarrow as pa

    if frame_is_pandas:
        import pandas as pd

        out = keys if keys is not None else pd.DataFrame(index=range(nrows))
        for name, (values, null) in columns.items():
            if null is not None and null.any():
                if values.dtype.kind == "f":
                    values = np.where(null, np.nan, values)
                else:
                    values = pd.arrays.IntegerArray(values, null.astype(bool))
            out[name] = values
        return out
    arrays, names = [], []
    if keys is not None:
        arrays += list(keys.columns)
        names += list(keys.column_names)
    for name, (values, null) in columns.items():
        arrays.append(pa.array(values, mask=None if null is None else null.astype(bool)))
        names.append(name)
    if not arrays:
        return pa.table({"__fa": pa.nulls(nrows)})
    return pa.Table.from_arrays(arrays, names=names)


# --------------------------------------------------------------------------
# Aggregates


def _sqlite_aggregate(agg, kind, gids, ngroups, value, kernels, sums):
    """One of SQLite's aggregates: (values, null mask). *sums* caches a column's sum pass (sum/avg/total share it)."""
    name = agg.name
    if name == "count":
        null = _zeros(len(gids), np.uint8) if not agg.args else value("f64", agg.args[0])[1]
        return kernels.count_rows(gids, ngroups, null), None
    is_float = kind in FLOAT_KINDS
    x, null = value("f64" if is_float else "i64", agg.args[0])
    if name in ("min", "max"):
        fn = kernels.extreme_float if is_float else kernels.extreme_int
        best, have = fn(gids, ngroups, x, null, name == "max")
        return best, have == 0
    column = agg.args[0]
    if column not in sums:
        if is_float:
            sums[column] = (None, *kernels.sum_float(gids, ngroups, x, null), None)
        else:
            sums[column] = kernels.sum_int(gids, ngroups, x, null)
    isum, rsum, cnt, overflow = sums[column]
    if name == "total":
        return rsum, None
    empty = cnt == 0
    if name == "avg":
        with np.errstate(all="ignore"):
            return rsum / np.where(empty, 1, cnt), empty
    if overflow is not None and (overflow[~empty] != 0).any():
        raise NativeFailed("integer overflow")
    return (rsum if is_float else isum), empty


def _array_entry_points(spec):
    """The spec's compiled array entry points (compiled once per process, cached on disk)."""
    entry = _entry_cache.get(id(spec))
    if entry is not None and entry[0] is spec:
        return entry[1]
    from numba import njit

    from ..compile import cache as _cache

    _cache.compile_spec(spec)  # registers the SQLite callbacks (from an image, or compiled)
    module, cacheable = _cache.prepared_module(spec)  # user_* jitted into the module
    ns = module.__dict__
    if not ns.get("ARRAY_ENTRY_POINTS"):
        raise NativeFailed(f"{spec.name}() has no array entry points")
    funcs = {}
    for name in ("array_fresh", "array_step", "array_finalize", "array_merge"):
        if callable(ns.get(name)):
            funcs[name] = njit(nogil=True, cache=cacheable)(ns[name])
    _entry_cache[id(spec)] = (spec, funcs)
    return funcs


_entry_cache: dict[int, tuple] = {}


def _user_aggregate(agg, gids, ngroups, value, nthreads):
    """A compiled fastagg aggregate over the groups: (values, null mask)."""
    spec = agg.spec
    funcs = _array_entry_points(spec)
    arrays = []
    for arg, column in zip(spec.args, agg.args):
        arrays += value("i64" if arg.kind == "int" else "f64", column)
    n = len(gids)
    where = spec.qualname
    if spec.vector_fields or "array_merge" not in funcs:
        nthreads = 1
    nthreads = max(1, min(nthreads, n))
    bounds = [n * t // nthreads for t in range(nthreads + 1)]

    def part(t):
        arena = np.zeros(ngroups, spec.state)
        seen = np.zeros(ngroups, np.uint8)
        lo, hi = bounds[t], bounds[t + 1]
        _call(funcs["array_step"], f"{where}.step", arena, seen, gids, lo, hi, *arrays)
        return arena, seen

    if nthreads == 1:
        arena, seen = part(0)
    else:
        parts = list(_executor(nthreads).map(part, range(nthreads)))
        arena, seen = parts[0]
        rows = arena.view(np.uint8).reshape(ngroups, spec.state.itemsize)
        for other, oseen in parts[1:]:
            _call(funcs["array_merge"], f"{where}.merge", arena, seen, other, oseen)
            fresh = (oseen != 0) & (seen == 0)
            rows[fresh] = other.view(np.uint8).reshape(ngroups, spec.state.itemsize)[fresh]
            seen |= oseen
    _call(funcs["array_fresh"], f"{where}.__init__", arena, seen)
    out = np.zeros(ngroups, np.float64 if spec.result.kind == "float" else np.int64)
    null = np.zeros(ngroups, np.uint8)
    _call(funcs["array_finalize"], f"{where}.finalize", arena, out, null)
    return out, null != 0


def _call(fn, where, *args):
    try:
        fn(*args)
    except Exception as exc:  # user code raised: SQLite re-runs the statement for its own error
        detail = str(exc)
        raise NativeFailed(f"{where}: {type(exc).__name__}" + (f": {detail}" if detail else "")) from exc


# --------------------------------------------------------------------------
# The statement


class _Rows:
    """All rows 0..n-1, made into an array only if a kernel needs one."""

    def __init__(self, n):
        self.n = n
        self._array = None

    def __len__(self):
        return self.n

    def array(self):
        if self._array is None:
            self._array = np.arange(self.n, dtype=np.int64)
        return self._array


def _zeros(n, dtype):
    """n zeros without allocating them (a read-only zero-stride view)."""
    return np.broadcast_to(np.zeros(1, dtype), (n,))


def _as_array(rows):
    return rows.array() if isinstance(rows, _Rows) else rows


def _plain_buffer(column, dtype):
    """The column's values as a zero-copy numpy array when they are plain *dtype* (no NULL mask, no codes)."""
    kind = {np.dtype(np.int64): 4, np.dtype(np.float64): 10}[np.dtype(dtype)]
    if column.kind != kind or column.validity_kind != 0 or column.codes != 0 or not column.data or column.nrows == 0:
        return None
    buf = (ctypes.c_char * (8 * column.nrows)).from_address(column.data)
    return np.frombuffer(buf, dtype)


def compute_grouped(plan: Plan, frame, registration, params, workers):
    """Compute the grouped result of *plan* over *frame*: a frame of keys and ``__faN`` columns."""
    from . import kernels

    columns = registration.columns
    cols = registration._descriptor[1]  # the COLUMN descriptors the virtual table reads
    nrows = registration.nrows
    if plan.where is not None:
        from .predicate import where_mask

        index = {c.name.lower(): i for i, c in enumerate(columns)}
        mask = where_mask(plan.where, columns, index, lambda i: _column_array(frame, i), params)
        rows = np.flatnonzero(mask).astype(np.int64)
    else:
        rows = _Rows(nrows)
    ngroups = -1
    if plan.grouped and plan.where is None and len(plan.keys) == 1:
        plain = _plain_buffer(columns[plan.keys[0]], np.int64)
        if plain is not None:
            gids, ngroups, first = kernels.dense_int_groups(plain)
    if ngroups >= 0:
        pass
    elif plan.grouped:
        gids, ngroups, first = kernels.group_rows(cols, np.array(plan.keys, np.int64), _as_array(rows))
    else:
        gids, ngroups, first = _zeros(len(rows), np.int64), 1, None
    loaded = {}

    def value(how, i):
        if isinstance(i, tuple):  # ("literal", number): the same number on every row
            return np.broadcast_to(np.array([i[1]], np.float64 if how == "f64" else np.int64), (len(rows),)), \
                _zeros(len(rows), np.uint8)
        if (how, i) not in loaded:
            plain = None if plan.where is not None else _plain_buffer(columns[i], np.float64 if how == "f64" else np.int64)
            if plain is not None:
                # Zero-copy: the frame's own buffer (NaN is NULL, as the virtual table reads it).
                null = np.isnan(plain).view(np.uint8) if how == "f64" else _zeros(len(plain), np.uint8)
                loaded[how, i] = plain, null
            else:
                fn = kernels.column_f64 if how == "f64" else kernels.column_i64
                loaded[how, i] = fn(cols[i], _as_array(rows))
        return loaded[how, i]

    nthreads = threads_for(len(rows), workers)
    results = {}
    sums: dict = {}
    for k, agg in enumerate(plan.aggregates):
        if agg.spec is None:
            kind = columns[agg.args[0]].kind if agg.args else None
            results[f"__fa{k}"] = _sqlite_aggregate(agg, kind, gids, ngroups, value, kernels, sums)
        else:
            results[f"__fa{k}"] = _user_aggregate(agg, gids, ngroups, value, nthreads)
    pd = sys.modules.get("pandas")
    is_pandas = pd is not None and isinstance(frame, pd.DataFrame)
    keys = None
    if plan.grouped:
        positions = list(dict.fromkeys(plan.keys))
        keys = _key_frame(frame, positions, first if isinstance(rows, _Rows) else rows[first])
    return _with_columns(keys, is_pandas, results, ngroups)


def outer_sql(plan: Plan, table: str, names, decltypes) -> str:
    """SQL finishing *plan* over the grouped table, with the original statement's result names.

    A result column SQLite declares no type for (anything but a key column)
    is written ``+(expr)``: unary plus changes no value but drops the
    grouped table's declared type, which decides the Arrow type of an
    all-NULL or empty column.
    """
    from sqlglot import exp

    from ..registry import dialect

    d = dialect()
    outer = plan.outer
    items = []
    for e, name, decl in zip(outer.expressions, names, decltypes):
        inner = (e.this if isinstance(e, exp.Alias) else e).sql(dialect=d)
        if decl is None:
            inner = f"+({inner})"
        items.append(f"{inner} AS " + '"' + name.replace('"', '""') + '"')
    sql = "SELECT " + ", ".join(items) + ' FROM "' + table + '"'
    where = outer.args.get("where")
    if where is not None:
        sql += " " + where.sql(dialect=d)
    for key in ("order", "limit", "offset"):
        part = outer.args.get(key)
        if part is not None:
            sql += " " + part.sql(dialect=d)
    return sql


def run_native(con, sql: str, plan: Plan, frame, registration, params, workers):
    """Run *plan* natively and return its pyarrow result, or raise :class:`NativeFailed`."""
    from ..reader import _column_info, _prepare
    from ..sqlite import capi as _capi
    from ..table import register_frame

    handle = _capi.connection_handle(con)
    try:
        stmt = _prepare(handle, sql)
    except Exception as exc:  # noqa: BLE001 - SQLite reports it on its own path
        raise NativeFailed(f"SQLite does not prepare the statement ({exc})") from None
    try:
        names, decltypes = _column_info(stmt)
        nparams = _capi.lib.sqlite3_bind_parameter_count(stmt)
    finally:
        _capi.lib.sqlite3_finalize(stmt)
    given = 0 if params is None else len(params)
    if nparams != given and not (nparams == 0 and params is None):
        raise NativeFailed("parameter count differs from the statement's")
    try:
        grouped = compute_grouped(plan, frame, registration, params, workers)
    except NotInShape as exc:
        raise NativeFailed(str(exc)) from None
    name = f"__fastagg_grouped_{os.getpid()}_{next(_names)}"
    from ..reader import read_query

    reg = register_frame(con, name, grouped)
    try:
        return read_query(con, outer_sql(plan, name, names, decltypes))
    finally:
        reg.close()
