"""Bounded sketches: approx_count_distinct (HyperLogLog) and approx_quantile (t-digest).

Their state is bounded however many rows a group has, and merges across
processes. As window functions they also keep the frame's rows (up to
:data:`.frames.FRAME_LIMIT`) and rebuild the sketch from them after a row
leaves the frame: a sketch has no exact inverse.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba.cpython.unsafe.numbers import leading_zeros
from numba.extending import register_jitable

from ..compile.spec import aggregate, array
from ..compile.value import Value
from ..native.anyvalue import value_parts
from .numhash import number_hash, value_hash
from ..compile.vector import vector
from .frames import FRAME_LIMIT, check_rows_kept, move_to_end

__all__ = [
    "ApproxCountDistinct", "ApproxQuantile", "HLL_P", "SPARSE_LIMIT", "hll_add", "hll_entry", "hll_estimate",
    "hll_grouped", "hll_merge", "hll_result", "hll_step", "register_counts", "sparse_counts",
    "tdigest_step", "tdigest_result",
]


# --------------------------------------------------------------------------
# approx_count_distinct: HyperLogLog

HLL_P = 14  # 2**14 registers: standard error 1.04 / 128 = 0.81%


@numba.njit(cache=True)
def hll_add(registers, h):
    """Add hash *h*: the first HLL_P bits pick a register, which keeps the rank of the rest."""
    index = int(h >> np.uint64(64 - HLL_P))
    rest = h << np.uint64(HLL_P)
    rank = 1
    top = np.uint64(1) << np.uint64(63)
    while rank <= 64 - HLL_P and (rest & top) == np.uint64(0):
        rest = rest << np.uint64(1)
        rank += 1
    if rank > registers[index]:
        registers[index] = rank


SPARSE_LIMIT = 4096
"""Registers a HyperLogLog state keeps as a list (4 bytes each) before it builds all 2**14 (16 KB)."""

_Q = 64 - HLL_P


@numba.njit(cache=True, inline="always")
def hll_entry(h):
    """Hash *h* as its register: ``index << 6 | rank`` with :func:`hll_add`'s index and rank."""
    h = np.uint64(h)
    rank = min(leading_zeros(h << np.uint64(HLL_P)), _Q) + 1
    return np.uint32((h >> np.uint64(_Q)) << np.uint64(6)) | np.uint32(rank)


@numba.njit(cache=True)
def sparse_counts(entries):
    """Ertl's register counts of the registers the *entries* (:func:`hll_entry`) fill; may reorder *entries*."""
    k = len(entries)
    counts = np.zeros(_Q + 2, np.int64)
    distinct = 0
    if k <= 128:  # few: sorted by (index, rank), the last of each index is its register
        if k <= 16:  # in place, no allocation (the entries are the state's, freed after finalize)
            keys = entries
            for i in range(1, k):
                e = keys[i]
                j = i - 1
                while j >= 0 and keys[j] > e:
                    keys[j + 1] = keys[j]
                    j -= 1
                keys[j + 1] = e
        else:
            keys = np.sort(entries)
        for j in range(k):
            if j + 1 == k or keys[j + 1] >> 6 != keys[j] >> 6:
                counts[keys[j] & 63] += 1
                distinct += 1
    else:
        registers = np.zeros(2**HLL_P, np.uint8)
        for e in entries:
            i = e >> 6
            r = np.uint8(e & 63)
            if r > registers[i]:
                registers[i] = r
        for e in entries:
            i = e >> 6
            r = registers[i]
            if r != 0:
                counts[r] += 1
                distinct += 1
                registers[i] = 0
    counts[0] = 2**HLL_P - distinct
    return counts


@register_jitable
def _hll_densify(s):
    """Build the 2**14 registers from the entries and drop the entries (the state is dense from now on)."""
    s.registers.extend(np.zeros(2**HLL_P, np.uint8))
    r = s.registers.as_array()
    for e in s.entries.as_array():
        if np.uint8(e & 63) > r[e >> 6]:
            r[e >> 6] = np.uint8(e & 63)
    s.entries.clear()


@register_jitable
def hll_step(s, h):
    """Add hash *h* to a sparse-while-small HyperLogLog state (``entries``, ``registers`` vectors)."""
    if len(s.registers) == 0:
        s.entries.append(hll_entry(h))
        if len(s.entries) > SPARSE_LIMIT:
            _hll_densify(s)
    else:
        hll_add(s.registers.as_array(), h)


