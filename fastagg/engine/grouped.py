"""The native grouped-aggregate engine: compiled loops over the registration's column buffers.

For a statement in the shape (:mod:`.shape`), :func:`run_native`

1. asks SQLite for its plan when there is a WHERE (:func:`_check_scan_order`:
   each group must get its rows in frame order, as the engine adds them),
   and evaluates the statement's constants once with SQLite (:mod:`.constants`);
2. evaluates ``WHERE`` and each ``FILTER`` over the registration's column
   descriptors (:mod:`.predicate`), never the frame object;
3. numbers the groups by the key columns' dense ranks in SQLite's GROUP BY
   order (:func:`.keys.group_keys`: text hashed a word at a time on threads,
   codes for dictionaries, the table stage's ordering otherwise; several
   keys through a table of their combinations, short text keys hashed
   together);
4. runs each aggregate over its argument (a column, or arithmetic,
   :mod:`.expr`): SQLite's ``count``/``sum``/``total``/``avg``/``min``/``max``
   as 3.40's ``func.c`` computes them (row order, so float sums are
   bit-identical; a float sum's pass also counts ``count(*)`` and
   ``count(x)``; ``count`` and integer ``sum`` over row ranges on threads,
   which combine exactly, see :func:`.reduce.combine_int_sums`); a compiled
   fastagg aggregate through loops generated over its user methods
   (:mod:`.reduce`: the same ``__init__``/``step``/``finalize``/``merge`` as
   the SQLite callbacks, with NaN tested in the loop for a plain float
   column), one state record per group in an arena of its state dtype,
   split over threads when it has ``merge`` (per-thread arenas merged in
   row-range order, merged-in vectors freed); without GROUP BY, several
   states per thread (:data:`.reduce.LANES`); a plain form with a segment
   finalizer (``median``) over each group's values gathered contiguously
   (:func:`.reduce.segments`) instead of a vector per group;
5. builds the result itself for a *direct* plan (:mod:`.result`), or
   registers the grouped result (keys read from the descriptors at each
   group's first row, one column per aggregate) as a table and lets SQLite
   run the rest of the statement over it (select-list expressions,
   ``HAVING``, ``ORDER BY``, ``LIMIT``, names), so result names and types
   are SQLite's own.

Any error (an aggregate raising, integer overflow, a value the WHERE cannot
compare exactly) raises :class:`NativeFailed`: the caller runs the statement
on SQLite, which raises exactly its own error (the first in its order, also
under ``LIMIT``, where SQLite may never reach the failing group). A failing
statement therefore costs the native attempt plus the SQLite run.

Exactness. Up to 3.42, SQLite's ``sum``/``total``/``avg`` add doubles in row
order (:mod:`.kernels`); 3.43 added Kahan-Babuska-Neumaier compensation and
keeps an all-integer group's sum exact: on SQLite >= 3.43
(:data:`.shape.KBN_SUMMATION`) the engine sums as :mod:`.kbn` does, the same
operations in the same order, and leaves an integer overflow or a
non-finite sum to SQLite.
Rows reach SQLite's aggregates in frame order within each group only when
the virtual table scans once: ``IN`` on a numeric column (and an ``OR`` of
equalities, which SQLite turns into ``IN``) is scanned one value at a time,
so those stay on SQLite. SQLite's own float aggregates run on one thread
(bit-identical); integer ``sum`` runs on threads only where the combined
answer is provably SQLite's. A user aggregate with ``merge`` is split into
row ranges over threads (per-thread arenas, merged in range order), and an
ungrouped one on several threads over 65,536 rows or more into
:data:`.reduce.LANES` states per thread (merged in lane order; one thread
keeps one state in row order): its floats may then differ from
SQLite's by summation order (the tests allow 1e-12 relative), and its
``__init__`` runs once per group per range (or lane) that reaches the
group (as in the workers / partial-state path). One thread and a grouped
statement (or fewer rows): ``__init__`` once per group, at the group's
first row, as the SQLite callback does. The built-ins' plain forms that
keep values (order statistics, ``mode``, ``entropy``) merge by appending
the later range's values, so their answers stay exact on threads.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import itertools
import os
import sys
import threading

import numpy as np

from . import shape as _shape
from .kinds import FLOAT_KINDS, NUMERIC_KINDS, NotInShape
from .shape import Plan

__all__ = ["run_native", "NativeFailed"]

#: Rows below which one thread does all the work.
THREAD_MIN_ROWS = 1_000_000

#: Rows from which an ungrouped mergeable user aggregate on several threads steps
#: :data:`.reduce.LANES` states per thread (merged in lane order); below, or on one
#: thread, one state in row order, as SQLite.
LANES_MIN_ROWS = 65536

#: A grouped user aggregate runs on threads only while the rows outnumber this many
#: times the groups: each thread's arena has a state per group and the merge walks
#: them all (corr over 1,000,000 groups of 2 rows: 0.12 s on one thread, 0.17 s on two).
GROUPS_PER_ROW_FOR_THREADS = 8

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
# Aggregates


def _sqlite_aggregate(agg, is_float, gids, ngroups, value, kernels, sums, key, nthreads, arguments):
    """One of SQLite's aggregates: (values, null mask).

    *sums* caches an argument's sum pass (sum/avg/total share it) and the
    rows per group that pass counted on the way (``("rows", filter)``:
    ``count(*)`` then costs no pass of its own; the caller runs the sums
    first).
    """
    from . import reduce

    name = agg.name
    if name == "count":
        if not agg.args:
            rows = sums.get(("rows", agg.filter))
            if rows is not None:
                return rows, None
            return _threaded_count(reduce.count_all, gids, ngroups, None, nthreads), None
        if key in sums:
            return sums[key][2], None  # the sum pass counted the non-NULL values
        null = value("f64", agg.args[0])[1]
        return _threaded_count(kernels.count_rows, gids, ngroups, null, nthreads), None
    if name in ("min", "max"):
        x, null = value("f64" if is_float else "i64", agg.args[0])
        best, have = kernels.extreme(gids, ngroups, x, null, name == "max")
        return best, have == 0
    compensated = _shape.KBN_SUMMATION  # read per call: the SQLite loaded decides (tests switch it)
    if key not in sums:
        if is_float and compensated:
            from . import kbn

            arrays, variant = arguments("f64", agg.args[0])
            if variant == "n":
                rsum, rerr, cnt, rows = kbn.kbn_sum_rows(gids, ngroups, arrays[0])
                sums[("rows", agg.filter)] = rows
            else:
                x, null = value("f64", agg.args[0])
                rsum, rerr, cnt = kbn.kbn_sum(gids, ngroups, x, null)
            rsum = kbn.kbn_result(rsum, rerr)
            if rsum is None:
                raise NativeFailed("a compensated sum is not finite")
            sums[key] = (None, rsum, cnt, None)
        elif is_float:
            arrays, variant = arguments("f64", agg.args[0])
            if variant == "n":
                rsum, cnt, rows = reduce.sum_float_rows(gids, ngroups, arrays[0])
                sums[key] = (None, rsum, cnt, None)
                sums[("rows", agg.filter)] = rows
            else:
                x, null = value("f64", agg.args[0])
                sums[key] = (None, *kernels.sum_float(gids, ngroups, x, null), None)
        else:
            x, null = value("i64", agg.args[0])
            isum, rsum, cnt, overflow = (_threaded_int_sum(gids, ngroups, x, null, nthreads)
                                         or kernels.sum_int(gids, ngroups, x, null))
            if compensated:
                # 3.43+: an all-INTEGER group's total and avg are (double)iSum; past an
                # overflow SQLite goes on in the compensated sum (left to it, below).
                rsum = isum.astype(np.float64)
            sums[key] = (isum, rsum, cnt, overflow)
    isum, rsum, cnt, overflow = sums[key]
    if compensated and overflow is not None and overflow.any():
        raise NativeFailed("integer overflow")
    if name == "total":
        return rsum, None
    empty = cnt == 0
    if name == "avg":
        with np.errstate(all="ignore"):
            return rsum / np.where(empty, 1, cnt), empty
    if overflow is not None and (overflow[~empty] != 0).any():
        raise NativeFailed("integer overflow")
    return (rsum if is_float else isum), empty


def _fused_float_sums(plan, gids, ngroups, value, is_float, kernels, sums):
    """Fill *sums* for every float argument of sum/avg/total without FILTER in one pass.

    :func:`.kernels.sum_floats` (:func:`.kbn.kbn_sums` on SQLite >= 3.43): each
    group's additions stay in row order (bit-identical to one pass per argument).
    """
    args = list(dict.fromkeys(a.args[0] for a in plan.aggregates if a.spec is None and a.filter is None and a.args
                              and a.name in ("sum", "avg", "total") and is_float(a.args[0])))
    if len(args) < 2:
        return
    loaded = [tuple(np.ascontiguousarray(v) for v in value("f64", a)) for a in args]
    addresses = (np.array([x.ctypes.data for x, _ in loaded], np.int64),
                 np.array([m.ctypes.data for _, m in loaded], np.int64))
    if _shape.KBN_SUMMATION:
        from . import kbn

        rsum, rerr, cnt = kbn.kbn_sums(gids, ngroups, *addresses)
        rsum = kbn.kbn_result(rsum, rerr)
        if rsum is None:
            raise NativeFailed("a compensated sum is not finite")
    else:
        rsum, cnt = kernels.sum_floats(gids, ngroups, *addresses)
    for j, a in enumerate(args):
        sums[a, None] = (None, rsum[j], cnt[j], None)


def _ranges(n, nthreads):
    nthreads = max(1, min(nthreads, n // 65536 or 1))
    return [(n * t // nthreads, n * (t + 1) // nthreads) for t in range(nthreads)]


def _threaded_count(kernel, gids, ngroups, null, nthreads):
    """count per group; integer counts combine exactly, so row ranges run on threads.

    *kernel* is ``count_rows(gids, ngroups, null)`` or, with *null* None,
    ``count_all(gids, ngroups)``.
    """
    parts = _ranges(len(gids), nthreads)

    def count(r):
        if null is None:
            return kernel(gids[r[0]:r[1]], ngroups)
        return kernel(gids[r[0]:r[1]], ngroups, null[r[0]:r[1]])

    if len(parts) == 1:
        return count(parts[0])
    return np.sum(list(_executor(len(parts)).map(count, parts)), axis=0)


def _threaded_int_sum(gids, ngroups, x, null, nthreads):
    """sum_int's answer from row ranges on threads, or None (one range, or undecided: see combine_int_sums)."""
    from . import reduce

    parts = _ranges(len(gids), nthreads)
    if len(parts) == 1:
        return None
    results = list(_executor(len(parts)).map(
        lambda r: reduce.sum_int_range(gids, ngroups, x, null, r[0], r[1]), parts))
    return reduce.combine_int_sums(results)


