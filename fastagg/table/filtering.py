"""WHERE terms pushed down to the table: numeric comparisons tested in compiled code.

``=``, ``<``, ``<=``, ``>``, ``>=`` on integer, float and rowid columns
against an integer or real right-hand side. Integer columns test an exact
int64 interval; float columns compare as doubles (exact for a double or an
integer within 2**53, which is when xBestIndex lets SQLite omit its own
test). Date and datetime columns against a TEXT right-hand side under
BINARY test the interval of stored integers whose text compares so
(:mod:`.dates`, reached through the dates slot); values outside years
0000-9999 are kept for SQLite to test. SQLite omits its own test only of a
constant ASCII bound on a column with every value within those years
(exact: the plan term's ``desc`` is then 1, and xFilter fails rather than
skip it).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..native.intrinsics import as_voidptr
from ..sqlite.declarations import sqlite3_value_double, sqlite3_value_int64, sqlite3_value_type
from .columns import K_DATE32, K_DATETIME, K_F32, K_F64
from .indirect import call5
from .values import (
    INT64_MAX, INT64_MIN, SQLITE_FLOAT, SQLITE_INTEGER, SQLITE_NULL, SQLITE_TEXT, float_value, int_value, value_row,
)

__all__ = ["DATE_MIN_ROWS", "OP_EQ", "OP_GE", "OP_GT", "OP_LE", "OP_LT", "select_rows"]

# Constraint operators (https://www.sqlite.org/c3ref/c_index_constraint_eq.html)
OP_EQ, OP_GT, OP_LE, OP_LT, OP_GE = 2, 4, 8, 16, 32

#: Tables with fewer rows leave date comparisons to SQLite: the bounds cost a
#: Python callback per xFilter (microseconds cached), more than SQLite's
#: test of a few hundred rows (an inner loop of a join calls xFilter per outer row).
DATE_MIN_ROWS = 256


@njit(cache=True)
def _int_bounds(op, t, v_int, v_real):
    """Exact int64 interval [lo, hi] of integers x with ``x OP rhs``; lo > hi if empty."""
    if t == SQLITE_INTEGER:
        v = v_int
        if op == OP_EQ:
            return v, v
        if op == OP_GT:
            return (v + 1, INT64_MAX) if v != INT64_MAX else (np.int64(1), np.int64(0))
        if op == OP_GE:
            return v, INT64_MAX
        if op == OP_LT:
            return (INT64_MIN, v - 1) if v != INT64_MIN else (np.int64(1), np.int64(0))
        return INT64_MIN, v
    x = v_real
    empty = (np.int64(1), np.int64(0))
    full = (INT64_MIN, INT64_MAX)
    if x >= 9223372036854775808.0:
        return full if (op == OP_LT or op == OP_LE) else empty
    if x < -9223372036854775808.0:
        return full if (op == OP_GT or op == OP_GE) else empty
    f = np.floor(x)
    fi = np.int64(f)
    integral = f == x
    if op == OP_EQ:
        return (fi, fi) if integral else empty
    if op == OP_GT:
        return fi + 1, INT64_MAX
    if op == OP_GE:
        return (fi, INT64_MAX) if integral else (fi + 1, INT64_MAX)
    if op == OP_LT:
        if integral:
            return (INT64_MIN, fi - 1) if fi != INT64_MIN else empty
        return INT64_MIN, fi
    return INT64_MIN, fi


@njit(cache=True)
def _float_test(x, op, v):
    if op == OP_EQ:
        return x == v
    if op == OP_GT:
        return x > v
    if op == OP_GE:
        return x >= v
    if op == OP_LT:
        return x < v
    return x <= v


@njit(cache=True)
def select_rows(cols, nrows, cons, argv, nargs, dates, failed):
    """Row indices passing the pushed-down constraints (a superset when inexact).

    *cons* are the plan's filter terms (``PLAN_TERM``: column, op, argv);
    argument ``argv`` of *argv* (``sqlite3_value *`` addresses, *nargs* of
    them) is the right-hand side of each. *dates* is the address of the
    date-bounds callback (:data:`fastagg.table.dates.DATES_CALLBACK`), 0 for
    none: a date or datetime column against TEXT then tests the stored
    integers [lo, hi], keeping values outside the callback's domain. Sets
    ``failed[0]`` (and returns no rows) when the callback fails for a term
    SQLite does not test (``desc`` 1: xBestIndex let it omit the test).
    """
    lo_row = np.int64(0)
    hi_row = nrows  # exclusive
    nc = len(cons)
    kind = np.zeros(nc, np.int64)  # 0 skip, 1 int interval (values outside [dlo, dhi] kept), 2 float test
    ilo = np.zeros(nc, np.int64)
    ihi = np.zeros(nc, np.int64)
    fv = np.zeros(nc, np.float64)
    dlo = np.full(nc, INT64_MIN)
    dhi = np.full(nc, INT64_MAX)
    out4 = np.zeros(4, np.int64)
    for j in range(nc):
        col = cons[j].column
        op = cons[j].op
        if cons[j].argv < 0 or cons[j].argv >= nargs or op > OP_GE:
            continue  # LIMIT / OFFSET terms are the cursor's, not filters
        v = argv[cons[j].argv]
        t = sqlite3_value_type(as_voidptr(v))
        if t == SQLITE_NULL:  # x OP NULL is never true
            return np.arange(0)
        if t == SQLITE_TEXT and col >= 0 and dates != 0:
            k = cols[col].kind
            if (k == K_DATE32 or k == K_DATETIME) and call5(
                dates, 1, v, k * 256 + op, cols[col].unit, out4.ctypes.data
            ) == 0:  # the bounds, fastagg.table.dates._bounds_of
                kind[j] = 1
                ilo[j] = out4[0]
                ihi[j] = out4[1]
                dlo[j] = out4[2]
                dhi[j] = out4[3]
                continue
        if cons[j].desc != 0:  # a date comparison SQLite omits, and no bounds: fail, never skip it
            failed[0] = 1
            return np.arange(0)
        if t != SQLITE_INTEGER and t != SQLITE_FLOAT:
            continue  # text / blob right-hand side: leave it to SQLite
        vi = sqlite3_value_int64(as_voidptr(v))
        vr = sqlite3_value_double(as_voidptr(v))
        if col < 0:
            lo, hi = _int_bounds(op, t, vi, vr)
            # rowid = row + 1
            if lo > hi:
                return np.arange(0)
            if lo > 1 and lo - 1 > lo_row:
                lo_row = lo - 1
            if hi != INT64_MAX and hi < hi_row:
                hi_row = hi
            continue
        k = cols[col].kind
        if k == K_F32 or k == K_F64:
            if t == SQLITE_FLOAT:
                kind[j] = 2
                fv[j] = vr
            elif -9007199254740992 <= vi <= 9007199254740992:
                kind[j] = 2
                fv[j] = np.float64(vi)
        else:
            lo, hi = _int_bounds(op, t, vi, vr)
            if lo > hi:
                return np.arange(0)
            kind[j] = 1
            ilo[j] = lo
            ihi[j] = hi
    if hi_row <= lo_row:
        return np.arange(0)
    out = np.empty(hi_row - lo_row, np.int64)
    m = 0
    for r in range(lo_row, hi_row):
        ok = True
        for j in range(nc):
            if kind[j] == 0:
                continue
            cd = cols[cons[j].column]
            rr = value_row(cd, r)
            if rr < 0:
                ok = False
                break
            if kind[j] == 1:
                x = int_value(cd, rr)
                if (x < ilo[j] or x > ihi[j]) and x >= dlo[j] and x <= dhi[j]:  # dates: outside, SQLite's
                    ok = False
                    break
            elif not _float_test(float_value(cd, rr), cons[j].op, fv[j]):
                ok = False
                break
        if ok:
            out[m] = r
            m += 1
    return out[:m]
