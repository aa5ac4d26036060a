"""Least-squares regression of y on x: the ``regr_*`` family.

Each finishes the co-moment state of :class:`.moments._CoMoments` (count,
means, Sxx, Syy, Cxy) differently; the argument order is ``f(y, x)``, as in
SQL:2003 and DuckDB. ``regr_count`` keeps only the count.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from ..compile.spec import aggregate
from .moments import _CoMoments

__all__ = [
    "RegrSlope", "RegrIntercept", "RegrR2", "RegrCount", "RegrAvgX", "RegrAvgY",
    "RegrSxx", "RegrSyy", "RegrSxy",
]  # fmt: skip


@numba.njit(cache=True)
def _slope(n, sxx, sxy):
    """``Cxy / Sxx`` as DuckDB computes it; NaN where DuckDB gives NULL or NaN.

    NULL for no pairs; NaN for constant x or one pair; a slope of 0 when
    only Sxx overflows (``regr_slope(y, 1e230 x)``), NaN when both do.
    The callers return NULL for NaN.
    """
    if n == 0 or not sxx > 0.0:
        return math.nan
    return (sxy / n) / (sxx / n)


@aggregate(name="regr_slope")
class RegrSlope(_CoMoments):
    """Least-squares slope of y on x, ``Cxy / Sxx``.

    SQL: ``regr_slope(y, x)``; NULL for no pairs or constant x. A window
    function.

    Examples
    --------
    >>> s = RegrSlope(); s.step(1.0, 0.0); s.step(3.0, 1.0); s.finalize()
    2.0
    """

    def finalize(self) -> float | None:
        slope = _slope(self.n, self.sxx, self.sxy)
        return None if math.isnan(slope) else slope


@aggregate(name="regr_intercept")
class RegrIntercept(_CoMoments):
    """Least-squares intercept, ``avg(y) - slope * avg(x)``.

    SQL: ``regr_intercept(y, x)``; NULL for no pairs or constant x. A window
    function.

    Examples
    --------
    >>> s = RegrIntercept(); s.step(1.0, 0.0); s.step(3.0, 1.0); s.finalize()
    1.0
    """

    def finalize(self) -> float | None:
        slope = _slope(self.n, self.sxx, self.sxy)
        if math.isnan(slope):
            return None
        return self.mean_y - slope * self.mean_x


@aggregate(name="regr_r2")
class RegrR2(_CoMoments):
    """Coefficient of determination, ``Cxy^2 / (Sxx Syy)``.

    SQL: ``regr_r2(y, x)``; NULL for no pairs or constant x, 1 for constant
    y (and varying x), as in DuckDB and PostgreSQL. A window function.

    Examples
    --------
    >>> s = RegrR2(); s.step(5.0, 0.0); s.step(5.0, 1.0); s.finalize()
    1.0
    """

    def finalize(self) -> float | None:
        # DuckDB's order of operations: population variances, then the
        # correlation, squared. Squaring Cxy first would overflow where the
        # correlation does not (y = 1e230 x: Syy is inf, r2 is 0 as in DuckDB).
        if self.n < 2 or not self.sxx > 0.0:
            return None  # DuckDB: var_pop(x) = 0 (or one row)
        if not self.syy > 0.0:
            return 1.0  # DuckDB: constant y, varying x
        n = float(self.n)
        r = (self.sxy / n) / (math.sqrt(self.sxx / n) * math.sqrt(self.syy / n))
        if math.isnan(r):
            return None  # DuckDB's NaN (both variances overflow)
        return r * r


@aggregate(name="regr_avgx")
class RegrAvgX(_CoMoments):
    """Mean of x over the pairs where neither argument is NULL.

    SQL: ``regr_avgx(y, x)``; NULL for no pairs. A window function.

    Examples
    --------
    >>> s = RegrAvgX(); s.step(5.0, 1.0); s.step(6.0, 2.0); s.finalize()
    1.5
    """

    def finalize(self) -> float | None:
        if self.n == 0:
            return None
        return self.mean_x


@aggregate(name="regr_avgy")
class RegrAvgY(_CoMoments):
    """Mean of y over the pairs where neither argument is NULL.

    SQL: ``regr_avgy(y, x)``; NULL for no pairs. A window function.

    Examples
    --------
    >>> s = RegrAvgY(); s.step(5.0, 1.0); s.step(6.0, 2.0); s.finalize()
    5.5
    """

    def finalize(self) -> float | None:
        if self.n == 0:
            return None
        return self.mean_y


@aggregate(name="regr_sxx")
class RegrSxx(_CoMoments):
    """Centred sum of squares of x, ``regr_count * var_pop(x)``.

    SQL: ``regr_sxx(y, x)``; NULL for no pairs. A window function.

    Examples
    --------
    >>> s = RegrSxx(); s.step(5.0, 1.0); s.step(6.0, 3.0); s.finalize()
    2.0
    """

    def finalize(self) -> float | None:
        if self.n == 0:
            return None
        return max(self.sxx, 0.0)


@aggregate(name="regr_syy")
class RegrSyy(_CoMoments):
    """Centred sum of squares of y, ``regr_count * var_pop(y)``.

    SQL: ``regr_syy(y, x)``; NULL for no pairs. A window function.

    Examples
    --------
    >>> s = RegrSyy(); s.step(5.0, 1.0); s.step(7.0, 3.0); s.finalize()
    2.0
    """

    def finalize(self) -> float | None:
        if self.n == 0:
            return None
        return max(self.syy, 0.0)


@aggregate(name="regr_sxy")
class RegrSxy(_CoMoments):
    """Centred sum of products, ``regr_count * covar_pop(y, x)``.

    SQL: ``regr_sxy(y, x)``; NULL for no pairs. A window function.

    Examples
    --------
    >>> s = RegrSxy(); s.step(5.0, 1.0); s.step(7.0, 3.0); s.finalize()
    2.0
    """

    def finalize(self) -> float | None:
        if self.n == 0:
            return None
        return self.sxy


@aggregate(name="regr_count")
class RegrCount:
    """Number of (y, x) pairs in which neither is NULL.

    SQL: ``regr_count(y, x)``; 0 for no pairs. A window function.

    Attributes
    ----------
    n : np.int64
        Pairs seen.

    Examples
    --------
    >>> s = RegrCount(); s.step(5.0, 1.0); s.finalize()
    1
    """

    n: np.int64

    def step(self, y: float, x: float):
        self.n += 1

    def inverse(self, y: float, x: float):
        self.n -= 1

    def merge(self, other):
        self.n += other.n

    def finalize(self) -> int:
        return self.n

