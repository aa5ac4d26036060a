"""Any-typed SQL values (``fastagg.Value``) in compiled code: read, write, compare, hash.

In compiled code a value is an :class:`AnyValue` named tuple ``(tag, ival,
fval, data)``: ``tag`` is SQLite's type code (1 integer, 2 real, 3 text,
4 blob, 5 NULL), ``ival``/``fval`` the number (an integer also has its
``fval``), ``data`` the UTF-8 text or the blob's bytes (a view valid during
the callback; storing it copies it). In plain Python a value is the Python
object itself (None, int, float, str, bytes).

The functions here that take a value (:func:`value_parts`,
:func:`make_value`) are ordinary Python functions on Python objects and,
through ``numba.extending.overload``, the same operations on ``AnyValue``
in compiled code, so one class body runs both ways. Comparisons and the
hash work on the parts, so they are plain ``njit`` functions.

Ordering is SQLite's (``sqlite3MemCompare``): NULL < numbers < text < blob;
integers and reals compare by numeric value, exactly (1 = 1.0, and 2**53 + 1
> 2.0**53); text and blobs by their bytes (BINARY). :func:`parts_hash` is
consistent with that equality: equal numbers hash alike whatever their type.
"""

from __future__ import annotations

import collections

import numpy as np
from numba import carray, njit, types
from numba.extending import overload

from ..sqlite import capi as _capi
from ..sqlite.declarations import (
    sqlite3_result_blob,
    sqlite3_result_double,
    sqlite3_result_int64,
    sqlite3_result_null,
    sqlite3_result_text,
)
from .intrinsics import as_voidptr
from .values import _result_writer, read_fields
from .xxh64 import xxhash64

__all__ = [
    "AnyValue", "INTEGER", "REAL", "TEXT", "BLOB", "NULL",
    "read_value", "write_value", "value_parts", "make_value",
    "parts_compare", "parts_hash", "is_anyvalue", "int_float_compare",
]  # fmt: skip

INTEGER, REAL, TEXT, BLOB, NULL = 1, 2, 3, 4, 5

AnyValue = collections.namedtuple("AnyValue", ["tag", "ival", "fval", "data"])
"""A SQL value in compiled code: SQLite's type code, the number, the bytes."""

SQLITE_TRANSIENT = _capi.SQLITE_TRANSIENT
_TWO63 = 9223372036854775808.0


def is_anyvalue(ty) -> bool:
    """Whether numba type *ty* is an :class:`AnyValue` (for ``overload`` typing)."""
    return isinstance(ty, types.NamedTuple) and ty.instance_class is AnyValue


@njit(cache=True)
def read_value(value):
    """Return SQL value *value* (``sqlite3_value*``) as an :class:`AnyValue`.

    Calls ``sqlite3_value_type`` and the reader of that type. Text and blob
    bytes are a view of SQLite's copy, valid during the callback.
    """
    tag, i, f, addr, n = read_fields(value)
    if tag == INTEGER:
        f = float(i)
    # A number's bytes: an empty view (no allocation per row).
    return AnyValue(np.int64(tag), np.int64(i), np.float64(f), carray(as_voidptr(addr), n, np.uint8))


@njit(cache=True)
def _write_anyvalue(ctx, v):
    if v.tag == INTEGER:
        sqlite3_result_int64(ctx, v.ival)
    elif v.tag == REAL:
        sqlite3_result_double(ctx, v.fval)
    elif v.tag == TEXT or v.tag == BLOB:
        data = np.ascontiguousarray(v.data)
        if len(data) == 0:
            data = np.zeros(1, np.uint8)  # a NULL pointer would make the result NULL
            n = 0
        else:
            n = len(data)
        if v.tag == TEXT:
            sqlite3_result_text(ctx, as_voidptr(data.ctypes.data), n, SQLITE_TRANSIENT)
        else:
            sqlite3_result_blob(ctx, as_voidptr(data.ctypes.data), n, SQLITE_TRANSIENT)
    else:
        sqlite3_result_null(ctx)


write_value = _result_writer(
    _write_anyvalue, "write_value", accepts=is_anyvalue,
    doc="Set the result of *ctx* to value *r* with its own SQL type (nopython only).",
)


# --------------------------------------------------------------------------
# Parts: the same operations on Python objects and on AnyValue


