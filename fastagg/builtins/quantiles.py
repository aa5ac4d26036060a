"""Exact order statistics: median, quantile_cont, quantile_disc.

Every value of the group is kept in a growable ``fastagg.vector`` (8 bytes
a row), so ``inverse`` removes one equal value and ``merge`` appends the
other state's values; ``finalize`` sorts (or partitions) in place.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from ..compile.spec import aggregate
from ..compile.vector import vector

__all__ = ["Median", "QuantileCont", "QuantileDisc"]


@numba.njit(cache=True)
def _quantile_cont(a, q):
    """Sort *a* in place; interpolate linearly at 0-based rank ``q (n - 1)``, as DuckDB."""
    a.sort()
    rank = q * (len(a) - 1)
    lo = int(math.floor(rank))
    hi = int(math.ceil(rank))
    if lo == hi:
        return a[lo]
    return a[lo] + (rank - lo) * (a[hi] - a[lo])


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


class _Values:
    """Every value of the group, in arrival order until ``inverse`` (not registered).

    ``inverse`` removes one equal value, moving the last into its place;
    :class:`.keys.Mode`, which needs the order, removes its own way.
    """

    values: vector(np.float64)

    def step(self, x: float):
        self.values.append(x)

    def inverse(self, x: float):
        self.values.remove(x)

    def merge(self, other):
        self.values.extend(other.values.as_array())

    def finalize(self) -> float | None:
        raise NotImplementedError


@aggregate(name="median")
class Median(_Values):
    """Exact median: the mean of the middle two values for an even count.

    SQL: ``median(x)``, DuckDB's ``quantile_cont(x, 0.5)``; NULL for no
    rows. The values are kept in a growable vector (8 bytes a row) and
    sorted in place by ``finalize``. A window function (``inverse``
    removes one equal value); mergeable.

    Attributes
    ----------
    values : fastagg.vector(np.float64)
        The values of the group (or window frame).

    Examples
    --------
    >>> s = Median()
    >>> for x in (4.0, 1.0, 10.0, 2.0):
    ...     s.step(x)
    >>> s.finalize()
    3.0
    """

    def finalize(self) -> float | None:
        if len(self.values) == 0:
            return None
        return _quantile_cont(self.values.as_array(), 0.5)


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
class QuantileDisc(_ValuesQ):
    """Exact discrete quantile ``q``: the value at sorted index ``ceil(n q) - 1``.

    SQL: ``quantile_disc(x, q)`` with a scalar ``0 <= q <= 1``; NULL for no
    rows. Always one of the values (the smallest for ``q = 0``), as DuckDB;
    the result is a float. A window function; mergeable.

    Examples
    --------
    >>> s = QuantileDisc()
    >>> for x in (1.0, 2.0, 4.0, 10.0):
    ...     s.step(x, 0.5)
    >>> s.finalize()
    2.0
    """

    def step(self, x: float, q: float):
        if len(self.values) == 0:
            _check_q_disc(q)
            self.q = q
        self.values.append(x)

    def finalize(self) -> float | None:
        n = len(self.values)
        if n == 0:
            return None
        a = self.values.as_array()
        k = _quantile_disc_index(n, self.q)
        return float(np.partition(a, k)[k])

