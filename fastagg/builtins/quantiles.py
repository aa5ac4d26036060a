"""Exact order statistics: median, quantile_cont, quantile_disc.

Every value of the group is kept: numbers in a growable ``fastagg.vector``
(8 bytes a row), any-typed values (``quantile_disc``, ``median`` of text)
in a value list (:mod:`.valuelist`), so ``inverse`` removes one equal value
and ``merge`` appends the other state's values; ``finalize`` selects the
order statistics it needs (``np.partition``).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from ..compile.spec import aggregate
from ..compile.value import Value
from ..compile.vector import vector
from ..native.anyvalue import REAL, make_value, value_parts
from .valuelist import is_number, list_append, list_extend, list_get, list_remove_first, sorted_order

__all__ = ["Median", "QuantileCont", "QuantileDisc", "select_in_place"]


@numba.njit(cache=True)
def select_in_place(a, k, lo=0):
    """Reorder ``a[lo:]`` in place so that ``a[k]`` is its k-th least (Hoare's quickselect); return it.

    ``a[lo:k]`` end up at most ``a[k]``, ``a[k + 1:]`` at least. No memory
    is allocated, so a group of a few values costs a few comparisons.
    Among equal values (``0.0`` and ``-0.0``) which one lands at ``k`` is
    unspecified.
    """
    hi = len(a) - 1
    while hi > lo:
        mid = (lo + hi) // 2  # median of three as the pivot
        if a[mid] < a[lo]:
            a[mid], a[lo] = a[lo], a[mid]
        if a[hi] < a[lo]:
            a[hi], a[lo] = a[lo], a[hi]
        if a[hi] < a[mid]:
            a[hi], a[mid] = a[mid], a[hi]
        pivot = a[mid]
        i = lo
        j = hi
        while i <= j:
            while a[i] < pivot:
                i += 1
            while pivot < a[j]:
                j -= 1
            if i <= j:
                a[i], a[j] = a[j], a[i]
                i += 1
                j -= 1
        if k <= j:
            hi = j
        elif k >= i:
            lo = i
        else:
            break
    return a[k]


@numba.njit(cache=True)
def _quantile_cont(a, q):
    """Interpolate linearly at 0-based rank ``q (n - 1)`` of the sorted *a*, as DuckDB; reorders *a*.

    The two order statistics come from a selection in place
    (:func:`select_in_place`, O(n)), not a sort: the same values, so the
    same answer.
    """
    rank = q * (len(a) - 1)
    lo = int(math.floor(rank))
    hi = int(math.ceil(rank))
    x = select_in_place(a, lo)
    if lo == hi:
        return x
    y = a[hi]
    for k in range(hi + 1, len(a)):  # the least value above position lo
        if a[k] < y:
            y = a[k]
    return x + (rank - lo) * (y - x)


@numba.njit(cache=True)
def _quantile_disc_index(n, q):
    """0-based index ``ceil(n q) - 1`` (at least 0), as DuckDB's ``quantile_disc``.

    DuckDB computes with the exact decimal literal; ``n q`` within a few
    ulps of an integer (``10 * 0.3``) is that integer here too.
    """
    r = n * q
    k = math.floor(r + 0.5)
    if abs(r - k) <= 1e-12 * max(1.0, r):
        r = k
    return max(int(math.ceil(r)) - 1, 0)


# A bad quantile is reported at the first row (an aggregate has no bind
# step); numba's exceptions take constant messages, so one check per name.
@numba.njit(cache=True)
def _check_q_cont(q):
    if not (0.0 <= q <= 1.0):
        raise ValueError("quantile_cont(x, q): argument 'q' is out of range: q must be between 0 and 1")


@numba.njit(cache=True)
def _check_q_disc(q):
    if not (0.0 <= q <= 1.0):
        raise ValueError("quantile_disc(x, q): argument 'q' is out of range: q must be between 0 and 1")


@aggregate(name="median")
class Median:
    """Exact median: of numbers the mean of the middle two for an even count; else the middle value.

    SQL: ``median(x)``; NULL for no rows. Of numbers it is DuckDB's
    ``quantile_cont(x, 0.5)``, a real. Of text or blobs (ISO dates, names)
    it is the middle value itself in SQLite's order, the lower of the middle
    two for an even count, as DuckDB's median of an ordinal type (its
    ``quantile_disc(x, 0.5)``); a column mixing numbers and text takes the
    middle value of all, numbers first (a number comes back as a real).
    Numbers are kept in a float vector (8 bytes a row), text and blobs in a
    value list (:mod:`.valuelist`). A window function (``inverse``
    removes one equal value); mergeable.

    Attributes
    ----------
    values : fastagg.vector(np.float64)
        The numbers of the group (or window frame).
    tags, payload, data, ends : fastagg.vector
        Its text and blob values.

    Examples
    --------
    >>> s = Median()
    >>> for x in (4.0, 1, 10.0, 2.0):
    ...     s.step(x)
    >>> s.finalize()
    3.0
    >>> s = Median()
    >>> for x in ("2024-03-01", "2023-12-31", "2024-01-15", "2025-01-01"):
    ...     s.step(x)
    >>> s.finalize()
    '2024-01-15'
    """

    values: vector(np.float64)
    tags: vector(np.uint8)
    payload: vector(np.int64)
    data: vector(np.uint8)
    ends: vector(np.int64)

    def step(self, x: Value):
        tag, ival, fval, b = value_parts(x)
        if is_number(tag):
            self.values.append(fval)
        else:
            list_append(self.tags, self.payload, self.data, self.ends, x)

    def inverse(self, x: Value):
        tag, ival, fval, b = value_parts(x)
        if is_number(tag):
            self.values.remove(fval)
        else:
            list_remove_first(self.tags, self.payload, self.data, self.ends, x)

    def merge(self, other):
        self.values.extend(other.values.as_array())
        list_extend(self.tags, self.payload, self.data, self.ends, other.tags, other.payload, other.data, other.ends)

    def finalize(self) -> Value | None:
        numbers = len(self.values)
        others = len(self.tags)
        if numbers + others == 0:
            return None
        if others == 0:
            return make_value(REAL, 0, _quantile_cont(self.values.as_array(), 0.5), np.empty(0, np.uint8))
        k = _quantile_disc_index(numbers + others, 0.5)
        if k < numbers:
            a = self.values.as_array()
            return make_value(REAL, 0, float(select_in_place(a, k)), np.empty(0, np.uint8))
        order = sorted_order(self.tags.as_array(), self.payload.as_array(), self.data.as_array(), self.ends.as_array())
        return list_get(self.tags, self.payload, self.data, self.ends, order[k - numbers])


class _ValuesQ:
    """Every value of the group and the quantile asked for (not registered)."""

    values: vector(np.float64)
    q: np.float64

    def step(self, x: float, q: float):
        raise NotImplementedError  # each subclass checks q with its own message

    def inverse(self, x: float, q: float):
        self.values.remove(x)

    def merge(self, other):
        if len(self.values) == 0:
            self.q = other.q
        self.values.extend(other.values.as_array())

    def finalize(self) -> float | None:
        raise NotImplementedError


@aggregate(name="quantile_cont")
class QuantileCont(_ValuesQ):
    """Exact quantile ``q`` by linear interpolation between the nearest ranks.

    SQL: ``quantile_cont(x, q)`` with a scalar ``0 <= q <= 1`` (the first
    row's ``q`` is used); NULL for no rows. With the values sorted,
    ``a[lo] + (r - lo) (a[hi] - a[lo])`` at 0-based rank ``r = q (n - 1)``,
    ``lo, hi = floor(r), ceil(r)``, as DuckDB. A window function; mergeable.

    Attributes
    ----------
    values : fastagg.vector(np.float64)
        The values of the group (or window frame).
    q : np.float64
        The quantile asked for.

    Examples
    --------
    >>> s = QuantileCont()
    >>> for x in (1.0, 2.0, 4.0, 10.0):
    ...     s.step(x, 0.3)
    >>> round(s.finalize(), 12)
    1.9
    """

    def step(self, x: float, q: float):
        if len(self.values) == 0:
            _check_q_cont(q)
            self.q = q
        self.values.append(x)

    def finalize(self) -> float | None:
        if len(self.values) == 0:
            return None
        return _quantile_cont(self.values.as_array(), self.q)


@aggregate(name="quantile_disc")
class QuantileDisc:
    """Exact discrete quantile ``q``: the value at sorted index ``ceil(n q) - 1``.

    SQL: ``quantile_disc(x, q)`` of any type, with a scalar ``0 <= q <= 1``;
    NULL for no rows. Always one of the values, with its own type (an
    integer column gives an integer, a text column text), in SQLite's order
    (numbers by value, then text and blobs by their bytes), as DuckDB. The
    values are kept in a value list (:mod:`.valuelist`). A window function;
    mergeable.

    Examples
    --------
    >>> s = QuantileDisc()
    >>> for x in (1, 2, 4, 10):
    ...     s.step(x, 0.5)
    >>> s.finalize()
    2
    """

    tags: vector(np.uint8)
    payload: vector(np.int64)
    data: vector(np.uint8)
    ends: vector(np.int64)
    q: np.float64

    def step(self, x: Value, q: float):
        if len(self.tags) == 0:
            _check_q_disc(q)
            self.q = q
        list_append(self.tags, self.payload, self.data, self.ends, x)

    def inverse(self, x: Value, q: float):
        list_remove_first(self.tags, self.payload, self.data, self.ends, x)

    def merge(self, other):
        if len(self.tags) == 0:
            self.q = other.q
        list_extend(self.tags, self.payload, self.data, self.ends, other.tags, other.payload, other.data, other.ends)

    def finalize(self) -> Value | None:
        n = len(self.tags)
        if n == 0:
            return None
        order = sorted_order(self.tags.as_array(), self.payload.as_array(), self.data.as_array(), self.ends.as_array())
        return list_get(self.tags, self.payload, self.data, self.ends, order[_quantile_disc_index(n, self.q)])
