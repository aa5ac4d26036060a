"""Read SQL argument values and set SQL results, from compiled code.

Shared by the generated aggregate callbacks (``read_text``, ``write_*``) and
the reader (the ``value_*`` declarations). Text crosses as UTF-8 through
:mod:`.utf8`; SQLite copies every result it is given (``SQLITE_TRANSIENT``).
"""

from __future__ import annotations

import numpy as np
from numba import carray, njit, types
from numba.cpython.unicode import PY_UNICODE_1BYTE_KIND
from numba.extending import overload

from ..sqlite import capi as _capi
from .intrinsics import as_voidptr, unwrap
from .utf8 import str_to_utf8, utf8_to_str

__all__ = [
    "read_blob",
    "read_text",
    "result_bytes",
    "result_str",
    "write_bytes",
    "write_float",
    "write_int",
    "write_str",
]

SQLITE_TRANSIENT = _capi.SQLITE_TRANSIENT

# Values of SQL arguments and result columns (sqlite3_value*).
value_type = _capi.native("sqlite3_value_type")
value_int64 = _capi.native("sqlite3_value_int64")
value_double = _capi.native("sqlite3_value_double")
value_text = _capi.native("sqlite3_value_text")
value_blob = _capi.native("sqlite3_value_blob")
value_bytes = _capi.native("sqlite3_value_bytes")
# Results of a function call (sqlite3_context*).
result_null = _capi.native("sqlite3_result_null")
result_int64 = _capi.native("sqlite3_result_int64")
result_double = _capi.native("sqlite3_result_double")
result_text = _capi.native("sqlite3_result_text")
result_blob = _capi.native("sqlite3_result_blob")
result_error_nomem = _capi.native("sqlite3_result_error_nomem")
result_error_toobig = _capi.native("sqlite3_result_error_toobig")


@njit(cache=True)
def read_text(value):
    """Return SQL value *value* (``sqlite3_value*``) as a str.

    Calls ``sqlite3_value_text`` and ``sqlite3_value_bytes``.
    """
    ptr = value_text(value)  # text before bytes: the byte count is of the UTF-8 form
    return utf8_to_str(ptr, value_bytes(value))


@njit(cache=True)
def read_blob(value):
    """Return SQL value *value* as a uint8 array view (valid during the call).

    Calls ``sqlite3_value_blob`` and ``sqlite3_value_bytes``.
    """
    ptr = value_blob(value)
    return carray(ptr, value_bytes(value), np.uint8)


def _result_writer(write_value, name: str):
    """Return a nopython function ``(ctx, r)`` setting *r* as the SQL result.

    Accepts whatever type numba inferred for the user's return value:
    ``None`` (a method that only raises or returns None) becomes NULL, an
    ``Optional`` is narrowed, anything else goes to *write_value*.
    Calls ``sqlite3_result_null`` for None.
    """

    def write(ctx, r):
        raise NotImplementedError("nopython only")

    write.__name__ = write.__qualname__ = name

    @overload(write, jit_options={"cache": True})
    def typed_write(ctx, r):
        if isinstance(r, types.NoneType):
            return lambda ctx, r: result_null(ctx)
        if isinstance(r, types.Optional):

            def write_optional(ctx, r):
                if r is None:
                    result_null(ctx)
                else:
                    write_value(ctx, unwrap(r))

            return write_optional
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
        result_text(ctx, s._data, len(s), SQLITE_TRANSIENT)
    else:
        encoded = str_to_utf8(s)
        if len(encoded) > 2147483647:
            result_error_toobig(ctx)
            return
        result_text(ctx, as_voidptr(encoded.ctypes.data), len(encoded), SQLITE_TRANSIENT)


@njit(cache=True)
def result_bytes(ctx, data):
    """Set the result of *ctx* to the bytes of uint8 array *data* (SQLite copies them).

    Calls ``sqlite3_result_blob`` (``sqlite3_result_error_toobig`` past 2 GiB).
    """
    flat = np.ascontiguousarray(data)
    if flat.size > 2147483647:
        result_error_toobig(ctx)
        return
    result_blob(ctx, as_voidptr(flat.ctypes.data), flat.size, SQLITE_TRANSIENT)


write_float = _result_writer(result_double, "write_float")
write_int = _result_writer(result_int64, "write_int")
write_str = _result_writer(result_str, "write_str")
write_bytes = _result_writer(result_bytes, "write_bytes")
