"""A growable list of ``fastagg.Value``s in four vectors, for the type-generic built-ins.

A list is four ``fastagg.vector`` fields of the state: ``tags`` (SQLite's
type code per value), ``payload`` (the integer, or the real's IEEE bits),
``data`` (text and blob bytes, concatenated) and ``ends`` (where each
value's bytes end in ``data``): 17 bytes a number. The ``list_*``
functions take the four fields and work on a compiled state and on a
plain-Python one alike (``register_jitable``); the ``at_*`` functions take
the four fields' arrays (``as_array()``) and are compiled.
"""

from __future__ import annotations

import numba
import numpy as np
from numba.extending import register_jitable

from ..native.anyvalue import INTEGER, REAL, make_value, parts_compare, parts_hash, value_parts

__all__ = [
    "list_append", "list_extend", "list_get", "list_remove_first", "list_remove_at",
    "at_compare", "at_hash", "at_parts", "sorted_order", "is_number",
    "value_compare", "find_pair", "best_index",
]  # fmt: skip


@numba.njit(cache=True)
def _float_bits(f):
    a = np.empty(1, np.float64)
    a[0] = f
    return a.view(np.int64)[0]


@numba.njit(cache=True)
def _bits_float(i):
    a = np.empty(1, np.int64)
    a[0] = i
    return a.view(np.float64)[0]


@numba.njit(cache=True)
def is_number(tag):
    return tag == INTEGER or tag == REAL


@register_jitable
def list_append(tags, payload, data, ends, x):
    """Append value *x* (text and blob bytes are copied)."""
    tag, ival, fval, b = value_parts(x)
    tags.append(tag)
    if tag == REAL:
        payload.append(_float_bits(fval))
    else:
        payload.append(ival)
    data.extend(b)
    ends.append(len(data))


@register_jitable
def list_extend(tags, payload, data, ends, o_tags, o_payload, o_data, o_ends):
    """Append every value of the other list (given by its four fields)."""
    base = len(data)
    tags.extend(o_tags.as_array())
    payload.extend(o_payload.as_array())
    data.extend(o_data.as_array())
    for e in o_ends.as_array():
        ends.append(e + base)


@numba.njit(cache=True)
def at_parts(tags, payload, data, ends, i):
    """``(tag, ival, fval, bytes)`` of value *i* of the arrays of a list."""
    tag = tags[i]
    start = ends[i - 1] if i > 0 else 0
    p = payload[i]
    if tag == REAL:
        return np.int64(tag), np.int64(0), _bits_float(p), data[start : ends[i]]
    return np.int64(tag), p, float(p), data[start : ends[i]]


@register_jitable
def list_get(tags, payload, data, ends, i):
    """Value *i*: a Python object, or in compiled code an AnyValue viewing the list's bytes."""
    tag, ival, fval, b = at_parts(tags.as_array(), payload.as_array(), data.as_array(), ends.as_array(), i)
    return make_value(tag, ival, fval, b)


@numba.njit(cache=True)
def at_compare(tags, payload, data, ends, i, j):
    """SQLite's order of values *i* and *j*: -1, 0 or 1."""
    ta, ia, fa, da = at_parts(tags, payload, data, ends, i)
    tb, ib, fb, db = at_parts(tags, payload, data, ends, j)
    return parts_compare(ta, ia, fa, da, tb, ib, fb, db)


@numba.njit(cache=True)
def at_hash(tags, payload, data, ends, i):
    """The hash of value *i* (equal values hash alike: 1 and 1.0)."""
    t, iv, fv, d = at_parts(tags, payload, data, ends, i)
    return parts_hash(t, iv, fv, d)


@numba.njit(cache=True)
def _find(tags, payload, data, ends, tag, ival, fval, b):
    """Index of the first value equal to the given parts (SQLite's equality), or -1."""
    for i in range(len(tags)):
        t, iv, fv, d = at_parts(tags, payload, data, ends, i)
        if parts_compare(t, iv, fv, d, tag, ival, fval, b) == 0:
            return i
    return -1