def _array_entry_points(spec):
    """The spec's compiled array entry points (compiled once per process, cached on disk)."""
    entry = _entry_cache.get(id(spec))
    if entry is not None and entry[0] is spec:
        if not entry[1]:
            raise NativeFailed(f"{spec.name}().finalize returns another type than its annotation")
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
    if not _result_type_exact(spec, ns.get("user_finalize")):
        funcs = {}  # no entry points: the statement runs on SQLite, which converts (or refuses) the result
    _entry_cache[id(spec)] = (spec, funcs)
    if not funcs:
        raise NativeFailed(f"{spec.name}().finalize returns another type than its annotation")
    return funcs


def _result_type_exact(spec, finalize) -> bool:
    """Whether ``finalize``'s inferred return type stores into the result as the SQLite callback would.

    The array entry point writes the value into an int64 / float64 array;
    the SQLite callback converts it with checks (a float for ``-> int`` out
    of range, None for a non-optional result, a float for ``-> bool`` raise).
    Only the types both treat alike run natively: integers (and booleans)
    for ``-> int``, booleans for ``-> bool``, numbers for ``-> float`` (None
    too when ``float | None``). Typing ``finalize`` compiles it once per
    process when numba's cache gave the entry points without it.
    """
    if finalize is None:
        return True
    from numba import from_dtype, types

    argtype = from_dtype(spec.state)
    try:
        finalize.compile((argtype,))
        ret = finalize.overloads[(argtype,)].signature.return_type
    except Exception:  # noqa: BLE001 - SQLite reports what is wrong with it
        return False
    kind = spec.result.kind
    if isinstance(ret, types.Optional):
        if not spec.result.optional or kind != "float":
            return False
        ret = ret.type
    if isinstance(ret, types.NoneType):
        return spec.result.optional and kind == "float"
    if kind == "bool":
        return isinstance(ret, types.Boolean)
    if kind == "int":
        return isinstance(ret, (types.Integer, types.Boolean))
    return isinstance(ret, (types.Float, types.Integer, types.Boolean))


