"""Group ids of the native engine's GROUP BY keys: text hashed a word at a time, on threads.

:func:`group_keys` numbers the groups of one or more key columns in SQLite's
GROUP BY order (NULL first, then BINARY order for text and blobs, numbers
by value): group g is the g-th distinct key tuple in that order, with few
passes over the rows:

- a text / blob key (Arrow string, large_string, binary): each row's bytes
  hashed eight bytes at a time into an open-addressing table of the
  distinct values (bytes compared on a hash match, so a collision never
  merges two values), one table per row range on threads of their own; the
  few distinct values are merged, sorted once by BINARY, and each range's
  local ids replaced by the sorted ranks in a second (threaded) pass;
- a dictionary / categorical text key: the dictionary ranked once by
  BINARY, the codes looked up (only the categories in use get a group);
- a plain int64 key with a small range: :func:`.kernels.dense_int_groups`;
- anything else: the table stage's sort keys and dense ranks (as before).

Several keys: when every key is a plain text column whose values are all
under eight bytes (Q1's one-letter flags), one pass hashes each row's tuple
of exact words (a value's bytes and its length in one int64) and the few
distinct tuples are sorted once; a longer value stops that pass and the
keys are taken one at a time. Otherwise each key's dense ids, then one
combining pass (on threads) through a table of first positions indexed by
the mixed-radix combination when the product of the key counts is small,
else :func:`.kernels.combine_ranks`.

A WHERE over whole columns passes its mask (*keep*): the rows it drops get
group -1 and make no group.

Reads never leave a value's bytes: a tail shorter than a word is loaded as
the word ending at the span's end (shifted) or, for a value under eight
bytes, as the word starting there when the buffer holds eight more bytes;
only a short value at the very end of the buffer is read byte by byte.
"""

from __future__ import annotations

import numpy as np
from numba import carray, njit

from ..native.intrinsics import as_voidptr
from ..native.sort import order_spans
from ..table.columns import K_BLOB32, K_BLOB64, K_I64, K_TEXT32, K_TEXT64, V_BITMAP, V_NONE
from ..table.ordering import _byte_ranks
from ..table.values import bit, value_row

__all__ = ["group_keys", "text_key_kind"]

_C1 = np.uint64(0x9E3779B97F4A7C15)
_C2 = np.uint64(0xBF58476D1CE4E5B9)
_S31 = np.uint64(31)

#: Fewest positions per thread (the tests lower it to split small frames).
MIN_RANGE = 65536

#: Rows hashed first to tell a text key of mostly distinct values (then one thread); 0: no probe.
PROBE_ROWS = 65536

#: Products of key counts up to this are combined through a direct table (per thread).
DIRECT_COMBINE = 1 << 16


def text_key_kind(kind) -> bool:
    """Whether :func:`group_keys` hashes a column of this kind (Arrow text / binary, plain or dictionary)."""
    return int(kind) in (K_TEXT32, K_TEXT64, K_BLOB32, K_BLOB64)


# --------------------------------------------------------------------------
# Bytes, a word at a time


@njit(cache=True, nogil=True, inline="always")
def _u64(addr):
    return carray(as_voidptr(addr), 1, np.uint64)[0]


@njit(cache=True, nogil=True, inline="always")
def _tail(base, a, m, total):
    """The last ``m % 8`` bytes of the *m* bytes at offset *a* as a little-endian word (0 when none)."""
    r = m & 7
    if r == 0:
        return np.uint64(0)
    if m >= 8:
        return _u64(base + a + m - 8) >> np.uint64(8 * (8 - r))
    if a + 8 <= total:
        return _u64(base + a) & ((np.uint64(1) << np.uint64(8 * r)) - np.uint64(1))
    w = np.uint64(0)
    src = carray(as_voidptr(base + a), r, np.uint8)
    for t in range(r):
        w |= np.uint64(src[t]) << np.uint64(8 * t)
    return w


