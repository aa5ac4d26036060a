"""Indexes inside the virtual table: sorted row permutations, probed by binary search.

An index over columns ``c1, .., ck`` is the table's row numbers sorted by
those columns in SQLite's order (NULLs first, numbers numerically, text
BINARY, blobs memcmp, datetimes as their ISO text), built with the same
compiled ordering code as ORDER BY (the dense ranks of :mod:`fastagg.table.ordering`).
One structure answers ``=``, ``IS``, ranges, and ORDER BY: every probe is a
binary search (log2(n) comparisons) for the contiguous slice ``[lo, hi)``
of the permutation holding the matching rows; a multi-column probe narrows
the slice by an equality on each leading column, then by a range on the
next. The permutation is int64 (8 bytes a row) so that a cursor reads the
slice in place, without copying it per probe.

Indexes are built the first time xFilter needs one, kept in the
registration's :data:`INDEXES` directory (``TOKEN.indexes``) and reused by
every later statement until the registration releases its buffers
(:meth:`fastagg.table.registration.Registration.close`), which frees them.

Comparisons are exact only when the probe value has the column's storage
class (a number against a numeric column, text against a text column,
a blob against a blob column); otherwise SQLite's affinity rules might
convert one side, so the probe does not narrow on that column (a superset:
xBestIndex never lets SQLite omit its own test of an indexed constraint).
"""

from __future__ import annotations

import numpy as np
from numba import carray, njit

from ..native.anyvalue import int_float_compare
from ..native.intrinsics import address_of, as_voidptr, is_null
from ..native.values import read_fields
from ..sqlite.declarations import (
    sqlite3_free,
    sqlite3_malloc64,
)
from ..sqlite.structs import INDEX, INDEXES, MAX_INDEX_COLUMNS, MAX_INDEXES, SCRATCH_BYTES
from .columns import (
    K_BLOB32, K_BLOB64, K_DATE32, K_DATETIME, K_I64, K_NULL, K_TEXT32, K_TEXT64, V_NONE,
)
from ..native.sort import counting_order
from ..native.hashing import group_ids
from .ordering import _dense_ranks, _sort_keys, combined_size, equality_keys, rank_order
from .values import SQLITE_FLOAT, SQLITE_INTEGER, SQLITE_NULL, SQLITE_TEXT, cell

__all__ = ["OP_IS", "build_index", "column_class", "estimate_distinct", "find_index", "index_entries", "probe"]

OP_EQ, OP_GT, OP_LE, OP_LT, OP_GE = 2, 4, 8, 16, 32
OP_IS = 72  # SQLITE_INDEX_CONSTRAINT_IS

# Storage classes in SQLite's order of values of different types.
C_NULL, C_NUMBER, C_TEXT, C_BLOB = 0, 1, 2, 3

SAMPLE = 16384  # rows sampled to estimate a column's distinct count (~1 ms a column)

from .directory import _HEAD


@njit(cache=True)
def index_entries(dir_addr):
    """(header, entries) of the directory at *dir_addr*."""
    head = carray(as_voidptr(dir_addr), 1, INDEXES)
    return head, carray(as_voidptr(dir_addr + _HEAD), MAX_INDEXES, INDEX)


@njit(cache=True)
def column_class(kind):
    """Storage class of a column kind's values."""
    if kind == K_NULL:
        return C_NULL
    if kind == K_TEXT32 or kind == K_TEXT64 or kind == K_DATETIME or kind == K_DATE32:
        return C_TEXT
    if kind == K_BLOB32 or kind == K_BLOB64:
        return C_BLOB
    return C_NUMBER


@njit(cache=True)
def find_index(dir_addr, keys, nk):
    """Entry of an index whose leading columns are ``keys[:nk]``, or -1."""
    if dir_addr == 0:
        return -1
    head, entries = index_entries(dir_addr)
    for e in range(head[0].count):
        if entries[e].ncols < nk:
            continue
        ok = True
        for j in range(nk):
            if entries[e].cols[j] != keys[j]:
                ok = False
                break
        if ok:
            return e
    return -1


@njit(cache=True)
def _class_of(t):
    if t == SQLITE_NULL:
        return C_NULL
    if t == SQLITE_INTEGER or t == SQLITE_FLOAT:
        return C_NUMBER
    if t == SQLITE_TEXT:
        return C_TEXT
    return C_BLOB


@njit(cache=True)
def _cmp_bytes(a, na, b, nb):
    pa = carray(as_voidptr(a), max(na, 1), np.uint8)
    pb = carray(as_voidptr(b), max(nb, 1), np.uint8)
    for i in range(min(na, nb)):
        if pa[i] != pb[i]:
            return -1 if pa[i] < pb[i] else 1
    if na == nb:
        return 0
    return -1 if na < nb else 1