def value_parts(v):
    """Return ``(tag, ival, fval, data)`` of value *v*; *data* a uint8 array.

    In Python *v* is None, a bool, an int, a float, a str or bytes; in
    compiled code an :class:`AnyValue`.
    """
    if v is None:
        return NULL, 0, 0.0, np.empty(0, np.uint8)
    if isinstance(v, (bool, int, np.integer)):
        return INTEGER, int(v), float(v), np.empty(0, np.uint8)
    if isinstance(v, (float, np.floating)):
        return REAL, 0, float(v), np.empty(0, np.uint8)
    if isinstance(v, str):
        return TEXT, 0, 0.0, np.frombuffer(v.encode("utf-8", "surrogatepass"), np.uint8).copy()
    if isinstance(v, (bytes, bytearray, memoryview)):
        return BLOB, 0, 0.0, np.frombuffer(bytes(v), np.uint8).copy()
    raise TypeError(f"fastagg.Value: {type(v).__name__} is not a SQL value (None, int, float, str, bytes)")


@overload(value_parts, jit_options={"cache": True})
def _value_parts_impl(v):
    if is_anyvalue(v):
        return lambda v: (v.tag, v.ival, v.fval, v.data)
    return None


def make_value(tag, ival, fval, data):
    """Return the value of the given parts: a Python object, or in compiled code an :class:`AnyValue`."""
    tag = int(tag)
    if tag == INTEGER:
        return int(ival)
    if tag == REAL:
        return float(fval)
    if tag == TEXT:
        return bytes(np.asarray(data, np.uint8)).decode("utf-8", "surrogatepass")
    if tag == BLOB:
        return bytes(np.asarray(data, np.uint8))
    return None


@overload(make_value, jit_options={"cache": True})
def _make_value_impl(tag, ival, fval, data):
    def make(tag, ival, fval, data):
        # C-contiguous bytes: every AnyValue a method returns has one numba type.
        return AnyValue(np.int64(tag), np.int64(ival), np.float64(fval), np.ascontiguousarray(data))

    return make


# --------------------------------------------------------------------------
# SQLite's ordering and a hash consistent with it


@njit(cache=True)
def _class_of(tag):
    # NULL < numbers < text < blob
    if tag == NULL:
        return 0
    if tag == INTEGER or tag == REAL:
        return 1
    if tag == TEXT:
        return 2
    return 3


@njit(cache=True)
def int_float_compare(i, f):
    """Compare integer *i* with real *f* exactly, as SQLite's sqlite3IntFloatCompare."""
    if f < -_TWO63:
        return 1
    if f >= _TWO63:
        return -1
    y = np.int64(f)  # truncates toward zero; exact for |f| < 2**63
    if i < y:
        return -1
    if i > y:
        return 1
    # Same integer part: the fraction decides.
    fi = float(y)
    if f > fi:
        return -1
    if f < fi:
        return 1
    return 0


@njit(cache=True)
def _bytes_compare(a, b):
    n = min(len(a), len(b))
    for k in range(n):
        if a[k] != b[k]:
            return -1 if a[k] < b[k] else 1
    if len(a) != len(b):
        return -1 if len(a) < len(b) else 1
    return 0


@njit(cache=True)
def parts_compare(tag_a, ival_a, fval_a, data_a, tag_b, ival_b, fval_b, data_b):
    """-1, 0 or 1 as value *a* sorts before, equal to or after *b* in SQLite's order."""
    ca = _class_of(tag_a)
    cb = _class_of(tag_b)
    if ca != cb:
        return -1 if ca < cb else 1
    if ca == 0:
        return 0
    if ca == 1:
        if tag_a == INTEGER and tag_b == INTEGER:
            return 0 if ival_a == ival_b else (-1 if ival_a < ival_b else 1)
        if tag_a == REAL and tag_b == REAL:
            return 0 if fval_a == fval_b else (-1 if fval_a < fval_b else 1)
        if tag_a == INTEGER:
            return int_float_compare(ival_a, fval_b)
        return -int_float_compare(ival_b, fval_a)
    return _bytes_compare(data_a, data_b)


@njit(cache=True)
def parts_hash(tag, ival, fval, data):
    """A 64-bit hash of the value, equal for values that :func:`parts_compare` calls equal.

    A blob is hashed as xxHash64 of its bytes; text as xxHash64 of its UTF-8
    bytes mixed with a constant (text and blob are never equal); a number
    as xxHash64 of its 8 little-endian bytes, as an integer when it is one
    (so 1 and 1.0 hash alike), else as IEEE bits (0.0 and -0.0 alike).
    """
    if tag == BLOB:
        return xxhash64(data)
    if tag == TEXT:
        return xxhash64(data) ^ np.uint64(0x9E3779B97F4A7C15)
    if tag == NULL:
        return np.uint64(0)
    word = np.empty(1, np.int64)
    if tag == INTEGER:
        word[0] = ival
    elif fval == np.floor(fval) and -_TWO63 <= fval < _TWO63:
        word[0] = np.int64(fval)
    else:
        bits = np.empty(1, np.float64)
        bits[0] = fval
        word[0] = bits.view(np.int64)[0]
    return xxhash64(word.view(np.uint8)) ^ np.uint64(0x2545F4914F6CDD1D)
