"""Moments of one and two variables: variance, standard deviation, covariance, correlation.

A Welford state of one variable (count, mean, M2) and its pairwise form for
(y, x) (means, Sxx, Syy, Cxy), updated row by row, undone by ``inverse``
and merged by Chan's formulas. :mod:`.regression` finishes the same
co-moment state as the ``regr_*`` family; :mod:`.shape` carries the third
and fourth moments. The weighted mean, a first moment with weights, is here
too.
"""

from __future__ import annotations

import math

import numpy as np

from ..compile.spec import aggregate

__all__ = [
    "VarSamp", "Variance", "VarPop", "StddevSamp", "Stddev", "StddevPop",
    "CovarSamp", "CovarPop", "Corr", "WeightedAvg",
]  # fmt: skip


# --------------------------------------------------------------------------
# One variable: mean and second moment (Welford)


class _Moments2:
    """Count, mean and centred sum of squares of one variable (not registered)."""

    n: np.int64
    mean: np.float64
    m2: np.float64

    def step(self, x: float):
        self.n += 1
        delta = x - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (x - self.mean)

    def inverse(self, x: float):
        self.n -= 1
        if self.n == 0:
            self.mean = 0.0
            self.m2 = 0.0
        else:
            delta = x - self.mean
            self.mean -= delta / self.n
            self.m2 -= delta * (x - self.mean)
            if self.n == 1:
                self.m2 = 0.0  # exactly: drop the rounding residue

    def merge(self, other):
        # Chan, Golub and LeVeque's pairwise update.
        if other.n == 0:
            return
        na = float(self.n)
        nb = float(other.n)
        n = na + nb
        delta = other.mean - self.mean
        self.mean += delta * nb / n
        self.m2 += other.m2 + delta * delta * na * nb / n
        self.n += other.n

    def finalize(self) -> float | None:
        raise NotImplementedError


@aggregate(name="var_samp")
class VarSamp(_Moments2):
    """Sample variance ``M2 / (n - 1)``, by Welford's updates.

    SQL: ``var_samp(x)``; NULL for fewer than two rows. A window function.

    Attributes
    ----------
    n : np.int64
        Rows seen.
    mean : np.float64
        Running mean.
    m2 : np.float64
        Sum of squared deviations from the mean.

    Examples
    --------
    >>> s = VarSamp()
    >>> for x in (1.0, 2.0, 4.0):
    ...     s.step(x)
    >>> round(s.finalize(), 12)
    2.333333333333
    """

    def finalize(self) -> float | None:
        if self.n < 2:
            return None
        return max(self.m2, 0.0) / (self.n - 1)


@aggregate(name="variance")
class Variance(VarSamp):
    """Alias of :class:`VarSamp`: SQL ``variance(x)``, the sample variance.

    Examples
    --------
    >>> s = Variance(); s.step(1.0); s.step(3.0); s.finalize()
    2.0
    """


@aggregate(name="var_pop")
class VarPop(_Moments2):
    """Population variance ``M2 / n``, by Welford's updates.

    SQL: ``var_pop(x)``; NULL for no rows. A window function.

    Examples
    --------
    >>> s = VarPop(); s.step(1.0); s.step(3.0); s.finalize()
    1.0
    """

    def finalize(self) -> float | None:
        if self.n == 0:
            return None
        return max(self.m2, 0.0) / self.n


@aggregate(name="stddev_samp")
class StddevSamp(_Moments2):
    """Sample standard deviation ``sqrt(M2 / (n - 1))``.

    SQL: ``stddev_samp(x)``; NULL for fewer than two rows. A window function.

    Examples
    --------
    >>> s = StddevSamp(); s.step(1.0); s.step(3.0); round(s.finalize(), 12)
    1.414213562373
    """

    def finalize(self) -> float | None:
        if self.n < 2:
            return None
        return math.sqrt(max(self.m2, 0.0) / (self.n - 1))


@aggregate(name="stddev")
class Stddev(StddevSamp):
    """Alias of :class:`StddevSamp`: SQL ``stddev(x)``.

    Examples
    --------
    >>> s = Stddev(); s.step(1.0); s.step(3.0); round(s.finalize(), 12)
    1.414213562373
    """


@aggregate(name="stddev_pop")
class StddevPop(_Moments2):
    """Population standard deviation ``sqrt(M2 / n)``.

    SQL: ``stddev_pop(x)``; NULL for no rows. A window function.

    Examples
    --------
    >>> s = StddevPop(); s.step(1.0); s.step(3.0); s.finalize()
    1.0
    """

    def finalize(self) -> float | None:
        if self.n == 0:
            return None
        return math.sqrt(max(self.m2, 0.0) / self.n)


# --------------------------------------------------------------------------
# Two variables: co-moments (Welford for pairs)