@numba.njit(cache=True)
def _without(tags, payload, data, ends, k):
    """The four arrays without value *k*, as new arrays."""
    n = len(tags)
    start = ends[k - 1] if k > 0 else 0
    width = ends[k] - start
    new_tags = np.empty(n - 1, tags.dtype)
    new_payload = np.empty(n - 1, payload.dtype)
    new_ends = np.empty(n - 1, ends.dtype)
    new_tags[:k] = tags[:k]
    new_tags[k:] = tags[k + 1 :]
    new_payload[:k] = payload[:k]
    new_payload[k:] = payload[k + 1 :]
    new_ends[:k] = ends[:k]
    new_ends[k:] = ends[k + 1 :] - width
    new_data = np.empty(len(data) - width, data.dtype)
    new_data[:start] = data[:start]
    new_data[start:] = data[ends[k] :]
    return new_tags, new_payload, new_data, new_ends


@register_jitable
def list_remove_at(tags, payload, data, ends, k):
    """Remove value *k*, keeping the others in order."""
    t2, p2, d2, e2 = _without(tags.as_array(), payload.as_array(), data.as_array(), ends.as_array(), k)
    tags.clear()
    tags.extend(t2)
    payload.clear()
    payload.extend(p2)
    data.clear()
    data.extend(d2)
    ends.clear()
    ends.extend(e2)


@register_jitable
def list_remove_first(tags, payload, data, ends, x):
    """Remove the first value equal to *x*, keeping the others in order; return whether found.

    A window frame's rows leave oldest first, so the first equal value is
    the row that leaves. O(list) per call.
    """
    tag, ival, fval, b = value_parts(x)
    k = _find(tags.as_array(), payload.as_array(), data.as_array(), ends.as_array(), tag, ival, fval, b)
    if k < 0:
        return False
    list_remove_at(tags, payload, data, ends, k)
    return True


@numba.njit(cache=True)
def sorted_order(tags, payload, data, ends):
    """Indices of the values in SQLite's order; a stable merge sort (equal values keep arrival order)."""
    n = len(tags)
    idx = np.arange(n)
    tmp = np.empty(n, np.int64)
    width = 1
    while width < n:
        for lo in range(0, n, 2 * width):
            mid = min(lo + width, n)
            hi = min(lo + 2 * width, n)
            i = lo
            j = mid
            k = lo
            while i < mid and j < hi:
                if at_compare(tags, payload, data, ends, idx[j], idx[i]) < 0:
                    tmp[k] = idx[j]
                    j += 1
                else:
                    tmp[k] = idx[i]
                    i += 1
                k += 1
            while i < mid:
                tmp[k] = idx[i]
                i += 1
                k += 1
            while j < hi:
                tmp[k] = idx[j]
                j += 1
                k += 1
        idx, tmp = tmp, idx
        width *= 2
    return idx


@register_jitable
def value_compare(a, b):
    """SQLite's order of two values (Python objects, or AnyValues in compiled code): -1, 0 or 1."""
    ta, ia, fa, da = value_parts(a)
    tb, ib, fb, db = value_parts(b)
    return parts_compare(ta, ia, fa, da, tb, ib, fb, db)


@numba.njit(cache=True)
def find_pair(a_tags, a_payload, a_data, a_ends, b_tags, b_payload, b_data, b_ends, x, y):
    """First index where list a holds a value equal to parts *x* and list b one equal to *y*; -1 if none."""
    for i in range(len(a_tags)):
        t, iv, fv, d = at_parts(a_tags, a_payload, a_data, a_ends, i)
        if parts_compare(t, iv, fv, d, x[0], x[1], x[2], x[3]) != 0:
            continue
        t, iv, fv, d = at_parts(b_tags, b_payload, b_data, b_ends, i)
        if parts_compare(t, iv, fv, d, y[0], y[1], y[2], y[3]) == 0:
            return i
    return -1


@numba.njit(cache=True)
def best_index(tags, payload, data, ends, least):
    """Index of the first least (or greatest) value; -1 for an empty list."""
    best = -1
    for i in range(len(tags)):
        if best < 0:
            best = i
            continue
        c = at_compare(tags, payload, data, ends, i, best)
        if (c < 0) if least else (c > 0):
            best = i
    return best
