"""SQLite's compensated summation (3.43 and later) for ``sum``, ``total`` and ``avg``.

SQLite 3.43 changed ``sumStep`` (``func.c``): while every value of a group
is an INTEGER the sum stays an exact int64 (``iSum``); the first REAL value
(or an int64 overflow) switches the group to a Kahan-Babuska-Neumaier sum
(``rSum`` and the error term ``rErr``, ``kahanBabuskaNeumaierStep``), and
the finalizers answer ``rSum + rErr`` (``rSum`` alone when ``rErr`` is NaN or
infinite). ``avg`` of an all-INTEGER group is ``(double)iSum / cnt``.

The engine reads a typed column, so a group is all INTEGER (an integer
column or expression: the exact sum of :func:`.kernels.sum_int`) or all
REAL (a float column or expression: the kernels here, the same additions in
the same order as SQLite, so the same bits). What the engine leaves to
SQLite (:class:`.grouped.NativeFailed`): an int64 overflow (SQLite continues
in the compensated sum there, splitting large integers) and a non-finite
``rSum`` or ``rErr`` (the finalizers' test for those changed between
releases).

Used when the SQLite that Python's ``sqlite3`` loaded is 3.43 or later
(:data:`.shape.KBN_SUMMATION`); before, SQLite adds doubles in row order
(:func:`.kernels.sum_float`).
"""

from __future__ import annotations

import numpy as np
from numba import carray, njit

from ..native.intrinsics import as_voidptr

__all__ = ["kbn_sum", "kbn_sum_rows", "kbn_sums", "kbn_result"]


@njit(cache=True, nogil=True, inline="always")
def _step(rsum, rerr, g, r):
    # kahanBabuskaNeumaierStep, operation for operation.
    s = rsum[g]
    t = s + r
    # (s - t) + r when |s| > |r|, else (r - t) + s: the same operations,
    # written as selects (no branch to mispredict).
    first = abs(s) > abs(r)
    big = s if first else r
    small = r if first else s
    rerr[g] += (big - t) + small
    rsum[g] = t


@njit(cache=True, nogil=True)
def kbn_sum_rows(gids, ngroups, x):
    """Compensated sums over a float64 buffer whose NaN is NULL: (rSum, rErr, cnt, rows) per group, in row order.

    ``rows`` counts every row of the group (``count(*)`` from the same
    pass). Rows of group -1 are skipped.
    """
    rsum = np.zeros(ngroups, np.float64)
    rerr = np.zeros(ngroups, np.float64)
    cnt = np.zeros(ngroups, np.int64)
    rows = np.zeros(ngroups, np.int64)
    for i in range(len(gids)):
        g = gids[i]
        if g < 0:
            continue
        rows[g] += 1
        v = x[i]
        if v == v:
            _step(rsum, rerr, g, v)
            cnt[g] += 1
    return rsum, rerr, cnt, rows


@njit(cache=True, nogil=True)
def kbn_sum(gids, ngroups, x, null):
    """Compensated sums over float64 values with a NULL mask: (rSum, rErr, cnt) per group, in row order."""
    rsum = np.zeros(ngroups, np.float64)
    rerr = np.zeros(ngroups, np.float64)
    cnt = np.zeros(ngroups, np.int64)
    for i in range(len(gids)):
        g = gids[i]
        if null[i] != 0 or g < 0:
            continue
        _step(rsum, rerr, g, x[i])
        cnt[g] += 1
    return rsum, rerr, cnt


@njit(cache=True, nogil=True)
def kbn_sums(gids, ngroups, xaddr, naddr):
    """:func:`kbn_sum` of several float64 arguments in one pass: (rSum, rErr, cnt), one row per argument.

    *xaddr* / *naddr* hold the addresses of each argument's values and uint8
    NULL mask (``len(gids)`` items each; the caller keeps them alive), as
    :func:`.kernels.sum_floats`: each group's steps stay in row order, the
    arguments' chains interleave.
    """
    k = len(xaddr)
    rsum = np.zeros((max(ngroups, 0), k), np.float64)  # a group's sums side by side
    rerr = np.zeros((max(ngroups, 0), k), np.float64)
    cnt = np.zeros((max(ngroups, 0), k), np.int64)
    for i in range(len(gids)):
        g = gids[i]
        if g < 0:
            continue
        for j in range(k):
            if carray(as_voidptr(naddr[j] + i), 1, np.uint8)[0] == 0:
                r = carray(as_voidptr(xaddr[j] + 8 * i), 1, np.float64)[0]
                s = rsum[g, j]
                t = s + r
                first = abs(s) > abs(r)
                big = s if first else r
                small = r if first else s
                rerr[g, j] += (big - t) + small
                rsum[g, j] = t
                cnt[g, j] += 1
    return rsum.T.copy(), rerr.T.copy(), cnt.T.copy()


def kbn_result(rsum, rerr):
    """``rSum + rErr`` per group, as SQLite's finalizers give it; None when a term is NaN or infinite.

    None: the finalizers' test of ``rErr`` differs between SQLite releases
    (NaN only, or NaN and infinities), so such a group is SQLite's to answer.
    """
    if not (np.isfinite(rsum).all() and np.isfinite(rerr).all()):
        return None
    return rsum + rerr
