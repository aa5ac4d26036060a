"""Reading one value of a column: kinds, NULLs, indirection, datetime text.

Every function takes a column descriptor record (:data:`COLUMN`, viewed
from the registration's table) and a row. :func:`cell` is the one type
dispatch from a column kind to an SQLite value; :func:`result_cell` hands
it to ``sqlite3_result_*`` (xColumn), ``fastagg.table.load`` to
``sqlite3_bind_*``.
"""

from __future__ import annotations

import numpy as np
from numba import carray, njit

from ..native.intrinsics import address_of, as_voidptr
from ..sqlite import capi as _capi
from ..sqlite.declarations import (
    sqlite3_result_blob64,
    sqlite3_result_double,
    sqlite3_result_int64,
    sqlite3_result_null,
    sqlite3_result_text64,
)
from ..sqlite.structs import SCRATCH_BYTES
from .columns import (
    K_BLOB32, K_BLOB64, K_BOOLBITS, K_DATE32, K_DATETIME, K_F32, K_F64, K_I8, K_I16, K_I32,
    K_I64, K_NULL, K_PBLOB, K_PTEXT, K_TEXT32, K_TEXT64, K_U8, K_U16, K_U32, K_U64,
    V_BITMAP, V_BYTEMASK, V_NONE,
)

__all__ = ["cell", "float_value", "format_datetime", "int_value", "micros", "result_cell", "span", "value_row"]

INT64_MIN = np.iinfo(np.int64).min
INT64_MAX = np.iinfo(np.int64).max

# SQLite's fundamental datatypes (https://www.sqlite.org/c3ref/c_blob.html)
SQLITE_INTEGER, SQLITE_FLOAT, SQLITE_TEXT, SQLITE_BLOB, SQLITE_NULL = 1, 2, 3, 4, 5
SQLITE_STATIC = _capi.SQLITE_STATIC
SQLITE_TRANSIENT = _capi.SQLITE_TRANSIENT
SQLITE_UTF8 = _capi.SQLITE_UTF8


# Byte width of the integer-like kinds read by int_value (0: not one), and
# which are unsigned (uint64 is read as its int64 bits).
_WIDTH = np.zeros(32, np.int64)
_UNSIGNED = np.zeros(32, np.bool_)
for _k, _w in ((K_I8, 1), (K_I16, 2), (K_I32, 4), (K_I64, 8), (K_U8, 1), (K_U16, 2), (K_U32, 4),
               (K_U64, 8), (K_DATETIME, 8), (K_DATE32, 4)):
    _WIDTH[_k] = _w
_UNSIGNED[[K_U8, K_U16, K_U32, K_U64]] = True


@njit(cache=True)
def bit(addr, i):
    """Bit *i* of the bitmap at *addr* (Arrow order: least significant bit first)."""
    return (carray(as_voidptr(addr + (i >> 3)), 1, np.uint8)[0] >> (i & 7)) & 1


@njit(cache=True)
def load_int(addr, width, i):
    """Signed integer of *width* bytes at index *i* of the buffer at *addr*."""
    if width == 8:
        return carray(as_voidptr(addr + 8 * i), 1, np.int64)[0]
    if width == 4:
        return np.int64(carray(as_voidptr(addr + 4 * i), 1, np.int32)[0])
    if width == 2:
        return np.int64(carray(as_voidptr(addr + 2 * i), 1, np.int16)[0])
    return np.int64(carray(as_voidptr(addr + i), 1, np.int8)[0])


@njit(cache=True)
def int_value(cd, r):
    """Integer value of an integer-like kind (uint64 reinterpreted as int64)."""
    k = cd.kind
    if k == K_BOOLBITS:
        return np.int64(bit(cd.data, cd.unit + r))
    w = _WIDTH[k]
    if w == 0:
        return np.int64(0)
    v = load_int(cd.data, w, r)
    if _UNSIGNED[k] and w < 8:
        v &= (np.int64(1) << (8 * w)) - 1
    return v


