"""Stable sorts compiled code shares: byte spans, int64 keys, small ranks.

Each returns a permutation (``order[i]`` is the index of the i-th smallest
item) and keeps equal items in their input order.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["counting_order", "int_argsort", "order_spans", "radix_argsort", "span_equal", "span_less"]

_SIGN_BIT = np.int64(np.iinfo(np.int64).min)


@njit(cache=True)
def span_less(offs, buf, x, y):
    """Whether span *x* < span *y* under SQLite's BINARY collation (memcmp, then length).

    Span ``v`` is ``buf[offs[v]:offs[v + 1]]`` (Arrow's offsets layout).
    """
    xs = offs[x]
    xn = offs[x + 1] - xs
    ys = offs[y]
    yn = offs[y + 1] - ys
    for i in range(min(xn, yn)):
        a = buf[xs + i]
        c = buf[ys + i]
        if a != c:
            return a < c
    return xn < yn


@njit(cache=True)
def span_equal(offs, buf, x, y):
    """Whether spans *x* and *y* hold the same bytes."""
    xs = offs[x]
    n = offs[x + 1] - xs
    ys = offs[y]
    if offs[y + 1] - ys != n:
        return False
    for i in range(n):
        if buf[xs + i] != buf[ys + i]:
            return False
    return True


@njit(cache=True)
def order_spans(offs, buf, items):
    """Stable merge sort of spans *items* under BINARY; return the order (O(n log n))."""
    n = len(items)
    order = np.arange(n)
    tmp = np.empty(n, np.int64)
    width = 1
    while width < n:
        for lo in range(0, n, 2 * width):
            mid = min(lo + width, n)
            hi = min(lo + 2 * width, n)
            i, j, k = lo, mid, lo
            while i < mid and j < hi:
                if span_less(offs, buf, items[order[j]], items[order[i]]):
                    tmp[k] = order[j]
                    j += 1
                else:
                    tmp[k] = order[i]
                    i += 1
                k += 1
            while i < mid:
                tmp[k] = order[i]
                i += 1
                k += 1
            while j < hi:
                tmp[k] = order[j]
                j += 1
                k += 1
        order, tmp = tmp, order
        width *= 2
    return order


@njit(cache=True)
def radix_argsort(keys):
    """Stable argsort of int64 *keys*: LSD radix, 16-bit digits, skipping constant digits."""
    n = len(keys)
    order = np.arange(n)
    tmp = np.empty(n, np.int64)
    counts = np.zeros(65537, np.int64)
    for shift in range(0, 64, 16):
        counts[:] = 0
        for i in range(n):
            u = keys[i] ^ _SIGN_BIT if shift == 48 else keys[i]  # signed: flip the top bit
            counts[((u >> shift) & 0xFFFF) + 1] += 1
        constant = False
        for j in range(1, 65537):  # not counts.max(): one more numpy reduction to compile
            if counts[j] == n:
                constant = True
                break
        if constant:
            continue  # every key has this digit
        for j in range(1, 65537):
            counts[j] += counts[j - 1]
        for i in range(n):
            o = order[i]
            u = keys[o] ^ _SIGN_BIT if shift == 48 else keys[o]
            dgt = (u >> shift) & 0xFFFF
            tmp[counts[dgt]] = o
            counts[dgt] += 1
        order, tmp = tmp, order
    return order


@njit(cache=True)
def int_argsort(keys):
    """Stable argsort of int64 *keys*: :func:`radix_argsort` from 4,096 keys, a merge sort below.

    The radix sort's four passes clear 64K counters each: more than a merge
    sort costs for a few thousand keys. (Instead of ``np.argsort``, whose
    quicksort numba compiles in ~0.75 s from an empty cache.)
    """
    n = len(keys)
    if n >= 4096:
        return radix_argsort(keys)
    order = np.arange(n)
    tmp = np.empty(n, np.int64)
    width = 1
    while width < n:
        for lo in range(0, n, 2 * width):
            mid = min(lo + width, n)
            hi = min(lo + 2 * width, n)
            i, j, k = lo, mid, lo
            while i < mid and j < hi:
                if keys[order[j]] < keys[order[i]]:
                    tmp[k] = order[j]
                    j += 1
                else:
                    tmp[k] = order[i]
                    i += 1
                k += 1
            while i < mid:
                tmp[k] = order[i]
                i += 1
                k += 1
            while j < hi:
                tmp[k] = order[j]
                j += 1
                k += 1
        order, tmp = tmp, order
        width *= 2
    return order


@njit(cache=True)
def counting_order(keys, span):
    """Stable permutation sorting *keys* (all in [0, span)); O(n + span)."""
    n = len(keys)
    counts = np.zeros(span + 1, np.int64)
    for i in range(n):
        counts[keys[i] + 1] += 1
    for j in range(1, span + 1):
        counts[j] += counts[j - 1]
    out = np.empty(n, np.int64)
    for i in range(n):
        s = keys[i]
        out[counts[s]] = i
        counts[s] += 1
    return out