@register_jitable
def hll_merge(s, other):
    """Merge *other*'s sketch into *s*: the element-wise maximum of their registers, sparse or dense."""
    if len(other.registers) != 0:
        if len(s.registers) == 0:
            _hll_densify(s)
        r = s.registers.as_array()
        o = other.registers.as_array()
        for i in range(2**HLL_P):
            if o[i] > r[i]:
                r[i] = o[i]
    elif len(s.registers) == 0:
        s.entries.extend(other.entries.as_array())
        if len(s.entries) > SPARSE_LIMIT:
            _hll_densify(s)
    else:
        r = s.registers.as_array()
        for e in other.entries.as_array():
            if np.uint8(e & 63) > r[e >> 6]:
                r[e >> 6] = np.uint8(e & 63)


@register_jitable
def hll_result(s):
    """The estimate of a sparse-while-small HyperLogLog state."""
    if len(s.registers) == 0:
        return hll_estimate(sparse_counts(s.entries.as_array()))
    return hll_estimate(register_counts(s.registers.as_array()))


@aggregate(name="approx_count_distinct")
class ApproxCountDistinct:
    """Approximate number of distinct values, by HyperLogLog.

    SQL: ``approx_count_distinct(v)`` of any type; 0 for no rows. Each value
    is hashed with the fixed hash of :func:`fastagg.native.anyvalue.parts_hash`
    (xxHash64, seed 0, of a blob's bytes; numbers by value, so the integer 1
    and the real 1.0 are one value; text apart from blobs), so registers
    built in different processes merge (element-wise maximum). The first 14 bits of
    the hash pick one of 16,384 registers, which keeps the longest run of
    leading zeros (+1) of the other 50 bits. The estimate is Ertl's improved
    raw estimator (arXiv:1702.01284), unbiased from 0 to well beyond 10**9
    without bias tables; standard error 0.81%. A small group keeps its
    registers as a list (4 bytes a row, see :data:`SPARSE_LIMIT`) and builds
    all 16 KB only after that many rows, so a million small groups do not
    take 16 GB; the estimate is the same either way. A window function: the
    state also keeps each row's hash (while it has seen at most
    ``FRAME_LIMIT`` rows, see :mod:`.frames`), and after ``inverse`` the
    registers are rebuilt from the hashes of the frame's rows.


    Attributes
    ----------
    entries : fastagg.vector(np.uint32)
        While sparse: one ``index << 6 | rank`` entry a row (:func:`hll_entry`).
    registers : fastagg.vector(np.uint8)
        Once dense: 2**14 leading-zero ranks, 0 for an empty register; empty while sparse.
    n : np.int64
        Rows seen (in the frame).
    stale : np.bool_
        A row left the frame: the registers need rebuilding.
    hashes : fastagg.vector(np.uint64)
        Every row's hash, while there are at most ``FRAME_LIMIT``.

    Examples
    --------
    >>> s = ApproxCountDistinct()
    >>> for v in ("a", "b", "a", 1, 1.0):
    ...     s.step(v)
    >>> s.finalize()
    3
    """

    entries: vector(np.uint32)
    registers: vector(np.uint8)
    n: np.int64
    stale: np.bool_
    hashes: vector(np.uint64)

    def step(self, v: Value):
        tag, ival, fval, data = value_parts(v)
        h = np.uint64(value_hash(tag, ival, fval, data))  # numba hands a plain Python caller an int
        hll_step(self, h)
        self.n += 1
        if self.n <= FRAME_LIMIT:
            self.hashes.append(h)

    def inverse(self, v: Value):
        check_rows_kept(self.n, len(self.hashes))
        tag, ival, fval, data = value_parts(v)
        if self.hashes.remove(np.uint64(value_hash(tag, ival, fval, data))):
            self.n -= 1
            self.stale = True

    def merge(self, other):
        hll_merge(self, other)
        if self.n + other.n <= FRAME_LIMIT:
            self.hashes.extend(other.hashes.as_array())
        self.n += other.n

    def finalize(self) -> int:
        if self.stale:  # a row left the frame: the registers of the rows still in it
            self.entries.clear()
            self.registers.clear()
            for h in self.hashes.as_array():
                hll_step(self, h)
            self.stale = False
        return hll_result(self)


@numba.njit(cache=True)
def register_counts(registers):
    """How many registers hold each rank 0..64 - HLL_P + 1 (Ertl's C)."""
    counts = np.zeros(64 - HLL_P + 2, np.int64)
    for r in registers:
        counts[r] += 1
    return counts


@numba.njit(cache=True)
def hll_estimate(counts):
    """Ertl's improved raw estimate (arXiv:1702.01284) from the register counts, rounded."""
    return hll_estimate_from(counts, 64 - HLL_P + 1, None)


