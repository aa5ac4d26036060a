"""The hash of a number without a ``fastagg.Value``: :func:`fastagg.native.anyvalue.parts_hash`, unrolled.

``parts_hash`` of a number is xxHash64 of its 8 bytes (the integer, or an
integral real as that integer, else the real's IEEE bits) mixed with a
constant. It goes through a one-element array per call, which compiled code
allocates on the heap; here the same 8-byte xxHash64 is written out on
registers (:func:`fastagg.native.xxh64.xxhash64_word`), so
``approx_count_distinct`` hashes a row in a few nanoseconds. The answers are
``parts_hash``'s, bit for bit (tests/test_builtins.py checks).
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload

from ..native.anyvalue import INTEGER, REAL, parts_hash
from ..native.xxh64 import xxhash64_word

__all__ = ["int_hash", "number_hash", "real_hash", "value_hash"]

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


@numba.njit(cache=True)
def int_hash(i):
    """``parts_hash`` of the integer *i*."""
    return xxhash64_word(_word(np.int64(i))) ^ _NUMBER


@numba.njit(cache=True)
def real_hash(f):
    """``parts_hash`` of the real *f*: an integral real hashes as that integer (1.0 as 1)."""
    f = np.float64(f)
    if f == np.floor(f) and -_TWO63 <= f < _TWO63:
        return xxhash64_word(_word(np.int64(f))) ^ _NUMBER
    return xxhash64_word(_bits(f)) ^ _NUMBER


@numba.njit(cache=True)
def value_hash(tag, ival, fval, data):
    """``parts_hash`` of a value's parts, numbers without an allocation."""
    if tag == INTEGER:
        return int_hash(ival)
    if tag == REAL:
        return real_hash(fval)
    return np.uint64(parts_hash(tag, ival, fval, data))


def number_hash(v):
    """``parts_hash`` of the number *v*: :func:`int_hash` of an integer, :func:`real_hash` of a real.

    Compiled code picks the function by *v*'s type, so one loop serves an
    integer and a real column.
    """
    return int(int_hash(v)) if isinstance(v, (int, np.integer)) else int(real_hash(v))


@overload(number_hash, jit_options={"cache": True})
def _number_hash(v):
    if isinstance(v, types.Integer):
        return lambda v: int_hash(v)
    if isinstance(v, types.Float):
        return lambda v: real_hash(v)
    return None
