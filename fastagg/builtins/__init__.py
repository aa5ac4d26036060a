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
regr_r2(y, x)                 corr^2; NULL if Sxx = 0; 1 if Syy = 0 < Sxx W    M
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
arg_min(arg, val), min_by     arg at the first row with the least val     W    M
arg_max(arg, val), max_by     arg at the first row with the greatest val  W    M
any_value(x)                  the first non-NULL value                    W    M
weighted_avg(x, w)            sum(x w) / sum(w); NULL if sum(w) = 0       W    M
median(x)                     quantile_cont(x, 0.5), exact                W    M
quantile_cont(x, q)           a[lo] + (r - lo)(a[hi] - a[lo]), r=q(n-1)   W    M
quantile_disc(x, q)           a[ceil(n q) - 1] of the sorted values       W    M
mode(x)                       most frequent; ties: first to occur         W    M
histogram(x)                  '{"1": 3, "2": 1}': count per text form     W    M
entropy(x)                    -sum p log2 p per distinct value; 0 empty   W    M
approx_count_distinct(v)      HyperLogLog, 2**14 registers, xxHash64      W    M
approx_quantile(x, q)         bounded merging t-digest, rank error 0.25%  W    M
============================  ==========================================  ===  ===

Here n is the number of rows (pairs), M2..M4 the central moment sums
(Welford / Terriberry updates, so data such as 1e9 + noise stays accurate where
the sum-of-squares formula collapses), Sxx, Syy the centred sums of squares
and Cxy the centred sum of products. Inverses apply the same updates with a
count of -1 (Chan / Pébay's pairwise formulas): sliding windows agree with
recomputing each frame to 1e-9 (relative), except that skewness and kurtosis
of a tiny frame whose spread collapses right after a far-off row left it
keep only 3-4 digits (a subtraction from the much larger earlier M4).
The regression family follows DuckDB on degenerate input: ``regr_r2`` is
the squared correlation of the population moments, so ``regr_r2(1e230 x,
x)``, whose Syy overflows, is 0 as in DuckDB; a slope over an overflowing
Sxx is 0, and NaN results (both overflow, one row) are NULL.

Every built-in is a window function, over ROWS, RANGE and GROUPS frames.
Counting and multiset states have an exact ``inverse`` (``mode``,
``histogram``, ``entropy`` and the quantiles remove one equal value). The
states that cannot forget a row (``arg_min``/``arg_max``'s best row, the
HyperLogLog registers, the t-digest) also keep the rows, in arrival order,
and after ``inverse`` rebuild their answer from the frame's rows, which
equals the function computed over that frame from scratch; they keep rows
only while a state has seen at most 2**20 (``frames.FRAME_LIMIT``, 8 to 16
bytes a row), so a sliding frame of more rows raises a clear error (frames
starting at UNBOUNDED PRECEDING never need ``inverse``).

Argument types: the moment functions, ``quantile_cont`` and
``approx_quantile`` take ``float``; ``bit_*`` take ``int`` (64-bit);
``bool_*`` take ``float`` (any nonzero number is true; SQLite's comparisons
give 0 or 1). The type-generic ones take ``fastagg.Value``, any SQL value
as it is, compared by SQLite's rules (NULL < numbers < text < blob;
integers and reals by value, so 1 and 1.0 are one value; text and blobs by
their bytes) and returned with their own type: ``mode``, ``arg_min``/
``arg_max``/``min_by``/``max_by`` (both ``arg`` and ``val``),
``quantile_disc``, ``median`` (numbers: the interpolating median, a real;
text or blobs: the middle value itself, as DuckDB's median of an ordinal
type), ``histogram``, ``entropy`` and ``approx_count_distinct``. ``q`` is a
constant in [0, 1] (DuckDB's negative "descending" q is not supported); the
first row's ``q`` is used, and one outside [0, 1] raises an error naming
the function and the argument.

Growable state: ``median`` and ``quantile_cont`` keep every number (8 bytes
a row) in a ``fastagg.vector``; ``mode``, ``quantile_disc``, ``histogram``,
``entropy`` and ``median``'s text keep every value in a value list
(:mod:`.valuelist`, 17 bytes a number, 9 plus the bytes for text). ``mode`` breaks ties as DuckDB does, by the
value that occurs first; DuckDB's answer is deterministic only with
``mode(x ORDER BY ...)`` (its threads reorder rows), fastagg's follows the
order in which rows reach the state (SQLite's row order; a window frame's
order, kept by ``inverse``; for merged partials, this state's rows first).
``histogram`` orders keys as DuckDB orders its map, in SQLite's order:
numbers by value, then text, then blobs, by their bytes; the JSON is that of Python's ``json.dumps``
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

The native grouped engine (``fastagg.explain`` says when it runs) passes
numbers only and never runs a window: over integer and real columns it
runs the *plain form* of the type-generic built-ins (:mod:`.plain`: the
same answers, no ``fastagg.Value`` per row, no kept window rows), and the
numeric ones as they are; a literal ``q`` is a constant argument there.
``histogram`` (a text result) and text or blob arguments run on SQLite.

One module per family, each state shape in one place:

- :mod:`.moments`: var_*, stddev_*, covar_*, corr (Welford states) and weighted_avg
- :mod:`.regression`: regr_* (the co-moment state of :mod:`.moments`)
- :mod:`.shape`: skewness, kurtosis, kurtosis_pop (third and fourth moments)
- :mod:`.products`: geomean, product, bool_and/or, bit_and/or/xor (counted, exactly invertible)
- :mod:`.extrema`: arg_min/arg_max, min_by/max_by and any_value
- :mod:`.quantiles`: median, quantile_cont, quantile_disc (every value in a vector)
- :mod:`.keys`: mode, histogram, entropy (counts per distinct value)
- :mod:`.sketches`: approx_count_distinct (HyperLogLog), approx_quantile (t-digest)
- :mod:`.plain`: numeric, window-free forms of the type-generic ones, for the native engine
- :mod:`.numhash`: the hash of a number without a ``fastagg.Value`` (HyperLogLog)
- :mod:`.frames`: the window form shared by states without an exact inverse
- :mod:`.valuelist`: a growable list of ``fastagg.Value`` (four vectors)
"""

from __future__ import annotations

from .extrema import AnyValue, ArgMax, ArgMin, MaxBy, MinBy
from .keys import Entropy, Histogram, Mode
from .moments import Corr, CovarPop, CovarSamp, Stddev, StddevPop, StddevSamp, Variance, VarPop, VarSamp, WeightedAvg
from .products import BitAnd, BitOr, BitXor, BoolAnd, BoolOr, Geomean, Product
from .quantiles import Median, QuantileCont, QuantileDisc
from .regression import RegrAvgX, RegrAvgY, RegrCount, RegrIntercept, RegrR2, RegrSlope, RegrSxx, RegrSxy, RegrSyy
from .shape import Kurtosis, KurtosisPop, Skewness
from .sketches import HLL_P, ApproxCountDistinct, ApproxQuantile
from . import plain as _plain  # noqa: F401 - the native engine's plain forms (hooks on the classes above)

__all__ = [
    "BUILTINS", "HLL_P",
    "VarSamp", "Variance", "VarPop", "StddevSamp", "Stddev", "StddevPop",
    "CovarSamp", "CovarPop", "Corr",
    "RegrSlope", "RegrIntercept", "RegrR2", "RegrCount", "RegrAvgX", "RegrAvgY",
    "RegrSxx", "RegrSyy", "RegrSxy",
    "Skewness", "Kurtosis", "KurtosisPop",
    "Geomean", "Product", "BoolAnd", "BoolOr", "BitAnd", "BitOr", "BitXor",
    "ArgMin", "ArgMax", "MinBy", "MaxBy", "AnyValue", "WeightedAvg",
    "Median", "QuantileCont", "QuantileDisc", "Mode", "Histogram", "Entropy",
    "ApproxCountDistinct", "ApproxQuantile",
]  # fmt: skip

BUILTINS: tuple[type, ...] = (
    VarSamp, Variance, VarPop, StddevSamp, Stddev, StddevPop,
    CovarSamp, CovarPop, Corr,
    RegrSlope, RegrIntercept, RegrR2, RegrCount, RegrAvgX, RegrAvgY,
    RegrSxx, RegrSyy, RegrSxy,
    Skewness, Kurtosis, KurtosisPop,
    Geomean, Product, BoolAnd, BoolOr, BitAnd, BitOr, BitXor,
    ArgMin, ArgMax, MinBy, MaxBy, AnyValue, WeightedAvg,
    Median, QuantileCont, QuantileDisc, Mode, Histogram, Entropy,
    ApproxCountDistinct, ApproxQuantile,
)  # fmt: skip
"""Every built-in aggregate class, aliases included, for ``fastagg.register``."""