@njit(cache=True)
def float_value(cd, r):
    a = cd.data
    if cd.kind == K_F32:
        return np.float64(carray(as_voidptr(a + 4 * r), 1, np.float32)[0])
    return carray(as_voidptr(a + 8 * r), 1, np.float64)[0]


@njit(cache=True)
def value_row(cd, r):
    """Row of the value buffers holding row *r*'s value, or -1 for NULL.

    Follows dictionary / categorical codes; NULL covers validity, NaN in
    float columns and NaT in datetimes.
    """
    k = cd.kind
    if k == K_NULL:
        return -1
    codes = cd.codes
    if codes != 0:
        cv = cd.codes_validity
        if cv != 0 and bit(cv, cd.codes_validity_offset + r) == 0:
            return -1
        c = load_int(codes, cd.codes_width, r)
        if c < 0:
            return -1
        r = c
    vk = cd.validity_kind
    if vk == V_BITMAP:
        if bit(cd.validity, cd.validity_offset + r) == 0:
            return -1
    elif vk == V_BYTEMASK:
        if carray(as_voidptr(cd.validity + r), 1, np.uint8)[0] != 0:
            return -1
    if k == K_F32 or k == K_F64:
        if np.isnan(float_value(cd, r)):
            return -1
    elif k == K_DATETIME:
        if int_value(cd, r) == INT64_MIN:
            return -1
    return r


@njit(cache=True)
def span(cd, r):
    """(start, stop) byte offsets of variable-width value *r*."""
    o = cd.offsets
    k = cd.kind
    if k == K_TEXT32 or k == K_BLOB32:
        v = carray(as_voidptr(o + 4 * r), 2, np.int32)
        return np.int64(v[0]), np.int64(v[1])
    v = carray(as_voidptr(o + 8 * r), 2, np.int64)
    return v[0], v[1]


@njit(cache=True)
def micros(cd, r):
    v = int_value(cd, r)
    u = cd.unit
    if u > 0:
        return v * u
    return v // (-u)  # floor: to_sql truncates towards the past, as datetime does


@njit(cache=True)
def civil(days):
    """(year, month, day) of a day count since 1970-01-01 (proleptic Gregorian)."""
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    if month <= 2:
        y += 1
    return y, month, day


@njit(cache=True)
def put_digits(buf, pos, value, width):
    for i in range(width - 1, -1, -1):
        buf[pos + i] = 48 + value % 10
        value //= 10
    return pos + width


