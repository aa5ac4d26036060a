"""Counting distinct values: mode, histogram, entropy.

``histogram`` and ``entropy`` key each value by its text form (the
argument is ``bytes``) and count the keys at ``finalize`` with one stable
sort in DuckDB's map order; ``mode`` keeps the float values in arrival
order, for its first-occurrence rule on ties.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from ..compile.spec import aggregate
from ..compile.vector import vector
from ..native.utf8 import utf8_array_to_str
from .quantiles import _Values

__all__ = ["Mode", "Histogram", "Entropy"]


@numba.njit(cache=True)
def _remove_keeping_order(a, x):
    """Move the first element equal to *x* to the end of *a*; return whether found."""
    n = len(a)
    for i in range(n):
        if a[i] == x:
            for j in range(i, n - 1):
                a[j] = a[j + 1]
            a[n - 1] = x
            return True
    return False


@numba.njit(cache=True)
def _mode(a):
    """Most frequent value of *a*; on a tie the one that occurs first in *a*."""
    n = len(a)
    order = np.argsort(a, kind="mergesort")  # stable: a run starts at its first occurrence
    best_first = order[0]
    best_count = 0
    i = 0
    while i < n:
        first = order[i]
        j = i + 1
        while j < n and a[order[j]] == a[first]:
            j += 1
        if j - i > best_count or (j - i == best_count and first < best_first):
            best_count = j - i
            best_first = first
        i = j
    return a[best_first]


@aggregate(name="mode")
class Mode(_Values):
    """Most frequent value; on a tie, the value that occurs first (DuckDB's rule).

    SQL: ``mode(x)``; NULL for no rows. ``x`` is a float, so an integer
    column's mode comes back as a real (exact up to 2**53). "First" is the
    order of the rows the state received: in a grouped query SQLite's row
    order, in a window frame the frame's order (``inverse`` removes a row
    keeping the others in order), and for merged partial states this
    state's rows, then the other's, so partials merged in row order give the
    one-pass answer. A window function; mergeable.

    Attributes
    ----------
    values : fastagg.vector(np.float64)
        The values in arrival order.

    Examples
    --------
    >>> s = Mode()
    >>> for x in (3.0, 1.0, 1.0, 3.0, 2.0):
    ...     s.step(x)
    >>> s.finalize()
    3.0
    """

    def inverse(self, x: float):
        if _remove_keeping_order(self.values.as_array(), x):
            self.values.remove(x)  # the last element, which now equals x

    def finalize(self) -> float | None:
        if len(self.values) == 0:
            return None
        return _mode(self.values.as_array())


@numba.njit(cache=True)
def _parse_number(data, start, end):
    """Parse SQLite's text form of a number: (is_number, is_integer, int value, float value)."""
    i = start
    negative = False
    if i < end and (data[i] == 45 or data[i] == 43):  # '-' '+'
        negative = data[i] == 45
        i += 1
    if end - i == 3 and data[i] == 73 and data[i + 1] == 110 and data[i + 2] == 102:  # "Inf"
        return True, False, 0, -math.inf if negative else math.inf
    mantissa = 0
    digits = 0
    shift = 0  # decimal exponent of the last digit kept in mantissa
    is_int = True
    while i < end and 48 <= data[i] <= 57:
        if digits < 18:
            mantissa = mantissa * 10 + (data[i] - 48)
            digits += 1
        else:
            shift += 1
            is_int = False
        i += 1
    seen = digits + shift
    if i < end and data[i] == 46:  # '.'
        is_int = False
        i += 1
        while i < end and 48 <= data[i] <= 57:
            if digits < 18:
                mantissa = mantissa * 10 + (data[i] - 48)
                digits += 1
                shift -= 1
            i += 1
            seen += 1
    if seen == 0:
        return False, False, 0, 0.0
    if i < end and (data[i] == 101 or data[i] == 69):  # 'e' 'E'
        is_int = False
        i += 1
        esign = 1
        if i < end and (data[i] == 45 or data[i] == 43):
            esign = -1 if data[i] == 45 else 1
            i += 1
        if i == end:
            return False, False, 0, 0.0
        e = 0
        while i < end and 48 <= data[i] <= 57:
            e = min(e * 10 + (data[i] - 48), 100000)
            i += 1
        shift += esign * e
    if i != end:
        return False, False, 0, 0.0
    value = float(mantissa)
    if shift > 0:
        value *= 10.0 ** min(shift, 400)
    elif shift < 0:
        value /= 10.0 ** min(-shift, 400)
    if negative:
        mantissa = -mantissa
        value = -value
    return True, is_int, mantissa, value