@njit(cache=True, nogil=True, inline="always")
def _hash(base, a, m, total):
    """64-bit hash of the *m* bytes at offset *a*: one multiply per word (tables take its high bits)."""
    h = np.uint64(m) * _C1
    for j in range(0, m - 7, 8):
        h = (h ^ _u64(base + a + j)) * _C2
    return (h ^ _tail(base, a, m, total)) * _C2


@njit(cache=True, nogil=True, inline="always")
def _same(base, a, b, m, total):
    """Whether the *m* bytes at offsets *a* and *b* are equal."""
    for j in range(0, m - 7, 8):
        if _u64(base + a + j) != _u64(base + b + j):
            return False
    return _tail(base, a, m, total) == _tail(base, b, m, total)


# --------------------------------------------------------------------------
# One text key


@njit(cache=True, nogil=True, inline="always")
def _find(table, hs, starts, lens, bits, h, base, a, m, total):
    """Slot of the value (hash *h*, bytes at *a*, length *m*) in *table*, or the empty slot where it goes.

    The slot is the hash's top *bits* bits (a multiplicative hash: the high
    bits depend on every byte).
    """
    mask = (np.int64(1) << bits) - 1
    s = np.int64(h >> np.uint64(64 - bits))
    while True:
        t = table[s]
        if t < 0:
            return s
        # Under eight bytes the hash is a bijection of (bytes, length): equal hashes, equal values.
        if hs[t] == h and lens[t] == m and (m < 8 or starts[t] == a or _same(base, starts[t], a, m, total)):
            return s
        s = (s + 1) & mask


@njit(cache=True, nogil=True)
def _rehash(hs, g, bits):
    table = np.full(np.int64(1) << bits, -1, np.int64)
    mask = (np.int64(1) << bits) - 1
    for u in range(g):
        s = np.int64(hs[u] >> np.uint64(64 - bits))
        while table[s] >= 0:
            s = (s + 1) & mask
        table[s] = u
    return table


@njit(cache=True, nogil=True)
def _grow(arr, cap):
    out = np.empty(cap, arr.dtype)
    out[:len(arr)] = arr
    return out


@njit(cache=True, nogil=True)
def _fill(cd, offs, rows, allrows, keep, p, p1, ids, table, bits, hs, starts, lens, fpos, g, limit, total):
    """The hash loop of :func:`_hash_range` from position *p* until p1 or until *limit* ids exist.

    Returns (next position, ids so far, whether a NULL was seen). Kept apart
    from the growth of the arrays: an array reassigned inside the loop costs
    reference counting on every row.
    """
    base = cd.data
    vk = cd.validity_kind
    simple = cd.codes == 0 and (vk == V_NONE or vk == V_BITMAP)
    nulls = False
    masked = len(keep) > 0
    while p < p1 and g < limit:
        if masked and keep[p] == 0:
            ids[p] = -2  # in no group
            p += 1
            continue
        r = p if allrows else rows[p]
        if simple:
            v = r
            if vk == V_BITMAP and bit(cd.validity, cd.validity_offset + r) == 0:
                v = -1
        else:
            v = value_row(cd, r)
        if v < 0:
            ids[p] = -1
            nulls = True
            p += 1
            continue
        a = np.int64(offs[v])
        m = np.int64(offs[v + 1]) - a
        h = _hash(base, a, m, total)
        s = _find(table, hs, starts, lens, bits, h, base, a, m, total)
        t = table[s]
        if t < 0:
            t = g
            table[s] = t
            hs[t] = h
            starts[t] = a
            lens[t] = m
            fpos[t] = p
            g += 1
        ids[p] = t
        p += 1
    return p, g, nulls


