"""Compiled reads of the registration's column descriptors for the native engine.

Everything the native engine takes from a frame (WHERE operands, aggregate
arguments, the key values of the grouped result) is read here from the
table stage's ``COLUMN`` descriptors, the very buffers the virtual table
hands to SQLite: a frame changed after registration (a column replaced,
rows trimmed) cannot make the two engines read different data. Values are
read through :mod:`fastagg.table.values`, so NULL, NaN, codes and validity
mean what they mean to the virtual table.
"""

from __future__ import annotations

import numpy as np
from numba import carray, njit

from ..native.intrinsics import as_voidptr
from ..table.columns import K_DATE32, K_DATETIME, K_TEXT32, K_TEXT64
from ..table.values import format_datetime, int_value, micros, span, value_row

__all__ = ["value_rows", "null_mask", "gather_bytes", "compare_text", "column_micros", "render_micros",
           "extreme_text", "compare_bounds"]


@njit(cache=True, nogil=True)
def value_rows(cd, rows):
    """Value-buffer rows of table rows *rows* (-1 for NULL), as the virtual table resolves them."""
    out = np.empty(len(rows), np.int64)
    for i in range(len(rows)):
        out[i] = value_row(cd, rows[i])
    return out


@njit(cache=True, nogil=True)
def null_mask(cd, n):
    """NULL mask (1 = NULL) of the first *n* table rows."""
    out = np.zeros(n, np.uint8)
    for i in range(n):
        if value_row(cd, i) < 0:
            out[i] = 1
    return out


@njit(cache=True, nogil=True)
def gather_bytes(cd, vrows):
    """Text / blob values at value rows *vrows* (-1 = NULL): (int64 offsets, bytes)."""
    n = len(vrows)
    offs = np.zeros(n + 1, np.int64)
    total = 0
    for i in range(n):
        v = vrows[i]
        if v >= 0:
            a, b = span(cd, v)
            total += b - a
        offs[i + 1] = total
    data = np.empty(max(total, 1), np.uint8)
    for i in range(n):
        v = vrows[i]
        if v >= 0:
            a, b = span(cd, v)
            if b > a:
                src = carray(as_voidptr(cd.data + a), b - a, np.uint8)
                p = offs[i]
                for j in range(b - a):
                    data[p + j] = src[j]
    return offs, data


@njit(cache=True, nogil=True)
def _memcmp(cd, v, const):
    """BINARY comparison (-1, 0, 1) of value row *v* with the bytes *const*."""
    a, b = span(cd, v)
    m = b - a
    k = len(const)
    n = m if m < k else k
    if n > 0:
        src = carray(as_voidptr(cd.data + a), n, np.uint8)
        for j in range(n):
            x = src[j]
            y = const[j]
            if x != y:
                return -1 if x < y else 1
    if m == k:
        return 0
    return -1 if m < k else 1


@njit(cache=True, nogil=True)
def compare_text(cd, n, const):
    """memcmp of each of the first *n* rows' text / blob with *const*: (int8 -1/0/1, NULL mask)."""
    cmp = np.zeros(n, np.int8)
    null = np.zeros(n, np.uint8)
    if cd.codes != 0:
        # Categories / dictionary values: compare each once, then look the codes up.
        per = np.empty(cd.nvalues, np.int8)
        for j in range(cd.nvalues):
            per[j] = _memcmp(cd, j, const)
        for i in range(n):
            v = value_row(cd, i)
            if v < 0:
                null[i] = 1
            else:
                cmp[i] = per[v]
        return cmp, null
    for i in range(n):
        v = value_row(cd, i)
        if v < 0:
            null[i] = 1
        else:
            cmp[i] = _memcmp(cd, v, const)
    return cmp, null


@njit(cache=True, nogil=True)
def column_micros(cd, n):
    """Dates / datetimes of the first *n* rows as microseconds since 1970 (the order of their text); NULL mask."""
    out = np.zeros(n, np.int64)
    null = np.zeros(n, np.uint8)
    is_date = cd.kind == K_DATE32
    for i in range(n):
        v = value_row(cd, i)
        if v < 0:
            null[i] = 1
        elif is_date:
            out[i] = int_value(cd, v) * 86400000000
        else:
            out[i] = micros(cd, v)
    return out, null


@njit(cache=True, nogil=True)
def compare_bounds(values, null, below, upto, op):
    """A time comparison as bounds on the values (:func:`.predicate._compare`): (true, false, lo, hi, any valid).

    *op*: 0 EQ (below <= v < upto), 1 NEQ, 2 LT (v < below), 3 LTE (v < upto),
    4 GT (v >= upto), 5 GTE (v >= below). NULL rows are in neither mask; lo
    and hi are the valid values' range (the caller checks their years).
    """
    n = len(values)
    true = np.zeros(n, np.uint8)
    false = np.zeros(n, np.uint8)
    lo = np.int64(0)
    hi = np.int64(0)
    have = False
    for i in range(n):
        if null[i] != 0:
            continue
        v = np.int64(values[i])
        if not have:
            lo = v
            hi = v
            have = True
        else:
            lo = min(lo, v)
            hi = max(hi, v)
        if op == 0:
            c = below <= v and v < upto
        elif op == 1:
            c = v < below or v >= upto
        elif op == 2:
            c = v < below
        elif op == 3:
            c = v < upto
        elif op == 4:
            c = v >= upto
        else:
            c = v >= below
        true[i] = c
        false[i] = not c
    return true, false, lo, hi, have


@njit(cache=True)
def render_micros(m, with_time):
    """The text the virtual table shows for microseconds *m* (a date, or a datetime)."""
    buf = np.zeros(64, np.uint8)
    n = format_datetime(buf, m, with_time)
    return buf[:n].copy()


@njit(cache=True, nogil=True)
def extreme_text(gids, ngroups, cd, rows, is_max):
    """min/max (BINARY) of text / blob values per group: the value row of each group's best (-1: none).

    *rows* are the table rows of *gids*' items; ties keep the first, as
    ``minmaxStep`` does.
    """
    best = np.full(ngroups, -1, np.int64)
    for i in range(len(gids)):
        g = gids[i]
        if g < 0:
            continue  # a row in no group
        v = value_row(cd, rows[i])
        if v < 0:
            continue
        b = best[g]
        if b < 0:
            best[g] = v
            continue
        a0, a1 = span(cd, v)
        b0, b1 = span(cd, b)
        m = a1 - a0
        k = b1 - b0
        n = m if m < k else k
        c = 0
        if n > 0:
            x = carray(as_voidptr(cd.data + a0), n, np.uint8)
            y = carray(as_voidptr(cd.data + b0), n, np.uint8)
            for j in range(n):
                if x[j] != y[j]:
                    c = -1 if x[j] < y[j] else 1
                    break
        if c == 0 and m != k:
            c = -1 if m < k else 1
        if (is_max and c > 0) or (not is_max and c < 0):
            best[g] = v
    return best


def is_text_kind(kind) -> bool:
    return kind in (K_TEXT32, K_TEXT64)


def is_time_kind(kind) -> bool:
    return kind in (K_DATE32, K_DATETIME)
