"""Counting distinct values: mode, histogram, entropy.

Each keeps every value of the group, any-typed (``fastagg.Value``), in a
value list (:mod:`.valuelist`), in arrival order, and counts distinct
values at ``finalize`` with one stable sort in SQLite's order (1 = 1.0):
``mode`` for its first-occurrence rule on ties, ``histogram`` for DuckDB's
map order, written with each key's SQLite text form.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from ..compile.spec import aggregate
from ..compile.vector import vector
from ..compile.float_repr import put_fixed
from ..compile.value import Value
from ..native.utf8 import utf8_array_to_str
from ..native.anyvalue import INTEGER, REAL
from .valuelist import at_compare, at_parts, list_append, list_extend, list_get, list_remove_first, sorted_order

__all__ = ["Mode", "Histogram", "Entropy"]


@numba.njit(cache=True)
def _mode_index(tags, payload, data, ends):
    """Index of the most frequent value (SQLite's equality); on a tie the one that occurs first."""
    n = len(tags)
    order = sorted_order(tags, payload, data, ends)  # stable: a run starts at its first occurrence
    best_first = order[0]
    best_count = 0
    i = 0
    while i < n:
        first = order[i]
        j = i + 1
        while j < n and at_compare(tags, payload, data, ends, order[j], first) == 0:
            j += 1
        if j - i > best_count or (j - i == best_count and first < best_first):
            best_count = j - i
            best_first = first
        i = j
    return best_first


class _Keys:
    """Every value of the group, in a value list (not registered).

    Values are any-typed (``fastagg.Value``) and counted by SQLite's
    equality at ``finalize``: the integer 1 and the real 1.0 are one value,
    the text '1' another.
    """

    tags: vector(np.uint8)
    payload: vector(np.int64)
    data: vector(np.uint8)
    ends: vector(np.int64)

    def step(self, x: Value):
        list_append(self.tags, self.payload, self.data, self.ends, x)

    def inverse(self, x: Value):
        list_remove_first(self.tags, self.payload, self.data, self.ends, x)

    def merge(self, other):
        list_extend(self.tags, self.payload, self.data, self.ends, other.tags, other.payload, other.data, other.ends)

    def finalize(self) -> str | None:
        raise NotImplementedError


@aggregate(name="mode")
class Mode(_Keys):
    """Most frequent value; on a tie, the value that occurs first (DuckDB's rule).

    SQL: ``mode(x)`` of any type; NULL for no rows. The result is the value
    itself, with its own type (an integer column's mode is an integer, a
    text column's a text). Values are equal by SQLite's rules, so the
    integer 1 and the real 1.0 are one value (the first to occur is
    returned). "First" is the order of the rows the state received: in a
    grouped query SQLite's row order, in a window frame the frame's order
    (``inverse`` removes a row keeping the others in order), and for merged
    partial states this state's rows, then the other's, so partials merged
    in row order give the one-pass answer. A window function; mergeable.

    Attributes
    ----------
    tags, payload, data, ends : fastagg.vector
        The values in arrival order (see :mod:`.valuelist`).

    Examples
    --------
    >>> s = Mode()
    >>> for x in (3, "a", "a", 3, 2.5):
    ...     s.step(x)
    >>> s.finalize()
    3
    """

    def finalize(self) -> Value | None:
        if len(self.tags) == 0:
            return None
        i = _mode_index(self.tags.as_array(), self.payload.as_array(), self.data.as_array(), self.ends.as_array())
        return list_get(self.tags, self.payload, self.data, self.ends, i)


@numba.njit(cache=True)
def _put_int(out, p, i):
    """Write integer *i* in decimal at ``out[p:]``; return the end."""
    if i == 0:
        out[p] = 48
        return p + 1
    digits = np.empty(20, np.uint8)
    nd = 0
    negative = i < 0
    while i != 0:
        d = i % 10
        if negative and d > 0:  # floor modulo: the digit of the magnitude
            d -= 10
        digits[nd] = 48 + abs(d)
        nd += 1
        i = (i - d) // 10
    if negative:
        out[p] = 45
        p += 1
    for k in range(nd - 1, -1, -1):
        out[p] = digits[k]
        p += 1
    return p


@numba.njit(cache=True)
def _two_product(a, b):
    """``a * b`` as an unevaluated sum ``hi + lo``, exactly (Dekker, Veltkamp's split)."""
    p = a * b
    c = 134217729.0 * a
    ah = c - (c - a)
    al = a - ah
    c = 134217729.0 * b
    bh = c - (c - b)
    bl = b - bh
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


@numba.njit(cache=True)
def _scaled15(a, e):
    """``round(a * 10**(14 - e))``: the 15 significant digits of *a* given its decimal exponent.

    For ``1e-8 <= a < 1e15`` the power of ten is exact and the product is
    formed exactly, so the digits are correctly rounded, as SQLite's;
    elsewhere within an ulp of a rounding tie they may differ in the last.
    """
    k = 14 - e
    if 0 <= k <= 22:
        hi, lo = _two_product(a, 10.0**k)
        base = math.floor(hi)
        frac = (hi - base) + lo
        if frac >= 0.5:
            return base + 1.0
        if frac < -0.5:
            return base - 1.0
        if frac < 0.0 and frac >= -0.5:
            return base if frac > -0.5 else base - 1.0
        return base
    if k > 300:
        return round(a * 1e300 * 10.0 ** (k - 300))
    if k >= 0:
        return round(a * 10.0**k)
    return round(a / 10.0 ** (-k))


@numba.njit(cache=True)
def _put_real(out, p, f):
    """Write real *f* at ``out[p:]`` as SQLite's text form, ``%!.15g``; return the end.

    15 significant digits, trailing zeros dropped but a ``.0`` kept
    (``3.0``, ``1.0e+20``, ``2.5e-07``), ``Inf``/``-Inf``. The digits are
    those of the double scaled by an exact power of ten and rounded, which
    is SQLite's answer except within an ulp of a rounding tie.
    """
    if f != f:
        return p  # SQLite stores no NaN
    if f < 0:
        out[p] = 45
        p += 1
        f = -f
    if f == math.inf:
        for b in (73, 110, 102):  # Inf
            out[p] = b
            p += 1
        return p
    if f == 0.0:
        out[p] = 48
        out[p + 1] = 46
        out[p + 2] = 48
        return p + 3
    e = int(math.floor(math.log10(f)))
    m = _scaled15(f, e)
    if m >= 1e15:
        e += 1
        m = _scaled15(f, e)
    elif m < 1e14:
        e -= 1
        m = _scaled15(f, e)
    mi = np.int64(m)
    if mi >= 1000000000000000:  # rounding carried into a 16th digit
        mi //= 10
        e += 1
    digits = np.empty(15, np.uint8)
    for k in range(14, -1, -1):
        digits[k] = 48 + mi % 10
        mi //= 10
    nd = 15
    while nd > 1 and digits[nd - 1] == 48:
        nd -= 1
    if e < -4 or e >= 15:
        out[p] = digits[0]
        out[p + 1] = 46
        p += 2
        if nd == 1:
            out[p] = 48
            p += 1
        for k in range(1, nd):
            out[p] = digits[k]
            p += 1
        out[p] = 101  # e
        out[p + 1] = 45 if e < 0 else 43
        p += 2
        ae = abs(e)
        if ae < 10:
            out[p] = 48
            p += 1
        return _put_int(out, p, ae)
    return put_fixed(out, p, digits, nd, e)


@numba.njit(cache=True)
def _distinct_runs(tags, payload, data, ends):
    """Distinct values in SQLite's order: (first index of each, count of each).

    Equal by SQLite's rules (1 = 1.0); each run is represented by its
    first occurrence.
    """
    n = len(tags)
    order = sorted_order(tags, payload, data, ends)
    firsts = np.empty(n, np.int64)
    counts = np.zeros(n, np.int64)
    m = 0
    for k in range(n):
        if k == 0 or at_compare(tags, payload, data, ends, order[k], order[k - 1]) != 0:
            firsts[m] = order[k]
            m += 1
        counts[m - 1] += 1
    return firsts[:m], counts[:m]


@numba.njit(cache=True)
def _key_texts(tags, payload, data, ends, firsts):
    """The text form of each value ``firsts[k]``, concatenated: (bytes, starts, stops)."""
    size = 0
    for r in firsts:
        size += 32 + ends[r] - (ends[r - 1] if r > 0 else 0)
    out = np.empty(size, np.uint8)
    starts = np.empty(len(firsts), np.int64)
    stops = np.empty(len(firsts), np.int64)
    p = 0
    for k in range(len(firsts)):
        starts[k] = p
        tag, ival, fval, b = at_parts(tags, payload, data, ends, firsts[k])
        if tag == INTEGER:
            p = _put_int(out, p, ival)
        elif tag == REAL:
            p = _put_real(out, p, fval)
        else:
            out[p : p + len(b)] = b
            p += len(b)
        stops[k] = p
    return out[:p], starts, stops


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


@aggregate(name="histogram")
class Histogram(_Keys):
    """Count of each distinct value, as JSON object text ``{"1": 3, "2": 1}``.

    SQL: ``histogram(x)`` of any type; NULL for no rows (as DuckDB).
    Values are distinct by SQLite's equality, so the integer 1 and the real
    1.0 are one key (written as the first to occur), the text '1' another.
    Keys are in SQLite's order, as DuckDB orders its map: numbers by value,
    then text, then blobs, each by its bytes; a key is the value's text form
    (SQLite's ``CAST(x AS TEXT)``: integers ``3``, reals ``3.0``, ``1.5``,
    ``1.0e+20`` with 15 significant digits, text as it is), JSON-escaped.
    DuckDB's ``to_json(histogram(x))`` has the same keys and counts for
    integer and text columns (its JSON has no spaces; reals print in its
    own shortest form there). A window function (``inverse`` removes one
    equal value); mergeable.

    Attributes
    ----------
    tags, payload, data, ends : fastagg.vector
        The values (see :mod:`.valuelist`).

    Examples
    --------
    >>> s = Histogram()
    >>> for x in (3, 1, 1.0, 10, "1"):
    ...     s.step(x)
    >>> s.finalize()
    '{"1": 2, "3": 1, "10": 1, "1": 1}'
    """

    def finalize(self) -> str | None:
        if len(self.tags) == 0:
            return None
        tags = self.tags.as_array()
        payload = self.payload.as_array()
        data = self.data.as_array()
        ends = self.ends.as_array()
        firsts, counts = _distinct_runs(tags, payload, data, ends)
        text, starts, stops = _key_texts(tags, payload, data, ends, firsts)
        return _histogram_json(text, starts, stops, np.arange(len(firsts)), counts)


@aggregate(name="entropy")
class Entropy(_Keys):
    """Shannon entropy in bits of the distinct values, ``-sum p log2 p``.

    SQL: ``entropy(x)`` of any type, with ``p = count / n`` per distinct
    value (by SQLite's equality, as :class:`Histogram`); 0.0 for no rows,
    as DuckDB. A window function; mergeable.

    Examples
    --------
    >>> s = Entropy()
    >>> for x in (1, 2, 2.0, "3"):
    ...     s.step(x)
    >>> s.finalize()
    1.5
    """

    def finalize(self) -> float:
        if len(self.tags) == 0:
            return 0.0
        firsts, counts = _distinct_runs(
            self.tags.as_array(), self.payload.as_array(), self.data.as_array(), self.ends.as_array()
        )
        return _entropy(counts)