@njit(cache=True, nogil=True)
def _hash_range(cd, offs, rows, allrows, keep, p0, p1, ids):
    """Local ids (first appearance, -1 NULL, -2 a position *keep* drops) of positions p0..p1 into ``ids[p0:p1]``.

    Returns the distinct values' (hash, byte start, length, first position)
    arrays and whether a NULL was seen.
    """
    nv = cd.nvalues
    total = np.int64(offs[nv]) if nv > 0 else np.int64(0)
    bits = 10
    table = np.full(np.int64(1) << bits, -1, np.int64)
    half = 1 << (bits - 1)
    hs = np.empty(half, np.uint64)
    starts = np.empty(half, np.int64)
    lens = np.empty(half, np.int64)
    fpos = np.empty(half, np.int64)
    g = 0
    nulls = False
    p = p0
    while True:
        p, g, z = _fill(cd, offs, rows, allrows, keep, p, p1, ids, table, bits, hs, starts, lens, fpos, g, half, total)
        nulls = nulls or z
        if p >= p1:
            break
        # Half full: double, to keep the load under 1/2.
        bits += 1
        half *= 2
        hs = _grow(hs, half)
        starts = _grow(starts, half)
        lens = _grow(lens, half)
        fpos = _grow(fpos, half)
        table = _rehash(hs, g, bits)
    return hs[:g], starts[:g], lens[:g], fpos[:g], nulls


@njit(cache=True, nogil=True, inline="always")
def _be_word(buf, a, m, j):
    """Bytes 8j..8j+7 of the *m* bytes at *a*, zero-padded past *m*, as a big-endian word."""
    w = np.uint64(0)
    for t in range(8):
        p = 8 * j + t
        w = (w << np.uint64(8)) | (np.uint64(buf[a + p]) if p < m else np.uint64(0))
    return w


@njit(cache=True, nogil=True)
def _prefix_words(offs, buf):
    """Each span's first 16 bytes zero-padded as two big-endian words, and its length."""
    g = len(offs) - 1
    w1 = np.empty(g, np.uint64)
    w2 = np.empty(g, np.uint64)
    ln = np.empty(g, np.int64)
    for t in range(g):
        a = offs[t]
        m = offs[t + 1] - a
        w1[t] = _be_word(buf, a, m, 0)
        w2[t] = _be_word(buf, a, m, 1)
        ln[t] = m
    return w1, w2, ln


@njit(cache=True, nogil=True)
def _fix_runs(offs, buf, order, w1, w2, ln):
    """Re-sort byte by byte each run of equal 16-byte prefixes that holds a longer value (in place)."""
    g = len(order)
    lo = 0
    while lo < g:
        hi = lo + 1
        longest = ln[order[lo]]
        while hi < g and w1[order[hi]] == w1[order[lo]] and w2[order[hi]] == w2[order[lo]]:
            longest = max(longest, ln[order[hi]])
            hi += 1
        if hi - lo > 1 and longest > 16:
            run = order[lo:hi].copy()
            sub = order_spans(offs, buf, run)
            for k in range(hi - lo):
                order[lo + k] = run[sub[k]]
        lo = hi


def _sort_distinct(offs, buf):
    """BINARY order of distinct spans: by their first 16 bytes zero-padded, then length; byte by byte on ties.

    For values of up to 16 bytes padded order then length is memcmp order
    (equal padded bytes differ only by trailing NULs: the shorter is a
    prefix). Runs of equal 16-byte prefixes holding a longer value are
    sorted by :func:`fastagg.native.sort.order_spans`. numpy's lexsort does
    the bulk (its stable sorts are radix / timsort, twice numba's merge sort).
    """
    w1, w2, ln = _prefix_words(offs, buf)
    order = np.lexsort((ln, w2, w1)).astype(np.int64)
    _fix_runs(offs, buf, order, w1, w2, ln)
    return order