@numba.njit(cache=True)
def _key_compare(data, starts, ends, is_num, is_int, ivals, fvals, i, j):
    """Order keys *i* and *j*: numbers by value before text by bytes; ties by bytes."""
    if is_num[i] != is_num[j]:
        return -1 if is_num[i] else 1
    if is_num[i]:
        if is_int[i] and is_int[j]:
            if ivals[i] != ivals[j]:
                return -1 if ivals[i] < ivals[j] else 1
        elif fvals[i] != fvals[j]:
            return -1 if fvals[i] < fvals[j] else 1
    a = starts[i]
    b = starts[j]
    la = ends[i] - a
    lb = ends[j] - b
    for k in range(min(la, lb)):
        if data[a + k] != data[b + k]:
            return -1 if data[a + k] < data[b + k] else 1
    if la != lb:
        return -1 if la < lb else 1
    return 0


@numba.njit(cache=True)
def _key_counts(data, ends):
    """Distinct keys (byte strings ``data[start:end]``) in SQL order: (starts, ends, firsts, counts).

    A stable merge sort of the keys with :func:`_key_compare`, then runs of
    equal keys; ``firsts`` indexes a representative of each run.
    """
    n = len(ends)
    starts = np.empty(n, np.int64)
    stops = np.empty(n, np.int64)
    is_num = np.empty(n, np.bool_)
    is_int = np.empty(n, np.bool_)
    ivals = np.empty(n, np.int64)
    fvals = np.empty(n, np.float64)
    prev = 0
    for i in range(n):
        starts[i] = prev
        stops[i] = ends[i]
        prev = ends[i]
        is_num[i], is_int[i], ivals[i], fvals[i] = _parse_number(data, starts[i], stops[i])
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
                if _key_compare(data, starts, stops, is_num, is_int, ivals, fvals, idx[j], idx[i]) < 0:
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
    firsts = np.empty(n, np.int64)
    counts = np.zeros(n, np.int64)
    m = 0
    for k in range(n):
        if k == 0 or _key_compare(data, starts, stops, is_num, is_int, ivals, fvals, idx[k], idx[k - 1]) != 0:
            firsts[m] = idx[k]
            m += 1
        counts[m - 1] += 1
    return starts, stops, firsts[:m], counts[:m]


@numba.njit(cache=True)
def _histogram_json(data, starts, stops, firsts, counts):
    """JSON object text ``{"key": count, ...}`` of the distinct keys, in their order."""
    size = 2
    for r in firsts:
        size += 6 * (stops[r] - starts[r]) + 26
    out = np.empty(size, np.uint8)
    hexdigits = np.array([48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 97, 98, 99, 100, 101, 102], np.uint8)
    digits = np.empty(20, np.uint8)
    p = 0
    out[p] = 123  # '{'
    p += 1
    for k in range(len(firsts)):
        if k > 0:
            out[p] = 44  # ', '
            out[p + 1] = 32
            p += 2
        out[p] = 34  # '"'
        p += 1
        r = firsts[k]
        for j in range(starts[r], stops[r]):
            b = data[j]
            if b == 34 or b == 92:  # '"' '\\'
                out[p] = 92
                out[p + 1] = b
                p += 2
            elif b < 32:
                out[p] = 92  # \\u00XX
                out[p + 1] = 117
                out[p + 2] = 48
                out[p + 3] = 48
                out[p + 4] = hexdigits[b >> 4]
                out[p + 5] = hexdigits[b & 15]
                p += 6
            else:
                out[p] = b
                p += 1
        out[p] = 34  # '": '
        out[p + 1] = 58
        out[p + 2] = 32
        p += 3
        c = counts[k]
        nd = 0
        while True:
            digits[nd] = 48 + c % 10
            nd += 1
            c //= 10
            if c == 0:
                break
        for d in range(nd - 1, -1, -1):
            out[p] = digits[d]
            p += 1
    out[p] = 125  # '}'
    p += 1
    return utf8_array_to_str(out[:p])


