"""Plain forms of the built-ins that take ``fastagg.Value``: numeric arguments, no window state.

The native grouped engine (:mod:`fastagg.engine`) passes numbers only and
never runs a window. For an integer or real column it asks an aggregate
class for its *plain form* (``cls.__fastagg_plain_form__(kinds)``, see
:func:`fastagg.engine.shape.plain_form`): one of the classes here, which
gives the answer the type-generic class gives over such a column, exactly,
without a ``fastagg.Value`` per row and without the rows a window form
keeps (``arg_*``, the sketches). SQLite keeps running the type-generic
classes; these have SQL names of their own (``<name>__int``,
``<name>__real``) that no statement calls.

Equal answers: a column holds one kind of number, so SQLite's order and
equality are the numbers' own; the first of equal rows wins where the
type-generic class says so (``mode``, ``arg_*``, ``quantile_disc`` of
``0.0`` / ``-0.0``); float sums run in the same order (``entropy``).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from ..compile.spec import aggregate, array
from ..compile.vector import vector
from .extrema import AnyValue, ArgMax, ArgMin
from .keys import Entropy, Mode, _entropy
from .numhash import int_hash, real_hash
from .quantiles import Median, QuantileDisc, _check_q_disc, _quantile_cont, _quantile_disc_index, select_in_place
from .sketches import (
    ApproxCountDistinct, ApproxQuantile,
    hll_grouped, hll_merge, hll_result, hll_step, tdigest_result, tdigest_step,
)

__all__ = ["PLAIN_FORMS"]

# --------------------------------------------------------------------------
# approx_count_distinct: HyperLogLog, sparse while small (the state and its
# functions are :mod:`.sketches`', shared with the type-generic class)


@aggregate(name="approx_count_distinct__int")
class ApproxCountDistinctInt:
    """``approx_count_distinct`` of an integer column: the same registers, sparse while small.

    Examples
    --------
    >>> s = ApproxCountDistinctInt()
    >>> for v in (1, 2, 1):
    ...     s.step(v)
    >>> s.finalize()
    2
    """

    entries: vector(np.uint32)
    registers: vector(np.uint8)

    def step(self, v: int):
        hll_step(self, int_hash(v))

    def merge(self, other):
        hll_merge(self, other)

    def finalize(self) -> int:
        return hll_result(self)


@aggregate(name="approx_count_distinct__real")
class ApproxCountDistinctReal:
    """``approx_count_distinct`` of a real column (1.0 hashes as 1, as in the type-generic class).

    Examples
    --------
    >>> s = ApproxCountDistinctReal(); s.step(1.5); s.step(1.5); s.finalize()
    1
    """

    entries: vector(np.uint32)
    registers: vector(np.uint8)

    def step(self, v: float):
        hll_step(self, real_hash(v))

    def merge(self, other):
        hll_merge(self, other)

    def finalize(self) -> int:
        return hll_result(self)


# A grouped statement hands the whole column to one kernel (the same entries,
# counts and estimate as these states give, without a vector per group).
ApproxCountDistinctInt.__fastagg_grouped__ = staticmethod(hll_grouped)
ApproxCountDistinctReal.__fastagg_grouped__ = staticmethod(hll_grouped)


# --------------------------------------------------------------------------
# approx_quantile: the t-digest without the kept rows


@aggregate(name="approx_quantile__plain")
class ApproxQuantilePlain:
    """``approx_quantile`` without its window form's rows: the same digest, step by step.

    Examples
    --------
    >>> s = ApproxQuantilePlain()
    >>> for x in (1.0, 2.0, 3.0, 10.0):
    ...     s.step(x, 0.5)
    >>> s.finalize()
    2.5
    """

    means: vector(np.float64)
    weights: vector(np.float64)
    buffer: vector(np.float64)
    count: np.float64
    lo: np.float64
    hi: np.float64
    q: np.float64

    def step(self, x: float, q: float):
        tdigest_step(self, x, q)

    def finalize(self) -> float | None:
        return tdigest_result(self)


# --------------------------------------------------------------------------
# median, quantile_disc: the numbers in a vector


@aggregate(name="median__real")
class MedianReal:
    """``median`` of a numeric column: ``quantile_cont(x, 0.5)`` of the numbers, a real.

    Examples
    --------
    >>> s = MedianReal(); s.step(4.0); s.step(1.0); s.step(2.0); s.finalize()
    2.0
    """

    values: vector(np.float64)

    def step(self, x: float):
        self.values.append(x)

    def merge(self, other):
        # The engine merges row ranges in order: appending keeps the values in row order.
        self.values.extend(other.values.as_array())

    def finalize(self) -> float | None:
        if len(self.values) == 0:
            return None
        return _quantile_cont(self.values.as_array(), 0.5)


@numba.njit(cache=True, nogil=True)
def _median_segments(values, starts, lo, hi, out, null):
    """:class:`MedianReal` over groups ``lo..hi-1`` of the engine's segment layout (each group's values in row order)."""
    for g in range(lo, hi):
        s, e = starts[g], starts[g + 1]
        if s == e:
            null[g] = 1
        else:
            out[g] = _quantile_cont(values[s:e], 0.5)


MedianReal.__fastagg_segments__ = _median_segments


@numba.njit(cache=True)
def _select(a, k):
    """``a[order[k]]`` for the stable ascending order of *a* (the first of equal values first); reorders *a*.

    Equal numbers are identical but for the zeros: when the k-th in sorted
    order is a zero, it is the zero that arrived at that place among the
    zeros, found before *a* is reordered.
    """
    below = 0
    zeros = 0
    for x in a:
        if x < 0:
            below += 1
        elif x == 0:
            zeros += 1
    if below <= k < below + zeros:
        j = k - below
        for x in a:
            if x == 0:
                if j == 0:
                    return x
                j -= 1
    return select_in_place(a, k)


@aggregate(name="quantile_disc__int")
class QuantileDiscInt:
    """``quantile_disc`` of an integer column: an integer.

    Examples
    --------
    >>> s = QuantileDiscInt()
    >>> for x in (10, 1, 4, 2):
    ...     s.step(x, 0.5)
    >>> s.finalize()
    2
    """

    values: vector(np.int64)
    q: np.float64

    def step(self, x: int, q: float):
        if len(self.values) == 0:
            _check_q_disc(q)
            self.q = q
        self.values.append(x)

    def merge(self, other):
        # The engine merges row ranges in order: appending keeps the values in row order.
        self.values.extend(other.values.as_array())

    def finalize(self) -> int | None:
        n = len(self.values)
        if n == 0:
            return None
        return _select(self.values.as_array(), _quantile_disc_index(n, self.q))


@aggregate(name="quantile_disc__real")
class QuantileDiscReal:
    """``quantile_disc`` of a real column: a real.

    Examples
    --------
    >>> s = QuantileDiscReal()
    >>> for x in (10.0, 1.0, 4.0, 2.0):
    ...     s.step(x, 0.5)
    >>> s.finalize()
    2.0
    """

    values: vector(np.float64)
    q: np.float64

    def step(self, x: float, q: float):
        if len(self.values) == 0:
            _check_q_disc(q)
            self.q = q
        self.values.append(x)

    def merge(self, other):
        # The engine merges row ranges in order: appending keeps the values in row order.
        self.values.extend(other.values.as_array())

    def finalize(self) -> float | None:
        n = len(self.values)
        if n == 0:
            return None
        return _select(self.values.as_array(), _quantile_disc_index(n, self.q))


# --------------------------------------------------------------------------
# mode, entropy: counts of equal numbers


#: Groups of at most this many values are counted without allocating (quadratic scans).
_SMALL = 16


@numba.njit(cache=True)
def _mode_of(a):
    """The most frequent of *a*; on a tie, the value that occurs first (and that occurrence)."""
    n = len(a)
    if n <= _SMALL:  # the earliest value of the greatest count: the same rule, no sort
        best = 0
        best_count = 0
        for i in range(n):
            earlier = False
            for j in range(i):
                if a[j] == a[i]:
                    earlier = True
                    break
            if earlier:
                continue
            c = 0
            for j in range(i, n):
                if a[j] == a[i]:
                    c += 1
            if c > best_count:
                best_count = c
                best = i
        return a[best]
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


@numba.njit(cache=True)
def _run_counts(a):
    """Counts of the distinct values of *a*, in ascending order."""
    b = np.sort(a)
    counts = np.zeros(len(b), np.int64)
    m = 0
    for k in range(len(b)):
        if k == 0 or b[k] != b[k - 1]:
            m += 1
        counts[m - 1] += 1
    return counts[:m]


@numba.njit(cache=True)
def _entropy_of(a):
    """:func:`.keys._entropy` of the counts of *a*'s distinct values in ascending order; reorders *a*.

    The same terms added in the same order (ascending values), so the same bits.
    """
    n = len(a)
    if n > _SMALL:
        return _entropy(_run_counts(a))
    for i in range(1, n):  # insertion sort in place
        x = a[i]
        j = i - 1
        while j >= 0 and a[j] > x:
            a[j + 1] = a[j]
            j -= 1
        a[j + 1] = x
    h = 0.0
    c = 0
    for k in range(n):
        c += 1
        if k + 1 == n or a[k + 1] != a[k]:
            p = c / n
            h -= p * math.log2(p)
            c = 0
    return h


@aggregate(name="mode__int")
class ModeInt:
    """``mode`` of an integer column.

    Examples
    --------
    >>> s = ModeInt()
    >>> for x in (3, 1, 1, 3):
    ...     s.step(x)
    >>> s.finalize()
    3
    """

    values: vector(np.int64)

    def step(self, x: int):
        self.values.append(x)

    def merge(self, other):
        # The engine merges row ranges in order: appending keeps the values in row order.
        self.values.extend(other.values.as_array())

    def finalize(self) -> int | None:
        if len(self.values) == 0:
            return None
        return _mode_of(self.values.as_array())


@aggregate(name="mode__real")
class ModeReal:
    """``mode`` of a real column.

    Examples
    --------
    >>> s = ModeReal(); s.step(2.5); s.step(1.0); s.step(2.5); s.finalize()
    2.5
    """

    values: vector(np.float64)

    def step(self, x: float):
        self.values.append(x)

    def merge(self, other):
        # The engine merges row ranges in order: appending keeps the values in row order.
        self.values.extend(other.values.as_array())

    def finalize(self) -> float | None:
        if len(self.values) == 0:
            return None
        return _mode_of(self.values.as_array())


@aggregate(name="entropy__int")
class EntropyInt:
    """``entropy`` of an integer column.

    Examples
    --------
    >>> s = EntropyInt()
    >>> for x in (1, 2, 2, 3):
    ...     s.step(x)
    >>> s.finalize()
    1.5
    """

    values: vector(np.int64)

    def step(self, x: int):
        self.values.append(x)

    def merge(self, other):
        # The engine merges row ranges in order: appending keeps the values in row order.
        self.values.extend(other.values.as_array())

    def finalize(self) -> float:
        if len(self.values) == 0:
            return 0.0
        return _entropy_of(self.values.as_array())


@aggregate(name="entropy__real")
class EntropyReal:
    """``entropy`` of a real column.

    Examples
    --------
    >>> s = EntropyReal(); s.step(1.0); s.step(2.0); s.finalize()
    1.0
    """

    values: vector(np.float64)

    def step(self, x: float):
        self.values.append(x)

    def merge(self, other):
        # The engine merges row ranges in order: appending keeps the values in row order.
        self.values.extend(other.values.as_array())

    def finalize(self) -> float:
        if len(self.values) == 0:
            return 0.0
        return _entropy_of(self.values.as_array())


# --------------------------------------------------------------------------
# arg_min, arg_max: the best (arg, val) pair, first row on a tie


class _BestII:
    """The best (arg, val) so far of an integer arg and an integer val (not registered)."""

    n: np.int64
    arg: np.int64
    val: np.int64

    def finalize(self) -> int | None:
        return None if self.n == 0 else self.arg


class _BestIR:
    """Integer arg, real val (not registered)."""

    n: np.int64
    arg: np.int64
    val: np.float64

    def finalize(self) -> int | None:
        return None if self.n == 0 else self.arg


class _BestRI:
    """Real arg, integer val (not registered)."""

    n: np.int64
    arg: np.float64
    val: np.int64

    def finalize(self) -> float | None:
        return None if self.n == 0 else self.arg


class _BestRR:
    """Real arg, real val (not registered)."""

    n: np.int64
    arg: np.float64
    val: np.float64

    def finalize(self) -> float | None:
        return None if self.n == 0 else self.arg


# Only a strictly better val replaces the best: the first of equal rows wins.


@aggregate(name="arg_min__int_int")
class ArgMinII(_BestII):
    """Plain ``arg_min`` of integer arg and val columns.

    Examples
    --------
    >>> s = ArgMinII(); s.step(10, 3); s.step(20, 1); s.step(30, 1); s.finalize()
    20
    """

    def step(self, arg: int, val: int):
        if self.n == 0 or val < self.val:
            self.arg = arg
            self.val = val
        self.n += 1


@aggregate(name="arg_min__int_real")
class ArgMinIR(_BestIR):
    """Plain ``arg_min``, integer arg, real val."""

    def step(self, arg: int, val: float):
        if self.n == 0 or val < self.val:
            self.arg = arg
            self.val = val
        self.n += 1


@aggregate(name="arg_min__real_int")
class ArgMinRI(_BestRI):
    """Plain ``arg_min``, real arg, integer val."""

    def step(self, arg: float, val: int):
        if self.n == 0 or val < self.val:
            self.arg = arg
            self.val = val
        self.n += 1


@aggregate(name="arg_min__real_real")
class ArgMinRR(_BestRR):
    """Plain ``arg_min``, real arg and val."""

    def step(self, arg: float, val: float):
        if self.n == 0 or val < self.val:
            self.arg = arg
            self.val = val
        self.n += 1


@aggregate(name="arg_max__int_int")
class ArgMaxII(_BestII):
    """Plain ``arg_max`` of integer arg and val columns.

    Examples
    --------
    >>> s = ArgMaxII(); s.step(10, 3); s.step(20, 5); s.step(30, 5); s.finalize()
    20
    """

    def step(self, arg: int, val: int):
        if self.n == 0 or val > self.val:
            self.arg = arg
            self.val = val
        self.n += 1


@aggregate(name="arg_max__int_real")
class ArgMaxIR(_BestIR):
    """Plain ``arg_max``, integer arg, real val."""

    def step(self, arg: int, val: float):
        if self.n == 0 or val > self.val:
            self.arg = arg
            self.val = val
        self.n += 1


@aggregate(name="arg_max__real_int")
class ArgMaxRI(_BestRI):
    """Plain ``arg_max``, real arg, integer val."""

    def step(self, arg: float, val: int):
        if self.n == 0 or val > self.val:
            self.arg = arg
            self.val = val
        self.n += 1


@aggregate(name="arg_max__real_real")
class ArgMaxRR(_BestRR):
    """Plain ``arg_max``, real arg and val."""

    def step(self, arg: float, val: float):
        if self.n == 0 or val > self.val:
            self.arg = arg
            self.val = val
        self.n += 1


_BEST = {
    (True, "int", "int"): ArgMinII, (True, "int", "float"): ArgMinIR,
    (True, "float", "int"): ArgMinRI, (True, "float", "float"): ArgMinRR,
    (False, "int", "int"): ArgMaxII, (False, "int", "float"): ArgMaxIR,
    (False, "float", "int"): ArgMaxRI, (False, "float", "float"): ArgMaxRR,
}


@aggregate(name="any_value__int")
class AnyValueInt:
    """Plain ``any_value`` of an integer column: the first non-NULL value.

    Examples
    --------
    >>> s = AnyValueInt(); s.step(4); s.step(1); s.finalize()
    4
    """

    n: np.int64
    first: np.int64

    def step(self, x: int):
        if self.n == 0:
            self.first = x
        self.n += 1

    def finalize(self) -> int | None:
        return None if self.n == 0 else self.first


@aggregate(name="any_value__real")
class AnyValueReal:
    """Plain ``any_value`` of a real column."""

    n: np.int64
    first: np.float64

    def step(self, x: float):
        if self.n == 0:
            self.first = x
        self.n += 1

    def finalize(self) -> float | None:
        return None if self.n == 0 else self.first


# --------------------------------------------------------------------------
# The hooks the engine asks


def _one(int_cls, real_cls):
    def plain(kinds):
        return int_cls if kinds[0] == "int" else real_cls

    return staticmethod(plain)


ApproxCountDistinct.__fastagg_plain_form__ = _one(ApproxCountDistinctInt, ApproxCountDistinctReal)
ApproxQuantile.__fastagg_plain_form__ = staticmethod(lambda kinds: ApproxQuantilePlain)
Median.__fastagg_plain_form__ = staticmethod(lambda kinds: MedianReal)
QuantileDisc.__fastagg_plain_form__ = _one(QuantileDiscInt, QuantileDiscReal)
Mode.__fastagg_plain_form__ = _one(ModeInt, ModeReal)
Entropy.__fastagg_plain_form__ = _one(EntropyInt, EntropyReal)
AnyValue.__fastagg_plain_form__ = _one(AnyValueInt, AnyValueReal)
ArgMin.__fastagg_plain_form__ = staticmethod(lambda kinds: _BEST[True, kinds[0], kinds[1]])
ArgMax.__fastagg_plain_form__ = staticmethod(lambda kinds: _BEST[False, kinds[0], kinds[1]])

PLAIN_FORMS: tuple[type, ...] = (
    ApproxCountDistinctInt, ApproxCountDistinctReal, ApproxQuantilePlain, MedianReal, QuantileDiscInt,
    QuantileDiscReal, ModeInt, ModeReal, EntropyInt, EntropyReal, AnyValueInt, AnyValueReal, *_BEST.values(),
)  # fmt: skip
"""Every plain form, for ahead-of-time compilation (``fastagg.warmup``)."""