class _CoMoments:
    """Count, means, centred sums of squares and products of (y, x) (not registered).

    SQL argument order is DuckDB's and the standard's: ``f(y, x)``, the
    dependent variable first.
    """

    n: np.int64
    mean_x: np.float64
    mean_y: np.float64
    sxx: np.float64
    syy: np.float64
    sxy: np.float64

    def step(self, y: float, x: float):
        self.n += 1
        dx = x - self.mean_x
        dy = y - self.mean_y
        self.mean_x += dx / self.n
        self.mean_y += dy / self.n
        self.sxx += dx * (x - self.mean_x)
        self.syy += dy * (y - self.mean_y)
        self.sxy += dx * (y - self.mean_y)

    def inverse(self, y: float, x: float):
        self.n -= 1
        if self.n == 0:
            self.mean_x = 0.0
            self.mean_y = 0.0
            self.sxx = 0.0
            self.syy = 0.0
            self.sxy = 0.0
        else:
            dx = x - self.mean_x
            dy = y - self.mean_y
            self.mean_x -= dx / self.n
            self.mean_y -= dy / self.n
            self.sxx -= dx * (x - self.mean_x)
            self.syy -= dy * (y - self.mean_y)
            self.sxy -= dx * (y - self.mean_y)
            if self.n == 1:
                self.sxx = 0.0  # exactly: drop the rounding residue
                self.syy = 0.0
                self.sxy = 0.0

    def merge(self, other):
        # Chan's pairwise update, for the co-moment as well.
        if other.n == 0:
            return
        na = float(self.n)
        nb = float(other.n)
        n = na + nb
        dx = other.mean_x - self.mean_x
        dy = other.mean_y - self.mean_y
        f = na * nb / n
        self.mean_x += dx * nb / n
        self.mean_y += dy * nb / n
        self.sxx += other.sxx + dx * dx * f
        self.syy += other.syy + dy * dy * f
        self.sxy += other.sxy + dx * dy * f
        self.n += other.n

    def finalize(self) -> float | None:
        raise NotImplementedError


@aggregate(name="covar_samp")
class CovarSamp(_CoMoments):
    """Sample covariance ``Cxy / (n - 1)``.

    SQL: ``covar_samp(y, x)``; NULL for fewer than two pairs. A window function.

    Attributes
    ----------
    n : np.int64
        Pairs seen (rows where neither argument is NULL).
    mean_x, mean_y : np.float64
        Running means.
    sxx, syy, sxy : np.float64
        Centred sums of squares and of products.

    Examples
    --------
    >>> s = CovarSamp()
    >>> for y, x in ((1.0, 1.0), (3.0, 2.0), (2.0, 3.0)):
    ...     s.step(y, x)
    >>> s.finalize()
    0.5
    """

    def finalize(self) -> float | None:
        if self.n < 2:
            return None
        return self.sxy / (self.n - 1)


@aggregate(name="covar_pop")
class CovarPop(_CoMoments):
    """Population covariance ``Cxy / n``.

    SQL: ``covar_pop(y, x)``; NULL for no pairs. A window function.

    Examples
    --------
    >>> s = CovarPop(); s.step(1.0, 1.0); s.step(3.0, 2.0); s.finalize()
    0.5
    """

    def finalize(self) -> float | None:
        if self.n == 0:
            return None
        return self.sxy / self.n


@aggregate(name="corr")
class Corr(_CoMoments):
    """Pearson correlation ``Cxy / sqrt(Sxx Syy)``.

    SQL: ``corr(y, x)``; NULL for no pairs and where either variable is
    constant (DuckDB returns NaN there, which SQLite stores as NULL). A
    window function.

    Examples
    --------
    >>> s = Corr(); s.step(1.0, 1.0); s.step(3.0, 2.0); s.finalize()
    1.0
    """

    def finalize(self) -> float | None:
        if self.n == 0 or self.sxx <= 0.0 or self.syy <= 0.0:
            return None
        return self.sxy / math.sqrt(self.sxx * self.syy)

# --------------------------------------------------------------------------
# Weighted average


@aggregate(name="weighted_avg")
class WeightedAvg:
    """Weighted mean ``sum(x w) / sum(w)``.

    SQL: ``weighted_avg(x, w)``; rows where x or w is NULL are skipped; NULL
    for no rows and for zero total weight (DuckDB: NaN). A window function.

    Attributes
    ----------
    n : np.int64
        Rows seen.
    total : np.float64
        Sum of ``x * w``.
    weight : np.float64
        Sum of ``w``.

    Examples
    --------
    >>> s = WeightedAvg(); s.step(1.0, 3.0); s.step(5.0, 1.0); s.finalize()
    2.0
    """

    n: np.int64
    total: np.float64
    weight: np.float64

    def step(self, x: float, w: float):
        self.n += 1
        self.total += x * w
        self.weight += w

    def inverse(self, x: float, w: float):
        self.n -= 1
        if self.n == 0:
            self.total = 0.0
            self.weight = 0.0
        else:
            self.total -= x * w
            self.weight -= w

    def merge(self, other):
        self.n += other.n
        self.total += other.total
        self.weight += other.weight

    def finalize(self) -> float | None:
        if self.n == 0 or self.weight == 0.0:
            return None
        return self.total / self.weight