@njit(cache=True)
def _cmp(t1, i1, f1, a1, n1, t2, i2, f2, a2, n2):
    """Sign of value 1 - value 2 in SQLite's order (BINARY collation, no affinity)."""
    c1 = _class_of(t1)
    c2 = _class_of(t2)
    if c1 != c2:
        return -1 if c1 < c2 else 1
    if c1 == C_NULL:
        return 0
    if c1 == C_NUMBER:
        if t1 == SQLITE_INTEGER and t2 == SQLITE_INTEGER:
            return -1 if i1 < i2 else (1 if i1 > i2 else 0)
        if t1 == SQLITE_FLOAT and t2 == SQLITE_FLOAT:
            return -1 if f1 < f2 else (1 if f1 > f2 else 0)
        if t1 == SQLITE_INTEGER:
            return int_float_compare(i1, f2)
        return -int_float_compare(i2, f1)
    return _cmp_bytes(a1, n1, a2, n2)


@njit(cache=True)
def _row_cmp(cd, r, pt, pi, pf, pa, pn, scratch):
    """Sign of row *r*'s value of *cd* - the probe value."""
    t, iv, fv, addr, n, _ = cell(cd, r, scratch)
    return _cmp(t, iv, fv, addr, n, pt, pi, pf, pa, pn)


@njit(cache=True)
def _bound(cd, perm, lo, hi, pt, pi, pf, pa, pn, scratch, upper):
    """First position in ``[lo, hi)`` whose row is >= (> if *upper*) the probe value."""
    while lo < hi:
        mid = (lo + hi) >> 1
        c = _row_cmp(cd, perm[mid], pt, pi, pf, pa, pn, scratch)
        if c < 0 or (upper and c == 0):
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True)
def _bound_i64(data, perm, lo, hi, x, upper):
    """:func:`_bound` over a plain int64 column (no NULLs, no codes) for an integer probe value."""
    while lo < hi:
        mid = (lo + hi) >> 1
        v = data[perm[mid]]
        if v < x or (upper and v == x):
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True, inline="always")
def _plain_i64(cd):
    """Whether column *cd* is a plain int64 buffer: value row = row, no NULLs, no dictionary."""
    return cd.kind == K_I64 and cd.validity_kind == V_NONE and cd.codes == 0


@njit(cache=True)
def _probe_value(v):
    """(type, int64, double, address, length) of ``sqlite3_value *`` *v*."""
    return read_fields(as_voidptr(v))


@njit(cache=True)
def probe(cols, perm, nrows, keys, nk, neq, terms, argv, starts, base, span):
    """Slice ``[lo, hi)`` of *perm* (an index on ``keys[:nk]``) matching the plan's filters.

    *terms* are the plan's filters: the first *neq* are ``=`` / ``IS`` on
    ``keys[:neq]`` in order, the rest ranges on ``keys[neq]``; *argv* holds
    the ``sqlite3_value *`` of each. Returns (lo, hi, exact): *exact* is
    False when some filter could not narrow the slice (a value of another
    storage class, see the module docstring), and the slice is a superset.
    *starts* (``span + 1`` positions from key *base*, or empty) is the
    index's table of where each key of its first column starts.
    """
    scratch = np.zeros(SCRATCH_BYTES, np.uint8)
    sp = as_voidptr(scratch.ctypes.data)
    lo = np.int64(0)
    hi = np.int64(nrows)
    for j in range(len(terms)):
        col = terms[j].column
        depth = j if j < neq else neq
        if depth >= nk or keys[depth] != col:
            return lo, hi, False
        cd = cols[col]
        op = terms[j].op
        pt, pi, pf, pa, pn = _probe_value(argv[terms[j].argv])
        if pt == SQLITE_NULL:
            if op != OP_IS:
                return lo, lo, True  # x OP NULL is never true
        elif _class_of(pt) != column_class(cd.kind):
            return lo, hi, False  # affinity may convert one side: let SQLite decide
        if pt == SQLITE_INTEGER and _plain_i64(cd):
            # Keys of TPC-H and most joins: a binary search over the int64
            # buffer itself, not through cell() (half the time of a probe).
            data = carray(as_voidptr(cd.data), max(nrows, 1), np.int64)
            if j == 0 and neq > 0 and span > 0:
                v = pi - base
                if v < 0 or v >= span:
                    return lo, lo, True
                lo = starts[v]
                hi = starts[v + 1]
            elif j < neq:
                a = _bound_i64(data, perm, lo, hi, pi, False)
                hi = _bound_i64(data, perm, a, hi, pi, True)
                lo = a
            elif op == OP_GT:
                lo = _bound_i64(data, perm, lo, hi, pi, True)
            elif op == OP_GE:
                lo = _bound_i64(data, perm, lo, hi, pi, False)
            elif op == OP_LT:
                hi = _bound_i64(data, perm, lo, hi, pi, False)
            elif op == OP_LE:
                hi = _bound_i64(data, perm, lo, hi, pi, True)
            if hi < lo:
                hi = lo
        elif j < neq:
            a = _bound(cd, perm, lo, hi, pt, pi, pf, pa, pn, sp, False)
            b = _bound(cd, perm, a, hi, pt, pi, pf, pa, pn, sp, True)
            lo = a
            hi = b
        else:
            # Ranges never match NULL: skip the NULLs at the slice's start.
            nn = _bound(cd, perm, lo, hi, np.int64(SQLITE_NULL), np.int64(0), 0.0, np.int64(0), np.int64(0), sp, True)
            if op == OP_GT:
                lo = _bound(cd, perm, max(lo, nn), hi, pt, pi, pf, pa, pn, sp, True)
            elif op == OP_GE:
                lo = _bound(cd, perm, max(lo, nn), hi, pt, pi, pf, pa, pn, sp, False)
            elif op == OP_LT:
                hi = _bound(cd, perm, max(lo, nn), hi, pt, pi, pf, pa, pn, sp, False)
                lo = max(lo, nn)
            elif op == OP_LE:
                hi = _bound(cd, perm, max(lo, nn), hi, pt, pi, pf, pa, pn, sp, True)
                lo = max(lo, nn)
            if hi < lo:
                hi = lo
        if lo >= hi:
            return lo, lo, True
    return lo, hi, True