@numba.njit(cache=True)
def _sigma(x):
    """Ertl's sigma(x), by its series until the sum stops changing."""
    y = 1.0
    s = x
    while True:
        x = x * x
        s_old = s
        s += x * y
        y += y
        if s == s_old:
            break
    return s


@numba.njit(cache=True)
def hll_sigmas():
    """``_sigma(c / 2**HLL_P)`` for every count of empty registers ``c`` (what :func:`hll_estimate_from` looks up)."""
    m = 2**HLL_P
    out = np.empty(m + 1)
    for c in range(m + 1):
        out[c] = _sigma(c / m)
    return out


@numba.njit(cache=True, inline="always")
def hll_estimate_from(counts, top, sigmas):
    """:func:`hll_estimate`, given that no rank above *top* is counted; ``sigmas`` from :func:`hll_sigmas`, or None.

    Both shortcuts give the same bits: the halvings over ranks above *top*
    leave a zero sum zero, and the table holds what ``_sigma`` returns
    (a small group's estimate is then a few operations, not ~100).
    """
    m = 2**HLL_P
    q = 64 - HLL_P
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
    for k in range(min(q, top) if z == 0.0 else q, 0, -1):
        z = 0.5 * (z + counts[k])
    # Ertl's sigma(C[0]/m): the empty registers' share.
    if sigmas is None:
        z += m * _sigma(counts[0] / m)
    else:
        z += m * sigmas[counts[0]]
    return int(round(m * m / (2.0 * math.log(2.0)) / z))


# --------------------------------------------------------------------------
# approx_count_distinct over a whole grouped column (the plain forms' engine hook)
#
# A state per group appends one entry a row to a vector of its own: a bounds
# check, a header read and write and a growth copy per row, scattered over
# every group's vector (1,000 groups of 2,000 rows: ~10 ns a row; 1,000,000
# groups: one allocation each). The estimate needs only each group's entries,
# in any order, so the engine hands the whole column over instead: the rows'
# entries (one pass), each group's entries gathered contiguously (a counting
# sort), then each group's register counts and estimate, each pass over row
# or group ranges on threads.


@numba.njit(cache=True, inline="always")
def _skipped(g, x, m, null_kind, i):
    """Whether row *i* (of group *g*) is skipped: see :func:`hll_group_counts`."""
    return g < 0 or (null_kind == 1 and x[i] != x[i]) or (null_kind == 2 and m[i] != 0)


@numba.njit(cache=True, nogil=True)
def hll_group_counts(gids, x, m, null_kind, lo, hi, counts):
    """Rows ``lo..hi-1``: each group's rows into *counts*, but for the skipped.

    Skipped: a row of group -1 (dropped by the WHERE) and a NULL, by
    *null_kind*: 0 never NULL, 1 NaN is NULL, 2 ``m[i] != 0`` is NULL.
    """
    for i in range(lo, hi):
        g = gids[i]
        if not _skipped(g, x, m, null_kind, i):
            counts[g] += 1


@numba.njit(cache=True, nogil=True)
def hll_positions(counts):
    """``(starts, pos)`` from per-range group counts *counts[t, g]*: group g's entries at ``starts[g]:starts[g + 1]``,
    range t's first at ``pos[t, g]`` (ranges in order)."""
    nranges, ngroups = counts.shape
    starts = np.empty(ngroups + 1, np.int64)
    pos = np.empty((nranges, ngroups), np.int64)
    at = 0
    for g in range(ngroups):
        starts[g] = at
        for t in range(nranges):
            pos[t, g] = at
            at += counts[t, g]
    starts[ngroups] = at
    return starts, pos


@numba.njit(cache=True, nogil=True)
def hll_gather(gids, x, m, null_kind, lo, hi, pos, out):
    """Rows ``lo..hi-1``: each kept row's :func:`hll_entry` to its group's next place in *out* (*pos* advances).

    Hashing here rather than in a pass of its own costs less than writing
    and reading back an entry a row (measured).
    """
    for i in range(lo, hi):
        g = gids[i]
        if not _skipped(g, x, m, null_kind, i):
            out[pos[g]] = hll_entry(number_hash(x[i]))
            pos[g] += 1


