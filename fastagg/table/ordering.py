"""ORDER BY and GROUP BY in compiled code: SQLite's order of a column as int64 ranks.

Each order term becomes dense ranks (hashing, then sorting only the
distinct values); the ranks are combined into one key and placed by a
counting sort, so SQLite needs no sorter. O(n + G log G) for G distinct
values.
"""

from __future__ import annotations

import numpy as np
from numba import carray, njit, types
from numba.extending import overload

from ..native.hashing import group_ids
from ..native.intrinsics import as_voidptr
from ..native.sort import counting_order, int_argsort, order_spans, radix_argsort, span_equal
from ..sqlite.structs import COLUMN
from .columns import K_BLOB32, K_BLOB64, K_DATETIME, K_F32, K_F64, K_I64, K_TEXT32, K_TEXT64, K_U64, V_NONE
from .indirect import SLOT_TEXT, call5
from .values import INT64_MAX, INT64_MIN, float_value, int_value, micros, value_row

__all__ = [
    "combined_size", "equality_keys", "is_bytes_kind", "numeric_keys", "order_rows", "plain_keys", "plain_kind",
    "rank_order", "term_keys", "text_keys", "top_rows",
]

SIGN_BIT = np.int64(INT64_MIN)
_COLUMN_SIZE = COLUMN.itemsize


@njit(cache=True)
def _text_view(cd):
    """(offsets, bytes) arrays of a text / blob column's value buffers."""
    nv = cd.nvalues
    if cd.kind == K_TEXT32 or cd.kind == K_BLOB32:
        offs32 = carray(as_voidptr(cd.offsets), nv + 1, np.int32)
        offs = np.empty(nv + 1, np.int64)
        for i in range(nv + 1):
            offs[i] = offs32[i]
    else:
        offs = carray(as_voidptr(cd.offsets), nv + 1, np.int64)
    total = offs[nv] if nv > 0 else 0
    return offs, carray(as_voidptr(cd.data), max(total, 1), np.uint8)


@njit(cache=True)
def _byte_ranks(cd, vals):
    """Dense ranks (BINARY order) of value rows *vals*."""
    offs, buf = _text_view(cd)
    order = order_spans(offs, buf, vals)
    ranks = np.empty(len(vals), np.int64)
    rank = 0
    for i in range(len(order)):
        if i > 0 and not span_equal(offs, buf, vals[order[i - 1]], vals[order[i]]):
            rank += 1
        ranks[order[i]] = rank
    return ranks


@njit(cache=True)
def _group_ranks(ids, order):
    """Ranks 1.. of items by group id (-1 -> 0), given the groups in sorted *order*; (ranks, count)."""
    g = len(order)
    rank_of = np.empty(g, np.int64)
    for r in range(g):
        rank_of[order[r]] = r + 1
    ranks = np.zeros(len(ids), np.int64)
    for i in range(len(ids)):
        if ids[i] >= 0:
            ranks[i] = rank_of[ids[i]]
    return ranks, g + 1


@njit(cache=True)
def _word(base, p):
    """The eight bytes at address *base* + *p* as one uint64 (x86-64 loads unaligned words)."""
    return carray(as_voidptr(base + p), 1, np.uint64)[0]


@njit(cache=True)
def _tail(buf, a, m):
    """The last ``m % 8`` bytes of ``buf[a:a+m]`` as a little-endian uint64 (never read past the span)."""
    w = np.uint64(0)
    j = m - m % 8
    for t in range(m % 8):
        w |= np.uint64(buf[a + j + t]) << np.uint64(8 * t)
    return w


@njit(cache=True)
def _span_hash(base, buf, a, m):
    """64-bit hash of the *m* bytes at offset *a*: whole words loaded at once, one multiply per word."""
    h = np.uint64(m) * np.uint64(0x9E3779B97F4A7C15)
    for j in range(0, m - 7, 8):
        h = (h ^ _word(base, a + j)) * np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(31)
    if m % 8:
        h = (h ^ _tail(buf, a, m)) * np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(31)
    return h


@njit(cache=True)
def _spans_equal(base, buf, a, b, m):
    """Whether the *m* bytes at offsets *a* and *b* are equal, a word at a time."""
    for j in range(0, m - 7, 8):
        if _word(base, a + j) != _word(base, b + j):
            return False
    return m % 8 == 0 or _tail(buf, a, m) == _tail(buf, b, m)


