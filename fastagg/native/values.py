"""Read SQL argument values and set SQL results, from compiled code.

Used by the generated aggregate and function callbacks. Text crosses as
UTF-8 through :mod:`.utf8`; SQLite copies every result it is given
(``SQLITE_TRANSIENT``).
"""

from __future__ import annotations

import numpy as np
from numba import carray, njit, types
from numba.cpython.unicode import PY_UNICODE_1BYTE_KIND
from numba.extending import overload

from ..sqlite import capi as _capi
from ..sqlite.declarations import (
    sqlite3_result_blob,
    sqlite3_result_double,
    sqlite3_result_error_toobig,
    sqlite3_result_int64,
    sqlite3_result_null,
    sqlite3_result_text,
    sqlite3_value_blob,
    sqlite3_value_bytes,
    sqlite3_value_double,
    sqlite3_value_int64,
    sqlite3_value_text,
    sqlite3_value_type,
)
from .intrinsics import address_of, as_voidptr, unwrap
from .utf8 import str_to_utf8, utf8_to_str

__all__ = [
    "read_blob",
    "read_text",
    "read_fields",
    "result_bytes",
    "result_str",
    "write_bytes",
    "write_float",
    "write_int",
    "write_str",
]

SQLITE_TRANSIENT = _capi.SQLITE_TRANSIENT


@njit(cache=True)
def read_text(value):
    """Return SQL value *value* (``sqlite3_value*``) as a str.

    Calls ``sqlite3_value_text`` and ``sqlite3_value_bytes``.
    """
    ptr = sqlite3_value_text(value)  # text before bytes: the byte count is of the UTF-8 form
    return utf8_to_str(ptr, sqlite3_value_bytes(value))


@njit(cache=True)
def read_blob(value):
    """Return SQL value *value* as a uint8 array view (valid during the call).

    Calls ``sqlite3_value_blob`` and ``sqlite3_value_bytes``.
    """
    ptr = sqlite3_value_blob(value)
    return carray(ptr, sqlite3_value_bytes(value), np.uint8)


@njit(cache=True, inline="always")
def read_fields(value):
    """``(type, int64, double, address, length)`` of SQL value *value* (``sqlite3_value*``).

    The type is SQLite's fundamental datatype code (1 integer .. 5 NULL); text
    and blob bytes are SQLite's copy at *address*, valid during the call (an
    empty blob: address 0).
    """
    t = sqlite3_value_type(value)
    if t == _capi.SQLITE_INTEGER:
        return t, sqlite3_value_int64(value), 0.0, np.int64(0), np.int64(0)
    if t == _capi.SQLITE_FLOAT:
        return t, np.int64(0), sqlite3_value_double(value), np.int64(0), np.int64(0)
    if t == _capi.SQLITE_TEXT:
        p = sqlite3_value_text(value)  # text before bytes: the byte count is of the UTF-8 form
        return t, np.int64(0), 0.0, np.int64(address_of(p)), np.int64(sqlite3_value_bytes(value))
    if t == _capi.SQLITE_BLOB:
        p = sqlite3_value_blob(value)
        n = np.int64(sqlite3_value_bytes(value))
        return t, np.int64(0), 0.0, np.int64(address_of(p)) if n > 0 else np.int64(0), n
    return _capi.SQLITE_NULL, np.int64(0), 0.0, np.int64(0), np.int64(0)


def _result_writer(write_value, name: str, accepts=None, doc=None):
    """Return a nopython function ``(ctx, r)`` setting *r* as the SQL result.

    Accepts whatever type numba inferred for the user's return value:
    ``None`` (a method that only raises or returns None) becomes NULL, an
    ``Optional`` is narrowed, anything else goes to *write_value*; with
    *accepts* (a predicate on numba types), only the types it accepts.
    Calls ``sqlite3_result_null`` for None.
    """

    def write(ctx, r):
        raise NotImplementedError("nopython only")

    write.__name__ = write.__qualname__ = name
    if doc is not None:
        write.__doc__ = doc

    @overload(write, jit_options={"cache": True})
    def typed_write(ctx, r):
        if isinstance(r, types.NoneType):
            return lambda ctx, r: sqlite3_result_null(ctx)
        if isinstance(r, types.Optional):

            def write_optional(ctx, r):
                if r is None:
                    sqlite3_result_null(ctx)
                else:
                    write_value(ctx, unwrap(r))

            return write_optional
        if accepts is not None and not accepts(r):
            return None
        return lambda ctx, r: write_value(ctx, r)

    return write


@njit(cache=True)
def _is_ascii(s):
    # Not s._is_ascii: numba sets it on some Latin-1 strings (chr(0x80) * 3).
    if s._kind != PY_UNICODE_1BYTE_KIND:
        return False
    for b in carray(s._data, len(s), np.uint8):
        if b >= 128:
            return False
    return True


@njit(cache=True)
def result_str(ctx, s):
    """Set the result of *ctx* to str *s* (SQLite copies it).

    Calls ``sqlite3_result_text`` (``sqlite3_result_error_toobig`` past 2 GiB).
    """
    if _is_ascii(s):
        sqlite3_result_text(ctx, s._data, len(s), SQLITE_TRANSIENT)
    else:
        encoded = str_to_utf8(s)
        if len(encoded) > 2147483647:
            sqlite3_result_error_toobig(ctx)
            return
        sqlite3_result_text(ctx, as_voidptr(encoded.ctypes.data), len(encoded), SQLITE_TRANSIENT)


@njit(cache=True)
def result_bytes(ctx, data):
    """Set the result of *ctx* to the bytes of uint8 array *data* (SQLite copies them).

    Calls ``sqlite3_result_blob`` (``sqlite3_result_error_toobig`` past 2 GiB).
    """
    flat = np.ascontiguousarray(data)
    if flat.size > 2147483647:
        sqlite3_result_error_toobig(ctx)
        return
    sqlite3_result_blob(ctx, as_voidptr(flat.ctypes.data), flat.size, SQLITE_TRANSIENT)


write_float = _result_writer(sqlite3_result_double, "write_float")
write_int = _result_writer(sqlite3_result_int64, "write_int")
write_str = _result_writer(result_str, "write_str")
write_bytes = _result_writer(result_bytes, "write_bytes")