@numba.njit(cache=True, nogil=True)
def hll_group_estimates(entries, starts, glo, ghi, sigmas, out):
    """Groups ``glo..ghi-1``: the estimate of each group's entries ``entries[starts[g]:starts[g + 1]]``.

    The counts are :func:`sparse_counts`' (each register's rank the highest
    of its entries), built in one register array this call reuses: the
    highest rank first, then each register counted once and zeroed again.
    A large group counts into four histograms in turn, so that the
    increments (half of them of rank 1) do not wait on each other.
    """
    registers = np.zeros(2**HLL_P, np.uint8)
    counts = np.zeros(_Q + 2, np.int64)
    four = np.zeros((4, _Q + 2), np.int64)
    for g in range(glo, ghi):
        s, e = starts[g], starts[g + 1]
        for k in range(s, e):
            x = entries[k]
            i = x >> 6
            r = np.uint8(x & 63)
            if r > registers[i]:
                registers[i] = r
        distinct = 0
        top = 0
        if e - s < 64:
            for k in range(s, e):
                i = entries[k] >> 6
                r = registers[i]
                if r != 0:
                    counts[r] += 1
                    distinct += 1
                    top = max(top, np.int64(r))
                    registers[i] = 0
        else:
            for k in range(s, e):
                i = entries[k] >> 6
                four[k & 3, registers[i]] += 1  # a repeated register counts at rank 0, which is not read
                registers[i] = 0
            for r in range(1, _Q + 2):
                c = four[0, r] + four[1, r] + four[2, r] + four[3, r]
                four[0, r] = 0
                four[1, r] = 0
                four[2, r] = 0
                four[3, r] = 0
                counts[r] = c
                distinct += c
                if c != 0:
                    top = r
        counts[0] = 2**HLL_P - distinct
        out[g] = hll_estimate_from(counts, top, sigmas)
        for r in range(1, top + 1):
            counts[r] = 0


_SIGMAS = []


