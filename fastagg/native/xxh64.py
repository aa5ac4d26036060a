"""xxHash64 (seed 0), Collet's reference algorithm: the fixed hash of values.

A fixed hash, so values hashed in different processes agree (HyperLogLog
registers merge across workers, ``approx_count_distinct``), and the base of
:func:`fastagg.native.anyvalue.parts_hash`.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["xxhash64", "xxhash64_word"]

# xxHash64's primes (Collet's reference, xxhash.h), as uint64 so that
# compiled arithmetic stays in uint64 and wraps.
_P1 = np.uint64(0x9E3779B185EBCA87)
_P2 = np.uint64(0xC2B2AE3D27D4EB4F)
_P3 = np.uint64(0x165667B19E3779F9)
_P4 = np.uint64(0x85EBCA77C2B2AE63)
_P5 = np.uint64(0x27D4EB2F165667C5)
_ZERO = np.uint64(0)


@numba.njit(cache=True)
def _rotl(x, r):
    return (x << np.uint64(r)) | (x >> np.uint64(64 - r))


@numba.njit(cache=True)
def _read_le(v, i, nbytes):
    """The *nbytes* bytes of *v* from index *i*, as a little-endian unsigned integer."""
    k = _ZERO
    for j in range(nbytes):
        k |= np.uint64(v[i + j]) << np.uint64(8 * j)
    return k


@numba.njit(cache=True)
def _xxh_round(acc, lane):
    """xxHash64's round: mix 8 input bytes *lane* into accumulator *acc*."""
    return np.multiply(_rotl(np.add(acc, np.multiply(lane, _P2)), 31), _P1)


@numba.njit(cache=True, inline="always")
def _avalanche(h):
    """xxHash64's final mix of the accumulator *h*."""
    h ^= h >> np.uint64(33)
    h = np.multiply(h, _P2)
    h ^= h >> np.uint64(29)
    h = np.multiply(h, _P3)
    h ^= h >> np.uint64(32)
    return h


@numba.njit(cache=True, inline="always")
def xxhash64_word(lane):
    """xxHash64 (seed 0) of the 8 little-endian bytes of uint64 *lane*: :func:`xxhash64` of
    them, on registers (one lane, then the avalanche), for callers hashing one number a row."""
    h = np.add(_P5, np.uint64(8))
    h ^= _xxh_round(_ZERO, lane)
    h = np.add(np.multiply(_rotl(h, 27), _P1), _P4)
    return _avalanche(h)


@numba.njit(cache=True)
def xxhash64(v):
    """xxHash64 (seed 0) of the bytes *v*: 32-byte stripes in four lanes, then the tail."""
    n = len(v)
    i = 0
    if n >= 32:
        a1 = np.add(_P1, _P2)
        a2 = _P2
        a3 = _ZERO
        a4 = np.subtract(_ZERO, _P1)
        while i + 32 <= n:
            a1 = _xxh_round(a1, _read_le(v, i, 8))
            a2 = _xxh_round(a2, _read_le(v, i + 8, 8))
            a3 = _xxh_round(a3, _read_le(v, i + 16, 8))
            a4 = _xxh_round(a4, _read_le(v, i + 24, 8))
            i += 32
        h = np.add(np.add(_rotl(a1, 1), _rotl(a2, 7)), np.add(_rotl(a3, 12), _rotl(a4, 18)))
        for acc in (a1, a2, a3, a4):
            h = np.add(np.multiply(h ^ _xxh_round(_ZERO, acc), _P1), _P4)
    else:
        h = _P5
    h = np.add(h, np.uint64(n))
    while i + 8 <= n:
        h = np.add(np.multiply(_rotl(h ^ _xxh_round(_ZERO, _read_le(v, i, 8)), 27), _P1), _P4)
        i += 8
    if i + 4 <= n:
        h = np.add(np.multiply(_rotl(h ^ np.multiply(_read_le(v, i, 4), _P1), 23), _P2), _P3)
        i += 4
    while i < n:
        h = np.multiply(_rotl(h ^ np.multiply(np.uint64(v[i]), _P5), 11), _P1)
        i += 1
    return _avalanche(h)
