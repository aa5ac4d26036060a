"""Compiled loops of the native grouped engine: group ids, argument arrays, SQLite's aggregates.

Group ids come from the table stage's ordering (:mod:`fastagg.table.ordering`):
each key column's dense ranks in SQLite's order (NULL first, numbers, text
by BINARY), combined in GROUP BY order, so group *g* is the *g*-th group
SQLite emits. Argument values come from the table stage's value access
(:mod:`fastagg.table.values`), so NULL, NaN, codes and validity mean what
they mean to the virtual table. SQLite's own aggregates follow
``func.c`` of SQLite 3.40: ``sum``/``total``/``avg`` add doubles in row
order (``rSum += v``), integer ``sum`` detects overflow, ``min``/``max``
keep the first of equal values. A row whose group id is negative belongs to
no group (a row the WHERE dropped, when the engine reads whole columns).

numba's cache keys a compiled function by its own file only, not by the
functions it inlines from :mod:`fastagg.table.ordering`: edit this file
(or clear the cache) when the ordering code changes.
"""

from __future__ import annotations

import numpy as np
from numba import carray, njit

from ..native.intrinsics import as_voidptr
from ..table.columns import K_F32, K_F64
from ..table.ordering import _dense_ranks, _sort_keys
from ..table.values import float_value, int_value, value_row
from .reduce import FAR_BYTES, PREFETCH_ROWS, prefetch

__all__ = ["key_ranks_into", "combine_ranks", "dense_int_groups", "column_f64", "column_i64",
           "count_rows", "sum_int", "sum_float", "sum_floats", "extreme", "run_real"]


@njit(cache=True, nogil=True)
def key_ranks_into(cd, rows, out):
    """Dense ranks (SQLite's order, NULL rank 0) of one key column at *rows*, written into *out*; their count."""
    keys, isnull = _sort_keys(cd, rows)
    r, m = _dense_ranks(keys, isnull)
    out[:] = r
    return m


@njit(cache=True, nogil=True)
def combine_ranks(ranks, sizes):
    """Group ids of rows by several keys' dense ranks (rows of *ranks*, counts *sizes*), in key order.

    The numbering of :func:`.keys.group_keys`: (gids, ngroups, first), ``first[g]``
    the position of group g's first row.
    """
    nk, n = ranks.shape
    comb = np.zeros(n, np.int64)
    budget = 2 * n + 1024
    prod = np.int64(1)
    nulls = np.zeros(n, np.uint8)
    for t in range(nk):
        m = sizes[t]
        if prod > budget // m:
            comb, prod = _dense_ranks(comb, nulls)
        for i in range(n):
            comb[i] = comb[i] * m + ranks[t, i]
        prod *= m
    dense, m = _dense_ranks(comb, nulls)
    g = m - 1
    gids = np.empty(n, np.int64)
    first = np.full(max(g, 0), -1, np.int64)
    for i in range(n):
        k = dense[i] - 1
        gids[i] = k
        if first[k] < 0:
            first[k] = i
    return gids, g, first


@njit(cache=True, nogil=True)
def _int_range(x, lo, hi):
    """(min, max) of ``x[lo:hi]`` (a non-empty range)."""
    part = x[lo:hi]
    return part.min(), part.max()  # numba's reductions vectorise (a loop with signed indices did not)


@njit(cache=True, nogil=True)
def _first_rows(x, lo, hi, kmin, pos, far):
    """Into *pos* (all -1): per key value ``kmin + j``, its first row within ``lo..hi-1``; returns *pos*.

    *far*: the table is beyond the caches; prefetch the entries rows ahead.
    The tables are numpy's (transparent huge pages), not numba's allocations
    (4 KiB page faults: a third of a million-group key's time).
    """
    # Backwards, storing every row: the first row is the last stored, with no
    # test per row (a taken-or-not branch on the table costs twice as much).
    # Unsigned indices: no negative-index wraparound per access (a third as fast with it).
    top = np.uint64(hi) - np.uint64(1)
    m = np.uint64(hi - lo)
    for k in range(m):
        i = top - k
        if far and k + np.uint64(PREFETCH_ROWS) < m:
            prefetch(pos, np.uint64(x[i - np.uint64(PREFETCH_ROWS)] - kmin))
        pos[np.uint64(x[i] - kmin)] = np.int64(i)
    return pos


@njit(cache=True, nogil=True)
def _fill_missing(pos, later):
    """Where *pos* has no row, take *later*'s (a later range's first rows)."""
    for j in range(len(pos)):
        if pos[j] < 0:
            pos[j] = later[j]


@njit(cache=True, nogil=True)
def _number_present(pos, ids):
    """Into *ids*: dense ids of the values present (``pos >= 0``), -1 for the others; their count."""
    g = 0
    for j in range(len(pos)):
        if pos[j] >= 0:
            ids[j] = g
            g += 1
        else:
            ids[j] = -1
    return g


