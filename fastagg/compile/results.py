"""Check what a user's ``finalize``, ``value`` or function returns before SQL sees it.

The generated result bodies (:mod:`.codegen`) pass the returned value
through these before the writers of :mod:`fastagg.native.values`, so a
value the annotation cannot hold fails the statement instead of becoming a
silently wrong result:

- :func:`int_result`: numba converts a float to int64 with LLVM's
  ``fptosi``, whose result is undefined outside int64's range (``5e305``
  came out as ``-9223372036854775808``); a uint64 above ``2**63 - 1``
  wraps negative. Both raise ``OverflowError``, NaN raises ``ValueError``,
  as Python's ``int()`` and ``sqlite3`` do.
- :func:`bool_result`: a ``bool`` result is written as 0 or 1 by Python's
  truth rules; a float went through ``fptosi`` (0.5 became 0, false).
- :func:`blob_result`: a ``bytes`` literal (``return b"\\x00ab"``) is a
  numba ``Bytes`` buffer, not an array; it becomes a uint8 array.

``None`` from a result not annotated ``| None`` is checked in the generated
body itself, where the message can name the annotation.
"""

from __future__ import annotations

import numpy as np
from numba import types
from numba.extending import overload

from ..native.intrinsics import unwrap

__all__ = ["blob_result", "bool_result", "int_result"]

_INT64_END = 9223372036854775808.0  # 2**63: floats in [-2**63, 2**63) fit int64


def int_result(r):
    """Return *r* as a value an ``int`` result can hold, or raise (nopython only)."""
    raise NotImplementedError("nopython only")


def bool_result(r):
    """Return *r* as 0 or 1 for a ``bool`` result (nopython only)."""
    raise NotImplementedError("nopython only")


def blob_result(r):
    """Return *r* as a uint8 array if it is a bytes literal (nopython only)."""
    raise NotImplementedError("nopython only")


@overload(int_result, jit_options={"cache": True})
def _int_result(r):
    if isinstance(r, types.Optional):

        def optional(r):
            if r is None:
                return None
            return int_result(unwrap(r))

        return optional
    if isinstance(r, types.Float):

        def from_float(r):
            if r != r:
                raise ValueError("cannot convert float NaN to an SQL INTEGER")
            if not (-_INT64_END <= r < _INT64_END):
                raise OverflowError("float result is outside the range of a 64-bit SQL INTEGER")
            return np.int64(r)

        return from_float
    if isinstance(r, types.Integer) and not r.signed and r.bitwidth >= 64:

        def from_unsigned(r):
            if r > np.uint64(9223372036854775807):
                raise OverflowError("unsigned result is above 2**63 - 1, the largest SQL INTEGER")
            return np.int64(r)

        return from_unsigned
    return lambda r: r


@overload(bool_result, jit_options={"cache": True})
def _bool_result(r):
    if isinstance(r, types.Optional):

        def optional(r):
            if r is None:
                return None
            return bool_result(unwrap(r))

        return optional
    if isinstance(r, (types.Float, types.Integer, types.Boolean)):
        return lambda r: np.int64(1) if r != 0 else np.int64(0)  # NaN is true, as in Python
    return lambda r: r


@overload(blob_result, jit_options={"cache": True})
def _blob_result(r):
    if isinstance(r, types.Optional) and isinstance(r.type, types.Bytes):

        def optional(r):
            if r is None:
                return None
            return np.frombuffer(unwrap(r), np.uint8)

        return optional
    if isinstance(r, types.Bytes):
        return lambda r: np.frombuffer(r, np.uint8)
    return lambda r: r