@njit(cache=True)
def format_datetime(buf, micros, with_time):
    """Write ``YYYY-MM-DD[ HH:MM:SS[.ffffff]]`` into *buf*; return its length.

    Called with typed (not literal) arguments, as is :func:`put_digits`: one
    specialisation each instead of one per constant (compile time from an
    empty cache; the machine code differs only by the constant).
    """
    days = micros // 86400000000
    rest = micros - days * 86400000000
    y, m, dd = civil(days)
    p = put_digits(buf, np.int64(0), y, np.int64(4))
    buf[p] = 45
    p = put_digits(buf, p + 1, m, np.int64(2))
    buf[p] = 45
    p = put_digits(buf, p + 1, dd, np.int64(2))
    if not with_time:
        return p
    secs = rest // 1000000
    frac = rest - secs * 1000000
    buf[p] = 32
    p = put_digits(buf, p + 1, secs // 3600, np.int64(2))
    buf[p] = 58
    p = put_digits(buf, p + 1, (secs // 60) % 60, np.int64(2))
    buf[p] = 58
    p = put_digits(buf, p + 1, secs % 60, np.int64(2))
    if frac:
        buf[p] = 46
        p = put_digits(buf, p + 1, frac, np.int64(6))
    return p


@njit(cache=True)
def cell(cd, r, scratch):
    """Row *r* of column *cd* as SQLite sees it: ``(type, integer, real, address, length, static)``.

    *type* is ``SQLITE_NULL``, ``SQLITE_INTEGER``, ``SQLITE_FLOAT``,
    ``SQLITE_TEXT`` or ``SQLITE_BLOB``; text and blobs are ``length`` bytes
    at ``address``, which stay valid while the registration pins the frame
    when ``static`` (hand them over as SQLITE_STATIC, zero-copy), or only
    until the next call (datetime text formatted in *scratch*,
    ``SCRATCH_BYTES``; empty values): SQLITE_TRANSIENT.
    """
    k = cd.kind
    rr = value_row(cd, r)
    if rr < 0:
        return SQLITE_NULL, np.int64(0), 0.0, np.int64(0), np.int64(0), False
    if k == K_F64 or k == K_F32:
        return SQLITE_FLOAT, np.int64(0), float_value(cd, rr), np.int64(0), np.int64(0), False
    t = SQLITE_INTEGER
    if k == K_PTEXT or k == K_PBLOB:
        t = SQLITE_TEXT if k == K_PTEXT else SQLITE_BLOB
        pair = carray(as_voidptr(cd.data + 16 * rr), 2, np.int64)
        addr = pair[0]
        n = pair[1]
    elif k == K_TEXT32 or k == K_TEXT64 or k == K_BLOB32 or k == K_BLOB64:
        t = SQLITE_TEXT if k == K_TEXT32 or k == K_TEXT64 else SQLITE_BLOB
        start, stop = span(cd, rr)
        addr = cd.data + start
        n = stop - start
    elif k == K_DATETIME or k == K_DATE32:
        buf = carray(scratch, SCRATCH_BYTES, np.uint8)
        if k == K_DATE32:
            n = format_datetime(buf, int_value(cd, rr) * 86400000000, np.bool_(False))
        else:
            n = format_datetime(buf, micros(cd, rr), np.bool_(True))
        return SQLITE_TEXT, np.int64(0), 0.0, np.int64(address_of(scratch)), np.int64(n), False
    elif k == K_U64:
        v = carray(as_voidptr(cd.data + 8 * rr), 1, np.uint64)[0]
        if v > np.uint64(INT64_MAX):  # documented: beyond int64 -> REAL
            return SQLITE_FLOAT, np.int64(0), np.float64(v), np.int64(0), np.int64(0), False
        return t, np.int64(v), 0.0, np.int64(0), np.int64(0), False
    else:
        return t, int_value(cd, rr), 0.0, np.int64(0), np.int64(0), False
    if n == 0:
        # Never hand SQLite a NULL pointer for '': point at the (pinned) offsets.
        return t, np.int64(0), 0.0, cd.offsets, np.int64(0), False
    # Zero-copy: the Arrow buffer is pinned until SQLite drops the module and
    # no statement of the connection is mid-run (see fastagg.table.registration).
    return t, np.int64(0), 0.0, addr, n, True


@njit(cache=True)
def result_cell(ctx, cd, r, scratch):
    """Set the result of SQLite context *ctx* to row *r* of column *cd* (``sqlite3_result_*``)."""
    k = cd.kind
    if cd.validity_kind == V_NONE and cd.codes == 0:
        # Hot paths: plain float64 / int64 buffers.
        if k == K_F64:
            x = carray(as_voidptr(cd.data + 8 * r), 1, np.float64)[0]
            if np.isnan(x):
                sqlite3_result_null(ctx)
            else:
                sqlite3_result_double(ctx, x)
            return
        if k == K_I64:
            sqlite3_result_int64(ctx, carray(as_voidptr(cd.data + 8 * r), 1, np.int64)[0])
            return
    t, iv, fv, addr, n, static = cell(cd, r, scratch)
    if t == SQLITE_INTEGER:
        sqlite3_result_int64(ctx, iv)
    elif t == SQLITE_FLOAT:
        sqlite3_result_double(ctx, fv)
    elif t == SQLITE_TEXT:
        sqlite3_result_text64(ctx, as_voidptr(addr), n, SQLITE_STATIC if static else SQLITE_TRANSIENT, SQLITE_UTF8)
    elif t == SQLITE_BLOB:
        sqlite3_result_blob64(ctx, as_voidptr(addr), n, SQLITE_STATIC if static else SQLITE_TRANSIENT)
    else:
        sqlite3_result_null(ctx)