@njit(cache=True, nogil=True)
def _gather_ids(x, kmin, ids, out, lo, hi, far):
    h = np.uint64(hi)
    for i in range(np.uint64(lo), h):
        if far and i + np.uint64(PREFETCH_ROWS) < h:
            prefetch(ids, np.uint64(x[i + np.uint64(PREFETCH_ROWS)] - kmin))
        out[i] = ids[np.uint64(x[i] - kmin)]


#: Rows a thread takes at least in :func:`dense_int_groups` (its passes run at memory speed).
_KEY_RANGE_ROWS = 1 << 18


def dense_int_groups(x, nthreads=1, pmap=None):
    """Group ids of a plain int64 key with a small value range: (gids, base, ngroups, first, values);
    ngroups -1 if not.

    Row ``i``'s group is ``gids[i] - base``: the keys' dense ranks, as
    :func:`.keys.group_keys` numbers them, ``first[g]`` group g's first
    row and ``values[g]`` its key value (``x[first[g]]``, known without a
    gather: the minimum plus the offsets present). When every value from the minimum to the maximum occurs (keys
    ``0..k-1``, or ``1..k``), the ids are the keys less the minimum, and
    *gids* is *x* itself (``base`` the minimum): no pass writes them.
    Otherwise *gids* is a new array and *base* 0. The min/max, first-row
    and gather passes run over row ranges on up to *nthreads* threads
    (``pmap(fn, items)`` lists ``fn(item)``, possibly on threads).
    """
    n = len(x)
    if n == 0:
        return np.zeros(0, np.int64), 0, 0, np.zeros(0, np.int64), np.zeros(0, np.int64)
    k = max(1, min(nthreads, n // _KEY_RANGE_ROWS)) if pmap is not None else 1
    parts = [(n * t // k, n * (t + 1) // k) for t in range(k)]

    def each(fn):
        return [fn(*parts[0])] if k == 1 else pmap(lambda r: fn(*r), parts)

    bounds = each(lambda lo, hi: _int_range(x, lo, hi))
    kmin = int(min(b[0] for b in bounds))
    span = int(max(b[1] for b in bounds)) - kmin  # Python ints: no wrap
    if span > 2 * n + 1024:
        return np.zeros(0, np.int64), 0, -1, np.zeros(0, np.int64), np.zeros(0, np.int64)
    far = 8 * (span + 1) >= FAR_BYTES
    tables = each(lambda lo, hi: _first_rows(x, lo, hi, kmin, np.full(span + 1, -1, np.int64), far))
    pos = tables[0]
    for later in tables[1:]:
        _fill_missing(pos, later)
    ids = np.empty(span + 1, np.int64)
    g = _number_present(pos, ids)
    if g == span + 1:
        return x, kmin, g, pos, np.arange(g, dtype=np.int64) + np.int64(kmin)
    gids = np.empty(n, np.int64)
    each(lambda lo, hi: _gather_ids(x, kmin, ids, gids, lo, hi, far))
    present = np.flatnonzero(pos >= 0)
    return gids, 0, g, pos[present], present + np.int64(kmin)


@njit(cache=True, nogil=True)
def column_f64(cd, rows):
    """Column values at *rows* as SQLite's ``sqlite3_value_double`` reads them; NULL mask."""
    n = len(rows)
    out = np.zeros(n, np.float64)
    null = np.zeros(n, np.uint8)
    is_float = cd.kind == K_F64 or cd.kind == K_F32
    for i in range(n):
        v = value_row(cd, rows[i])
        if v < 0:
            null[i] = 1
        elif is_float:
            out[i] = float_value(cd, v)
        else:
            out[i] = np.float64(int_value(cd, v))
    return out, null


@njit(cache=True, nogil=True)
def _double_to_int64(r):
    # SQLite's doubleToInt64 (vdbemem.c): clamp, then truncate.
    if r <= -9223372036854775808.0:
        return np.int64(-9223372036854775807 - 1)
    if r >= 9223372036854775807.0:
        return np.int64(9223372036854775807)
    return np.int64(r)


@njit(cache=True, nogil=True)
def column_i64(cd, rows):
    """Column values at *rows* as ``sqlite3_value_int64`` reads them; NULL mask."""
    n = len(rows)
    out = np.zeros(n, np.int64)
    null = np.zeros(n, np.uint8)
    is_float = cd.kind == K_F64 or cd.kind == K_F32
    for i in range(n):
        v = value_row(cd, rows[i])
        if v < 0:
            null[i] = 1
        elif is_float:
            out[i] = _double_to_int64(float_value(cd, v))
        else:
            out[i] = int_value(cd, v)
    return out, null


@njit(cache=True, nogil=True)
def count_rows(gids, ngroups, null):
    """count(x): non-NULL rows per group (count(*): pass an all-zero mask)."""
    out = np.zeros(ngroups, np.int64)
    for i in range(len(gids)):
        if null[i] == 0 and gids[i] >= 0:
            out[gids[i]] += 1
    return out


@njit(cache=True, nogil=True)
def sum_int(gids, ngroups, x, null):
    """sumStep over integers: (iSum, rSum, cnt, overflow) per group."""
    isum = np.zeros(ngroups, np.int64)
    rsum = np.zeros(ngroups, np.float64)
    cnt = np.zeros(ngroups, np.int64)
    overflow = np.zeros(ngroups, np.uint8)
    for i in range(len(gids)):
        g = gids[i]
        if null[i] != 0 or g < 0:
            continue
        v = x[i]
        cnt[g] += 1
        rsum[g] += np.float64(v)
        if overflow[g] == 0:
            a = isum[g]
            s = a + v  # wraps; overflow when the sign flips away from both operands
            if (a >= 0) == (v >= 0) and (s >= 0) != (a >= 0):
                overflow[g] = 1
            else:
                isum[g] = s
    return isum, rsum, cnt, overflow


@njit(cache=True, nogil=True)
def sum_float(gids, ngroups, x, null):
    """sumStep over reals: (rSum, cnt) per group, added in row order."""
    rsum = np.zeros(ngroups, np.float64)
    cnt = np.zeros(ngroups, np.int64)
    for i in range(len(gids)):
        g = gids[i]
        if null[i] == 0 and g >= 0:
            rsum[g] += x[i]
            cnt[g] += 1
    return rsum, cnt


@njit(cache=True, nogil=True)
def sum_floats(gids, ngroups, xaddr, naddr):
    """:func:`sum_float` of several float64 arguments in one pass: (rSum, cnt), one row per argument.

    *xaddr* / *naddr* hold the addresses of each argument's values and uint8
    NULL mask (``len(gids)`` items each; the caller keeps them alive). Each
    group's additions stay in row order, so every sum is bit-identical to
    :func:`sum_float`; the arguments' chains interleave instead of one pass
    waiting on each addition (Q1: five sums over 6 M rows into 4 groups).
    """
    k = len(xaddr)
    acc = np.zeros((max(ngroups, 0), k), np.float64)  # a group's sums side by side
    cnt = np.zeros((max(ngroups, 0), k), np.int64)
    for i in range(len(gids)):
        g = gids[i]
        if g < 0:
            continue
        for j in range(k):
            if carray(as_voidptr(naddr[j] + i), 1, np.uint8)[0] == 0:
                acc[g, j] += carray(as_voidptr(xaddr[j] + 8 * i), 1, np.float64)[0]
                cnt[g, j] += 1
    return acc.T.copy(), cnt.T.copy()


@njit(cache=True, nogil=True)
def extreme(gids, ngroups, x, null, is_max):
    """minmaxStep over int64 or float64 *x*: (value, present) per group; ties (0.0, -0.0) keep the first."""
    best = np.zeros(ngroups, x.dtype)
    have = np.zeros(ngroups, np.uint8)
    for i in range(len(gids)):
        g = gids[i]
        if null[i] != 0 or g < 0:
            continue
        v = x[i]
        if have[g] == 0 or (v > best[g] if is_max else v < best[g]):
            best[g] = v
            have[g] = 1
    return best, have


@njit(cache=True, nogil=True)
def run_real(ops, operands, consts, addrs, depth, out):
    """Postfix REAL arithmetic (:func:`.expr._evaluate_real`) into *out*, 256 rows at a time on a stack of blocks.

    Opcodes: 0 push array *operands[k]* (its address in *addrs*), 1 push
    ``consts[operands[k]]``, 2-5 ``+ - * /`` of the top two (x / 0.0 is NaN: NULL).
    """
    width = 256
    stack = np.empty((depth, width), np.float64)
    n = len(out)
    for lo in range(0, n, width):
        m = min(width, n - lo)
        sp = 0
        for k in range(len(ops)):
            op = ops[k]
            if op <= 1:
                top = stack[sp, :m]
                if op == 0:
                    src = carray(as_voidptr(addrs[operands[k]] + 8 * lo), m, np.float64)
                    for t in range(m):
                        top[t] = src[t]
                else:
                    c = consts[operands[k]]
                    for t in range(m):
                        top[t] = c
                sp += 1
                continue
            sp -= 1
            a = stack[sp - 1, :m]  # row views: plain loops LLVM vectorises
            b = stack[sp, :m]
            if op == 2:
                for t in range(m):
                    a[t] = a[t] + b[t]
            elif op == 3:
                for t in range(m):
                    a[t] = a[t] - b[t]
            elif op == 4:
                for t in range(m):
                    a[t] = a[t] * b[t]
            else:
                for t in range(m):
                    y = b[t]
                    a[t] = np.nan if y == 0.0 else a[t] / y
        res = stack[0, :m]
        for t in range(m):
            out[lo + t] = res[t]
