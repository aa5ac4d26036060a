"""The hash of a number without a ``fastagg.Value``: :func:`fastagg.native.anyvalue.parts_hash`, unrolled.

``parts_hash`` of a number is xxHash64 of its 8 bytes (the integer, or an
integral real as that integer, else the real's IEEE bits) mixed with a
constant. It goes through a one-element array per call, which compiled code
allocates on the heap; here the same 8-byte xxHash64 is written out on
registers (Collet's reference: one 8-byte lane, then the avalanche), so
``approx_count_distinct`` hashes a row in a few nanoseconds. The answers are
``parts_hash``'s, bit for bit (tests/test_builtins.py checks).
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from ..native.anyvalue import INTEGER, REAL, parts_hash

__all__ = ["int_hash", "real_hash", "value_hash"]

_P1 = np.uint64(0x9E3779B185EBCA87)
_P2 = np.uint64(0xC2B2AE3D27D4EB4F)
_P3 = np.uint64(0x165667B19E3779F9)
_P4 = np.uint64(0x85EBCA77C2B2AE63)
_P5 = np.uint64(0x27D4EB2F165667C5)
_NUMBER = np.uint64(0x2545F4914F6CDD1D)  # parts_hash's constant for numbers
_TWO63 = 9223372036854775808.0


@intrinsic
def _bits(typingctx, f):
    """The IEEE bits of float64 *f* as a uint64 (no memory round trip)."""
    if not isinstance(f, types.Float):
        return None
    sig = types.uint64(types.float64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return sig, codegen


@intrinsic
def _word(typingctx, i):
    """The bits of int64 *i* as a uint64 (two's complement, no range check)."""
    if not isinstance(i, types.Integer):
        return None
    sig = types.uint64(types.int64)

    def codegen(context, builder, signature, args):
        return args[0]

    return sig, codegen


@numba.njit(cache=True, inline="always")
def _rotl(x, r):
    return (x << np.uint64(r)) | (x >> np.uint64(64 - r))


@numba.njit(cache=True, inline="always")
def _xxh64_word(lane):
    """xxHash64 (seed 0) of the 8 little-endian bytes of *lane*."""
    h = np.add(_P5, np.uint64(8))
    h ^= np.multiply(_rotl(np.multiply(lane, _P2), 31), _P1)
    h = np.add(np.multiply(_rotl(h, 27), _P1), _P4)
    h ^= h >> np.uint64(33)
    h = np.multiply(h, _P2)
    h ^= h >> np.uint64(29)
    h = np.multiply(h, _P3)
    h ^= h >> np.uint64(32)
    return h


@numba.njit(cache=True)
def int_hash(i):
    """``parts_hash`` of the integer *i*."""
    return _xxh64_word(_word(np.int64(i))) ^ _NUMBER


@numba.njit(cache=True)
def real_hash(f):
    """``parts_hash`` of the real *f*: an integral real hashes as that integer (1.0 as 1)."""
    f = np.float64(f)
    if f == np.floor(f) and -_TWO63 <= f < _TWO63:
        return _xxh64_word(_word(np.int64(f))) ^ _NUMBER
    return _xxh64_word(_bits(f)) ^ _NUMBER


@numba.njit(cache=True)
def value_hash(tag, ival, fval, data):
    """``parts_hash`` of a value's parts, numbers without an allocation."""
    if tag == INTEGER:
        return int_hash(ival)
    if tag == REAL:
        return real_hash(fval)
    return np.uint64(parts_hash(tag, ival, fval, data))