@numba.njit(cache=True)
def _without_key(data, ends, x):
    """(found, data, ends) without the first key whose bytes equal *x*, as new arrays."""
    start = 0
    for k in range(len(ends)):
        stop = ends[k]
        if stop - start == len(x):
            same = True
            for j in range(len(x)):
                if data[start + j] != x[j]:
                    same = False
                    break
            if same:
                out = np.empty(len(data) - len(x), np.uint8)
                out[:start] = data[:start]
                out[start:] = data[stop:]
                new_ends = np.empty(len(ends) - 1, np.int64)
                new_ends[:k] = ends[:k]
                new_ends[k:] = ends[k + 1 :] - len(x)
                return True, out, new_ends
        start = stop
    return False, data[:0].copy(), ends[:0].copy()


@numba.njit(cache=True)
def _entropy(counts):
    n = 0
    for c in counts:
        n += c
    h = 0.0
    for c in counts:
        p = c / n
        h -= p * math.log2(p)
    return h


class _Keys:
    """Every value's text form, concatenated, and where each ends (not registered).

    The argument is ``bytes``: SQLite hands text and blobs over as they are
    and numbers in their text form (``CAST(x AS TEXT)``: ``3``, ``1.5``,
    ``1.0e+20``), so values are keyed by that form.
    """

    data: vector(np.uint8)
    ends: vector(np.int64)

    def step(self, x: bytes):
        for b in x:
            self.data.append(b)
        self.ends.append(len(self.data))

    def inverse(self, x: bytes):
        found, data, ends = _without_key(self.data.as_array(), self.ends.as_array(), x)
        if found:  # rebuild both vectors without the oldest equal key (the order is kept)
            self.data.clear()
            self.data.extend(data)
            self.ends.clear()
            self.ends.extend(ends)

    def merge(self, other):
        base = len(self.data)
        self.data.extend(other.data.as_array())
        for e in other.ends.as_array():
            self.ends.append(e + base)

    def finalize(self) -> str | None:
        raise NotImplementedError


@aggregate(name="histogram")
class Histogram(_Keys):
    """Count of each distinct value, as JSON object text ``{"1": 3, "2": 1}``.

    SQL: ``histogram(x)``; NULL for no rows (as DuckDB). Keys are the
    values' text form (SQLite's ``CAST(x AS TEXT)``: integers ``3``, reals
    ``3.0``, ``1.5``, ``1.0e+20`` with 15 significant digits, text as it
    is, JSON-escaped). They are ordered as DuckDB orders its map: numbers by
    value, then text and blobs by their bytes (``B`` < ``a``); keys that are
    equal numbers but differ in form (the integer ``1`` and the real ``1.0``
    in a mixed column) are distinct and ordered by their text. DuckDB's
    ``to_json(histogram(x))`` has the same keys and counts for integer and
    text columns (its JSON has no spaces; reals print in its own shortest
    form there). A window function (``inverse`` removes one equal key);
    mergeable.

    Attributes
    ----------
    data : fastagg.vector(np.uint8)
        The values' bytes, concatenated.
    ends : fastagg.vector(np.int64)
        Where each value's bytes end in ``data``.

    Examples
    --------
    >>> s = Histogram()
    >>> for x in (b"3", b"1", b"1", b"10"):
    ...     s.step(x)
    >>> s.finalize()
    '{"1": 2, "3": 1, "10": 1}'
    """

    def finalize(self) -> str | None:
        if len(self.ends) == 0:
            return None
        data = self.data.as_array()
        starts, stops, firsts, counts = _key_counts(data, self.ends.as_array())
        return _histogram_json(data, starts, stops, firsts, counts)


@aggregate(name="entropy")
class Entropy(_Keys):
    """Shannon entropy in bits of the distinct values, ``-sum p log2 p``.

    SQL: ``entropy(x)``, with ``p = count / n`` per distinct value (keyed
    by text form, as :class:`Histogram`); 0.0 for no rows, as DuckDB. A
    window function; mergeable.

    Examples
    --------
    >>> s = Entropy()
    >>> for x in (b"1", b"2", b"2", b"3"):
    ...     s.step(x)
    >>> s.finalize()
    1.5
    """

    def finalize(self) -> float:
        if len(self.ends) == 0:
            return 0.0
        starts, stops, firsts, counts = _key_counts(self.data.as_array(), self.ends.as_array())
        return _entropy(counts)

