"""Products over reals, booleans and bits: geomean, product, bool_and/or, bit_and/or/xor.

Each keeps its state exactly invertible, so each is a window function:
zeros, negatives and infinities are counted apart from the finite product,
booleans as counts of true and false rows, bits as a count per bit (XOR is
its own inverse).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from ..compile.spec import aggregate, array

__all__ = ["Geomean", "Product", "BoolAnd", "BoolOr", "BitAnd", "BitOr", "BitXor"]


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


@numba.njit(cache=True)
def _bits_counted(counts, least):
    """The 64-bit integer with bit *b* set where ``counts[b] >= least`` (bit 63 the sign)."""
    r = 0
    for b in range(63):
        if counts[b] >= least:
            r |= 1 << b
    if counts[63] >= least:
        r += _INT64_MIN
    return r


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
        return _bits_counted(self.counts, self.n)  # every row has the bit


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
        return _bits_counted(self.counts, 1)  # some row has the bit


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