@njit(cache=True)
def _index_order(cols, nrows, keys, nk):
    """(permutation, distinct keys, NULL keys) of the table's rows by ``keys[:nk]``, ascending.

    The order of :func:`fastagg.table.ordering.order_rows` (each column as
    dense ranks of SQLite's order, NULL rank 0, placed by counting sorts),
    and the counts from the same ranks: equal ranks are equal values, so
    neighbours in index order are compared as integers, not as cells.
    """
    ranks = np.empty((nk, nrows), np.int64)
    sizes = np.empty(nk, np.int64)
    rows = np.arange(nrows)
    for t in range(nk):
        k, isnull = _sort_keys(cols[keys[t]], rows)
        r, m = _dense_ranks(k, isnull)
        for i in range(nrows):  # not ranks[t, :] = r (see records.set_rows)
            ranks[t, i] = r[i]
        sizes[t] = m
    prod = combined_size(sizes, nrows)
    nnull = 0
    if nk == 1:
        # Dense ranks: the non-NULL values present are exactly ranks 1 .. m-1.
        for i in range(nrows):
            if ranks[0, i] == 0:
                nnull += 1
        return counting_order(ranks[0], sizes[0]), sizes[0] - 1, nnull
    if prod > 0:
        comb = ranks[0].copy()
        hasnull = ranks[0] == 0
        for t in range(1, nk):
            for i in range(nrows):
                comb[i] = comb[i] * sizes[t] + ranks[t, i]
                if ranks[t, i] == 0:
                    hasnull[i] = True
        seen = np.zeros(prod, np.uint8)
        nd = 0
        for i in range(nrows):
            if hasnull[i]:
                nnull += 1
            elif seen[comb[i]] == 0:
                seen[comb[i]] = 1
                nd += 1
        return counting_order(comb, prod), nd, nnull
    perm = rank_order(ranks, sizes, nrows)
    # Neighbours in index order: equal keys are adjacent.
    nd = 0
    prev_ok = False
    for i in range(nrows):
        r = perm[i]
        null = False
        for t in range(nk):
            if ranks[t, r] == 0:
                null = True
                break
        if null:
            nnull += 1
            prev_ok = False
            continue
        same = prev_ok
        if same:
            q = perm[i - 1]
            for t in range(nk):
                if ranks[t, r] != ranks[t, q]:
                    same = False
                    break
        if not same:
            nd += 1
        prev_ok = True
    return perm, nd, nnull