_entry_cache: dict[int, tuple] = {}


def _user_aggregate(agg, gids, ngroups, arguments, nthreads, grouped=True, base=0):
    """A compiled fastagg aggregate over the groups: (values, null mask).

    *arguments(how, arg)* gives an argument's arrays and NULL variant
    (:mod:`.reduce`). Row ``i`` belongs to group ``gids[i] - base`` (a key
    column whose values are the group ids plus *base* is read as is).
    Without GROUP BY (*grouped* false) the rows go to
    :data:`.reduce.LANES` states per thread (a mergeable aggregate) or one
    state in row order, and *gids* is not read.

    Grouped, each range's arena runs ``__init__`` on every group before its
    rows (no first-row test in the loop); on threads the loop marks which
    groups its range reached, and only those merge.
    """
    from . import reduce

    spec = agg.spec
    funcs = _array_entry_points(spec)
    segment = getattr(spec.cls, "__fastagg_segments__", None)
    whole = getattr(spec.cls, "__fastagg_grouped__", None) if grouped else None
    if base and (segment is not None or whole is not None):
        gids = gids - base  # these kernels read the group ids themselves
    if segment is not None:
        return _segment_aggregate(segment, agg, gids, ngroups, arguments, nthreads)
    if whole is not None:
        # A plain form with a kernel over the whole column (approx_count_distinct): it uses the threads itself.
        arrays, variant = arguments("i64" if spec.args[0].kind == "int" else "f64", agg.args[0])
        return whole(gids, ngroups, arrays, variant, nthreads, lambda fn, k: list(_executor(k).map(fn, range(k))))
    arrays, variant = [], ""
    for arg, column in zip(spec.args, agg.args):
        a, v = arguments("i64" if arg.kind == "int" else "f64", column)
        arrays += a
        variant += v
    loops = reduce.loops(spec, variant)
    n = len(gids)
    where = spec.qualname
    mergeable = "array_merge" in funcs
    if not mergeable:
        nthreads = 1
    nthreads = max(1, min(nthreads, n // 16384 or 1))
    if grouped and ngroups * GROUPS_PER_ROW_FOR_THREADS > n:
        nthreads = 1  # few rows a group: merging whole arenas costs more than the second thread saves
    bounds = [n * t // nthreads for t in range(nthreads + 1)]
    # Lanes only where threads already merge states: one thread is SQLite's row order, bit for bit.
    lanes = not grouped and mergeable and n >= LANES_MIN_ROWS and nthreads > 1
    width = ngroups if grouped else (reduce.LANES if lanes else 1)
    arenas = []

    def part(t):
        arena = np.zeros(width, spec.state)
        arenas.append(arena)
        lo, hi = bounds[t], bounds[t + 1]
        if grouped:
            if spec.init is not None:
                _call(loops["groups_init"], f"{where}.__init__", arena)
            if nthreads == 1:
                # One range: every group gets __init__ once, as SQLite's callback
                # (here before the rows rather than at each group's first row).
                seen = np.ones(width, np.uint8)
                _call(loops["groups_step"], f"{where}.step", arena, gids, base, lo, hi, *arrays)
            else:
                seen = np.zeros(width, np.uint8)
                _call(loops["groups_step_seen"], f"{where}.step", arena, seen, gids, base, lo, hi, *arrays)
        else:
            seen = np.zeros(width, np.uint8)
            step = loops["lanes_step"] if lanes else loops["single_step"]
            _call(step, f"{where}.step", arena, seen, lo, hi, *arrays)
        return arena, seen

    try:
        if nthreads == 1:
            parts = [part(0)]
        else:
            futures = [_executor(nthreads).submit(part, t) for t in range(nthreads)]
            concurrent.futures.wait(futures)
            parts = [f.result() for f in futures]  # the first range's error first
        if not grouped:
            # Lanes in row order, as one arena per lane of one group.
            parts = [(arena[k:k + 1], seen[k:k + 1]) for arena, seen in parts for k in range(len(arena))]
        arena, seen = parts[0]
        rows = arena.view(np.uint8).reshape(len(arena), spec.state.itemsize)
        for other, oseen in parts[1:]:
            # Merged-in vectors are freed by merge_free; a group only *other* reached moves over
            # whole (merge_free freed the vectors of the fresh state it replaces).
            _call(loops["merge_free"], f"{where}.merge", arena, seen, other, oseen)
            fresh = (oseen != 0) & (seen == 0)
            if fresh.any():
                rows[fresh] = other.view(np.uint8).reshape(len(other), spec.state.itemsize)[fresh]
                other.view(np.uint8).reshape(len(other), spec.state.itemsize)[fresh] = 0
            seen |= oseen
        if not grouped:
            _call(funcs["array_fresh"], f"{where}.__init__", arena, seen)  # no rows: the one state's __init__
        out = np.zeros(len(arena), np.float64 if spec.result.kind == "float" else np.int64)
        null = np.zeros(len(arena), np.uint8)
        _call(funcs["array_finalize"], f"{where}.finalize", arena, out, null)  # frees each group's vectors
        return out, null != 0
    finally:
        if spec.vector_fields:
            for a in arenas:  # what a failure left allocated (free_vector leaves a freed vector empty)
                loops["free_all"](a)


def _segment_aggregate(segment, agg, gids, ngroups, arguments, nthreads):
    """A plain form with a segment finalizer (``median``): each group's values gathered contiguously, in row order.

    One counting sort (:func:`.reduce.segments`) instead of a vector per
    group; the groups then finalize on threads (each group on its own).
    """
    from . import reduce

    arrays, variant = arguments("f64", agg.args[0])
    nan = variant == "n"
    starts, values = reduce.segments(gids, ngroups, arrays[0], np.zeros(0, np.uint8) if nan else arrays[1], nan)
    out = np.zeros(ngroups, np.float64)
    null = np.zeros(ngroups, np.uint8)
    parts = _ranges(len(values), nthreads) if ngroups >= 2 * nthreads else [(0, len(values))]
    if len(parts) == 1:
        segment(values, starts, 0, ngroups, out, null)
    else:
        # Group ranges of about equal values: the cut points from the starts.
        cuts = np.searchsorted(starts[:ngroups], [lo for lo, _ in parts] + [len(values)]).tolist()
        cuts[0], cuts[-1] = 0, ngroups
        list(_executor(len(parts)).map(lambda t: segment(values, starts, cuts[t], cuts[t + 1], out, null),
                                       range(len(parts))))
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


def _load(cd, column, rows, how):
    """Column values at *rows* as (values, uint8 NULL mask); zero-copy for a plain buffer read in full."""
    from . import kernels

    plain = _plain_buffer(column, np.float64 if how == "f64" else np.int64)
    if plain is not None:
        # The registration's own buffer (NaN is NULL, as the virtual table reads it).
        if not isinstance(rows, _Rows):
            plain = plain[rows]
        null = np.isnan(plain).view(np.uint8) if how == "f64" else _zeros(len(plain), np.uint8)
        return plain, null
    fn = kernels.column_f64 if how == "f64" else kernels.column_i64
    return fn(cd, _as_array(rows))


def _convert(ev, how):
    """An evaluated argument expression (:func:`.expr.evaluate`) as (values, uint8 NULL mask) of *how*."""
    if ev[0] == "real":
        values = ev[1]
        null = np.isnan(values)
        if how == "f64":
            return values, null.view(np.uint8)
        with np.errstate(invalid="ignore"):
            out = np.where(values <= -9223372036854775808.0, np.iinfo(np.int64).min,
                           np.where(values >= 9223372036854775807.0, np.iinfo(np.int64).max,
                                    np.where(null, 0.0, values).astype(np.int64)))
        return out.astype(np.int64), null.view(np.uint8)
    values, null = ev[1], ev[2]
    if how == "f64":
        return values.astype(np.float64), null.view(np.uint8)
    return values, null.view(np.uint8)


def compute_grouped(plan: Plan, registration, params, workers, constants):
    """Compute *plan*'s groups over the registration's buffers.

    Returns ``(keys, results, ngroups)``: ``keys`` maps a key column index
    to its Arrow array (each group's first row), ``results`` holds one
    Arrow array per aggregate.
    """
    from . import kernels
    from .expr import Expr, evaluate
    from .result import key_array, number_array, text_array

    columns = registration.columns
    cols = registration._descriptor[1]  # the COLUMN descriptors the virtual table reads
    nrows = registration.nrows
    index = {c.name.lower(): i for i, c in enumerate(columns)}
    whole = None  # with a WHERE over whole columns: 1 for the rows it keeps
    if plan.where is not None:
        from .predicate import where_mask

        mask = where_mask(plan.where, columns, index, cols, nrows, params, constants)
        if all(a.spec is None for a in plan.aggregates) and np.count_nonzero(mask) > nrows // 4:
            # SQLite's own aggregates skip rows of group -1: read whole columns (zero-copy
            # buffers, no gather of the rows the WHERE keeps), the dropped rows in no group.
            whole = mask.view(np.uint8)
            rows = _Rows(nrows)
        else:
            rows = np.flatnonzero(mask)
    else:
        rows = _Rows(nrows)
    ngroups = -1
    base = 0  # row i's group is gids[i] - base (gids the key column itself)
    pmap = lambda fn, items: list(_executor(len(items)).map(fn, items))  # noqa: E731
    if plan.grouped and plan.where is None and len(plan.keys) == 1:
        plain = _plain_buffer(columns[plan.keys[0]], np.int64)
        if plain is not None:
            gids, base, ngroups, first = kernels.dense_int_groups(plain, threads_for(nrows, workers), pmap)
    if ngroups >= 0:
        pass
    elif plan.grouped:
        from .keys import group_keys

        gids, ngroups, first = group_keys(cols, plan.keys, None if isinstance(rows, _Rows) else rows, len(rows),
                                          threads_for(len(rows), workers), pmap, keep=whole)
    elif whole is not None:
        gids, ngroups, first = whole.astype(np.int64) - 1, 1, None
    else:
        gids, ngroups, first = _zeros(len(rows), np.int64), 1, None
    krows = None if first is None else (first if isinstance(rows, _Rows) else rows[first])
    if base and not all(a.spec is not None and a.filter is None for a in plan.aggregates):
        gids, base = gids - base, 0  # the ids themselves, for the kernels that read them
    loaded = {}
    evaluated = {}

    def load_typed(i):
        if columns[i].kind in FLOAT_KINDS:
            values, null = value("f64", i)
            if null.any():
                values = np.where(null != 0, np.nan, values)
            return "real", values
        values, null = value("i64", i)
        return "int", values, null.view(bool)

    def evaluated_arg(e):
        if e not in evaluated:
            ev = evaluate(e, len(rows), load_typed, constants)
            evaluated[e] = ("real", np.full(len(rows), np.nan)) if ev[0] == "null" else ev
        return evaluated[e]

    def value(how, arg):
        if how == "null":
            return _zeros(len(rows), np.uint8)
        if (how, arg) not in loaded:
            if isinstance(arg, Expr):
                loaded[how, arg] = _convert(evaluated_arg(arg), how)
            else:
                loaded[how, arg] = _load(cols[arg], columns[arg], rows, how)
        return loaded[how, arg]

    def arguments(how, arg):
        """An argument's arrays for :mod:`.reduce` and their NULL variant."""
        if how == "f64":
            if isinstance(arg, Expr):
                ev = evaluated_arg(arg)
                if ev[0] == "real":
                    return [ev[1]], "n"  # NaN is NULL in an evaluated real
            else:
                plain = _plain_buffer(columns[arg], np.float64)
                if plain is not None:
                    return [plain if isinstance(rows, _Rows) else plain[rows]], "n"
        elif not isinstance(arg, Expr):
            plain = _plain_buffer(columns[arg], np.int64)
            if plain is not None:
                return [plain if isinstance(rows, _Rows) else plain[rows]], "z"
        return list(value(how, arg)), "m"

    def is_float(arg):
        if isinstance(arg, Expr):
            return evaluated_arg(arg)[0] == "real"
        return columns[arg].kind in FLOAT_KINDS

    filtered = {}

    def restrict(text):
        """(gids, value) for the rows an aggregate's FILTER keeps."""
        if text not in filtered:
            from .predicate import where_mask

            keep = where_mask(plan.filters[text], columns, index, cols, nrows, params, constants)
            if not isinstance(rows, _Rows):
                keep = keep[rows]
            idx = np.flatnonzero(keep)
            cache = {}

            def fvalue(how, arg):
                if how == "null":
                    return _zeros(len(idx), np.uint8)
                if (how, arg) not in cache:
                    cache[how, arg] = tuple(np.ascontiguousarray(a[idx]) for a in value(how, arg))
                return cache[how, arg]

            def fargs(how, arg):
                return list(fvalue(how, arg)), "m"

            filtered[text] = np.ascontiguousarray(gids[idx]), fvalue, idx, fargs
        return filtered[text]

    nthreads = threads_for(len(rows), workers)
    results = [None] * len(plan.aggregates)
    sums: dict = {}
    _fused_float_sums(plan, gids, ngroups, value, is_float, kernels, sums)
    # count(*) and count(x) last: a float sum's pass counts them on the way.
    order = sorted(range(len(plan.aggregates)), key=lambda k: plan.aggregates[k].name == "count")
    for k in order:
        agg = plan.aggregates[k]
        g, val, args = gids, value, arguments
        if agg.filter is not None:
            g, val, _, args = restrict(agg.filter)
        if agg.spec is None and agg.name in ("min", "max") and agg.args and not isinstance(agg.args[0], Expr) \
                and columns[agg.args[0]].kind not in NUMERIC_KINDS:
            from .columnar import extreme_text

            table_rows = _as_array(rows)
            if agg.filter is not None:
                table_rows = table_rows[restrict(agg.filter)[2]]
            best = extreme_text(g, ngroups, cols[agg.args[0]], table_rows, agg.name == "max")
            results[k] = text_array(cols[agg.args[0]], best, columns[agg.args[0]].kind)
            continue
        if agg.spec is None:
            floating = bool(agg.args) and is_float(agg.args[0])
            key = (agg.args[0] if agg.args else None, agg.filter)
            out = _sqlite_aggregate(agg, floating, g, ngroups, val, kernels, sums, key, nthreads, args)
        else:
            out = _user_aggregate(agg, g, ngroups, args, nthreads, plan.grouped, base if g is gids else 0)
        results[k] = number_array(*out)
    keys = {}
    if plan.grouped:
        for i in dict.fromkeys(plan.keys):
            keys[i] = key_array(columns[i], cols[i], np.ascontiguousarray(krows, dtype=np.int64))
    return keys, results, ngroups


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


def _check_scan_order(con, sql, plan, params):
    """Raise :class:`NativeFailed` unless SQLite's plan feeds each group its rows in frame order.

    The engine adds a group's doubles in frame order. With a WHERE, the
    virtual table may answer through an index (a right-hand side SQLite
    does not know at planning time makes an index plan cheap), which hands
    rows over in key order: fine under GROUP BY (the table re-sorts the
    rows and orders them by the keys, stably), not without one; and SQLite's
    own sorter (``USE TEMP B-TREE``) orders rows its own way.
    """
    import sqlite3

    try:
        steps = con.execute("EXPLAIN QUERY PLAN " + sql, () if params is None else params).fetchall()
    except (sqlite3.Error, ValueError, TypeError) as exc:
        raise NativeFailed(f"SQLite does not plan the statement ({exc})") from None
    for step in steps:
        detail = str(step[-1])
        if "TEMP B-TREE" in detail and "GROUP BY" in detail:
            raise NativeFailed("SQLite groups with its own sorter (rows in its order)")
        if not plan.grouped and "VIRTUAL TABLE INDEX 1:" in detail:
            raise NativeFailed("SQLite reads the rows through an index (in key order)")


def run_native(con, sql: str, plan: Plan, registration, params, workers):
    """Run *plan* natively and return its pyarrow result, or raise :class:`NativeFailed`."""
    from ..reader import _column_info, _prepare
    from ..sqlite import capi as _capi
    from ..table import register_frame
    from .constants import evaluate
    from .result import direct_table, grouped_table

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
    if plan.where is not None:
        _check_scan_order(con, sql, plan, params)
    try:
        constants = evaluate(con, plan.constants)
        keys, results, ngroups = compute_grouped(plan, registration, params, workers, constants)
    except NotInShape as exc:
        raise NativeFailed(str(exc)) from None
    if plan.direct is not None:
        return direct_table(plan, names, decltypes, keys, results, ngroups)
    grouped = grouped_table(plan, registration.columns, keys, results)
    name = f"__fastagg_grouped_{os.getpid()}_{next(_names)}"
    from ..reader import read_query

    reg = register_frame(con, name, grouped)
    try:
        return read_query(con, outer_sql(plan, name, names, decltypes))
    finally:
        reg.close()