@njit(cache=True, nogil=True)
def _merge_ranks(cd, offs, parts_h, parts_a, parts_m, parts_f):
    """Merge per-range distinct values (in range order): one id per distinct value.

    Returns (one lookup array per range: local id -> merged id, the merged
    values copied together as (offsets, bytes), each one's first position).
    """
    base = cd.data
    nv = cd.nvalues
    total = np.int64(offs[nv]) if nv > 0 else np.int64(0)
    size = 0
    for k in range(len(parts_h)):
        size += len(parts_h[k])
    bits = 10
    while (1 << bits) < 2 * size + 2:
        bits += 1
    table = np.full(np.int64(1) << bits, -1, np.int64)
    hs = np.empty(max(size, 1), np.uint64)
    starts = np.empty(max(size, 1), np.int64)
    lens = np.empty(max(size, 1), np.int64)
    fpos = np.empty(max(size, 1), np.int64)
    maps = []
    g = 0
    one = len(parts_h) == 1  # one range: its values are distinct already
    for k in range(len(parts_h)):
        ph = parts_h[k]
        if one:
            g = len(ph)
            starts[:g] = parts_a[0]
            lens[:g] = parts_m[0]
            fpos[:g] = parts_f[0]
            maps.append(np.arange(g))
            break
        mp = np.empty(len(ph), np.int64)
        for u in range(len(ph)):
            h = ph[u]
            a = parts_a[k][u]
            m = parts_m[k][u]
            s = _find(table, hs, starts, lens, bits, h, base, a, m, total)
            t = table[s]
            if t < 0:  # ranges come in row order: the first range holding a value has its first row
                t = g
                table[s] = t
                hs[t] = h
                starts[t] = a
                lens[t] = m
                fpos[t] = parts_f[k][u]
                g += 1
            mp[u] = t
        maps.append(mp)
    # The distinct values copied together, sorted once (BINARY: memcmp, then the shorter first).
    soffs = np.zeros(g + 1, np.int64)
    for t in range(g):
        soffs[t + 1] = soffs[t] + lens[t]
    sbuf = np.empty(max(soffs[g], 1), np.uint8)
    for t in range(g):
        if lens[t] > 0:
            sbuf[soffs[t]:soffs[t + 1]] = carray(as_voidptr(base + starts[t]), lens[t], np.uint8)
    return maps, soffs, sbuf, fpos[:g].copy()


@njit(cache=True, nogil=True)
def _remap(ids, p0, p1, lut):
    """``ids[p] = lut[ids[p]]`` over p0..p1, NULL (-1) -> 0, dropped (-2) -> -1; the first NULL position or -1."""
    firstnull = -1
    for p in range(p0, p1):
        u = ids[p]
        if u == -2:
            ids[p] = -1
        elif u < 0:
            ids[p] = 0
            if firstnull < 0:
                firstnull = p
        else:
            ids[p] = lut[u]
    return firstnull