@njit(cache=True)
def build_index(dir_addr, cols, nrows, keys, nk):
    """Build the index on ``keys[:nk]`` into the directory; return its entry, -1 on NOMEM, -2 if full."""
    head, entries = index_entries(dir_addr)
    e = head[0].count
    if e >= MAX_INDEXES or nk > MAX_INDEX_COLUMNS:
        return -2
    perm, nd, nnull = _index_order(cols, nrows, keys, nk)
    nbytes = 8 * max(nrows, 1)
    p = sqlite3_malloc64(nbytes)
    if is_null(p):
        return -1
    dst = carray(p, max(nrows, 1), np.int64)
    for i in range(nrows):  # not dst[:nrows] = perm (see records.set_rows)
        dst[i] = perm[i]
    # Dense integer keys (most join keys): a table of where each key's rows
    # start. Binary searches through the permutation miss the cache at
    # every level when probes come in random key order (a join driven by
    # another index); this is two reads. At most 8 more bytes a row.
    starts = 0
    base = np.int64(0)
    span = np.int64(0)
    cd = cols[keys[0]]
    if nrows > 0 and _plain_i64(cd):
        data = carray(as_voidptr(cd.data), nrows, np.int64)
        base = data[perm[0]]
        top = data[perm[nrows - 1]]
        span = top - base + 1  # <= 0 on overflow
        if span > 0 and span <= 2 * nrows + 1024:
            q = sqlite3_malloc64(8 * (span + 1))
            if not is_null(q):
                st = carray(q, span + 1, np.int64)
                st[:] = 0
                for i in range(nrows):
                    st[data[i] - base + 1] += 1
                for v in range(span):
                    st[v + 1] += st[v]
                starts = address_of(q)  # its bytes: 8 (span + 1), apart from ``bytes``
        if starts == 0:
            span = 0
    ent = entries[e]
    ent.starts = starts
    ent.base = base
    ent.span = span
    ent.ncols = nk
    for j in range(MAX_INDEX_COLUMNS):
        ent.cols[j] = keys[j] if j < nk else -1
    ent.perm = address_of(p)
    ent.nrows = nrows
    ent.ndistinct = nd
    ent.nnull = nnull
    ent.bytes = nbytes
    head[0].count = e + 1
    return e


@njit(cache=True)
def estimate_distinct(dir_addr, cols, nrows, col):
    """Estimated distinct non-NULL values of column *col* (cached in the directory).

    Exact from an index on *col* when one exists; otherwise from a sample
    of :data:`SAMPLE` rows drawn at random (fixed seed: the same plan every
    time; evenly spaced rows of a sorted column would see every value once)
    with Haas and Stokes' Duj1 estimator, d / (1 - (1 - s/n) f1 / s) for d
    values seen, f1 of them once, in s sampled rows: unique columns come out
    as n, values repeated more often than 1/s of the rows as about their
    sample count. (GEE, d - f1 + f1 sqrt(n/s), used before, overestimated a
    1,000-value key in 600,000 rows 13 times, and SQLite then chose to probe
    that column rather than a better one, TPC-H q05.)
    """
    if nrows <= 0:
        return 1.0
    head, entries = index_entries(dir_addr)
    for e in range(head[0].count):
        if entries[e].ncols == 1 and entries[e].cols[0] == col:
            return max(np.float64(entries[e].ndistinct), 1.0)
    est = carray(as_voidptr(head[0].estimates), head[0].ncols, np.float64)
    if est[col] > 0.0:
        return est[col]
    s = min(nrows, SAMPLE)
    if s == nrows:
        rows = np.arange(s)
    else:
        np.random.seed(12345)
        rows = np.random.randint(0, nrows, s)  # unsorted: the counts below need no order
    # Equal values get equal keys (text: a 64-bit hash of its bytes), numbered
    # by a hash table: no sort keys or ranks, which for text would need the
    # text image (and compiled the base image's largest part).
    keys, isnull = equality_keys(cols[col], rows)
    ids, _, m = group_ids(keys, isnull, np.int64(-1))  # typed: one specialisation (see _dense_ranks)
    counts = np.zeros(m, np.int64)
    nnull = 0
    for i in range(s):
        if ids[i] >= 0:
            counts[ids[i]] += 1
        else:
            nnull += 1
    d = m
    f1 = 0
    for g in range(m):
        if counts[g] == 1:
            f1 += 1
    nonnull = s - nnull
    if s == nrows or d == 0:
        r = np.float64(max(d, 1))
    else:
        # Sampling with replacement: a row drawn twice counts its value twice (a small bias down).
        q = np.float64(nonnull) / np.float64(nrows)
        denom = 1.0 - (1.0 - q) * np.float64(f1) / np.float64(max(nonnull, 1))
        r = np.float64(d) / max(denom, 1e-9)
        r = min(max(r, np.float64(d)), np.float64(nrows))
    est[col] = r
    return r