def hll_grouped(gids, ngroups, arrays, variant, nthreads, run):
    """``approx_count_distinct`` of every group of a column, as the plain forms' states give it: ``(out, null)``.

    The engine's grouped hook (``__fastagg_grouped__``). *arrays*: the
    argument (int64 or float64) and, for *variant* ``"m"``, its NULL mask;
    ``"n"``: NaN is NULL; ``"z"``: never NULL. *gids*: each row's group,
    -1 for a row the WHERE dropped. *run(fn, k)* calls ``fn(t)`` for ``t``
    in ``range(k)`` on the engine's threads and returns the results in
    order. A group with no rows counts 0 (never NULL). Memory: 4 bytes a
    kept row and 8 bytes a group per thread, for the call only.
    """
    x = arrays[0]
    m = arrays[1] if variant == "m" else np.zeros(0, np.uint8)
    null_kind = {"z": 0, "n": 1, "m": 2}[variant]
    n = len(gids)
    nthreads = max(1, min(nthreads, n // 65536 or 1))
    bounds = [n * t // nthreads for t in range(nthreads + 1)]
    if not _SIGMAS:
        _SIGMAS.append(hll_sigmas())
    sigmas = _SIGMAS[0]

    def each(fn):
        return [fn(0)] if nthreads == 1 else run(fn, nthreads)

    counts = np.zeros((nthreads, ngroups), np.int64)
    each(lambda t: hll_group_counts(gids, x, m, null_kind, bounds[t], bounds[t + 1], counts[t]))
    starts, pos = hll_positions(counts)
    del counts
    entries = np.empty(starts[ngroups], np.uint32)
    each(lambda t: hll_gather(gids, x, m, null_kind, bounds[t], bounds[t + 1], pos[t], entries))
    del pos
    out = np.zeros(ngroups, np.int64)
    # Group ranges of about equal entries (a group's estimate costs about its entries), or of groups when few.
    cuts = np.searchsorted(starts, [len(entries) * t // nthreads for t in range(nthreads + 1)]).tolist()
    cuts[0], cuts[-1] = 0, ngroups
    each(lambda t: hll_group_estimates(entries, starts, cuts[t], cuts[t + 1], sigmas, out))
    return out, np.zeros(ngroups, np.bool_)


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


@register_jitable
def _tdigest_rebuild(s, values):
    """Digest *values* from scratch, as ``step`` does row by row (``q`` is kept)."""
    s.means.clear()
    s.weights.clear()
    s.buffer.clear()
    s.count = 0.0
    for i in range(len(values)):
        _tdigest_add(s, values[i])


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
    is a single row (fewer than 200 rows). State: a record of 136 bytes
    and growable vectors (``sqlite3_malloc``) holding what the group has:
    its unmerged rows and centroids, at most 13 KB however many rows, so a
    group of a few rows costs a few hundred bytes. A window
    function: the state also keeps the rows (while it has seen at most
    ``FRAME_LIMIT``, see :mod:`.frames`) and after ``inverse`` digests the
    frame's rows again, in order, as a fresh state would.

    Attributes
    ----------
    means, weights : fastagg.vector(np.float64)
        The centroids (at most 402), sorted by mean.
    buffer : fastagg.vector(np.float64)
        Rows not merged yet (fewer than 512).
    count : np.float64
        Rows seen.
    lo, hi : np.float64
        Exact minimum and maximum.
    q : np.float64
        The quantile asked for.
    stale : np.bool_
        A row left the frame: the digest needs rebuilding.
    values : fastagg.vector(np.float64)
        The rows in arrival order, while there are at most ``FRAME_LIMIT``.

    Examples
    --------
    >>> s = ApproxQuantile()
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
    stale: np.bool_
    values: vector(np.float64)

    def step(self, x: float, q: float):
        tdigest_step(self, x, q)
        if self.count <= FRAME_LIMIT:
            self.values.append(x)

    def inverse(self, x: float, q: float):
        check_rows_kept(int(self.count), len(self.values))
        if move_to_end(self.values.as_array(), x):
            self.values.remove(x)
            self.count -= 1.0
            self.stale = True

    def merge(self, other):
        if self.count + other.count <= FRAME_LIMIT:
            self.values.extend(other.values.as_array())
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
        b = len(self.buffer)
        k = len(other.means)
        b2 = len(other.buffer)
        extra_means = np.empty(b + k + b2)
        extra_weights = np.ones(b + k + b2)
        extra_means[:b] = self.buffer.as_array()
        extra_means[b : b + k] = other.means.as_array()
        extra_weights[b : b + k] = other.weights.as_array()
        extra_means[b + k :] = other.buffer.as_array()
        _tdigest_merge_into(self, extra_means, extra_weights)
        self.buffer.clear()

    def finalize(self) -> float | None:
        if self.stale:  # a row left the frame: the digest of the rows still in it, in order
            _tdigest_rebuild(self, self.values.as_array())
            self.stale = False
        return tdigest_result(self)


# The digest's step and answer, shared with the plain form (:mod:`.plain`):
# each takes the state itself (a record in compiled code, a reference).


@register_jitable
def _tdigest_merge_into(s, extra_means, extra_weights):
    """Merge weighted points into the centroids of state *s* (vectors), as :func:`_tdigest_compress` does."""
    k = len(s.means)
    b = len(extra_means)
    means = np.empty(k + b)
    weights = np.empty(k + b)
    means[:k] = s.means.as_array()
    weights[:k] = s.weights.as_array()
    c = _tdigest_compress(means, weights, k, extra_means, extra_weights, s.count)
    s.means.clear()
    s.means.extend(means[:c])
    s.weights.clear()
    s.weights.extend(weights[:c])


@register_jitable
def _tdigest_add(s, x):
    """Add row *x*: the exact extremes, the count, the buffer (merged in when full)."""
    if s.count == 0.0:
        s.lo = x
        s.hi = x
    elif x < s.lo:
        s.lo = x
    elif x > s.hi:
        s.hi = x
    s.count += 1.0
    s.buffer.append(x)
    if len(s.buffer) == TDIGEST_BUFFER:
        _tdigest_merge_into(s, s.buffer.as_array(), np.ones(TDIGEST_BUFFER))
        s.buffer.clear()


@register_jitable
def tdigest_step(s, x, q):
    """Add row *x* to the digest of state *s* (the first row's *q* is kept)."""
    if s.count == 0.0:
        if not (0.0 <= q <= 1.0):
            raise ValueError("approx_quantile(x, q): argument 'q' is out of range: q must be between 0 and 1")
        s.q = q
    _tdigest_add(s, x)


@register_jitable
def tdigest_result(s):
    """The quantile ``s.q`` of the digest of state *s*; None for no rows."""
    if s.count == 0.0:
        return None
    nb = len(s.buffer)
    if nb > 0:
        _tdigest_merge_into(s, s.buffer.as_array(), np.ones(nb))
        s.buffer.clear()
    # Interpolate between centroid centres, at 0-based ranks.
    means = s.means.as_array()
    weights = s.weights.as_array()
    target = s.q * (s.count - 1.0)
    before = 0.0
    prev_rank = 0.0
    prev_value = s.lo
    for i in range(len(means)):
        w = weights[i]
        rank = before + (w - 1.0) / 2.0
        if target <= rank:
            if rank == prev_rank:
                return float(means[i])
            t = (target - prev_rank) / (rank - prev_rank)
            return float(prev_value + t * (means[i] - prev_value))
        prev_rank = rank
        prev_value = means[i]
        before += w
    last = s.count - 1.0
    if last == prev_rank:
        return float(s.hi)
    t = (target - prev_rank) / (last - prev_rank)
    return float(prev_value + t * (s.hi - prev_value))

