"""The one open-addressing hash table compiled code uses: int64 keys to dense ids.

Text and blobs go through it too, by the hash of their bytes
(:func:`hash_bytes`); the caller then checks each value against its
group's first value, since two spans may share a hash.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["group_ids", "hash_bytes", "mix"]


@njit(cache=True)
def mix(k):
    """64-bit hash of an int64 (Fibonacci multiply, high bits folded down)."""
    h = np.uint64(k) * np.uint64(0x9E3779B97F4A7C15)
    return np.int64(h ^ (h >> np.uint64(32)))


@njit(cache=True)
def hash_bytes(buf, start, stop):
    """FNV-1a hash of ``buf[start:stop]`` as int64."""
    h = np.uint64(1469598103934665603)
    for j in range(start, stop):
        h = (h ^ np.uint64(buf[j])) * np.uint64(1099511628211)
    return np.int64(h)


# Array-to-array slice assignments compile a shape-mismatch error path that
# formats text (about 0.7 s of an empty cache's compile here, through
# numba's str and repr of tuples): copies in this module are loops, which
# LLVM turns into the same memcpy.


@njit(cache=True)
def group_ids(keys, skip, max_groups):
    """Number equal *keys* by first appearance; O(n) expected.

    Parameters
    ----------
    keys : int64 array
    skip : uint8 array
        Items with ``skip[i] != 0`` get id -1 (NULLs).
    max_groups : int
        Give up once more than this many ids exist, or once the table is
        large (64k slots) and most keys so far were new: the caller sorts
        instead. Negative: never give up.

    Returns
    -------
    (ids, first, g)
        ``ids[i]`` is item i's id, ``first[u]`` the index of id u's first
        item, ``g`` the number of ids, or -1 if it gave up.
    """
    n = len(keys)
    cap = 1024
    table = np.full(cap, -1, np.int64)  # slot -> id
    first = np.empty(cap // 2, np.int64)
    ids = np.empty(n, np.int64)
    g = 0
    for i in range(n):
        if skip[i] != 0:
            ids[i] = -1
            continue
        x = keys[i]
        s = mix(x) & (cap - 1)
        while True:
            t = table[s]
            if t < 0:
                table[s] = g
                first[g] = i
                ids[i] = g
                g += 1
                if 2 * g >= cap:  # grow to keep the load under 1/2
                    if max_groups >= 0 and (g > max_groups or (cap >= 65536 and 2 * g > i + 1)):
                        return ids, first, -1
                    cap *= 2
                    table = np.full(cap, -1, np.int64)
                    f2 = np.empty(cap // 2, np.int64)
                    for u in range(g):  # not f2[:g] = first[:g]: see above
                        f2[u] = first[u]
                    first = f2
                    for u in range(g):
                        s2 = mix(keys[first[u]]) & (cap - 1)
                        while table[s2] >= 0:
                            s2 = (s2 + 1) & (cap - 1)
                        table[s2] = u
                break
            if keys[first[t]] == x:
                ids[i] = t
                break
            s = (s + 1) & (cap - 1)
    return ids, first, g