def _ranges(n, k):
    step = -(-n // k) if n else 0
    return [(lo, min(n, lo + step)) for lo in range(0, n, step)] if n else [(0, 0)]


def _text_ids(cd, rows, allrows, keep, n, out, nthreads, pmap):
    """Dense group ids (SQLite's order) of one text key at positions 0..n into *out*: (count, first)."""
    offs = _offsets(cd)
    if nthreads > 1 and PROBE_ROWS:
        # Mostly distinct values: every range's table would hold most of them and
        # the serial merge re-hash them all, so one range. A first block tells.
        probe = min(n, PROBE_ROWS)
        if len(_hash_range(cd, offs, rows, allrows, keep, 0, probe, out)[0]) > probe // 8:
            nthreads = 1
    parts = _ranges(n, nthreads)
    got = pmap(lambda r: _hash_range(cd, offs, rows, allrows, keep, r[0], r[1], out), parts)
    from numba.typed import List

    hs, st, ln, fp = List(), List(), List(), List()
    nulls = False
    for h, a, m, f, z in got:
        hs.append(h)
        st.append(a)
        ln.append(m)
        fp.append(f)
        nulls = nulls or z
    maps, soffs, sbuf, fpos = _merge_ranks(cd, offs, hs, st, ln, fp)
    order = _sort_distinct(soffs, sbuf)
    g = len(order)
    shift = 1 if nulls else 0  # NULL is group 0 when present
    rank = np.empty(g, np.int64)
    rank[order] = np.arange(shift, g + shift)
    first = np.empty(g + shift, np.int64)
    first[shift:] = fpos[order]
    if nulls:
        first[0] = -1  # set below from the remap pass (the first NULL row)
    maps = [rank[mp] for mp in maps]
    m = g + shift
    fnull = pmap(lambda k: _remap(out, parts[k][0], parts[k][1], maps[k]), range(len(parts)))
    if nulls:
        first[0] = min(f for f in fnull if f >= 0)
    return m, first


def _offsets(cd):
    """The value offsets of a text / blob descriptor as a zero-copy int32 or int64 array."""
    nv = int(cd["nvalues"])
    dtype = np.int32 if int(cd["kind"]) in (K_TEXT32, K_BLOB32) else np.int64
    if nv == 0 or not cd["offsets"]:
        return np.zeros(1, dtype)
    import ctypes

    buf = (ctypes.c_char * (np.dtype(dtype).itemsize * (nv + 1))).from_address(int(cd["offsets"]))
    return np.frombuffer(buf, dtype)


# --------------------------------------------------------------------------
# Several short text keys at once

_NULLWORD = np.uint64(0xFFFFFFFFFFFFFFFF)  # no value's word: their top byte is a length under 8


@njit(cache=True, nogil=True, inline="always")
def _short_word(is32, oaddr, daddr, total, v):
    """The word of value row *v* (its bytes, then the length in the top byte), or 0xFF.. when 8 bytes or longer."""
    if is32:
        o = carray(as_voidptr(oaddr + 4 * v), 2, np.int32)
        a = np.int64(o[0])
        m = np.int64(o[1]) - a
    else:
        o = carray(as_voidptr(oaddr + 8 * v), 2, np.int64)
        a = o[0]
        m = o[1] - a
    if m > 7:
        return _NULLWORD
    return _tail(daddr, a, m, total) | (np.uint64(m) << np.uint64(56))


@njit(cache=True, nogil=True)
def _fill_tuples(spec, rows, allrows, keep, p, p1, ids, table, bits, words, hs, fpos, g, limit, w):
    """Local ids of positions p..p1 by the tuple of their keys' words; (next position, ids, 1 = a long value met)."""
    nk = spec.shape[0]
    masked = len(keep) > 0
    mask = (np.int64(1) << bits) - 1
    while p < p1 and g < limit:
        if masked and keep[p] == 0:
            ids[p] = -2
            p += 1
            continue
        r = p if allrows else rows[p]
        h = _C1
        for k in range(nk):
            if spec[k, 4] == V_BITMAP and bit(spec[k, 5], spec[k, 6] + r) == 0:
                x = _NULLWORD
            else:
                x = _short_word(spec[k, 0] != 0, spec[k, 1], spec[k, 2], spec[k, 3], r)
                if x == _NULLWORD:
                    return p, g, 1
            w[k] = x
            h = (h ^ x) * _C2
        s = np.int64(h >> np.uint64(64 - bits))
        while True:
            t = table[s]
            if t < 0:
                t = g
                table[s] = t
                hs[t] = h
                for k in range(nk):
                    words[t, k] = w[k]
                fpos[t] = p
                g += 1
                break
            if hs[t] == h:
                same = True
                for k in range(nk):
                    if words[t, k] != w[k]:
                        same = False
                        break
                if same:
                    break
            s = (s + 1) & mask
        ids[p] = t
        p += 1
    return p, g, 0


@njit(cache=True, nogil=True)
def _tuple_range(spec, rows, allrows, keep, p0, p1, ids):
    """Local tuple ids of positions p0..p1 (-2 dropped); (words, first positions, 1 if a value was too long)."""
    nk = spec.shape[0]
    bits = 8
    table = np.full(np.int64(1) << bits, -1, np.int64)
    half = 1 << (bits - 1)
    words = np.empty((half, nk), np.uint64)
    hs = np.empty(half, np.uint64)
    fpos = np.empty(half, np.int64)
    w = np.empty(nk, np.uint64)
    g = 0
    p = p0
    while True:
        p, g, long = _fill_tuples(spec, rows, allrows, keep, p, p1, ids, table, bits, words, hs, fpos, g, half, w)
        if long or p >= p1:
            return words[:g].copy(), fpos[:g].copy(), long
        bits += 1
        half *= 2
        w2 = np.empty((half, nk), np.uint64)
        w2[:g] = words[:g]
        words = w2
        hs = _grow(hs, half)
        fpos = _grow(fpos, half)
        table = _rehash(hs, g, bits)


def _order_keys(words):
    """int64 keys in BINARY order of the values of *words* (NULL first): the bytes big-endian, then the length.

    Memcmp order of values under eight bytes is the order of their bytes
    zero-padded to seven, then the shorter first (equal padded bytes differ
    only by trailing NULs: the shorter is a prefix).
    """
    m = (words >> np.uint64(56)).astype(np.int64)
    low = words & np.uint64(0x00FFFFFFFFFFFFFF)
    be = (low.byteswap() >> np.uint64(8)).astype(np.int64)
    return np.where(words == _NULLWORD, -1, (be << 3) | m)


def _short_tuple_ids(cols, keycols, rows, allrows, keep, n, out, nthreads, pmap):
    """Group ids by several plain text keys of under eight bytes each, in one pass; None if a value is longer."""
    spec = np.zeros((len(keycols), 7), np.int64)
    for j, t in enumerate(keycols):
        cd = cols[t]
        nv = int(cd["nvalues"])
        offs = _offsets(cd)
        spec[j] = (int(cd["kind"]) in (K_TEXT32, K_BLOB32), int(cd["offsets"]), int(cd["data"]),
                   int(offs[nv]) if nv else 0, int(cd["validity_kind"]), int(cd["validity"]),
                   int(cd["validity_offset"]))
    parts = _ranges(n, nthreads)
    got = pmap(lambda r: _tuple_range(spec, rows, allrows, keep, r[0], r[1], out), parts)
    if any(long for _, _, long in got):
        return None
    # Merge the ranges' tuples: np.unique's first index is the earliest range's first row.
    allw = np.concatenate([w for w, _, _ in got])
    allf = np.concatenate([f for _, f, _ in got])
    uniq, idx, inv = np.unique(allw, axis=0, return_index=True, return_inverse=True)
    inv = inv.ravel()
    g = len(uniq)
    order = np.lexsort(_order_keys(uniq).T[::-1]) if g else np.zeros(0, np.int64)  # key 0 primary
    rank = np.empty(g, np.int64)
    rank[order] = np.arange(g)
    first = allf[idx][order]
    bounds = np.cumsum([0] + [len(w) for w, _, _ in got])
    luts = [rank[inv[bounds[k]:bounds[k + 1]]] for k in range(len(got))]
    pmap(lambda k: _remap(out, parts[k][0], parts[k][1], luts[k]), range(len(parts)))
    return out, g, first


def _short_text_spec_ok(cd) -> bool:
    return text_key_kind(cd["kind"]) and cd["codes"] == 0 and cd["validity_kind"] in (V_NONE, V_BITMAP) \
        and cd["nvalues"] > 0


# --------------------------------------------------------------------------
# A dictionary / categorical text key


@njit(cache=True, nogil=True)
def _code_range(cd, rows, allrows, keep, p0, p1, catrank, ids, used):
    """Rank of each position's category (-1 NULL) into ``ids[p0:p1]``; marks *used* ranks; whether a NULL was seen."""
    nulls = False
    masked = len(keep) > 0
    for p in range(p0, p1):
        if masked and keep[p] == 0:
            ids[p] = -2
            continue
        r = p if allrows else rows[p]
        v = value_row(cd, r)
        if v < 0:
            ids[p] = -1
            nulls = True
        else:
            k = catrank[v]
            ids[p] = k
            used[k] = 1
    return nulls


def _dict_ids(cd, rows, allrows, keep, n, out, nthreads, pmap):
    nv = int(cd["nvalues"])
    catrank = _byte_ranks(cd, np.arange(nv, dtype=np.int64)) if nv else np.zeros(0, np.int64)
    parts = _ranges(n, nthreads)
    used = [np.zeros(max(nv, 1), np.uint8) for _ in parts]
    nulls = any(pmap(lambda k: _code_range(cd, rows, allrows, keep, parts[k][0], parts[k][1], catrank, out, used[k]),
                     range(len(parts))))
    inuse = np.bitwise_or.reduce(np.stack(used), axis=0)
    shift = 1 if nulls else 0
    lut = (np.cumsum(inuse, dtype=np.int64) - 1 + shift).astype(np.int64)
    m = int(inuse.sum()) + shift
    pmap(lambda k: _remap(out, parts[k][0], parts[k][1], lut), range(len(parts)))
    return m, None


# --------------------------------------------------------------------------
# Several keys


@njit(cache=True, nogil=True)
def _combine_range(gids, other, size, p0, p1, firstpos):
    """``gids = gids * size + other`` over p0..p1 (-1 stays: in no group), first positions into *firstpos*."""
    for p in range(p0, p1):
        if gids[p] < 0:
            continue
        c = gids[p] * size + other[p]
        gids[p] = c
        if firstpos[c] < 0:
            firstpos[c] = p


@njit(cache=True, nogil=True)
def _first_positions(gids, p0, p1, firstpos):
    for p in range(p0, p1):
        c = gids[p]
        if c >= 0 and firstpos[c] < 0:
            firstpos[c] = p


@njit(cache=True, nogil=True)
def _dense(firstpos_parts, prod):
    """Dense numbering of the combinations present (first range first): (lut, first, count)."""
    lut = np.full(prod, -1, np.int64)
    best = np.full(prod, -1, np.int64)
    for k in range(len(firstpos_parts)):
        fp = firstpos_parts[k]
        for c in range(prod):
            if best[c] < 0 and fp[c] >= 0:
                best[c] = fp[c]
    g = 0
    for c in range(prod):
        if best[c] >= 0:
            lut[c] = g
            g += 1
    first = np.empty(g, np.int64)
    for c in range(prod):
        if best[c] >= 0:
            first[lut[c]] = best[c]
    return lut, first, g


@njit(cache=True, nogil=True)
def _lookup(gids, p0, p1, lut):
    for p in range(p0, p1):
        if gids[p] >= 0:
            gids[p] = lut[gids[p]]


def _key_ids(cd, rows, allrows, keep, n, out, nthreads, pmap):
    """Dense ids (0.., SQLite's order) of one key at positions 0..n into *out*: (count, first or None).

    Positions *keep* drops (when given) get -1 and no id.
    """
    from . import kernels

    if text_key_kind(cd["kind"]):
        if cd["codes"] == 0:
            return _text_ids(cd, rows, allrows, keep, n, out, nthreads, pmap)
        return _dict_ids(cd, rows, allrows, keep, n, out, nthreads, pmap)
    if allrows and not len(keep) and cd["kind"] == K_I64 and cd["validity_kind"] == V_NONE and cd["codes"] == 0 \
            and n and cd["data"]:
        import ctypes

        plain = np.frombuffer((ctypes.c_char * (8 * n)).from_address(int(cd["data"])), np.int64)
        gids, base, g, first, _ = kernels.dense_int_groups(plain, nthreads, pmap)
        if g >= 0:
            np.subtract(gids, base, out=out)
            return g, first
    r = np.arange(n, dtype=np.int64) if allrows else rows
    m = kernels.key_ranks_into(cd, r, out)  # rank 0 is NULL, used or not: dense enough to combine
    if len(keep):
        out[keep == 0] = -1
    return m, None


def group_keys(cols, keycols, rows, n, nthreads, pmap, keep=None):
    """Group ids of positions 0..n by key columns *keycols*, in SQLite's GROUP BY order.

    Parameters
    ----------
    cols : the registration's COLUMN descriptors
    keycols : list of int
    rows : int64 array or None
        Table rows of the positions; None for all rows (position = row).
    n : int
        Number of positions.
    nthreads : int
    pmap : callable
        ``pmap(fn, items)``: the list of ``fn(item)``, possibly on threads.
    keep : uint8 array or None
        Positions with ``keep == 0`` (rows a WHERE dropped) get group -1
        and count for no group.

    Returns
    -------
    (gids, ngroups, first)
        ``gids[i]`` row i's group, ``first[g]`` the position of group g's first row.
    """
    from . import kernels

    allrows = rows is None
    outer = pmap

    def pmap(fn, items):  # noqa: F811 - one item runs here, without a thread hop
        items = list(items)
        return [fn(items[0])] if len(items) == 1 else outer(fn, items)

    rows_arg = np.zeros(0, np.int64) if allrows else rows
    keep = np.zeros(0, np.uint8) if keep is None else keep
    nothing = np.zeros(0, np.uint8)
    nthreads = max(1, min(nthreads, n // MIN_RANGE or 1))
    gids = np.empty(n, np.int64)
    if len(keycols) > 1 and n and all(_short_text_spec_ok(cols[t]) for t in keycols):
        # Q1's flags: every key a short text, all hashed together in one pass.
        done = _short_tuple_ids(cols, keycols, rows_arg, allrows, keep, n, gids, nthreads, pmap)
        if done is not None:
            return done
    m, first = _key_ids(cols[keycols[0]], rows_arg, allrows, keep, n, gids, nthreads, pmap)
    if len(keycols) == 1:
        if first is None:
            if m == 0 or n == 0:
                return gids, 0, np.zeros(0, np.int64)
            return _compact(gids, m, nthreads, pmap)
        return gids, m, first
    parts = _ranges(n, nthreads)
    other = np.empty(n, np.int64)
    prod = m
    combined = True
    for t in keycols[1:]:
        # The other keys over every position: a dropped one is already -1 in *gids*.
        mt, _ = _key_ids(cols[t], rows_arg, allrows, nothing, n, other, nthreads, pmap)
        if prod * mt > DIRECT_COMBINE:
            combined = False
            break
        fps = [np.full(prod * mt, -1, np.int64) for _ in parts]
        pmap(lambda k: _combine_range(gids, other, mt, parts[k][0], parts[k][1], fps[k]), range(len(parts)))
        prod *= mt
    if combined:
        return _finish(gids, fps, prod, parts, pmap)
    # A large product: rank every key and combine through the general kernel.
    ranks = np.empty((len(keycols), n), np.int64)
    sizes = np.empty(len(keycols), np.int64)
    for j, t in enumerate(keycols):
        sizes[j], _ = _key_ids(cols[t], rows_arg, allrows, nothing, n, ranks[j], nthreads, pmap)
    if len(keep):
        return _combine_kept(ranks, sizes, keep)
    return kernels.combine_ranks(ranks, sizes)


def _combine_kept(ranks, sizes, keep):
    """:func:`.kernels.combine_ranks` over the kept positions only; dropped ones in group -1."""
    from . import kernels

    idx = np.flatnonzero(keep)
    sub, g, first = kernels.combine_ranks(np.ascontiguousarray(ranks[:, idx]), sizes)
    gids = np.full(ranks.shape[1], -1, np.int64)
    gids[idx] = sub
    return gids, g, idx[first]


def _compact(gids, m, nthreads, pmap):
    """Dense ids with possible gaps (a NULL rank never used) renumbered 0.. in order; first positions."""
    parts = _ranges(len(gids), nthreads)
    fps = [np.full(m, -1, np.int64) for _ in parts]
    pmap(lambda k: _first_positions(gids, parts[k][0], parts[k][1], fps[k]), range(len(parts)))
    return _finish(gids, fps, m, parts, pmap)


def _finish(gids, fps, prod, parts, pmap):
    from numba.typed import List

    lst = List()
    for f in fps:
        lst.append(f)
    lut, first, g = _dense(lst, prod)
    pmap(lambda k: _lookup(gids, parts[k][0], parts[k][1], lut), range(len(parts)))
    return gids, g, first