@njit(cache=True)
def _short_text_keys(offs, buf, vals):
    """Order-preserving int64 keys of values of at most 7 bytes, or ok=False; (keys, skip, ok).

    With L the longest value's length: the bytes zero-padded to L as a
    big-endian integer, then the length in 3 bits. memcmp order is the
    padded bytes' order, then the shorter first (equal padded bytes differ
    only by trailing NULs: the shorter is a prefix). Small L gives a small
    key range, which :func:`_dense_ranks` ranks with a presence table.
    """
    n = len(vals)
    keys = np.zeros(n, np.int64)
    skip = np.zeros(n, np.uint8)
    width = 0
    for i in range(n):
        v = vals[i]
        if v < 0:
            skip[i] = 1
            continue
        m = offs[v + 1] - offs[v]
        if m > width:
            if m > 7:
                return keys, skip, False
            width = m
    for i in range(n):
        v = vals[i]
        if v < 0:
            continue
        a = offs[v]
        m = offs[v + 1] - a
        k = np.int64(0)
        for j in range(width):
            k = k << 8
            if j < m:
                k |= np.int64(buf[a + j])
        keys[i] = (k << 3) | m
    return keys, skip, True


@njit(cache=True)
def _text_ranks(cd, vals):
    """Dense BINARY-order ranks of text / blob value rows *vals* (-1 = NULL -> rank 0).

    Values of up to 7 bytes become order-preserving integers (their bytes and
    length), ranked as integers. Longer ones: one pass hashing eight bytes at
    a time into an open-addressing table of value rows, the bytes compared
    on a hash match (so no collision can merge two values), then only the
    distinct values sorted. Returns (ranks, number of ranks).
    """
    offs, buf = _text_view(cd)
    n = len(vals)
    keys, skip, short = _short_text_keys(offs, buf, vals)
    if short:
        return _dense_ranks(keys, skip)
    base = cd.data
    cap = 1024
    table = np.full(cap, -1, np.int64)  # slot -> id
    first = np.empty(cap // 2, np.int64)  # id -> value row
    hs = np.empty(cap // 2, np.uint64)  # id -> hash
    ids = np.empty(n, np.int64)
    g = 0
    for i in range(n):
        v = vals[i]
        if v < 0:
            ids[i] = -1
            continue
        a = offs[v]
        m = offs[v + 1] - a
        h = _span_hash(base, buf, a, m)
        s = np.int64(h & np.uint64(cap - 1))
        while True:
            t = table[s]
            if t < 0:
                table[s] = g
                first[g] = v
                hs[g] = h
                ids[i] = g
                g += 1
                if 2 * g >= cap:  # grow to keep the load under 1/2
                    cap *= 2
                    table = np.full(cap, -1, np.int64)
                    f2 = np.empty(cap // 2, np.int64)
                    for u in range(g):  # not f2[:g] = first[:g] (see records.set_rows)
                        f2[u] = first[u]
                    first = f2
                    h2 = np.empty(cap // 2, np.uint64)
                    for u in range(g):
                        h2[u] = hs[u]
                    hs = h2
                    for u in range(g):
                        s2 = np.int64(hs[u] & np.uint64(cap - 1))
                        while table[s2] >= 0:
                            s2 = (s2 + 1) & (cap - 1)
                        table[s2] = u
                break
            if hs[t] == h:
                b = first[t]
                if v == b or (offs[b + 1] - offs[b] == m and _spans_equal(base, buf, offs[b], a, m)):
                    ids[i] = t
                    break
            s = (s + 1) & (cap - 1)
    return _group_ranks(ids, order_spans(offs, buf, first[:g].copy()))  # the distinct values only


@njit(cache=True)
def is_bytes_kind(k):
    """Whether column kind *k* holds text or blobs (ordered by their bytes' ranks)."""
    return k == K_TEXT32 or k == K_TEXT64 or k == K_BLOB32 or k == K_BLOB64


@njit(cache=True)
def _value_rows(cd, rows):
    """(value rows, isnull) of table rows *rows* (-1 and 1 for NULL)."""
    n = len(rows)
    vals = np.empty(n, np.int64)
    isnull = np.zeros(n, np.uint8)
    for i in range(n):
        v = value_row(cd, rows[i])
        vals[i] = v
        if v < 0:
            isnull[i] = 1
    return vals, isnull


@njit(cache=True)
def text_keys(cd, vals, keys):
    """Write into *keys* int64 keys in BINARY order of text / blob value rows *vals* (-1: NULL, key 0).

    Dictionary columns rank their (few) categories once and look codes up;
    others rank the values (:func:`_text_ranks`). The text half of
    :func:`_sort_keys`; the virtual table's base image calls it in the
    lazily built text image (:data:`fastagg.table.callbacks.TEXT_IMAGE`).
    """
    n = len(vals)
    if cd.codes != 0:
        catrank = _byte_ranks(cd, np.arange(cd.nvalues))
        for i in range(n):
            if vals[i] >= 0:
                keys[i] = catrank[vals[i]]
    else:
        ranks, _ = _text_ranks(cd, vals)
        for i in range(n):  # not keys[:] = ranks (see records.set_rows)
            keys[i] = ranks[i]


@njit(cache=True)
def plain_kind(cd):
    """Whether column *cd* is a plain int64 or float64 buffer (no validity, no codes): :func:`plain_keys`."""
    k = cd.kind
    return cd.validity_kind == V_NONE and cd.codes == 0 and (k == K_I64 or k == K_F64)


@njit(cache=True)
def plain_keys(cd, rows):
    """:func:`_sort_keys` of a :func:`plain_kind` column: one tight pass over its buffer."""
    n = len(rows)
    keys = np.zeros(n, np.int64)
    isnull = np.zeros(n, np.uint8)
    src = carray(as_voidptr(cd.data), cd.nvalues, np.int64)
    if cd.kind == K_I64:
        for i in range(n):
            keys[i] = src[rows[i]]
        return keys, isnull
    for i in range(n):
        x = src[rows[i]]
        if (x & INT64_MAX) > 0x7FF0000000000000:  # NaN: NULL
            isnull[i] = 1
            x = 0
        elif x == SIGN_BIT:  # -0.0 = 0.0 in SQL
            x = 0
        keys[i] = x ^ INT64_MAX if x < 0 else x  # order-preserving for negatives
    return keys, isnull


@njit(cache=True)
def numeric_keys(cd, rows):
    """:func:`_sort_keys` of a column that holds no text or blobs (numbers, dates, datetimes)."""
    if plain_kind(cd):
        return plain_keys(cd, rows)
    n = len(rows)
    keys = np.zeros(n, np.int64)
    k = cd.kind
    vals, isnull = _value_rows(cd, rows)
    if k == K_F64 or k == K_F32:
        fl = np.zeros(n, np.float64)
        for i in range(n):
            if vals[i] >= 0:
                x = float_value(cd, vals[i])
                fl[i] = 0.0 if x == 0.0 else x  # -0.0 = 0.0 in SQL
        keys = fl.view(np.int64).copy()
        for i in range(n):
            if keys[i] < 0:
                keys[i] = keys[i] ^ INT64_MAX  # order-preserving for negatives
        return keys, isnull
    for i in range(n):
        v = vals[i]
        if v < 0:
            continue
        if k == K_U64:
            x = int_value(cd, v)
            if x >= 0:
                keys[i] = x ^ SIGN_BIT
            else:
                # Above int64: SQLite holds the nearest double; equal doubles group together.
                u = np.float64(carray(as_voidptr(cd.data + 8 * v), 1, np.uint64)[0])
                keys[i] = np.int64((u - 9223372036854775808.0) * 0.5)
        elif k == K_DATETIME:
            keys[i] = micros(cd, v)
        else:
            keys[i] = int_value(cd, v)
    return keys, isnull


@njit(cache=True)
def equality_keys(cd, rows):
    """(keys, isnull) of ``cd`` at *rows*: int64 keys equal where the values are (SQLite's ``=``, BINARY).

    Numbers: their sort keys (:func:`numeric_keys`). Text and blobs: a
    64-bit hash of the bytes (:func:`_span_hash`), so two distinct values
    may, very rarely, share a key: for estimates only (the cost model's
    distinct counts, :func:`fastagg.table.index.estimate_distinct`), never
    for answers. No ranking, so the base image needs no text-ranking code.
    """
    if not is_bytes_kind(cd.kind):
        return numeric_keys(cd, rows)
    vals, isnull = _value_rows(cd, rows)
    offs, buf = _text_view(cd)
    n = len(rows)
    keys = np.zeros(n, np.int64)
    for i in range(n):
        v = vals[i]
        if v >= 0:
            a = offs[v]
            keys[i] = np.int64(_span_hash(cd.data, buf, a, offs[v + 1] - a))
    return keys, isnull


@njit(cache=True)
def _sort_keys(cd, rows):
    """Int64 keys whose order is SQLite's order of the column's values at *rows*.

    Returns (keys, isnull). Numbers compare numerically (floats through their
    order-preserving bit pattern, -0.0 as 0.0; uint64 above int64 as the
    double SQLite sees), text and blobs by memcmp (as dense ranks),
    datetimes by microsecond (their text order).
    """
    if is_bytes_kind(cd.kind):
        vals, isnull = _value_rows(cd, rows)
        keys = np.zeros(len(rows), np.int64)
        text_keys(cd, vals, keys)
        return keys, isnull
    return numeric_keys(cd, rows)


@njit(cache=True)
def _slot_sort_keys(cols, col, rows, slots):
    """:func:`_sort_keys` of ``cols[col]``: in place for a :func:`plain_kind` column, else in the keys image (``slots[SLOT_TEXT]``).

    The base image's way: it holds only the plain int64 / float64 keys, no
    text ranking nor the reading of validity, codes, dates or narrower
    kinds. xBestIndex loads the keys image before it plans an order on any
    other column, so the slot is set whenever this meets one (if not,
    every key is 0: no order).
    """
    cd = cols[col]
    if plain_kind(cd):
        return plain_keys(cd, rows)
    n = len(rows)
    keys = np.zeros(n, np.int64)
    isnull = np.zeros(n, np.uint8)
    fn = slots[SLOT_TEXT]
    if fn != 0 and n > 0:
        call5(fn, cols.ctypes.data + col * _COLUMN_SIZE, rows.ctypes.data, n, keys.ctypes.data, isnull.ctypes.data)
    return keys, isnull


def term_keys(cols, col, rows, slots):
    """Sort keys of ``cols[col]`` at *rows*: :func:`_sort_keys` (*slots* None) or :func:`_slot_sort_keys`.

    *slots* is None or the index slots of the ``sqlite3_module``
    (:func:`fastagg.table.indirect.index_slots`). Chosen by the type of
    *slots* when numba types the call (an ``overload``, not a branch: numba
    would type and compile both), so each caller's image holds only the
    code it takes. Compiled code only.
    """
    raise NotImplementedError("term_keys is called from compiled code only")


@overload(term_keys, jit_options={"cache": True})
def _term_keys(cols, col, rows, slots):
    if isinstance(slots, types.NoneType):
        return lambda cols, col, rows, slots: _sort_keys(cols[col], rows)
    return lambda cols, col, rows, slots: _slot_sort_keys(cols, col, rows, slots)


@njit(cache=True)
def _dense_ranks(keys, isnull):
    """Dense ranks of int64 *keys* in key order, NULL rank 0; returns (ranks, count).

    Small key ranges: a presence table, O(n + range). Otherwise hash the keys
    to ids (O(n)) and sort only the distinct keys; when most keys are
    distinct, one stable argsort instead.
    """
    n = len(keys)
    ranks = np.zeros(n, np.int64)
    have = False
    lo = np.int64(0)
    hi = np.int64(0)
    for i in range(n):
        if isnull[i] == 0:
            x = keys[i]
            if not have:
                lo = x
                hi = x
                have = True
            elif x < lo:
                lo = x
            elif x > hi:
                hi = x
    if not have:
        return ranks, 1
    span = hi - lo  # negative when it overflows
    if span >= 0 and span <= 2 * n + 1024:
        mark = np.zeros(span + 1, np.int64)
        for i in range(n):
            if isnull[i] == 0:
                mark[keys[i] - lo] = 1
        acc = 0
        for j in range(span + 1):
            if mark[j] != 0:
                acc += 1
                mark[j] = acc
        for i in range(n):
            if isnull[i] == 0:
                ranks[i] = mark[keys[i] - lo]
        return ranks, acc + 1
    ids, first, g = group_ids(keys, isnull, n // 4 + 16)
    if g < 0:
        # Mostly distinct keys: sort them all.
        o = radix_argsort(keys)
        r = 0
        prev = np.int64(0)
        fresh = True
        for j in range(n):
            i = o[j]
            if isnull[i] != 0:
                continue
            if fresh or keys[i] != prev:
                r += 1
                prev = keys[i]
                fresh = False
            ranks[i] = r
        return ranks, r + 1
    # The distinct keys, sorted: int_argsort, not np.argsort (numba's
    # quicksort was 0.75 s of an empty cache's compile; distinct keys have
    # one order, so any sort gives the same ranks).
    return _group_ranks(ids, int_argsort(keys[first[:g]]))


@njit(cache=True)
def combined_size(sizes, n):
    """The product of the rank counts *sizes* when it stays within ``2 * n + 1024``, else 0.

    Within that budget the ranks combine into one integer key for a single
    counting sort (and a seen-table of that size); beyond it, :func:`rank_order`.
    """
    budget = 2 * n + 1024
    prod = np.int64(1)
    for t in range(len(sizes)):
        if prod > budget // sizes[t]:
            return np.int64(0)
        prod *= sizes[t]
    return prod


@njit(cache=True)
def rank_order(ranks, sizes, n):
    """The stable ascending order of rows ``0..n-1`` by ``ranks[0], ranks[1], ...``: one counting sort per key, last first."""
    perm = np.arange(n)
    for t in range(len(sizes) - 1, -1, -1):
        key = np.empty(n, np.int64)
        for i in range(n):
            key[i] = ranks[t, perm[i]]
        perm = perm[counting_order(key, sizes[t])]
    return perm


@njit(cache=True)
def order_rows(cols, rows, terms, slots):
    """Stable sort of table rows *rows* (ascending) by plan order terms (``PLAN_TERM``).

    Column -1 is the rowid. NULLs come first ascending and last descending,
    as in SQLite. Each term becomes dense ranks (hashing, then sorting only
    the distinct values); the ranks are combined into one key and placed by
    a counting sort, or, when their product is large, by one counting sort
    per term from the last. O(n + G log G) for G distinct values.
    *slots*: see :func:`term_keys`.
    """
    n = len(rows)
    # A rowid term ends the key (rowids are unique); ascending, it is the
    # order the stable sort keeps anyway.
    nt = 0
    for t in range(len(terms)):
        nt = t + 1
        if terms[t].column < 0:
            if terms[t].desc == 0:
                nt = t
            break
    if nt == 0 or n == 0:
        return rows.copy()
    identity = rows[0] == 0 and rows[n - 1] == n - 1  # ascending and distinct: all rows
    if nt == 1 and terms[0].column >= 0:
        keys, isnull = term_keys(cols, terms[0].column, rows, slots)
        r, m = _dense_ranks(keys, isnull)
        if terms[0].desc != 0:
            for i in range(n):
                r[i] = m - 1 - r[i]
        o = counting_order(r, m)
        return o if identity else rows[o]
    ranks = np.empty((nt, n), np.int64)
    sizes = np.empty(nt, np.int64)
    for t in range(nt):
        col = terms[t].column
        if col < 0:
            for i in range(n):
                ranks[t, i] = i
            sizes[t] = n
        else:
            keys, isnull = term_keys(cols, col, rows, slots)
            r, m = _dense_ranks(keys, isnull)
            for i in range(n):  # not ranks[t, :] = r (see records.set_rows)
                ranks[t, i] = r[i]
            sizes[t] = m
        if terms[t].desc != 0:
            for i in range(n):
                ranks[t, i] = sizes[t] - 1 - ranks[t, i]
    prod = combined_size(sizes, n)
    if prod > 0:
        comb = ranks[0].copy()
        for t in range(1, nt):
            for i in range(n):
                comb[i] = comb[i] * sizes[t] + ranks[t, i]
        o = counting_order(comb, prod)
        return o if identity else rows[o]
    perm = rank_order(ranks, sizes, n)
    return perm if identity else rows[perm]


@njit(cache=True)
def top_rows(cols, rows, terms, k, slots):
    """The first *k* rows of :func:`order_rows` ``(cols, rows, terms)``, without sorting them all.

    A top-k selection for ``ORDER BY ... LIMIT k``: the first term's sort
    keys (one pass), the k-th smallest found by ``np.partition`` (O(n)),
    then only the rows up to that key (ties included) sorted by every term.
    *rows* must be ascending, as for :func:`order_rows`; *slots*: see :func:`term_keys`.
    """
    n = len(rows)
    if k >= n or len(terms) == 0 or terms[0].column < 0:
        return order_rows(cols, rows, terms, slots)[:max(min(k, n), 0)]
    if k <= 0:
        return rows[:0]
    keys, isnull = term_keys(cols, terms[0].column, rows, slots)
    nn = 0
    for i in range(n):
        nn += isnull[i]
    valid = isnull == 0
    vals = keys[valid]
    nv = n - nn
    if terms[0].desc == 0:
        # NULLs first, then the smallest keys.
        if nn >= k:
            keep = isnull != 0
        else:
            thr = np.partition(vals, k - nn - 1)[k - nn - 1]
            keep = (isnull != 0) | (keys <= thr)
    else:
        # The largest keys first, NULLs last.
        if nv >= k:
            thr = np.partition(vals, nv - k)[nv - k]
            keep = valid & (keys >= thr)
        else:
            keep = np.ones(n, np.bool_)
    return order_rows(cols, rows[keep], terms, slots)[:k]
