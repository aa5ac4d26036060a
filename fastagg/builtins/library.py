"""Built-in aggregates: the statistics SQLite lacks, as ordinary fastagg classes.

Each built-in is a plain ``@fastagg.aggregate(name=...)`` class, written with
the public API only; they double as worked examples. Names, argument order,
NULL handling and empty-group results follow DuckDB's functions of the same
name. Register them all with ``fastagg.register(con, *BUILTINS)``.

Rows where any argument is NULL are skipped (as SQL's own aggregates do).
Where DuckDB returns NaN (``corr`` of a constant column, ``weighted_avg``
with zero total weight, ...) the result here is NULL: SQLite stores a NaN
result as NULL anyway. ``W`` marks a window function (it has ``inverse``),
``M`` a mergeable one (it has ``merge``; see below).

============================  ==========================================  ===  ===
SQL name (arguments)          result                                      W    M
============================  ==========================================  ===  ===
var_samp(x), variance(x)      M2 / (n - 1); NULL if n < 2                 W    M
var_pop(x)                    M2 / n; NULL if n = 0                       W    M
stddev_samp(x), stddev(x)     sqrt(var_samp)                              W    M
stddev_pop(x)                 sqrt(var_pop)                               W    M
covar_samp(y, x)              Cxy / (n - 1); NULL if n < 2                W    M
covar_pop(y, x)               Cxy / n                                     W    M
corr(y, x)                    Cxy / sqrt(Sxx Syy); NULL if Sxx Syy = 0    W    M
regr_slope(y, x)              Cxy / Sxx; NULL if Sxx = 0                  W    M
regr_intercept(y, x)          avg(y) - slope avg(x); NULL if Sxx = 0      W    M
regr_r2(y, x)                 Cxy^2 / (Sxx Syy); 1 if Syy = 0 < Sxx       W    M
regr_count(y, x)              n (pairs with neither NULL); 0 if empty     W    M
regr_avgx(y, x)               avg(x) over the pairs                       W    M
regr_avgy(y, x)               avg(y) over the pairs                       W    M
regr_sxx / syy / sxy (y, x)   Sxx, Syy, Cxy (sums of centred products)    W    M
skewness(x)                   sqrt(n(n-1))/(n-2) * g1; NULL if n < 3      W    M
kurtosis(x)                   sample excess kurtosis G2; NULL if n < 4    W    M
kurtosis_pop(x)               n M4 / M2^2 - 3; NULL if M2 = 0             W    M
geomean(x)                    exp(avg(ln x)); 0 with a zero; NULL if x<0  W    M
product(x)                    product of x                                W    M
bool_and(b), bool_or(b)       every / any; counts of true and false       W    M
bit_and / bit_or (i)          per-bit counts in a 64-slot array           W    M
bit_xor(i)                    running xor (its own inverse)               W    M
arg_min(arg, val), min_by     arg at the first row with the least val          M
arg_max(arg, val), max_by     arg at the first row with the greatest val       M
weighted_avg(x, w)            sum(x w) / sum(w); NULL if sum(w) = 0       W    M
median(x)                     quantile_cont(x, 0.5), exact                W    M
quantile_cont(x, q)           a[lo] + (r - lo)(a[hi] - a[lo]), r=q(n-1)   W    M
quantile_disc(x, q)           a[ceil(n q) - 1] of the sorted values       W    M
mode(x)                       most frequent; ties: first to occur         W    M
histogram(x)                  '{"1": 3, "2": 1}': count per text form          M
entropy(x)                    -sum p log2 p over distinct values; 0 empty      M
approx_count_distinct(v)      HyperLogLog, 2**14 registers, xxHash64           M
approx_quantile(x, q)         bounded merging t-digest, rank error 0.25%       M
============================  ==========================================  ===  ===

Here n is the number of rows (pairs), M2..M4 the central moment sums
(Welford / Terriberry updates, so data such as 1e9 + noise stays accurate where
the sum-of-squares formula collapses), Sxx, Syy the centred sums of squares
and Cxy the centred sum of products. Inverses apply the same updates with a
count of -1 (Chan / Pébay's pairwise formulas): sliding windows agree with
recomputing each frame to 1e-9 (relative), except that skewness and kurtosis
of a tiny frame whose spread collapses right after a far-off row left it
keep only 3-4 digits (a subtraction from the much larger earlier M4).

Argument types: the moment functions, ``median``, the quantiles and
``mode`` take ``float`` (an integer column's mode or ``quantile_disc``
comes back as a real, exact up to 2**53); ``bit_*`` take ``int`` (64-bit);
``bool_*`` take ``float`` (any nonzero number is true; SQLite's comparisons
give 0 or 1); ``arg_min``/``arg_max`` take ``float`` for both ``arg`` and
``val`` (integers beyond 2**53 lose precision); ``approx_count_distinct``,
``histogram`` and ``entropy`` take ``bytes``, so SQLite hands them text and
blobs as they are and numbers in their text form, ``CAST(x AS TEXT)``
(the integer 1 and the real 1.0 are distinct values; reals equal to 15
significant digits share a key). ``q`` is a constant in [0, 1] (DuckDB's
negative "descending" q is not supported); the first row's ``q`` is used.

Growable state: ``median``, the quantiles and ``mode`` keep every value
(8 bytes a row) in a ``fastagg.vector``; ``histogram`` and ``entropy``
keep every value's text form. ``mode`` breaks ties as DuckDB does, by the
value that occurs first; DuckDB's answer is deterministic only with
``mode(x ORDER BY ...)`` (its threads reorder rows), fastagg's follows the
order in which rows reach the state (SQLite's row order; a window frame's
order, kept by ``inverse``; for merged partials, this state's rows first).
``histogram`` orders keys as DuckDB orders its map: numbers by value, then
text and blobs by their bytes; the JSON is that of Python's ``json.dumps``
(DuckDB's ``to_json`` leaves out the spaces).

Mergeable states: every built-in defines ``merge(self, other)``, so
registration also adds ``f_partial(args)`` (the state as a BLOB),
``f_combine(blob)`` and ``f_merge(blob)`` (the result). Moments and
co-moments merge by Chan's formulas, M3/M4 by Pébay's; counts, bits,
HyperLogLog registers (element-wise max) and growable values (appended)
merge exactly; t-digests merge their centroids (exact below 400 rows, else
within the stated rank error). Split-and-merge equals the one-pass result
exactly for count-based states and within 1e-12 (relative) for floating
point. Results that depend on the order of equal rows (``mode``'s ties,
``arg_min``/``arg_max``'s first row among equal ``val``) equal the one-pass
result when the partial states cover contiguous row ranges and are merged
in row order; a tie across partial states goes to the state merged into.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from ..compile.spec import aggregate, array
from ..compile.vector import vector
from ..native.utf8 import utf8_array_to_str

__all__ = [
    "BUILTINS",
    "VarSamp", "Variance", "VarPop", "StddevSamp", "Stddev", "StddevPop",
    "CovarSamp", "CovarPop", "Corr",
    "RegrSlope", "RegrIntercept", "RegrR2", "RegrCount", "RegrAvgX", "RegrAvgY",
    "RegrSxx", "RegrSyy", "RegrSxy",
    "Skewness", "Kurtosis", "KurtosisPop",
    "Geomean", "Product", "BoolAnd", "BoolOr", "BitAnd", "BitOr", "BitXor",
    "ArgMin", "ArgMax", "MinBy", "MaxBy", "WeightedAvg",
    "Median", "QuantileCont", "QuantileDisc", "Mode", "Histogram", "Entropy",
    "ApproxCountDistinct", "ApproxQuantile",
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
        if self.n == 0 or self.sxx <= 0.0:
            return None
        return self.sxy / self.sxx


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
        if self.n == 0 or self.sxx <= 0.0:
            return None
        return self.mean_y - self.sxy / self.sxx * self.mean_x


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
        if self.n == 0 or self.sxx <= 0.0:
            return None
        if self.syy <= 0.0:
            return 1.0
        return self.sxy * self.sxy / (self.sxx * self.syy)


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


# --------------------------------------------------------------------------
# Third and fourth moments (Terriberry's updates; Pébay's merge for inverse)


class _Moments4:
    """Count, mean and central moment sums M2, M3, M4 of one variable (not registered).

    Window precision: removing a row leaves a rounding residue of about 1e-16
    times the M3/M4 the frame held before, so a small frame whose spread
    collapses just after a far-off row left it (M4 falling 1e12-fold) keeps
    only 3-4 significant digits; frames of tens of rows agree with a
    per-frame recomputation to 1e-9.
    """

    n: np.int64
    mean: np.float64
    m2: np.float64
    m3: np.float64
    m4: np.float64

    def step(self, x: float):
        n1 = self.n
        self.n += 1
        n = self.n
        delta = x - self.mean
        dn = delta / n
        dn2 = dn * dn
        term1 = delta * dn * n1
        self.mean += dn
        self.m4 += term1 * dn2 * (n * n - 3 * n + 3) + 6.0 * dn2 * self.m2 - 4.0 * dn * self.m3
        self.m3 += term1 * dn * (n - 2) - 3.0 * dn * self.m2
        self.m2 += term1

    def inverse(self, x: float):
        # Pébay's pairwise merge of this state with {n: -1, mean: x, M2..M4: 0}.
        n = self.n
        self.n -= 1
        r = self.n
        if r == 0:
            self.mean = 0.0
            self.m2 = 0.0
            self.m3 = 0.0
            self.m4 = 0.0
            return
        delta = x - self.mean
        d2 = delta * delta
        m2 = self.m2
        m3 = self.m3
        self.m4 += (
            -d2 * d2 * n * (n * n + n + 1) / (r * r * r)
            + 6.0 * d2 * m2 / (r * r)
            + 4.0 * delta * m3 / r
        )
        self.m3 += -d2 * delta * n * (n + 1) / (r * r) + 3.0 * delta * m2 / r
        self.m2 -= d2 * n / r
        self.mean -= delta / r
        if r == 1:
            self.m2 = 0.0  # exactly: drop the rounding residue
            self.m3 = 0.0
            self.m4 = 0.0

    def merge(self, other):
        # Pébay's pairwise formulas (Sandia report SAND2008-6212, eq. 3.1).
        if other.n == 0:
            return
        if self.n == 0:
            self.n = other.n
            self.mean = other.mean
            self.m2 = other.m2
            self.m3 = other.m3
            self.m4 = other.m4
            return
        na = float(self.n)
        nb = float(other.n)
        n = na + nb
        delta = other.mean - self.mean
        d2 = delta * delta
        m2a = self.m2
        m3a = self.m3
        self.m4 += (
            other.m4
            + d2 * d2 * na * nb * (na * na - na * nb + nb * nb) / (n * n * n)
            + 6.0 * d2 * (na * na * other.m2 + nb * nb * m2a) / (n * n)
            + 4.0 * delta * (na * other.m3 - nb * m3a) / n
        )
        self.m3 += (
            other.m3
            + d2 * delta * na * nb * (na - nb) / (n * n)
            + 3.0 * delta * (na * other.m2 - nb * m2a) / n
        )
        self.m2 += other.m2 + d2 * na * nb / n
        self.mean += delta * nb / n
        self.n += other.n

    def finalize(self) -> float | None:
        raise NotImplementedError


@aggregate(name="skewness")
class Skewness(_Moments4):
    """Sample skewness, ``sqrt(n (n - 1)) / (n - 2) * sqrt(n) M3 / M2^1.5``.

    SQL: ``skewness(x)``, as DuckDB (scipy's ``skew(bias=False)``); NULL for
    fewer than three rows or constant x. A window function.

    Attributes
    ----------
    n : np.int64
        Rows seen.
    mean : np.float64
        Running mean.
    m2, m3, m4 : np.float64
        Sums of the 2nd, 3rd and 4th powers of deviations from the mean.

    Examples
    --------
    >>> s = Skewness()
    >>> for x in (1.0, 2.0, 4.0):
    ...     s.step(x)
    >>> round(s.finalize(), 12)
    0.935219529583
    """

    def finalize(self) -> float | None:
        n = self.n
        if n < 3 or self.m2 <= 0.0:
            return None
        g1 = math.sqrt(n) * self.m3 / self.m2**1.5
        return math.sqrt(n * (n - 1.0)) / (n - 2.0) * g1


@aggregate(name="kurtosis")
class Kurtosis(_Moments4):
    """Sample excess kurtosis, ``(n-1) / ((n-2)(n-3)) * ((n+1) g2 + 6)``.

    With ``g2 = n M4 / M2^2 - 3``, as DuckDB (scipy's ``kurtosis(bias=False)``).
    SQL: ``kurtosis(x)``; NULL for fewer than four rows or constant x. A
    window function.

    Examples
    --------
    >>> s = Kurtosis()
    >>> for x in (1.0, 2.0, 4.0, 8.0, 8.5):
    ...     s.step(x)
    >>> round(s.finalize(), 12)
    -2.814212141135
    """

    def finalize(self) -> float | None:
        n = self.n
        if n < 4 or self.m2 <= 0.0:
            return None
        g2 = n * self.m4 / (self.m2 * self.m2) - 3.0
        return (n - 1.0) / ((n - 2.0) * (n - 3.0)) * ((n + 1.0) * g2 + 6.0)


@aggregate(name="kurtosis_pop")
class KurtosisPop(_Moments4):
    """Population excess kurtosis, ``n M4 / M2^2 - 3``.

    SQL: ``kurtosis_pop(x)``; NULL for constant x (including one row). A
    window function.

    Examples
    --------
    >>> s = KurtosisPop(); s.step(1.0); s.step(2.0); s.finalize()
    -2.0
    """

    def finalize(self) -> float | None:
        if self.n == 0 or self.m2 <= 0.0:
            return None
        return self.n * self.m4 / (self.m2 * self.m2) - 3.0


# --------------------------------------------------------------------------
# Products


@aggregate(name="geomean")
class Geomean:
    """Geometric mean, ``exp(avg(ln x))``.

    SQL: ``geomean(x)``; NULL for no rows or any negative x (DuckDB: NaN),
    0 if any x is 0, infinity if any x is infinite. A window function: zeros,
    negatives and infinities are counted, so removing them is exact.

    Attributes
    ----------
    n : np.int64
        Rows seen.
    log_sum : np.float64
        Sum of ``ln x`` over the positive finite rows.
    zeros, negatives, infinities : np.int64
        Rows equal to 0, below 0, equal to +inf.

    Examples
    --------
    >>> s = Geomean(); s.step(2.0); s.step(8.0); round(s.finalize(), 12)
    4.0
    """

    n: np.int64
    log_sum: np.float64
    zeros: np.int64
    negatives: np.int64
    infinities: np.int64

    def step(self, x: float):
        self.n += 1
        if x < 0.0:
            self.negatives += 1
        elif x == 0.0:
            self.zeros += 1
        elif math.isinf(x):
            self.infinities += 1
        else:
            self.log_sum += math.log(x)

    def inverse(self, x: float):
        self.n -= 1
        if x < 0.0:
            self.negatives -= 1
        elif x == 0.0:
            self.zeros -= 1
        elif math.isinf(x):
            self.infinities -= 1
        else:
            self.log_sum -= math.log(x)
        if self.n == 0:
            self.log_sum = 0.0

    def merge(self, other):
        self.n += other.n
        self.log_sum += other.log_sum
        self.zeros += other.zeros
        self.negatives += other.negatives
        self.infinities += other.infinities

    def finalize(self) -> float | None:
        if self.n == 0 or self.negatives > 0:
            return None
        if self.zeros > 0:
            return None if self.infinities > 0 else 0.0
        if self.infinities > 0:
            return math.inf
        return math.exp(self.log_sum / self.n)


@aggregate(name="product")
class Product:
    """Product of the values, as a float.

    SQL: ``product(x)``; NULL for no rows. A window function: the product of
    the nonzero finite values is kept as ``mantissa * 2**exponent`` (never
    overflowing in between), and zeros and infinities are counted, so
    removing a row divides it out to within rounding.

    Attributes
    ----------
    n : np.int64
        Rows seen.
    mantissa : np.float64
        Product of the nonzero finite values, scaled to [0.5, 1) in magnitude.
    exponent : np.int64
        Power of two that scales ``mantissa`` back.
    zeros : np.int64
        Rows equal to 0.
    infinities : np.int64
        Infinite rows.
    negative_infinities : np.int64
        Rows equal to -inf (for the sign).

    Examples
    --------
    >>> s = Product(); s.step(2.0); s.step(-3.0); s.step(4.0); s.finalize()
    -24.0
    """

    n: np.int64
    mantissa: np.float64
    exponent: np.int64
    zeros: np.int64
    infinities: np.int64
    negative_infinities: np.int64

    def __init__(self):
        self.mantissa = 1.0

    def step(self, x: float):
        self.n += 1
        if x == 0.0:
            self.zeros += 1
        elif math.isinf(x):
            self.infinities += 1
            if x < 0.0:
                self.negative_infinities += 1
        else:
            m, e = math.frexp(self.mantissa * x)
            self.mantissa = m
            self.exponent += e

    def inverse(self, x: float):
        self.n -= 1
        if x == 0.0:
            self.zeros -= 1
        elif math.isinf(x):
            self.infinities -= 1
            if x < 0.0:
                self.negative_infinities -= 1
        else:
            m, e = math.frexp(self.mantissa / x)
            self.mantissa = m
            self.exponent += e
        if self.n == 0:
            self.mantissa = 1.0
            self.exponent = 0

    def merge(self, other):
        self.n += other.n
        self.zeros += other.zeros
        self.infinities += other.infinities
        self.negative_infinities += other.negative_infinities
        m, e = math.frexp(self.mantissa * other.mantissa)
        self.mantissa = m
        self.exponent += other.exponent + e

    def finalize(self) -> float | None:
        if self.n == 0:
            return None
        if self.infinities > 0:
            if self.zeros > 0:
                return None  # 0 * inf is NaN
            sign = -1.0 if (self.mantissa < 0.0) != (self.negative_infinities % 2 == 1) else 1.0
            return sign * math.inf
        if self.zeros > 0:
            return 0.0
        # Past +-4000 the result is inf or 0 either way; clamp for ldexp's int argument.
        e = self.exponent
        if e > 4000:
            e = 4000
        elif e < -4000:
            e = -4000
        return math.ldexp(self.mantissa, e)


# --------------------------------------------------------------------------
# Booleans and bits


class _TrueFalseCounts:
    """Counts of true and false rows (not registered).

    The argument is read as a float, so that any nonzero number is true
    (a ``bool`` argument is read with ``sqlite3_value_int64``, which would
    truncate 0.5 to false).
    """

    trues: np.int64
    falses: np.int64

    def step(self, b: float):
        if b != 0.0:
            self.trues += 1
        else:
            self.falses += 1

    def inverse(self, b: float):
        if b != 0.0:
            self.trues -= 1
        else:
            self.falses -= 1

    def merge(self, other):
        self.trues += other.trues
        self.falses += other.falses

    def finalize(self) -> bool | None:
        raise NotImplementedError


@aggregate(name="bool_and")
class BoolAnd(_TrueFalseCounts):
    """Whether every row is true (logical AND).

    SQL: ``bool_and(b)``; NULL for no rows; any nonzero number is true. A
    window function (it counts true and false rows).

    Attributes
    ----------
    trues, falses : np.int64
        Rows seen that were true, false.

    Examples
    --------
    >>> s = BoolAnd(); s.step(1.0); s.step(0.0); s.finalize()
    False
    """

    def finalize(self) -> bool | None:
        if self.trues + self.falses == 0:
            return None
        return self.falses == 0


@aggregate(name="bool_or")
class BoolOr(_TrueFalseCounts):
    """Whether any row is true (logical OR).

    SQL: ``bool_or(b)``; NULL for no rows. A window function.

    Examples
    --------
    >>> s = BoolOr(); s.step(1.0); s.step(0.0); s.finalize()
    True
    """

    def finalize(self) -> bool | None:
        if self.trues + self.falses == 0:
            return None
        return self.trues > 0


_INT64_MIN = -9223372036854775807 - 1


class _BitCounts:
    """How many rows have each of the 64 bits set (not registered)."""

    n: np.int64
    counts: array(np.int64, 64)

    def step(self, i: int):
        self.n += 1
        for b in range(64):
            if (i >> b) & 1:
                self.counts[b] += 1

    def inverse(self, i: int):
        self.n -= 1
        for b in range(64):
            if (i >> b) & 1:
                self.counts[b] -= 1

    def merge(self, other):
        self.n += other.n
        for b in range(64):
            self.counts[b] += other.counts[b]

    def finalize(self) -> int | None:
        raise NotImplementedError


@aggregate(name="bit_and")
class BitAnd(_BitCounts):
    """Bitwise AND of 64-bit integers.

    SQL: ``bit_and(i)``; NULL for no rows. A window function: a bit is set
    in the result when its count equals the row count.

    Attributes
    ----------
    n : np.int64
        Rows seen.
    counts : fastagg.array(np.int64, 64)
        For each bit, the rows that have it set.

    Examples
    --------
    >>> s = BitAnd(); s.step(6); s.step(3); s.finalize()
    2
    """

    def finalize(self) -> int | None:
        if self.n == 0:
            return None
        r = 0
        for b in range(63):
            if self.counts[b] == self.n:
                r |= 1 << b
        if self.counts[63] == self.n:
            r += _INT64_MIN
        return r


@aggregate(name="bit_or")
class BitOr(_BitCounts):
    """Bitwise OR of 64-bit integers.

    SQL: ``bit_or(i)``; NULL for no rows. A window function: a bit is set
    in the result when its count is positive.

    Examples
    --------
    >>> s = BitOr(); s.step(6); s.step(3); s.finalize()
    7
    """

    def finalize(self) -> int | None:
        if self.n == 0:
            return None
        r = 0
        for b in range(63):
            if self.counts[b] > 0:
                r |= 1 << b
        if self.counts[63] > 0:
            r += _INT64_MIN
        return r


@aggregate(name="bit_xor")
class BitXor:
    """Bitwise XOR of 64-bit integers.

    SQL: ``bit_xor(i)``; NULL for no rows. A window function: XOR is its own
    inverse.

    Attributes
    ----------
    n : np.int64
        Rows seen.
    acc : np.int64
        XOR of the rows seen.

    Examples
    --------
    >>> s = BitXor(); s.step(6); s.step(3); s.finalize()
    5
    """

    n: np.int64
    acc: np.int64

    def step(self, i: int):
        self.n += 1
        self.acc ^= i

    def inverse(self, i: int):
        self.n -= 1
        self.acc ^= i

    def merge(self, other):
        self.n += other.n
        self.acc ^= other.acc

    def finalize(self) -> int | None:
        if self.n == 0:
            return None
        return self.acc


# --------------------------------------------------------------------------
# arg_min / arg_max


@aggregate(name="arg_min")
class ArgMin:
    """The ``arg`` of the row with the least ``val`` (the first such row).

    SQL: ``arg_min(arg, val)``, DuckDB's order; rows where either is NULL
    are skipped; NULL for no rows. Both are floats: an integer ``arg``
    comes back as a float (exact up to 2**53). Not a window function.

    Attributes
    ----------
    n : np.int64
        Rows seen.
    arg, val : np.float64
        The best row so far.

    Examples
    --------
    >>> s = ArgMin(); s.step(10.0, 3.0); s.step(20.0, 1.0); s.step(30.0, 1.0); s.finalize()
    20.0
    """

    n: np.int64
    arg: np.float64
    val: np.float64

    def step(self, arg: float, val: float):
        if self.n == 0 or val < self.val:
            self.arg = arg
            self.val = val
        self.n += 1

    def merge(self, other):
        # On a tie this state's row wins: it comes first when partial states
        # are merged in row order.
        if other.n > 0 and (self.n == 0 or other.val < self.val):
            self.arg = other.arg
            self.val = other.val
        self.n += other.n

    def finalize(self) -> float | None:
        if self.n == 0:
            return None
        return self.arg


@aggregate(name="min_by")
class MinBy(ArgMin):
    """Alias of :class:`ArgMin`: SQL ``min_by(arg, val)``.

    Examples
    --------
    >>> s = MinBy(); s.step(10.0, 3.0); s.step(20.0, 1.0); s.finalize()
    20.0
    """


@aggregate(name="arg_max")
class ArgMax:
    """The ``arg`` of the row with the greatest ``val`` (the first such row).

    SQL: ``arg_max(arg, val)``; rows where either is NULL are skipped; NULL
    for no rows. Both are floats. Not a window function.

    Attributes
    ----------
    n : np.int64
        Rows seen.
    arg, val : np.float64
        The best row so far.

    Examples
    --------
    >>> s = ArgMax(); s.step(10.0, 3.0); s.step(20.0, 1.0); s.finalize()
    10.0
    """

    n: np.int64
    arg: np.float64
    val: np.float64

    def step(self, arg: float, val: float):
        if self.n == 0 or val > self.val:
            self.arg = arg
            self.val = val
        self.n += 1

    def merge(self, other):
        # On a tie this state's row wins: it comes first when partial states
        # are merged in row order.
        if other.n > 0 and (self.n == 0 or other.val > self.val):
            self.arg = other.arg
            self.val = other.val
        self.n += other.n

    def finalize(self) -> float | None:
        if self.n == 0:
            return None
        return self.arg


@aggregate(name="max_by")
class MaxBy(ArgMax):
    """Alias of :class:`ArgMax`: SQL ``max_by(arg, val)``.

    Examples
    --------
    >>> s = MaxBy(); s.step(10.0, 3.0); s.step(20.0, 1.0); s.finalize()
    10.0
    """


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


# --------------------------------------------------------------------------
# Growable state: exact quantiles, mode, histogram, entropy


@numba.njit(cache=True)
def _quantile_cont_sorted(a, q):
    """Linear interpolation at 0-based rank ``q (n - 1)`` of sorted *a*, as DuckDB."""
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


@numba.njit(cache=True)
def _check_q(q):
    if not (0.0 <= q <= 1.0):
        raise ValueError("q must be between 0 and 1")


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


class _Values:
    """Every value of the group, in arrival order (not registered)."""

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
        a = self.values.as_array()
        a.sort()
        return _quantile_cont_sorted(a, 0.5)


class _ValuesQ:
    """Every value of the group and the quantile asked for (not registered)."""

    values: vector(np.float64)
    q: np.float64

    def step(self, x: float, q: float):
        if len(self.values) == 0:
            _check_q(q)
            self.q = q
        self.values.append(x)

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

    def finalize(self) -> float | None:
        if len(self.values) == 0:
            return None
        a = self.values.as_array()
        a.sort()
        return _quantile_cont_sorted(a, self.q)


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

    def finalize(self) -> float | None:
        n = len(self.values)
        if n == 0:
            return None
        a = self.values.as_array()
        k = _quantile_disc_index(n, self.q)
        return float(np.partition(a, k)[k])


@aggregate(name="mode")
class Mode:
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

    values: vector(np.float64)

    def step(self, x: float):
        self.values.append(x)

    def inverse(self, x: float):
        if _remove_keeping_order(self.values.as_array(), x):
            self.values.remove(x)  # the last element, which now equals x

    def merge(self, other):
        self.values.extend(other.values.as_array())

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
    form there). Not a window function; mergeable.

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
    by text form, as :class:`Histogram`); 0.0 for no rows, as DuckDB. Not a
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


# --------------------------------------------------------------------------
# approx_count_distinct: HyperLogLog

HLL_P = 14  # 2**14 registers: standard error 1.04 / 128 = 0.81%
_XXH_P1 = 0x9E3779B185EBCA87
_XXH_P2 = 0xC2B2AE3D27D4EB4F
_XXH_P3 = 0x165667B19E3779F9
_XXH_P4 = 0x85EBCA77C2B2AE63
_XXH_P5 = 0x27D4EB2F165667C5


@aggregate(name="approx_count_distinct")
class ApproxCountDistinct:
    """Approximate number of distinct values, by HyperLogLog.

    SQL: ``approx_count_distinct(v)``; 0 for no rows. Each value's bytes are
    hashed with xxHash64 (seed 0), a fixed hash, so registers built in
    different processes merge (element-wise maximum). The first 14 bits of
    the hash pick one of 16,384 registers, which keeps the longest run of
    leading zeros (+1) of the other 50 bits. The estimate is Ertl's improved
    raw estimator (arXiv:1702.01284), unbiased from 0 to well beyond 10**9
    without bias tables; standard error 0.81%. Not a window function.

    ``v`` is ``bytes``: text and blobs are hashed as they are, numbers in
    SQLite's text form (so the integer 1 and the real 1.0 are distinct).

    Attributes
    ----------
    registers : fastagg.array(np.uint8, 16384)
        Leading-zero ranks, 0 for an empty register.

    Examples
    --------
    >>> s = ApproxCountDistinct()
    >>> for v in (b"a", b"b", b"a", b"c"):
    ...     s.step(v)
    >>> s.finalize()
    3
    """

    registers: array(np.uint8, 2**HLL_P)

    def step(self, v: bytes):
        p1 = np.uint64(_XXH_P1)
        p2 = np.uint64(_XXH_P2)
        p3 = np.uint64(_XXH_P3)
        p4 = np.uint64(_XXH_P4)
        p5 = np.uint64(_XXH_P5)
        n = len(v)
        i = 0
        if n >= 32:
            a1 = np.add(p1, p2)
            a2 = p2
            a3 = np.uint64(0)
            a4 = np.subtract(np.uint64(0), p1)
            while i + 32 <= n:
                for lane in range(4):
                    k = np.uint64(0)
                    for j in range(8):
                        k |= np.uint64(v[i + 8 * lane + j]) << np.uint64(8 * j)
                    if lane == 0:
                        acc = a1
                    elif lane == 1:
                        acc = a2
                    elif lane == 2:
                        acc = a3
                    else:
                        acc = a4
                    acc = np.add(acc, np.multiply(k, p2))
                    acc = (acc << np.uint64(31)) | (acc >> np.uint64(33))
                    acc = np.multiply(acc, p1)
                    if lane == 0:
                        a1 = acc
                    elif lane == 1:
                        a2 = acc
                    elif lane == 2:
                        a3 = acc
                    else:
                        a4 = acc
                i += 32
            h = np.add(
                np.add((a1 << np.uint64(1)) | (a1 >> np.uint64(63)), (a2 << np.uint64(7)) | (a2 >> np.uint64(57))),
                np.add((a3 << np.uint64(12)) | (a3 >> np.uint64(52)), (a4 << np.uint64(18)) | (a4 >> np.uint64(46))),
            )
            for lane in range(4):
                if lane == 0:
                    acc = a1
                elif lane == 1:
                    acc = a2
                elif lane == 2:
                    acc = a3
                else:
                    acc = a4
                acc = np.multiply(acc, p2)
                acc = (acc << np.uint64(31)) | (acc >> np.uint64(33))
                acc = np.multiply(acc, p1)
                h ^= acc
                h = np.add(np.multiply(h, p1), p4)
        else:
            h = p5
        h = np.add(h, np.uint64(n))
        while i + 8 <= n:
            k = np.uint64(0)
            for j in range(8):
                k |= np.uint64(v[i + j]) << np.uint64(8 * j)
            k = np.multiply(k, p2)
            k = (k << np.uint64(31)) | (k >> np.uint64(33))
            k = np.multiply(k, p1)
            h ^= k
            h = (h << np.uint64(27)) | (h >> np.uint64(37))
            h = np.add(np.multiply(h, p1), p4)
            i += 8
        if i + 4 <= n:
            k = np.uint64(0)
            for j in range(4):
                k |= np.uint64(v[i + j]) << np.uint64(8 * j)
            h ^= np.multiply(k, p1)
            h = (h << np.uint64(23)) | (h >> np.uint64(41))
            h = np.add(np.multiply(h, p2), p3)
            i += 4
        while i < n:
            h ^= np.multiply(np.uint64(v[i]), p5)
            h = (h << np.uint64(11)) | (h >> np.uint64(53))
            h = np.multiply(h, p1)
            i += 1
        h ^= h >> np.uint64(33)
        h = np.multiply(h, p2)
        h ^= h >> np.uint64(29)
        h = np.multiply(h, p3)
        h ^= h >> np.uint64(32)

        index = int(h >> np.uint64(64 - HLL_P))
        rest = h << np.uint64(HLL_P)
        rank = 1
        top = np.uint64(1) << np.uint64(63)
        while rank <= 64 - HLL_P and (rest & top) == np.uint64(0):
            rest = rest << np.uint64(1)
            rank += 1
        if rank > self.registers[index]:
            self.registers[index] = rank

    def merge(self, other):
        for i in range(2**HLL_P):
            if other.registers[i] > self.registers[i]:
                self.registers[i] = other.registers[i]

    def finalize(self) -> int:
        m = 2**HLL_P
        q = 64 - HLL_P
        counts = np.zeros(q + 2, np.int64)
        for r in self.registers:
            counts[r] += 1
        if counts[0] == m:
            return 0
        # Ertl's tau(1 - C[q+1]/m): the saturated registers' share.
        x = 1.0 - counts[q + 1] / m
        if x == 0.0 or x == 1.0:
            z = 0.0
        else:
            y = 1.0
            z = 1.0 - x
            while True:
                x = math.sqrt(x)
                z_old = z
                y *= 0.5
                z -= (1.0 - x) * (1.0 - x) * y
                if z == z_old:
                    break
            z /= 3.0
        z *= m
        for k in range(q, 0, -1):
            z = 0.5 * (z + counts[k])
        # Ertl's sigma(C[0]/m): the empty registers' share.
        x = counts[0] / m
        y = 1.0
        s = x
        while True:
            x = x * x
            s_old = s
            s += x * y
            y += y
            if s == s_old:
                break
        z += m * s
        return int(round(m * m / (2.0 * math.log(2.0)) / z))


# --------------------------------------------------------------------------
# approx_quantile: a bounded merging t-digest

TDIGEST_DELTA = 200  # each centroid holds at most n / 200 rows: rank error <= 0.25%
TDIGEST_CAPACITY = 2 * TDIGEST_DELTA + 2  # greedy merging leaves at most 2 * delta + 1
TDIGEST_BUFFER = 512


@numba.njit(cache=True)
def _tdigest_compress(means, weights, k, extra_means, extra_weights, count):
    """Merge weighted points into the first *k* centroids, in place; return the new count.

    Sorted by value, neighbours merge greedily while a centroid holds at
    most ``count / TDIGEST_DELTA`` rows, so at most ``2 * delta + 1`` remain.
    """
    b = len(extra_means)
    if k + b == 0:
        return 0
    vals = np.empty(k + b)
    wts = np.empty(k + b)
    vals[:k] = means[:k]
    wts[:k] = weights[:k]
    vals[k:] = extra_means
    wts[k:] = extra_weights
    order = np.argsort(vals, kind="mergesort")
    limit = count / TDIGEST_DELTA
    c = 0
    cur_m = vals[order[0]]
    cur_w = wts[order[0]]
    for j in range(1, k + b):
        v = vals[order[j]]
        w = wts[order[j]]
        if cur_w + w <= limit:
            cur_w += w
            cur_m += (v - cur_m) * w / cur_w
        else:
            means[c] = cur_m
            weights[c] = cur_w
            c += 1
            cur_m = v
            cur_w = w
    means[c] = cur_m
    weights[c] = cur_w
    return c + 1


@aggregate(name="approx_quantile")
class ApproxQuantile:
    """Approximate quantile ``q`` of ``x``, from a bounded-size t-digest.

    SQL: ``approx_quantile(x, q)`` with ``0 <= q <= 1`` (the first row's
    ``q`` is used); NULL for no rows. Rows are buffered 512 at a time, then
    sorted and merged with the centroids, greedily, while a centroid holds
    at most ``n / 200`` rows, which bounds the centroids to 402 and the rank
    error of the answer to about half a centroid, 0.25% of n. The answer
    interpolates linearly between centroid centres (and the exact minimum
    and maximum), which is ``quantile_cont`` exactly while every centroid
    is a single row (fewer than 200 rows). State: 14.5 KB. Not a window
    function.

    Attributes
    ----------
    means, weights : fastagg.array(np.float64, 402)
        The centroids, sorted by mean; ``ncentroids`` are in use.
    buffer : fastagg.array(np.float64, 512)
        Rows not merged yet; ``nbuffer`` are in use.
    count : np.float64
        Rows seen.
    lo, hi : np.float64
        Exact minimum and maximum.
    q : np.float64
        The quantile asked for.

    Examples
    --------
    >>> s = ApproxQuantile()
    >>> for x in (1.0, 2.0, 3.0, 10.0):
    ...     s.step(x, 0.5)
    >>> s.finalize()
    2.5
    """

    means: array(np.float64, TDIGEST_CAPACITY)
    weights: array(np.float64, TDIGEST_CAPACITY)
    buffer: array(np.float64, TDIGEST_BUFFER)
    ncentroids: np.int64
    nbuffer: np.int64
    count: np.float64
    lo: np.float64
    hi: np.float64
    q: np.float64

    def step(self, x: float, q: float):
        if self.count == 0.0:
            if not (0.0 <= q <= 1.0):
                raise ValueError("approx_quantile: q must be between 0 and 1")
            self.q = q
            self.lo = x
            self.hi = x
        elif x < self.lo:
            self.lo = x
        elif x > self.hi:
            self.hi = x
        self.count += 1.0
        self.buffer[self.nbuffer] = x
        self.nbuffer += 1
        if self.nbuffer == TDIGEST_BUFFER:
            self.ncentroids = _tdigest_compress(
                self.means, self.weights, self.ncentroids, self.buffer, np.ones(TDIGEST_BUFFER), self.count
            )
            self.nbuffer = 0

    def merge(self, other):
        if other.count == 0.0:
            return
        if self.count == 0.0:
            self.q = other.q
            self.lo = other.lo
            self.hi = other.hi
        else:
            self.lo = min(self.lo, other.lo)
            self.hi = max(self.hi, other.hi)
        self.count += other.count
        b = self.nbuffer
        k = other.ncentroids
        b2 = other.nbuffer
        extra_means = np.empty(b + k + b2)
        extra_weights = np.ones(b + k + b2)
        extra_means[:b] = self.buffer[:b]
        extra_means[b : b + k] = other.means[:k]
        extra_weights[b : b + k] = other.weights[:k]
        extra_means[b + k :] = other.buffer[:b2]
        self.ncentroids = _tdigest_compress(
            self.means, self.weights, self.ncentroids, extra_means, extra_weights, self.count
        )
        self.nbuffer = 0

    def finalize(self) -> float | None:
        if self.count == 0.0:
            return None
        if self.nbuffer > 0:
            self.ncentroids = _tdigest_compress(
                self.means, self.weights, self.ncentroids, self.buffer[: self.nbuffer],
                np.ones(self.nbuffer), self.count,
            )
            self.nbuffer = 0
        # Interpolate between centroid centres, at 0-based ranks.
        k = self.ncentroids
        target = self.q * (self.count - 1.0)
        before = 0.0
        prev_rank = 0.0
        prev_value = self.lo
        for i in range(k):
            w = self.weights[i]
            rank = before + (w - 1.0) / 2.0
            if target <= rank:
                if rank == prev_rank:
                    return float(self.means[i])
                t = (target - prev_rank) / (rank - prev_rank)
                return float(prev_value + t * (self.means[i] - prev_value))
            prev_rank = rank
            prev_value = self.means[i]
            before += w
        last = self.count - 1.0
        if last == prev_rank:
            return float(self.hi)
        t = (target - prev_rank) / (last - prev_rank)
        return float(prev_value + t * (self.hi - prev_value))


BUILTINS: tuple[type, ...] = (
    VarSamp, Variance, VarPop, StddevSamp, Stddev, StddevPop,
    CovarSamp, CovarPop, Corr,
    RegrSlope, RegrIntercept, RegrR2, RegrCount, RegrAvgX, RegrAvgY,
    RegrSxx, RegrSyy, RegrSxy,
    Skewness, Kurtosis, KurtosisPop,
    Geomean, Product, BoolAnd, BoolOr, BitAnd, BitOr, BitXor,
    ArgMin, ArgMax, MinBy, MaxBy, WeightedAvg,
    Median, QuantileCont, QuantileDisc, Mode, Histogram, Entropy,
    ApproxCountDistinct, ApproxQuantile,
)  # fmt: skip
"""Every built-in aggregate class, aliases included, for ``fastagg.register``."""
