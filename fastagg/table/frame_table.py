"""DataFrames and Arrow tables in SQLite: column buffers, a virtual table, a bulk loader.

Three stages, one per section of this module:

1. :func:`frame_columns` turns a pandas DataFrame, a pyarrow Table, or any
   object with ``__arrow_c_stream__`` into :class:`Column` s: raw pointers to
   the existing numpy / Arrow buffers (zero-copy wherever the buffer exists)
   plus the Python objects that own them (*pins*).
2. :func:`register_frame` exposes those buffers as an eponymous-only virtual
   table (https://www.sqlite.org/vtab.html). The module's callbacks are
   ``numba.cfunc`` s compiled once per process (``cache=True``) and shared by
   every registered frame; each table's data reaches them through ``pAux``, a
   pointer to a native *token* that points to the table's *descriptor* (an
   int64 array built with numpy). No Python runs per row.
3. :func:`load_frame` copies a frame into a real table with one
   ``INSERT INTO target SELECT * FROM <temporary registration>`` inside a
   SAVEPOINT.

Memory ownership and lifetime
-----------------------------
* The ``sqlite3_module`` struct is allocated once with ``sqlite3_malloc64``
  and never freed: SQLite may call through it until a connection closes,
  which can be during interpreter shutdown.
* The *token* (``sqlite3_malloc64``, ``TOKEN_SLOTS`` int64) is shared by
  SQLite and Python with a reference count of two: the module's destructor
  (``xDestroy`` of ``sqlite3_create_module_v2``, run when the module is
  dropped and the last ``sqlite3_vtab`` using it is disconnected) drops one,
  :meth:`Registration._release` the other; whoever is last frees it. The
  token never points into Python memory after the pins are released
  (``dead`` is set first and every callback checks it).
* The *pins* (numpy arrays, Arrow arrays, the descriptor, the schema bytes)
  belong to the :class:`Registration`, which a process-wide registry keeps
  alive until :meth:`Registration.close`. Text goes to SQLite zero-copy
  (``SQLITE_STATIC``): SQLite may keep such a pointer in a register until
  the statement is reset, so ``close`` releases the pins only when no
  statement of the connection is mid-run (``sqlite3_stmt_busy``); otherwise
  the release waits, and is retried by every later ``register_frame``,
  ``close`` and :func:`release_pending`.
* Each ``sqlite3_vtab`` (xConnect) and cursor (xOpen) is allocated with
  ``sqlite3_malloc64`` and freed in xDisconnect / xClose; a cursor's row
  permutation and its gathered block (the used columns of an ordered scan,
  CHUNK rows at a time) likewise, in xFilter (replaced) and xClose.
"""

from __future__ import annotations

import atexit
import ctypes
import sqlite3
import threading
import weakref
from dataclasses import dataclass, field

import numba
import numpy as np
import pyarrow as pa
from numba import carray, cfunc, njit, types

from ..sqlite import capi as _capi
from ..native.intrinsics import address_of, as_voidptr, is_null
from ..errors import Error, UnsupportedDtypeError

__all__ = [
    "Column",
    "Registration",
    "frame_columns",
    "load_frame",
    "register_frame",
    "release_pending",
    "unregister_frame",
]

# --------------------------------------------------------------------------
# Column kinds and the native descriptor layout

K_NULL = 0  # every value NULL (Arrow null type)
K_I8, K_I16, K_I32, K_I64 = 1, 2, 3, 4
K_U8, K_U16, K_U32, K_U64 = 5, 6, 7, 8
K_F32, K_F64 = 9, 10
K_BOOLBITS = 11  # Arrow boolean: bit-packed
K_TEXT32, K_TEXT64 = 12, 13  # Arrow string / large_string
K_BLOB32, K_BLOB64 = 14, 15  # Arrow binary / large_binary
K_DATETIME = 16  # int64 in some unit, naive; rendered as ISO-8601 text
K_DATE32 = 17  # int32 days since 1970-01-01; rendered 'YYYY-MM-DD'
K_PTEXT, K_PBLOB = 18, 19  # cursor-materialised text / blob: (address, length) int64 pairs

_INT_KINDS = (K_I8, K_I16, K_I32, K_I64, K_U8, K_U16, K_U32, K_BOOLBITS)
_FLOAT_KINDS = (K_F32, K_F64)

# Validity kinds.
V_NONE, V_BITMAP, V_BYTEMASK = 0, 1, 2  # Arrow bitmap (1 = valid); numpy mask (1 = missing)

HEADER = 8  # descriptor: [nrows, ncols, schema address, 0...]
SLOTS = 16  # per column, at HEADER + i * SLOTS:
S_KIND, S_DATA, S_VALID, S_VKIND, S_VOFF, S_OFFSETS = 0, 1, 2, 3, 4, 5
S_CODES, S_CODEW, S_CVALID, S_CVOFF = 6, 7, 8, 9  # dictionary / categorical indirection
S_UNIT = 10  # datetime: multiplier to microseconds (>0) or divisor (<0)
S_NVALUES = 11  # rows in the data buffers (categories when indirect)
S_MAT = 12  # in a cursor's materialised descriptor: 1 if this column is gathered

TOKEN_SLOTS = 8
T_REFS, T_ALIVE, T_DEAD, T_CURSORS, T_DESC = 0, 1, 2, 3, 4

VTAB_SLOTS = 4  # sqlite3_vtab {pModule, nRef, zErrMsg} + token address
V_TOKEN = 3
CUR_SLOTS = 24  # sqlite3_vtab_cursor {pVtab} + ours:
C_POS, C_END, C_INDEX, C_TOKEN = 1, 2, 3, 4
C_DESC, C_MAT, C_CHUNK = 5, 6, 7  # descriptor address; gathered block; its first position
C_SCRATCH = 16  # 64 bytes
CHUNK = 4096  # rows gathered at a time by an ordered cursor
CHUNK_BYTES = 17 * CHUNK  # per gathered column: 16-byte values (or pairs) + a NULL mask

INT64_MIN = np.iinfo(np.int64).min
INT64_MAX = np.iinfo(np.int64).max
SIGN_BIT = np.int64(INT64_MIN)

SQLITE_OK = _capi.SQLITE_OK
SQLITE_ERROR = _capi.SQLITE_ERROR
SQLITE_NOMEM = 7
SQLITE_STATIC = _capi.SQLITE_STATIC
SQLITE_TRANSIENT = _capi.SQLITE_TRANSIENT
SQLITE_UTF8 = _capi.SQLITE_UTF8
SQLITE_VTAB_INNOCUOUS = 2
SQLITE_INDEX_SCAN_UNIQUE = 1
SQLITE_DBCONFIG_TRIGGER_EQP = 1008
_capi_DONE = _capi.SQLITE_DONE

# Constraint operators (https://www.sqlite.org/c3ref/c_index_constraint_eq.html)
OP_EQ, OP_GT, OP_LE, OP_LT, OP_GE = 2, 4, 8, 16, 32

_DECL = {
    K_NULL: "",
    K_F32: "REAL",
    K_F64: "REAL",
    K_TEXT32: "TEXT",
    K_TEXT64: "TEXT",
    K_BLOB32: "BLOB",
    K_BLOB64: "BLOB",
    K_DATETIME: "TEXT",
    K_DATE32: "TEXT",
}


@dataclass
class Column:
    """One column's buffers, as the virtual table reads them.

    Addresses are plain integers; ``pins`` holds the Python objects that own
    the memory behind them, and must stay referenced while SQLite can read it.

    Attributes
    ----------
    name : str
        Column name in SQL.
    kind : int
        One of the ``K_*`` codes of this module.
    decl : str
        Declared SQL type: ``INTEGER``, ``REAL``, ``TEXT``, ``BLOB`` or ``""``.
    nrows : int
    data, validity, offsets, codes, codes_validity : int
        Buffer addresses (0 when absent).
    validity_kind : int
        ``V_NONE``, ``V_BITMAP`` (Arrow, bit set = valid, starting at bit
        ``validity_offset``) or ``V_BYTEMASK`` (pandas mask, 1 = missing).
    codes_width : int
        Item size of ``codes`` (dictionary indices / categorical codes); a
        negative code or a clear ``codes_validity`` bit is NULL.
    unit : int
        Datetimes: multiply by ``unit`` (> 0) or floor-divide by ``-unit``
        to get microseconds.
    nvalues : int
        Length of the value buffers (number of categories when ``codes``).
    pins : list
        Owners of the buffers.
    """

    name: str
    kind: int
    decl: str
    nrows: int
    data: int = 0
    validity: int = 0
    validity_kind: int = V_NONE
    validity_offset: int = 0
    offsets: int = 0
    codes: int = 0
    codes_width: int = 0
    codes_validity: int = 0
    codes_validity_offset: int = 0
    unit: int = 1
    nvalues: int = 0
    pins: list = field(default_factory=list, repr=False)


# --------------------------------------------------------------------------
# Stage 1: frame -> columns (Python, O(columns) for numpy / Arrow buffers)


def _unsupported(name, dtype, hint="") -> UnsupportedDtypeError:
    msg = f"column {name!r} has dtype {dtype}, which has no SQLite representation"
    return UnsupportedDtypeError(msg + (f"; {hint}" if hint else ""))


_NUMPY_KINDS = {
    "i1": K_I8, "i2": K_I16, "i4": K_I32, "i8": K_I64,
    "u1": K_U8, "u2": K_U16, "u4": K_U32, "u8": K_U64,
    "f4": K_F32, "f8": K_F64, "b1": K_U8,
}
_UNIT_TO_US = {"s": 1_000_000, "ms": 1_000, "us": 1, "ns": -1_000}


def _numpy_column(name, values: np.ndarray, mask=None, owner=None) -> Column:
    """Column over a 1-D numpy array (zero-copy when contiguous)."""
    arr = np.ascontiguousarray(values)  # a view unless strided
    key = arr.dtype.kind + str(arr.dtype.itemsize)
    if arr.dtype.kind == "M":
        unit = np.datetime_data(arr.dtype)[0]
        if unit not in _UNIT_TO_US:
            raise _unsupported(name, values.dtype, "use a unit of s, ms, us or ns")
        arr = arr.view(np.int64)
        col = Column(name, K_DATETIME, "TEXT", len(arr), data=arr.ctypes.data, unit=_UNIT_TO_US[unit])
    elif key in _NUMPY_KINDS and arr.dtype.kind in "iufb":
        kind = _NUMPY_KINDS[key]
        col = Column(name, kind, _DECL.get(kind, "INTEGER"), len(arr), data=arr.ctypes.data)
    else:
        raise _unsupported(name, values.dtype)
    col.nvalues = len(arr)
    col.pins += [arr, owner]
    if mask is not None:
        m = np.ascontiguousarray(mask)
        col.validity, col.validity_kind = m.ctypes.data, V_BYTEMASK
        col.pins.append(m)
    return col


_ARROW_TEXT = {
    pa.string(): K_TEXT32, pa.large_string(): K_TEXT64,
    pa.binary(): K_BLOB32, pa.large_binary(): K_BLOB64,
}


def _arrow_kind(name, typ: pa.DataType) -> int:
    if pa.types.is_integer(typ) or pa.types.is_floating(typ):
        if pa.types.is_float16(typ):
            raise _unsupported(name, typ, "cast to float32 or float64")
        return _NUMPY_KINDS[np.dtype(typ.to_pandas_dtype()).str[1:]]
    if pa.types.is_boolean(typ):
        return K_BOOLBITS
    if typ in _ARROW_TEXT:
        return _ARROW_TEXT[typ]
    if pa.types.is_null(typ):
        return K_NULL
    if pa.types.is_timestamp(typ) and typ.tz is None:
        return K_DATETIME
    if pa.types.is_date32(typ):
        return K_DATE32
    raise _unsupported(name, typ)


def _arrow_column(name, array) -> Column:
    """Column over an Arrow array (zero-copy for a single chunk)."""
    if isinstance(array, pa.ChunkedArray):
        # Several chunks are combined once (a copy); one chunk is used as is.
        array = array.chunk(0) if array.num_chunks == 1 else array.combine_chunks()
    typ = array.type
    if pa.types.is_dictionary(typ):
        values = _arrow_column(name, _normalise_arrow(name, array.dictionary))
        idx = array.indices
        width = idx.type.bit_width // 8
        bufs = idx.buffers()
        values.codes = bufs[1].address + idx.offset * width
        values.codes_width = width
        if idx.null_count and bufs[0] is not None:
            values.codes_validity, values.codes_validity_offset = bufs[0].address, idx.offset
        values.nrows = len(idx)
        values.pins.append(idx)
        return values
    array = _normalise_arrow(name, array)
    typ = array.type
    kind = _arrow_kind(name, typ)
    n = len(array)
    col = Column(name, kind, _DECL.get(kind, "INTEGER"), n, nvalues=n, pins=[array])
    if kind == K_NULL:
        return col
    bufs = array.buffers()
    if array.null_count and bufs[0] is not None:
        col.validity, col.validity_kind, col.validity_offset = bufs[0].address, V_BITMAP, array.offset
    if kind in (K_TEXT32, K_TEXT64, K_BLOB32, K_BLOB64):
        width = 4 if kind in (K_TEXT32, K_BLOB32) else 8
        col.offsets = bufs[1].address + array.offset * width
        # An all-empty column may have no data buffer: point at the offsets
        # instead so that SQLite never receives a NULL text pointer.
        col.data = bufs[2].address if bufs[2] is not None and bufs[2].size else col.offsets
    elif kind == K_BOOLBITS:
        col.data, col.unit = bufs[1].address, array.offset  # unit = bit offset
    else:
        width = typ.bit_width // 8
        col.data = bufs[1].address + array.offset * width
        if kind == K_DATETIME:
            col.unit = _UNIT_TO_US[typ.unit]
    return col


def _normalise_arrow(name, array):
    """Cast the Arrow types read through another layout; O(n) copies, rare types."""
    typ = array.type
    if hasattr(pa.types, "is_string_view") and pa.types.is_string_view(typ):
        return array.cast(pa.large_string())
    if hasattr(pa.types, "is_binary_view") and pa.types.is_binary_view(typ):
        return array.cast(pa.large_binary())
    if pa.types.is_date64(typ):
        return array.cast(pa.date32())
    if pa.types.is_timestamp(typ) and typ.tz is not None:
        return pa.array(_tz_text(array.to_pandas()), type=pa.string())
    if pa.types.is_dictionary(typ):
        return array.cast(typ.value_type)
    return array


def _tz_text(series):
    """Render tz-aware datetimes as ``to_sql`` does (local time and offset); O(n)."""
    import pandas as pd

    series = pd.Series(series)
    out = [None if ts is pd.NaT or ts is None else ts.to_pydatetime().isoformat(" ") for ts in series]
    return out


def _pandas_column(name, series) -> Column:
    import pandas as pd

    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        cats = series.cat.categories
        values = _pandas_column(name, pd.Series(cats))
        codes = np.ascontiguousarray(series.cat.codes.to_numpy())  # -1 = missing
        values.codes, values.codes_width = codes.ctypes.data, codes.dtype.itemsize
        values.nrows = len(codes)
        values.pins += [codes, series]
        return values
    if isinstance(dtype, pd.DatetimeTZDtype):
        return _arrow_column(name, pa.array(_tz_text(series), type=pa.string()))
    if isinstance(dtype, np.dtype):
        if dtype.kind in "iufbM":
            return _numpy_column(name, series.to_numpy(), owner=series)
        if dtype.kind == "O":
            try:
                array = pa.array(series.to_numpy(), from_pandas=True)
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
                raise _unsupported(
                    name, dtype, f"its values could not become one Arrow type ({exc})"
                ) from None
            try:
                return _arrow_column(name, array)
            except UnsupportedDtypeError:
                raise _unsupported(name, f"object (values of Arrow type {array.type})") from None
        raise _unsupported(name, dtype)
    array = series.array
    mask = getattr(array, "_mask", None)
    if isinstance(mask, np.ndarray) and isinstance(getattr(array, "_data", None), np.ndarray):
        # Int64 / Float64 / boolean: the numpy values and the missing mask, as they are.
        return _numpy_column(name, array._data, mask=array._mask, owner=array)
    if hasattr(array, "__arrow_array__"):
        try:
            arrow = array.__arrow_array__()
        except Exception as exc:  # noqa: BLE001 - reported as unsupported
            raise _unsupported(name, dtype, str(exc)) from None
        return _arrow_column(name, arrow)
    raise _unsupported(name, dtype)


def frame_columns(frame) -> list[Column]:
    """Return the columns of *frame* as buffer addresses plus their owners.

    Parameters
    ----------
    frame : pandas.DataFrame, pyarrow.Table, or object with ``__arrow_c_stream__``

    Returns
    -------
    list of Column
        Zero-copy over numpy and single-chunk Arrow buffers. Copies once:
        object columns (to Arrow), multi-chunk Arrow columns, tz-aware
        datetimes (to text), string_view and date64.

    Raises
    ------
    fastagg.UnsupportedDtypeError
        A column holds timedeltas, periods, intervals, decimals, nested or
        mixed values; the message names the column and its dtype.
    fastagg.Error
        Duplicate column names.

    Notes
    -----
    ``uint64`` values above ``2**63 - 1`` are given to SQLite as REAL (the
    nearest double), as SQLite does with integer overflow; smaller values
    stay INTEGER. Datetimes become ISO-8601 text truncated to microseconds,
    ``'2024-01-02 03:04:05'`` or ``'2024-01-02 03:04:05.500000'``, exactly as
    ``DataFrame.to_sql`` writes them into sqlite3.

    Examples
    --------
    >>> import pandas as pd
    >>> [c.decl for c in frame_columns(pd.DataFrame({"a": [1], "b": [0.5], "c": ["x"]}))]
    ['INTEGER', 'REAL', 'TEXT']
    """
    import sys

    pd = sys.modules.get("pandas")
    if pd is not None and isinstance(frame, pd.DataFrame):
        names = [str(c) for c in frame.columns]
        _check_names(names)
        return [_pandas_column(n, frame.iloc[:, i]) for i, n in enumerate(names)]
    if not isinstance(frame, pa.Table):
        if hasattr(frame, "__arrow_c_stream__"):
            frame = pa.table(frame)
        else:
            raise TypeError(
                f"expected a pandas DataFrame, a pyarrow Table or an object with "
                f"__arrow_c_stream__, got {type(frame).__name__}"
            )
    names = [str(c) for c in frame.column_names]
    _check_names(names)
    return [_arrow_column(n, frame.column(i)) for i, n in enumerate(names)]


def _check_names(names):
    seen = set()
    for n in names:
        if n.lower() in seen:
            raise Error(f"duplicate column name {n!r} (SQLite column names are case-insensitive); rename it")
        seen.add(n.lower())


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _schema(columns) -> bytes:
    cols = ", ".join(f"{_quote(c.name)} {c.decl}".rstrip() for c in columns)
    return f"CREATE TABLE x({cols})".encode() + b"\0"


def _descriptor(columns, schema: bytes) -> np.ndarray:
    nrows = columns[0].nrows if columns else 0
    d = np.zeros(HEADER + SLOTS * len(columns), np.int64)
    d[0], d[1] = nrows, len(columns)
    for i, c in enumerate(columns):
        b = HEADER + i * SLOTS
        d[b + S_KIND] = c.kind
        d[b + S_DATA] = c.data
        d[b + S_VALID] = c.validity
        d[b + S_VKIND] = c.validity_kind
        d[b + S_VOFF] = c.validity_offset
        d[b + S_OFFSETS] = c.offsets
        d[b + S_CODES] = c.codes
        d[b + S_CODEW] = c.codes_width
        d[b + S_CVALID] = c.codes_validity
        d[b + S_CVOFF] = c.codes_validity_offset
        d[b + S_UNIT] = c.unit
        d[b + S_NVALUES] = c.nvalues
    return d


# --------------------------------------------------------------------------
# Stage 2: compiled helpers for the virtual table (nopython, no GIL)

_malloc = _capi.native("sqlite3_malloc64")
_free = _capi.native("sqlite3_free")
_declare_vtab = _capi.native("sqlite3_declare_vtab")
_vtab_config = _capi.native("sqlite3_vtab_config")
_value_type = _capi.native("sqlite3_value_type")
_value_int64 = _capi.native("sqlite3_value_int64")
_value_double = _capi.native("sqlite3_value_double")
_result_null = _capi.native("sqlite3_result_null")
_result_int64 = _capi.native("sqlite3_result_int64")
_result_double = _capi.native("sqlite3_result_double")
_result_text64 = _capi.native("sqlite3_result_text64")
_result_blob64 = _capi.native("sqlite3_result_blob64")
_HAS_RHS = _capi.has("sqlite3_vtab_rhs_value")
_rhs_value = _capi.native("sqlite3_vtab_rhs_value") if _HAS_RHS else None

_MSG_DEAD = np.frombuffer(b"fastagg: this table was unregistered\0", np.uint8).copy()
_MSG_NOMEM = np.frombuffer(b"fastagg: out of memory\0", np.uint8).copy()


@njit(cache=True)
def _slots(addr, n):
    """View *n* int64 slots at integer address *addr*."""
    return carray(as_voidptr(addr), n, np.int64)


@njit(cache=True)
def _desc(token_addr):
    tok = _slots(token_addr, TOKEN_SLOTS)
    head = _slots(tok[T_DESC], HEADER)
    return _slots(tok[T_DESC], HEADER + SLOTS * head[1])


@njit(cache=True)
def _bit(addr, i):
    return (carray(as_voidptr(addr + (i >> 3)), 1, np.uint8)[0] >> (i & 7)) & 1


@njit(cache=True)
def _load_int(addr, width, i):
    """Signed integer of *width* bytes at index *i* of the buffer at *addr*."""
    if width == 8:
        return carray(as_voidptr(addr + 8 * i), 1, np.int64)[0]
    if width == 4:
        return np.int64(carray(as_voidptr(addr + 4 * i), 1, np.int32)[0])
    if width == 2:
        return np.int64(carray(as_voidptr(addr + 2 * i), 1, np.int16)[0])
    return np.int64(carray(as_voidptr(addr + i), 1, np.int8)[0])


@njit(cache=True)
def _int_value(d, b, r):
    """Integer value of an integer-like kind (uint64 reinterpreted as int64)."""
    k = d[b + S_KIND]
    a = d[b + S_DATA]
    if k == K_I64 or k == K_U64 or k == K_DATETIME:
        return carray(as_voidptr(a + 8 * r), 1, np.int64)[0]
    if k == K_I32:
        return np.int64(carray(as_voidptr(a + 4 * r), 1, np.int32)[0])
    if k == K_I16:
        return np.int64(carray(as_voidptr(a + 2 * r), 1, np.int16)[0])
    if k == K_I8:
        return np.int64(carray(as_voidptr(a + r), 1, np.int8)[0])
    if k == K_U32:
        return np.int64(carray(as_voidptr(a + 4 * r), 1, np.uint32)[0])
    if k == K_U16:
        return np.int64(carray(as_voidptr(a + 2 * r), 1, np.uint16)[0])
    if k == K_U8:
        return np.int64(carray(as_voidptr(a + r), 1, np.uint8)[0])
    if k == K_BOOLBITS:
        return np.int64(_bit(a, d[b + S_UNIT] + r))
    if k == K_DATE32:
        return np.int64(carray(as_voidptr(a + 4 * r), 1, np.int32)[0])
    return np.int64(0)


@njit(cache=True)
def _float_value(d, b, r):
    a = d[b + S_DATA]
    if d[b + S_KIND] == K_F32:
        return np.float64(carray(as_voidptr(a + 4 * r), 1, np.float32)[0])
    return carray(as_voidptr(a + 8 * r), 1, np.float64)[0]


@njit(cache=True)
def _value_row(d, b, r):
    """Row of the value buffers holding row *r*'s value, or -1 for NULL.

    Follows dictionary / categorical codes; NULL covers validity, NaN in
    float columns and NaT in datetimes.
    """
    k = d[b + S_KIND]
    if k == K_NULL:
        return -1
    codes = d[b + S_CODES]
    if codes != 0:
        cv = d[b + S_CVALID]
        if cv != 0 and _bit(cv, d[b + S_CVOFF] + r) == 0:
            return -1
        c = _load_int(codes, d[b + S_CODEW], r)
        if c < 0:
            return -1
        r = c
    vk = d[b + S_VKIND]
    if vk == V_BITMAP:
        if _bit(d[b + S_VALID], d[b + S_VOFF] + r) == 0:
            return -1
    elif vk == V_BYTEMASK:
        if carray(as_voidptr(d[b + S_VALID] + r), 1, np.uint8)[0] != 0:
            return -1
    if k == K_F32 or k == K_F64:
        if np.isnan(_float_value(d, b, r)):
            return -1
    elif k == K_DATETIME:
        if _int_value(d, b, r) == INT64_MIN:
            return -1
    return r


@njit(cache=True)
def _span(d, b, r):
    """(start, stop) byte offsets of variable-width value *r*."""
    o = d[b + S_OFFSETS]
    k = d[b + S_KIND]
    if k == K_TEXT32 or k == K_BLOB32:
        v = carray(as_voidptr(o + 4 * r), 2, np.int32)
        return np.int64(v[0]), np.int64(v[1])
    v = carray(as_voidptr(o + 8 * r), 2, np.int64)
    return v[0], v[1]


@njit(cache=True)
def _micros(d, b, r):
    v = _int_value(d, b, r)
    u = d[b + S_UNIT]
    if u > 0:
        return v * u
    return v // (-u)  # floor: to_sql truncates towards the past, as datetime does


@njit(cache=True)
def _civil(days):
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
def _put(buf, pos, value, width):
    for i in range(width - 1, -1, -1):
        buf[pos + i] = 48 + value % 10
        value //= 10
    return pos + width


@njit(cache=True)
def _format_datetime(buf, micros, with_time):
    """Write ``YYYY-MM-DD[ HH:MM:SS[.ffffff]]`` into *buf*; return its length."""
    days = micros // 86400000000
    rest = micros - days * 86400000000
    y, m, dd = _civil(days)
    p = _put(buf, 0, y, 4)
    buf[p] = 45
    p = _put(buf, p + 1, m, 2)
    buf[p] = 45
    p = _put(buf, p + 1, dd, 2)
    if not with_time:
        return p
    secs = rest // 1000000
    frac = rest - secs * 1000000
    buf[p] = 32
    p = _put(buf, p + 1, secs // 3600, 2)
    buf[p] = 58
    p = _put(buf, p + 1, (secs // 60) % 60, 2)
    buf[p] = 58
    p = _put(buf, p + 1, secs % 60, 2)
    if frac:
        buf[p] = 46
        p = _put(buf, p + 1, frac, 6)
    return p


@njit(cache=True)
def _result_cell(ctx, d, b, r, scratch):
    """Set the result of SQLite context *ctx* to the value at row *r*."""
    k = d[b + S_KIND]
    if d[b + S_VKIND] == V_NONE and d[b + S_CODES] == 0:
        # Hot paths: plain float64 / int64 buffers.
        if k == K_F64:
            x = carray(as_voidptr(d[b + S_DATA] + 8 * r), 1, np.float64)[0]
            if np.isnan(x):
                _result_null(ctx)
            else:
                _result_double(ctx, x)
            return
        if k == K_I64:
            _result_int64(ctx, carray(as_voidptr(d[b + S_DATA] + 8 * r), 1, np.int64)[0])
            return
    rr = _value_row(d, b, r)
    if rr < 0:
        _result_null(ctx)
        return
    if k == K_F64 or k == K_F32:
        _result_double(ctx, _float_value(d, b, rr))
    elif k == K_PTEXT or k == K_PBLOB:
        pair = carray(as_voidptr(d[b + S_DATA] + 16 * rr), 2, np.int64)
        n = pair[1]
        if n == 0:
            ptr = as_voidptr(d[b + S_OFFSETS])
            if k == K_PTEXT:
                _result_text64(ctx, ptr, 0, SQLITE_TRANSIENT, SQLITE_UTF8)
            else:
                _result_blob64(ctx, ptr, 0, SQLITE_TRANSIENT)
        elif k == K_PTEXT:
            _result_text64(ctx, as_voidptr(pair[0]), n, SQLITE_STATIC, SQLITE_UTF8)
        else:
            _result_blob64(ctx, as_voidptr(pair[0]), n, SQLITE_STATIC)
    elif k == K_TEXT32 or k == K_TEXT64:
        start, stop = _span(d, b, rr)
        if stop == start:  # never hand SQLite a NULL pointer for ''
            _result_text64(ctx, as_voidptr(d[b + S_OFFSETS]), 0, SQLITE_TRANSIENT, SQLITE_UTF8)
        else:
            # Zero-copy: the Arrow buffer is pinned until SQLite drops the module
            # and no statement of the connection is mid-run (see module docstring).
            _result_text64(ctx, as_voidptr(d[b + S_DATA] + start), stop - start, SQLITE_STATIC, SQLITE_UTF8)
    elif k == K_BLOB32 or k == K_BLOB64:
        start, stop = _span(d, b, rr)
        if stop == start:
            _result_blob64(ctx, as_voidptr(d[b + S_OFFSETS]), 0, SQLITE_TRANSIENT)
        else:
            _result_blob64(ctx, as_voidptr(d[b + S_DATA] + start), stop - start, SQLITE_STATIC)
    elif k == K_DATETIME or k == K_DATE32:
        buf = carray(scratch, 64, np.uint8)
        if k == K_DATE32:
            n = _format_datetime(buf, _int_value(d, b, rr) * 86400000000, False)
        else:
            n = _format_datetime(buf, _micros(d, b, rr), True)
        _result_text64(ctx, scratch, n, SQLITE_TRANSIENT, SQLITE_UTF8)
    elif k == K_U64:
        v = carray(as_voidptr(d[b + S_DATA] + 8 * rr), 1, np.uint64)[0]
        if v > np.uint64(INT64_MAX):
            _result_double(ctx, np.float64(v))  # documented: beyond int64 -> REAL
        else:
            _result_int64(ctx, np.int64(v))
    else:
        _result_int64(ctx, _int_value(d, b, rr))


@njit(cache=True)
def _set_error(vtab_addr, msg):
    """Set ``sqlite3_vtab.zErrMsg`` to a sqlite3_malloc'd copy of *msg* (SQLite frees it)."""
    p = _malloc(len(msg))
    if is_null(p):
        return
    carray(p, len(msg), np.uint8)[:] = msg
    slots = _slots(vtab_addr, VTAB_SLOTS)
    if slots[2] != 0:
        _free(as_voidptr(slots[2]))
    slots[2] = address_of(p)


# ---- ordering ---------------------------------------------------------------


@njit(cache=True)
def _byte_ranks(d, b, vals):
    """Dense ranks (BINARY order) of value rows *vals*."""
    offs, buf = _text_view(d, b)
    order = _order_spans(offs, buf, vals)
    ranks = np.empty(len(vals), np.int64)
    rank = 0
    for i in range(len(order)):
        if i > 0 and not _span_equal(offs, buf, vals[order[i - 1]], vals[order[i]]):
            rank += 1
        ranks[order[i]] = rank
    return ranks


@njit(cache=True)
def _mix(k):
    """64-bit hash of an int64 (Fibonacci multiply, high bits folded down)."""
    h = np.uint64(k) * np.uint64(0x9E3779B97F4A7C15)
    return np.int64(h ^ (h >> np.uint64(32)))


@njit(cache=True)
def _text_view(d, b):
    """(offsets, bytes) arrays of a text / blob column's value buffers."""
    nv = d[b + S_NVALUES]
    if d[b + S_KIND] == K_TEXT32 or d[b + S_KIND] == K_BLOB32:
        offs32 = carray(as_voidptr(d[b + S_OFFSETS]), nv + 1, np.int32)
        offs = np.empty(nv + 1, np.int64)
        for i in range(nv + 1):
            offs[i] = offs32[i]
    else:
        offs = carray(as_voidptr(d[b + S_OFFSETS]), nv + 1, np.int64).copy()
    total = offs[nv] if nv > 0 else 0
    return offs, carray(as_voidptr(d[b + S_DATA]), max(total, 1), np.uint8)


@njit(cache=True)
def _span_less(offs, buf, x, y):
    """Whether value *x* < value *y* under BINARY (memcmp, then length)."""
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
def _span_equal(offs, buf, x, y):
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
def _order_spans(offs, buf, items):
    """Stable merge sort of values *items* under BINARY; returns the order.

    Value ``v`` is ``buf[offs[v]:offs[v + 1]]`` (see :func:`_text_view`).
    """
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
                if _span_less(offs, buf, items[order[j]], items[order[i]]):
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
def _text_ranks(d, b, vals):
    """Dense BINARY-order ranks of text / blob value rows *vals* (-1 = NULL -> rank 0).

    Hashes the bytes to group ids in O(n), then sorts only the distinct
    values (a merge sort of G items). Returns (ranks, number of ranks).
    """
    offs, buf = _text_view(d, b)
    n = len(vals)
    cap = 1024
    table = np.full(cap, -1, np.int64)
    reps = np.empty(cap // 2, np.int64)
    hashes = np.empty(cap // 2, np.int64)
    ids = np.empty(n, np.int64)
    g = 0
    for i in range(n):
        v = vals[i]
        if v < 0:
            ids[i] = -1
            continue
        h = np.uint64(1469598103934665603)
        for j in range(offs[v], offs[v + 1]):
            h = (h ^ np.uint64(buf[j])) * np.uint64(1099511628211)
        hv = _mix(np.int64(h))
        s = hv & (cap - 1)
        while True:
            t = table[s]
            if t < 0:
                table[s] = g
                reps[g] = v
                hashes[g] = hv
                ids[i] = g
                g += 1
                if 2 * g >= cap:  # grow to keep the load under 1/2
                    cap *= 2
                    table = np.full(cap, -1, np.int64)
                    r2 = np.empty(cap // 2, np.int64)
                    h2 = np.empty(cap // 2, np.int64)
                    r2[:g] = reps[:g]
                    h2[:g] = hashes[:g]
                    reps, hashes = r2, h2
                    for u in range(g):
                        s2 = hashes[u] & (cap - 1)
                        while table[s2] >= 0:
                            s2 = (s2 + 1) & (cap - 1)
                        table[s2] = u
                break
            if hashes[t] == hv and _span_equal(offs, buf, reps[t], v):
                ids[i] = t
                break
            s = (s + 1) & (cap - 1)
    # Sort the distinct values only.
    order = _order_spans(offs, buf, reps[:g])
    rank_of = np.empty(g, np.int64)
    for r in range(g):
        rank_of[order[r]] = r + 1
    ranks = np.zeros(n, np.int64)
    for i in range(n):
        if ids[i] >= 0:
            ranks[i] = rank_of[ids[i]]
    return ranks, g + 1


@njit(cache=True)
def _sort_keys(d, b, rows):
    """Int64 keys whose order is SQLite's order of the column's values at *rows*.

    Returns (keys, isnull). Numbers compare numerically (floats through their
    order-preserving bit pattern, -0.0 as 0.0; uint64 above int64 as the
    double SQLite sees), text and blobs by memcmp (as dense ranks),
    datetimes by microsecond (their text order).
    """
    n = len(rows)
    keys = np.zeros(n, np.int64)
    isnull = np.zeros(n, np.uint8)
    k = d[b + S_KIND]
    if d[b + S_VKIND] == V_NONE and d[b + S_CODES] == 0 and (k == K_I64 or k == K_F64):
        # Plain int64 / float64 buffers: one tight pass.
        src = carray(as_voidptr(d[b + S_DATA]), d[b + S_NVALUES], np.int64)
        if k == K_I64:
            for i in range(n):
                keys[i] = src[rows[i]]
            return keys, isnull
        for i in range(n):
            x = src[rows[i]]
            if (x & INT64_MAX) > 0x7FF0000000000000:  # NaN: NULL
                isnull[i] = 1
                x = 0
            elif x == SIGN_BIT:  # -0.0 = 0.0 in SQL
                x = 0
            keys[i] = x ^ INT64_MAX if x < 0 else x  # order-preserving for negatives
        return keys, isnull
    vals = np.empty(n, np.int64)
    for i in range(n):
        v = _value_row(d, b, rows[i])
        vals[i] = v
        if v < 0:
            isnull[i] = 1
    if k == K_TEXT32 or k == K_TEXT64 or k == K_BLOB32 or k == K_BLOB64:
        if d[b + S_CODES] != 0:
            # Rank the (few) categories once, then look codes up.
            catrank = _byte_ranks(d, b, np.arange(d[b + S_NVALUES]))
            for i in range(n):
                if vals[i] >= 0:
                    keys[i] = catrank[vals[i]]
        else:
            keys, _ = _text_ranks(d, b, vals)
        return keys, isnull
    if k == K_F64 or k == K_F32:
        fl = np.zeros(n, np.float64)
        for i in range(n):
            if vals[i] >= 0:
                x = _float_value(d, b, vals[i])
                fl[i] = 0.0 if x == 0.0 else x  # -0.0 = 0.0 in SQL
        keys = fl.view(np.int64).copy()
        for i in range(n):
            if keys[i] < 0:
                keys[i] = keys[i] ^ INT64_MAX  # order-preserving for negatives
        return keys, isnull
    for i in range(n):
        v = vals[i]
        if v < 0:
            continue
        if k == K_U64:
            x = _int_value(d, b, v)
            if x >= 0:
                keys[i] = x ^ SIGN_BIT
            else:
                # Above int64: SQLite holds the nearest double; equal doubles group together.
                u = np.float64(carray(as_voidptr(d[b + S_DATA] + 8 * v), 1, np.uint64)[0])
                keys[i] = np.int64((u - 9223372036854775808.0) * 0.5)
        elif k == K_DATETIME:
            keys[i] = _micros(d, b, v)
        else:
            keys[i] = _int_value(d, b, v)
    return keys, isnull


@njit(cache=True)
def _radix_argsort(keys):
    """Stable argsort of int64 *keys*: LSD radix, 16-bit digits, skipping constant digits."""
    n = len(keys)
    order = np.arange(n)
    tmp = np.empty(n, np.int64)
    counts = np.zeros(65537, np.int64)
    for shift in range(0, 64, 16):
        counts[:] = 0
        for i in range(n):
            u = keys[i] ^ SIGN_BIT if shift == 48 else keys[i]  # signed: flip the top bit
            counts[((u >> shift) & 0xFFFF) + 1] += 1
        if counts.max() == n:
            continue  # every key has this digit
        for j in range(1, 65537):
            counts[j] += counts[j - 1]
        for i in range(n):
            o = order[i]
            u = keys[o] ^ SIGN_BIT if shift == 48 else keys[o]
            dgt = (u >> shift) & 0xFFFF
            tmp[counts[dgt]] = o
            counts[dgt] += 1
        order, tmp = tmp, order
    return order


@njit(cache=True)
def _dense_ranks(keys, isnull):
    """Dense ranks of int64 *keys* in key order, NULL rank 0; returns (ranks, count).

    Small key ranges: a presence table, O(n + range). Otherwise hash the keys
    to ids (O(n)) and sort only the distinct keys; when most keys are
    distinct, one stable argsort instead.
    """
    n = len(keys)
    ranks = np.zeros(n, np.int64)
    have = False
    lo = np.int64(0)
    hi = np.int64(0)
    for i in range(n):
        if isnull[i] == 0:
            x = keys[i]
            if not have:
                lo = x
                hi = x
                have = True
            elif x < lo:
                lo = x
            elif x > hi:
                hi = x
    if not have:
        return ranks, 1
    span = hi - lo  # negative when it overflows
    if span >= 0 and span <= 2 * n + 1024:
        mark = np.zeros(span + 1, np.int64)
        for i in range(n):
            if isnull[i] == 0:
                mark[keys[i] - lo] = 1
        acc = 0
        for j in range(span + 1):
            if mark[j] != 0:
                acc += 1
                mark[j] = acc
        for i in range(n):
            if isnull[i] == 0:
                ranks[i] = mark[keys[i] - lo]
        return ranks, acc + 1
    limit = n // 4 + 16
    cap = 1024
    table = np.full(cap, -1, np.int64)
    uniq = np.empty(cap // 2, np.int64)
    ids = np.empty(n, np.int64)
    g = 0
    bail = False
    for i in range(n):
        if isnull[i] != 0:
            ids[i] = -1
            continue
        x = keys[i]
        s = _mix(x) & (cap - 1)
        while True:
            t = table[s]
            if t < 0:
                table[s] = g
                uniq[g] = x
                ids[i] = g
                g += 1
                if 2 * g >= cap:
                    # Mostly new keys, or too many: a radix sort is cheaper.
                    if g > limit or (cap >= 65536 and 2 * g > i + 1):
                        bail = True
                        break
                    cap *= 2
                    table = np.full(cap, -1, np.int64)
                    u2 = np.empty(cap // 2, np.int64)
                    u2[:g] = uniq[:g]
                    uniq = u2
                    for u in range(g):
                        s2 = _mix(uniq[u]) & (cap - 1)
                        while table[s2] >= 0:
                            s2 = (s2 + 1) & (cap - 1)
                        table[s2] = u
                break
            if uniq[t] == x:
                ids[i] = t
                break
            s = (s + 1) & (cap - 1)
        if bail:
            break
    if bail:
        # Mostly distinct keys: sort them all.
        o = _radix_argsort(keys)
        r = 0
        prev = np.int64(0)
        first = True
        for j in range(n):
            i = o[j]
            if isnull[i] != 0:
                continue
            if first or keys[i] != prev:
                r += 1
                prev = keys[i]
                first = False
            ranks[i] = r
        return ranks, r + 1
    uo = np.argsort(uniq[:g])
    rank_of = np.empty(g, np.int64)
    for r in range(g):
        rank_of[uo[r]] = r + 1
    for i in range(n):
        if ids[i] >= 0:
            ranks[i] = rank_of[ids[i]]
    return ranks, g + 1


@njit(cache=True)
def _counting_order(keys, span):
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


@njit(cache=True)
def _order_rows(d, rows, terms):
    """Stable sort of table rows *rows* (ascending) by order terms ``(column, desc)``.

    Column -1 is the rowid. NULLs come first ascending and last descending,
    as in SQLite. Each term becomes dense ranks (hashing, then sorting only
    the distinct values); the ranks are combined into one key and placed by
    a counting sort, or, when their product is large, by one counting sort
    per term from the last. O(n + G log G) for G distinct values.
    """
    n = len(rows)
    # A rowid term ends the key (rowids are unique); ascending, it is the
    # order the stable sort keeps anyway.
    nt = 0
    for t in range(len(terms)):
        nt = t + 1
        if terms[t, 0] < 0:
            if terms[t, 1] == 0:
                nt = t
            break
    if nt == 0 or n == 0:
        return rows.copy()
    identity = rows[0] == 0 and rows[n - 1] == n - 1  # ascending and distinct: all rows
    if nt == 1 and terms[0, 0] >= 0:
        keys, isnull = _sort_keys(d, HEADER + SLOTS * terms[0, 0], rows)
        r, m = _dense_ranks(keys, isnull)
        if terms[0, 1] != 0:
            for i in range(n):
                r[i] = m - 1 - r[i]
        o = _counting_order(r, m)
        return o if identity else rows[o]
    ranks = np.empty((nt, n), np.int64)
    sizes = np.empty(nt, np.int64)
    for t in range(nt):
        col = terms[t, 0]
        if col < 0:
            for i in range(n):
                ranks[t, i] = i
            sizes[t] = n
        else:
            keys, isnull = _sort_keys(d, HEADER + SLOTS * col, rows)
            r, m = _dense_ranks(keys, isnull)
            ranks[t, :] = r
            sizes[t] = m
        if terms[t, 1] != 0:
            for i in range(n):
                ranks[t, i] = sizes[t] - 1 - ranks[t, i]
    budget = 2 * n + 1024
    prod = np.int64(1)
    fits = True
    for t in range(nt):
        if prod > budget // sizes[t]:
            fits = False
            break
        prod *= sizes[t]
    if fits:
        comb = ranks[0].copy()
        for t in range(1, nt):
            for i in range(n):
                comb[i] = comb[i] * sizes[t] + ranks[t, i]
        o = _counting_order(comb, prod)
        return o if identity else rows[o]
    perm = np.arange(n)
    for t in range(nt - 1, -1, -1):
        key = np.empty(n, np.int64)
        for i in range(n):
            key[i] = ranks[t, perm[i]]
        perm = perm[_counting_order(key, sizes[t])]
    return perm if identity else rows[perm]


# ---- filtering --------------------------------------------------------------


@njit(cache=True)
def _int_bounds(op, t, v_int, v_real):
    """Exact int64 interval [lo, hi] of integers x with ``x OP rhs``; lo > hi if empty."""
    if t == 1:
        v = v_int
        if op == OP_EQ:
            return v, v
        if op == OP_GT:
            return (v + 1, INT64_MAX) if v != INT64_MAX else (np.int64(1), np.int64(0))
        if op == OP_GE:
            return v, INT64_MAX
        if op == OP_LT:
            return (INT64_MIN, v - 1) if v != INT64_MIN else (np.int64(1), np.int64(0))
        return INT64_MIN, v
    x = v_real
    empty = (np.int64(1), np.int64(0))
    full = (INT64_MIN, INT64_MAX)
    if x >= 9223372036854775808.0:
        return full if (op == OP_LT or op == OP_LE) else empty
    if x < -9223372036854775808.0:
        return full if (op == OP_GT or op == OP_GE) else empty
    f = np.floor(x)
    fi = np.int64(f)
    integral = f == x
    if op == OP_EQ:
        return (fi, fi) if integral else empty
    if op == OP_GT:
        return fi + 1, INT64_MAX
    if op == OP_GE:
        return (fi, INT64_MAX) if integral else (fi + 1, INT64_MAX)
    if op == OP_LT:
        if integral:
            return (INT64_MIN, fi - 1) if fi != INT64_MIN else empty
        return INT64_MIN, fi
    return INT64_MIN, fi


@njit(cache=True)
def _float_test(x, op, v):
    if op == OP_EQ:
        return x == v
    if op == OP_GT:
        return x > v
    if op == OP_GE:
        return x >= v
    if op == OP_LT:
        return x < v
    return x <= v


@njit(cache=True)
def _select_rows(d, nrows, cons, argv, nargs):
    """Row indices passing the pushed-down constraints (a superset when inexact).

    *cons* rows are ``(column, op)``; argument j of *argv* is the right-hand
    side of constraint j.
    """
    lo_row = np.int64(0)
    hi_row = nrows  # exclusive
    nc = len(cons)
    kind = np.zeros(nc, np.int64)  # 0 skip, 1 int interval, 2 float test
    ilo = np.zeros(nc, np.int64)
    ihi = np.zeros(nc, np.int64)
    fv = np.zeros(nc, np.float64)
    for j in range(min(nc, nargs)):
        col = cons[j, 0]
        op = cons[j, 1]
        v = argv[j]
        t = _value_type(as_voidptr(v))
        if t == 5:  # x OP NULL is never true
            return np.arange(0)
        if t != 1 and t != 2:
            continue  # text / blob right-hand side: leave it to SQLite
        vi = _value_int64(as_voidptr(v))
        vr = _value_double(as_voidptr(v))
        if col < 0:
            lo, hi = _int_bounds(op, t, vi, vr)
            # rowid = row + 1
            if lo > hi:
                return np.arange(0)
            if lo > 1 and lo - 1 > lo_row:
                lo_row = lo - 1
            if hi != INT64_MAX and hi < hi_row:
                hi_row = hi
            continue
        k = d[HEADER + SLOTS * col + S_KIND]
        if k == K_F32 or k == K_F64:
            if t == 2:
                kind[j] = 2
                fv[j] = vr
            elif -9007199254740992 <= vi <= 9007199254740992:
                kind[j] = 2
                fv[j] = np.float64(vi)
        else:
            lo, hi = _int_bounds(op, t, vi, vr)
            if lo > hi:
                return np.arange(0)
            kind[j] = 1
            ilo[j] = lo
            ihi[j] = hi
    if hi_row <= lo_row:
        return np.arange(0)
    out = np.empty(hi_row - lo_row, np.int64)
    m = 0
    for r in range(lo_row, hi_row):
        ok = True
        for j in range(nc):
            if kind[j] == 0:
                continue
            b = HEADER + SLOTS * cons[j, 0]
            rr = _value_row(d, b, r)
            if rr < 0:
                ok = False
                break
            if kind[j] == 1:
                x = _int_value(d, b, rr)
                if x < ilo[j] or x > ihi[j]:
                    ok = False
                    break
            elif not _float_test(_float_value(d, b, rr), cons[j, 1], fv[j]):
                ok = False
                break
        if ok:
            out[m] = r
            m += 1
    return out[:m]


# ---- plan strings (idxStr):
#   "U" + 16 hex colUsed + "F" + (op char + 4 hex col+1)* + "O" + ('a'|'d' + 4 hex col+1)*

_OP_CHARS = np.zeros(64, np.uint8)
_OP_CHARS[OP_EQ], _OP_CHARS[OP_GT], _OP_CHARS[OP_LE], _OP_CHARS[OP_LT], _OP_CHARS[OP_GE] = (
    ord("="), ord(">"), ord("l"), ord("<"), ord("g"))


@njit(cache=True)
def _put_hex(buf, p, v):
    for i in range(3, -1, -1):
        h = v & 15
        buf[p + i] = 48 + h if h < 10 else 87 + h
        v >>= 4
    return p + 4


@njit(cache=True)
def _get_hex(buf, p):
    v = 0
    for i in range(4):
        c = buf[p + i]
        v = v * 16 + (c - 48 if c < 58 else c - 87)
    return v


@njit(cache=True)
def _parse_plan(idx_str):
    """Return (constraints (col, op), order terms (col, desc), colUsed) of an idxStr."""
    cons = np.zeros((0, 2), np.int64)
    terms = np.zeros((0, 2), np.int64)
    used = np.int64(-1)
    if is_null(idx_str):
        return cons, terms, used
    n = 0
    probe = carray(idx_str, 1 << 20, np.uint8)
    while probe[n] != 0:
        n += 1
    s = probe[:n]
    start = 0
    if n >= 17 and s[0] == 85:  # U
        used = np.int64(0)
        for q in range(4):
            used = (used << 16) | _get_hex(s, 1 + 4 * q)
        start = 17
    nf = 0
    no = 0
    section = 0
    i = start
    while i < n:
        c = s[i]
        if c == 70:  # F
            section = 1
            i += 1
            continue
        if c == 79:  # O
            section = 2
            i += 1
            continue
        if section == 1:
            nf += 1
        else:
            no += 1
        i += 5
    cons = np.zeros((nf, 2), np.int64)
    terms = np.zeros((no, 2), np.int64)
    i = start
    a = 0
    o = 0
    section = 0
    while i < n:
        c = s[i]
        if c == 70:
            section = 1
            i += 1
            continue
        if c == 79:
            section = 2
            i += 1
            continue
        col = _get_hex(s, i + 1) - 1
        if section == 1:
            op = OP_EQ
            if c == 62:
                op = OP_GT
            elif c == 108:
                op = OP_LE
            elif c == 60:
                op = OP_LT
            elif c == 103:
                op = OP_GE
            cons[a, 0] = col
            cons[a, 1] = op
            a += 1
        else:
            terms[o, 0] = col
            terms[o, 1] = 1 if c == 100 else 0
            o += 1
        i += 5
    return cons, terms, used


# ---- ordered cursors: gathering the used columns in output order --------------


@njit(cache=True)
def _col_used(used, col):
    """Whether bit *col* of colUsed is set (bit 63 stands for every column from 63)."""
    return ((used >> min(col, 63)) & 1) != 0


@njit(cache=True)
def _mat_alloc(d, used):
    """Allocate a cursor's gathered block for the used columns; 0 if none, -1 on NOMEM.

    The block (sqlite3_malloc64, owned by the cursor, freed in xFilter and
    xClose) starts with a copy of the descriptor whose used columns point at
    CHUNK-row buffers in the block: float columns as float64 (NaN = NULL),
    datetimes as int64 (INT64_MIN = NULL), integers as int64, dates as int32,
    text and blobs as (address, length) pairs into the frame's pinned bytes;
    dictionary codes are resolved; a byte mask carries the other NULLs.
    """
    ncols = d[1]
    dl = HEADER + SLOTS * ncols
    nm = 0
    for col in range(ncols):
        if _col_used(used, col) and d[HEADER + SLOTS * col + S_KIND] != K_NULL:
            nm += 1
    if nm == 0:
        return np.int64(0)
    p = _malloc(8 * dl + nm * CHUNK_BYTES)
    if is_null(p):
        return np.int64(-1)
    base = address_of(p)
    md = carray(p, dl, np.int64)
    md[:] = d[:dl]
    buf = base + 8 * dl
    for col in range(ncols):
        b = HEADER + SLOTS * col
        k = d[b + S_KIND]
        md[b + S_MAT] = 0
        if k == K_NULL or not _col_used(used, col):
            continue
        nullable = d[b + S_VKIND] != V_NONE or d[b + S_CODES] != 0
        md[b + S_MAT] = 1
        md[b + S_DATA] = buf
        md[b + S_VALID] = buf + 16 * CHUNK
        md[b + S_VOFF] = 0
        md[b + S_CODES] = 0
        md[b + S_CVALID] = 0
        md[b + S_VKIND] = V_BYTEMASK if nullable else V_NONE
        if k == K_F32 or k == K_F64:
            md[b + S_KIND] = K_F64
            md[b + S_VKIND] = V_NONE
        elif k == K_DATETIME:
            md[b + S_VKIND] = V_NONE
        elif k == K_TEXT32 or k == K_TEXT64:
            md[b + S_KIND] = K_PTEXT
        elif k == K_BLOB32 or k == K_BLOB64:
            md[b + S_KIND] = K_PBLOB
        elif k != K_U64 and k != K_DATE32:
            md[b + S_KIND] = K_I64
        buf += CHUNK_BYTES
    return base


@njit(cache=True)
def _mat_fill(d, md, perm_addr, start, count):
    """Gather rows ``perm[start:start + count]`` of every used column into the block."""
    ncols = d[1]
    perm = carray(as_voidptr(perm_addr + 8 * start), count, np.int64)
    for col in range(ncols):
        b = HEADER + SLOTS * col
        if md[b + S_MAT] == 0:
            continue
        k = d[b + S_KIND]
        mk = md[b + S_KIND]
        out = as_voidptr(md[b + S_DATA])
        mask = carray(as_voidptr(md[b + S_VALID]), count, np.uint8)
        plain = d[b + S_VKIND] == V_NONE and d[b + S_CODES] == 0
        if plain and (k == K_F64 or k == K_I64 or k == K_U64 or k == K_DATETIME):
            src = carray(as_voidptr(d[b + S_DATA]), d[b + S_NVALUES], np.int64)
            dst = carray(out, count, np.int64)
            for j in range(count):
                dst[j] = src[perm[j]]
        elif mk == K_F64:
            dst = carray(out, count, np.float64)
            for j in range(count):
                rr = _value_row(d, b, perm[j])
                dst[j] = np.nan if rr < 0 else _float_value(d, b, rr)
        elif k == K_DATETIME:
            dst = carray(out, count, np.int64)
            for j in range(count):
                rr = _value_row(d, b, perm[j])
                dst[j] = INT64_MIN if rr < 0 else _int_value(d, b, rr)
        elif mk == K_PTEXT or mk == K_PBLOB:
            dst = carray(out, 2 * count, np.int64)
            data = d[b + S_DATA]
            for j in range(count):
                rr = _value_row(d, b, perm[j])
                if rr < 0:
                    mask[j] = 1
                    dst[2 * j] = 0
                    dst[2 * j + 1] = 0
                else:
                    mask[j] = 0
                    s, e = _span(d, b, rr)
                    dst[2 * j] = data + s
                    dst[2 * j + 1] = e - s
        elif k == K_DATE32:
            dst = carray(out, count, np.int32)
            for j in range(count):
                rr = _value_row(d, b, perm[j])
                if rr < 0:
                    mask[j] = 1
                    dst[j] = 0
                else:
                    mask[j] = 0
                    dst[j] = np.int32(_int_value(d, b, rr))
        else:  # integers (uint64 keeps its bits), booleans
            dst = carray(out, count, np.int64)
            for j in range(count):
                rr = _value_row(d, b, perm[j])
                if rr < 0:
                    mask[j] = 1
                    dst[j] = 0
                else:
                    mask[j] = 0
                    dst[j] = _int_value(d, b, rr)


@njit(cache=True)
def _mat_refill(c):
    """Gather the chunk starting at the cursor's position."""
    pos = c[C_POS]
    d = _slots(c[C_DESC], HEADER)
    ncols = d[1]
    dl = HEADER + SLOTS * ncols
    c[C_CHUNK] = pos
    _mat_fill(_slots(c[C_DESC], dl), _slots(c[C_MAT], dl), c[C_INDEX], pos, min(CHUNK, c[C_END] - pos))


# ---- module callbacks ---------------------------------------------------------

_I32 = types.int32
_VP = types.voidptr
_PP = types.CPointer(types.voidptr)


@cfunc(_I32(_VP, _VP, _I32, _VP, _VP, _VP), cache=True)
def x_connect(db, aux, argc, argv, pp_vtab, pz_err):
    """xConnect: declare the schema, allocate the sqlite3_vtab (freed in xDisconnect)."""
    tok = carray(aux, TOKEN_SLOTS, np.int64)
    if tok[T_DEAD] != 0:
        return SQLITE_ERROR
    head = _slots(tok[T_DESC], HEADER)
    rc = _declare_vtab(db, as_voidptr(head[2]))
    if rc != SQLITE_OK:
        return rc
    _vtab_config(db, SQLITE_VTAB_INNOCUOUS)
    p = _malloc(8 * VTAB_SLOTS)
    if is_null(p):
        return SQLITE_NOMEM
    v = carray(p, VTAB_SLOTS, np.int64)
    v[:] = 0
    v[V_TOKEN] = address_of(aux)
    carray(pp_vtab, 1, np.int64)[0] = address_of(p)
    return SQLITE_OK


@cfunc(_I32(_VP), cache=True)
def x_disconnect(vtab):
    _free(vtab)
    return SQLITE_OK


@cfunc(_I32(_VP, _VP), cache=True)
def x_best_index(vtab, info):
    """xBestIndex: push down numeric comparisons and consume any ORDER BY / GROUP BY.

    sqlite3_index_info (sqlite3.h), 64-bit: nConstraint@0 aConstraint@8
    nOrderBy@16 aOrderBy@24 aConstraintUsage@32 idxNum@40 idxStr@48
    needToFreeIdxStr@56 orderByConsumed@60 estimatedCost@64 estimatedRows@72
    idxFlags@80 colUsed@88. Constraint: iColumn@0 op@4 usable@5 (12 bytes);
    order term: iColumn@0 desc@4 (8 bytes); usage: argvIndex@0 omit@4 (8 bytes).
    """
    vt = _slots(address_of(vtab), VTAB_SLOTS)
    tok = _slots(vt[V_TOKEN], TOKEN_SLOTS)
    if tok[T_DEAD] != 0:
        _set_error(address_of(vtab), _MSG_DEAD)
        return SQLITE_ERROR
    d = _desc(vt[V_TOKEN])
    nrows = d[0]
    q = carray(info, 12, np.int64)
    i32 = carray(info, 24, np.int32)
    f64 = carray(info, 12, np.float64)
    ncons = i32[0]
    norder = i32[4]
    cons = carray(as_voidptr(q[1]), max(ncons, 1) * 12, np.uint8)
    cons32 = carray(as_voidptr(q[1]), max(ncons, 1) * 3, np.int32)
    usage32 = carray(as_voidptr(q[4]), max(ncons, 1) * 2, np.int32)
    usage8 = carray(as_voidptr(q[4]), max(ncons, 1) * 8, np.uint8)
    order32 = carray(as_voidptr(q[3]), max(norder, 1) * 2, np.int32)
    order8 = carray(as_voidptr(q[3]), max(norder, 1) * 8, np.uint8)

    plan = np.zeros(19 + 5 * (ncons + norder) + 1, np.uint8)
    plan[0] = 85  # U: colUsed, which columns xColumn may be asked for (bit 63: 63 and up)
    used = q[11]
    p = 1
    for sh in range(48, -1, -16):
        p = _put_hex(plan, p, (used >> sh) & 0xFFFF)
    plan[p] = 70  # F
    p += 1
    nargs = 0
    rows = np.float64(max(nrows, 1))
    cost = np.float64(max(nrows, 1))
    unique = False
    slot = np.zeros(1, np.int64)
    for i in range(ncons):
        col = cons32[3 * i]
        op = cons[12 * i + 4]
        usable = cons[12 * i + 5]
        if usable == 0 or not (op == OP_EQ or op == OP_GT or op == OP_LE or op == OP_LT or op == OP_GE):
            continue
        is_float = False
        if col >= 0:
            k = d[HEADER + SLOTS * col + S_KIND]
            if k == K_F32 or k == K_F64:
                is_float = True
            elif not (k == K_I8 or k == K_I16 or k == K_I32 or k == K_I64 or k == K_U8
                      or k == K_U16 or k == K_U32 or k == K_BOOLBITS):
                continue
        nargs += 1
        usage32[2 * i] = nargs
        # omit only when our test is exact for this right-hand side: a literal
        # we can see now (sqlite3_vtab_rhs_value), numeric, and for float
        # columns a double or an integer within 2**53.
        omit = 0
        if _HAS_RHS:
            slot[0] = 0
            if _rhs_value(info, i, as_voidptr(slot.ctypes.data)) == SQLITE_OK and slot[0] != 0:
                t = _value_type(as_voidptr(slot[0]))
                if t == 2 or (t == 1 and not is_float):
                    omit = 1
                elif t == 1:
                    iv = _value_int64(as_voidptr(slot[0]))
                    if -9007199254740992 <= iv <= 9007199254740992:
                        omit = 1
        usage8[8 * i + 4] = omit
        plan[p] = _OP_CHARS[op]
        p = _put_hex(plan, p + 1, col + 1)
        if col < 0:
            if op == OP_EQ:
                unique = True
                rows = 1.0
                cost = 1.0
            else:
                rows = rows / 4.0
                cost = cost / 4.0
        else:
            rows = rows / (10.0 if op == OP_EQ else 3.0)
            cost = cost * 0.9
    plan[p] = 79  # O
    p += 1
    if norder > 0:
        for i in range(norder):
            plan[p] = 100 if order8[8 * i + 4] != 0 else 97
            p = _put_hex(plan, p + 1, order32[2 * i] + 1)
        i32[15] = 1  # orderByConsumed: xFilter produces exactly this order
    s = _malloc(p + 1)
    if is_null(s):
        return SQLITE_NOMEM
    out = carray(s, p + 1, np.uint8)
    out[:p] = plan[:p]
    out[p] = 0
    q[6] = address_of(s)
    i32[14] = 1  # needToFreeIdxStr: SQLite frees it with sqlite3_free
    f64[8] = max(cost, 1.0)
    q[9] = np.int64(max(rows, 1.0))
    if unique:
        i32[20] = i32[20] | SQLITE_INDEX_SCAN_UNIQUE
    return SQLITE_OK


@cfunc(_I32(_VP, _VP), cache=True)
def x_open(vtab, pp_cursor):
    """xOpen: allocate a cursor (sqlite3_malloc64; freed in xClose)."""
    vt = _slots(address_of(vtab), VTAB_SLOTS)
    p = _malloc(8 * CUR_SLOTS)
    if is_null(p):
        return SQLITE_NOMEM
    c = carray(p, CUR_SLOTS, np.int64)
    c[:] = 0
    c[0] = address_of(vtab)
    c[C_TOKEN] = vt[V_TOKEN]
    tok = _slots(vt[V_TOKEN], TOKEN_SLOTS)
    tok[T_CURSORS] += 1
    c[C_DESC] = tok[T_DESC]  # pinned while any cursor is open (see Registration._try_release)
    carray(pp_cursor, 1, np.int64)[0] = address_of(p)
    return SQLITE_OK


@njit(cache=True)
def _drop_buffers(c):
    """Free the cursor's row permutation and gathered block."""
    if c[C_INDEX] != 0:
        _free(as_voidptr(c[C_INDEX]))
        c[C_INDEX] = 0
    if c[C_MAT] != 0:
        _free(as_voidptr(c[C_MAT]))
        c[C_MAT] = 0


@cfunc(_I32(_VP), cache=True)
def x_close(cursor):
    c = _slots(address_of(cursor), CUR_SLOTS)
    tok = _slots(c[C_TOKEN], TOKEN_SLOTS)
    tok[T_CURSORS] -= 1
    _drop_buffers(c)
    _free(cursor)
    return SQLITE_OK


@cfunc(_I32(_VP, _I32, _VP, _I32, _VP), cache=True)
def x_filter(cursor, idx_num, idx_str, argc, argv):
    """xFilter: select rows (pushed-down constraints), order them, gather the first chunk.

    An ordered scan keeps its permutation (for xRowid) and gathers the used
    columns CHUNK rows at a time, so that xColumn reads sequentially.
    """
    c = _slots(address_of(cursor), CUR_SLOTS)
    tok = _slots(c[C_TOKEN], TOKEN_SLOTS)
    if tok[T_DEAD] != 0:
        _set_error(c[0], _MSG_DEAD)
        return SQLITE_ERROR
    d = _desc(c[C_TOKEN])
    nrows = d[0]
    _drop_buffers(c)
    c[C_CHUNK] = 0
    cons, terms, used = _parse_plan(idx_str)
    if len(cons) == 0 and len(terms) == 0:
        c[C_POS] = 0
        c[C_END] = nrows
        return SQLITE_OK
    args = carray(argv, max(argc, 1), np.int64)
    if len(cons) > 0:
        rows = _select_rows(d, nrows, cons, args, argc)
    else:
        rows = np.arange(nrows)
    if len(terms) > 0:
        rows = _order_rows(d, rows, terms)
    m = len(rows)
    c[C_POS] = 0
    c[C_END] = m
    if m == 0:
        return SQLITE_OK
    p = _malloc(8 * m)
    if is_null(p):
        _set_error(c[0], _MSG_NOMEM)
        return SQLITE_NOMEM
    carray(p, m, np.int64)[:] = rows
    c[C_INDEX] = address_of(p)
    if len(terms) > 0:
        blk = _mat_alloc(d, used)
        if blk < 0:
            _set_error(c[0], _MSG_NOMEM)
            return SQLITE_NOMEM
        if blk > 0:
            c[C_MAT] = blk
            _mat_refill(c)
    return SQLITE_OK


@cfunc(_I32(_VP), cache=True)
def x_next(cursor):
    c = _slots(address_of(cursor), CUR_SLOTS)
    pos = c[C_POS] + 1
    c[C_POS] = pos
    if c[C_MAT] != 0 and pos - c[C_CHUNK] >= CHUNK and pos < c[C_END]:
        _mat_refill(c)
    return SQLITE_OK


@cfunc(_I32(_VP), cache=True)
def x_eof(cursor):
    c = _slots(address_of(cursor), CUR_SLOTS)
    return 1 if c[C_POS] >= c[C_END] else 0


@njit(cache=True)
def _current_row(c):
    if c[C_INDEX] != 0:
        return carray(as_voidptr(c[C_INDEX] + 8 * c[C_POS]), 1, np.int64)[0]
    return c[C_POS]


@cfunc(_I32(_VP, _VP, _I32), cache=True)
def x_column(cursor, ctx, i):
    c = _slots(address_of(cursor), CUR_SLOTS)
    b = HEADER + SLOTS * i
    scratch = as_voidptr(address_of(cursor) + 8 * C_SCRATCH)
    if c[C_MAT] != 0:
        md = _slots(c[C_MAT], b + SLOTS)
        if md[b + S_MAT] != 0:
            _result_cell(ctx, md, b, c[C_POS] - c[C_CHUNK], scratch)
            return SQLITE_OK
    _result_cell(ctx, _slots(c[C_DESC], b + SLOTS), b, _current_row(c), scratch)
    return SQLITE_OK


@cfunc(_I32(_VP, _VP), cache=True)
def x_rowid(cursor, p_rowid):
    c = _slots(address_of(cursor), CUR_SLOTS)
    carray(p_rowid, 1, np.int64)[0] = _current_row(c) + 1  # 1-based, like to_sql's tables
    return SQLITE_OK


@cfunc(types.void(_VP), cache=True)
def module_destroy(aux):
    """Destructor of sqlite3_create_module_v2: SQLite is done with this table's token."""
    tok = carray(aux, TOKEN_SLOTS, np.int64)
    tok[T_ALIVE] = 0
    tok[T_REFS] -= 1
    if tok[T_REFS] == 0:
        _free(aux)


# sqlite3_module (sqlite3.h): int iVersion; then 23 function pointers
# (xCreate .. xRename, xSavepoint, xRelease, xRollbackTo, xShadowName).
_MODULE_FIELDS = [
    "iVersion", "xCreate", "xConnect", "xBestIndex", "xDisconnect", "xDestroy",
    "xOpen", "xClose", "xFilter", "xNext", "xEof", "xColumn", "xRowid",
    "xUpdate", "xBegin", "xSync", "xCommit", "xRollback", "xFindFunction",
    "xRename", "xSavepoint", "xRelease", "xRollbackTo", "xShadowName",
]
_module_address = None
_module_lock = threading.Lock()


def _module() -> int:
    """Address of the process's one sqlite3_module, built on first use.

    Allocated with sqlite3_malloc64 and never freed: connections call through
    it until they close, possibly during interpreter shutdown.
    """
    global _module_address
    with _module_lock:
        if _module_address is None:
            size = 8 * len(_MODULE_FIELDS)
            addr = _capi.lib.sqlite3_malloc64(size)
            if not addr:
                raise MemoryError("sqlite3_malloc64 failed")
            slots = (ctypes.c_uint64 * len(_MODULE_FIELDS)).from_address(addr)
            ctypes.memset(addr, 0, size)
            fns = {
                "xConnect": x_connect, "xBestIndex": x_best_index,
                "xDisconnect": x_disconnect, "xOpen": x_open, "xClose": x_close,
                "xFilter": x_filter, "xNext": x_next, "xEof": x_eof,
                "xColumn": x_column, "xRowid": x_rowid,
            }
            slots[0] = 1  # iVersion; xCreate = xDestroy = NULL: eponymous-only
            for name, fn in fns.items():
                slots[_MODULE_FIELDS.index(name)] = fn.address
            _module_address = addr
        return _module_address


# --------------------------------------------------------------------------
# Registration (Python side)

_registry: dict[int, "Registration"] = {}  # token address -> live or pending registration
_registry_lock = threading.RLock()


def _busy(handle: int) -> bool:
    """Whether any statement of connection *handle* is mid-run (sqlite3_stmt_busy)."""
    stmt = _capi.lib.sqlite3_next_stmt(handle, None)
    while stmt:
        if _capi.lib.sqlite3_stmt_busy(stmt):
            return True
        stmt = _capi.lib.sqlite3_next_stmt(handle, stmt)
    return False


def _expire_statements(handle: int) -> None:
    """Make every prepared statement of *handle* re-prepare before its next run.

    Cached statements (Python's sqlite3 keeps up to 128) still refer to a
    dropped table; re-preparing binds them to the current registration or
    fails with "no such table". Toggling a boolean db option is how SQLite's
    public API expires statements (``sqlite3_db_config``); the option
    (TRIGGER_EQP, EXPLAIN output of triggers) is restored at once.
    """
    old = ctypes.c_int(0)
    lib = _capi.lib
    lib.sqlite3_db_config(handle, SQLITE_DBCONFIG_TRIGGER_EQP, -1, ctypes.addressof(old))
    lib.sqlite3_db_config(handle, SQLITE_DBCONFIG_TRIGGER_EQP, 1 - old.value, None)
    lib.sqlite3_db_config(handle, SQLITE_DBCONFIG_TRIGGER_EQP, old.value, None)


class Registration:
    """A frame registered as an eponymous virtual table on one connection.

    Keeps the frame's buffers, the descriptor and the schema alive while
    SQLite can read them. Use as a context manager or call :meth:`close`.

    Attributes
    ----------
    name : str
    columns : list of Column
    nrows : int
    """

    def __init__(self, con, name, columns, descriptor, schema, token, handle):
        self.name = name
        self.columns = columns
        self.nrows = int(descriptor[0])
        # No reference to the connection: while the token says the module is
        # alive, SQLite has not closed the connection, so the handle is valid.
        self._handle = handle
        self._descriptor = descriptor  # pinned: the token points here
        self._schema = schema  # pinned: xConnect declares it
        self._token = token  # address; shared with SQLite (see module docstring)
        self._closed = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        state = "closed" if self._closed else "open"
        return f"<fastagg Registration {self.name!r} {self.nrows} rows, {len(self.columns)} columns, {state}>"

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def released(self) -> bool:
        """Whether the buffers have been let go."""
        return self._token is None

    def _slots(self):
        return (ctypes.c_int64 * TOKEN_SLOTS).from_address(self._token)

    def close(self) -> None:
        """Drop the table from its connection and release the buffers.

        Calls ``sqlite3_create_module_v2`` with a NULL module. The buffers are
        released now, or, if a statement of the connection is mid-run (it may
        still hold zero-copy text), as soon as none is (checked on every later
        registration, close and :func:`release_pending`). Idempotent.
        """
        with _registry_lock:
            if not self._closed:
                self._closed = True
                if self._slots()[T_ALIVE]:
                    _capi.lib.sqlite3_create_module_v2(self._handle, self.name.encode(), None, None, None)
                    _expire_statements(self._handle)
            self._try_release()
            release_pending()

    def _try_release(self) -> bool:
        if self._token is None:
            return True
        tok = self._slots()
        # Not alive: the connection closed, SQLite will not read the buffers again.
        if tok[T_ALIVE] and (tok[T_CURSORS] > 0 or _busy(self._handle)):
            return False
        tok[T_DEAD] = 1  # every callback checks this before touching the pins
        tok[T_REFS] -= 1
        if tok[T_REFS] == 0:
            _capi.lib.sqlite3_free(self._token)
        _registry.pop(self._token, None)
        self._token = None
        self.columns = []
        self._descriptor = None
        self._schema = None
        return True


def release_pending() -> int:
    """Release the buffers of closed registrations that SQLite no longer reads.

    Also releases registrations whose connection was closed or collected.
    Returns how many are still waiting.
    """
    waiting = 0
    with _registry_lock:
        for reg in list(_registry.values()):
            tok = reg._slots()
            if reg._closed or not tok[T_ALIVE]:
                reg._closed = True
                if not reg._try_release():
                    waiting += 1
    return waiting


def _existing_names(con) -> set[str]:
    names = set()
    for (schema,) in [(r[1],) for r in con.execute("PRAGMA database_list")]:
        q = f"SELECT lower(name) FROM {_quote(schema)}.sqlite_master WHERE type IN ('table', 'view')"
        names.update(r[0] for r in con.execute(q))
    return names


def register_frame(con: sqlite3.Connection, name: str, frame, *, replace: bool = False) -> Registration:
    """Expose *frame* to SQL on *con* as the read-only table *name*, without copying.

    O(columns): no pass over the rows for numpy and Arrow buffers (see
    :func:`frame_columns` for the columns that are converted once).

    Parameters
    ----------
    con : sqlite3.Connection
    name : str
        Table name; ``SELECT ... FROM name`` works at once (an eponymous-only
        virtual table, no CREATE VIRTUAL TABLE).
    frame : pandas.DataFrame, pyarrow.Table, object with ``__arrow_c_stream__``, or Registration
        A live registration (on any connection) shares its pinned buffers.
    replace : bool
        Drop an earlier fastagg registration of *name* on *con* first.

    Returns
    -------
    Registration
        Keeps the buffers pinned until ``close()`` (or :func:`unregister_frame`).

    Raises
    ------
    fastagg.UnsupportedDtypeError
        Before anything is registered.
    fastagg.Error
        *name* is taken by a table, a view, a module, or another registration.

    Notes
    -----
    Calls ``sqlite3_create_module_v2``. Rows are numbered from 1 (``rowid``),
    as in a table written by ``DataFrame.to_sql``. ``=``, ``<``, ``<=``,
    ``>``, ``>=`` on integer, float and rowid columns are evaluated in
    compiled code; ORDER BY and GROUP BY on any columns are produced in order
    by compiled code (each key hashed to dense ranks, only the distinct
    values sorted, then a counting sort: O(n + G log G) for G distinct
    values), so SQLite needs no sorter; the columns the query uses are then
    gathered in that order a chunk at a time, so SQLite reads them
    sequentially.

    Examples
    --------
    >>> import sqlite3, pandas as pd
    >>> con = sqlite3.connect(":memory:")
    >>> reg = register_frame(con, "t", pd.DataFrame({"g": ["a", "b", "a"], "x": [1, 2, 3]}))
    >>> con.execute("SELECT g, sum(x) FROM t GROUP BY g").fetchall()
    [('a', 4), ('b', 2)]
    >>> reg.close()
    """
    if not isinstance(name, str) or not name or "\0" in name:
        raise Error(f"table name must be a non-empty string, got {name!r}")
    if isinstance(frame, Registration):
        # Its pinned buffers, shared (the workers of fastagg.engine.parallel):
        # exactly what was registered, whatever the frame became since.
        if frame.released:
            raise Error(f"cannot register {name!r}: that registration was closed")
        columns = list(frame.columns)
    else:
        columns = frame_columns(frame)  # raises before anything is registered
    if not columns:
        raise Error(f"cannot register {name!r}: the frame has no columns")
    nrows = {c.nrows for c in columns}
    if len(nrows) != 1:
        raise Error(f"cannot register {name!r}: columns have different lengths {sorted(nrows)}")
    handle = _capi.connection_handle(con)
    release_pending()
    with _registry_lock:
        for reg in list(_registry.values()):
            if _live_on(reg, handle) and reg.name.lower() == name.lower():
                if not replace:
                    raise Error(
                        f"{name!r} is already registered on this connection; close it "
                        f"first or pass replace=True"
                    )
                reg.close()
        if name.lower() in _existing_names(con):
            raise Error(f"cannot register {name!r}: a table or view of that name exists")
        if _module_exists(con, name):
            raise Error(f"cannot register {name!r}: SQLite already has a module of that name")
        schema = _schema(columns)
        descriptor = _descriptor(columns, schema)
        schema_buf = np.frombuffer(schema, np.uint8).copy()
        descriptor[2] = schema_buf.ctypes.data
        token = _capi.lib.sqlite3_malloc64(8 * TOKEN_SLOTS)
        if not token:
            raise MemoryError("sqlite3_malloc64 failed")
        tok = (ctypes.c_int64 * TOKEN_SLOTS).from_address(token)
        for i in range(TOKEN_SLOTS):
            tok[i] = 0
        tok[T_REFS], tok[T_ALIVE], tok[T_DESC] = 2, 1, descriptor.ctypes.data
        reg = Registration(con, name, columns, descriptor, schema_buf, token, handle)
        _registry[token] = reg
        rc = _capi.lib.sqlite3_create_module_v2(
            handle, name.encode(), _module(), token, module_destroy.address
        )
        if rc != SQLITE_OK:
            # SQLite has called module_destroy (its reference is gone).
            reg._closed = True
            reg._try_release()
            raise Error(f"cannot register {name!r}: {_capi.errmsg(handle)}")
        _expire_statements(handle)  # statements naming an older table of this name
        return reg


def _live_on(reg, handle) -> bool:
    return not reg._closed and reg._handle == handle and reg._slots()[T_ALIVE] != 0


def _module_exists(con, name) -> bool:
    try:
        rows = con.execute("SELECT 1 FROM pragma_module_list WHERE lower(name) = lower(?)", (name,)).fetchall()
    except sqlite3.Error:
        return False
    return bool(rows)


def unregister_frame(con: sqlite3.Connection, name: str) -> None:
    """Close the registration of table *name* on *con* (see :meth:`Registration.close`)."""
    handle = _capi.connection_handle(con)
    with _registry_lock:
        for reg in list(_registry.values()):
            if _live_on(reg, handle) and reg.name.lower() == name.lower():
                reg.close()
                return
    raise Error(f"no frame is registered as {name!r} on this connection")


@atexit.register
def _drop_all() -> None:
    """Drop live registrations before the interpreter (and the compiled code) goes."""
    with _registry_lock:
        for reg in list(_registry.values()):
            try:
                reg.close()
            except Exception:  # noqa: BLE001 - best effort at exit
                pass


# --------------------------------------------------------------------------
# Stage 3: bulk loading


_bind_null = _capi.native("sqlite3_bind_null")
_bind_int64 = _capi.native("sqlite3_bind_int64")
_bind_double = _capi.native("sqlite3_bind_double")
_bind_text64 = _capi.native("sqlite3_bind_text64")
_bind_blob64 = _capi.native("sqlite3_bind_blob64")
_step = _capi.native("sqlite3_step")
_reset = _capi.native("sqlite3_reset")


@njit(cache=True, nogil=True)
def _bind_cell(stmt, j, d, b, r, scratch):
    """Bind row *r* of column *b* to parameter *j* (1-based) of *stmt*."""
    rr = _value_row(d, b, r)
    if rr < 0:
        return _bind_null(stmt, j)
    k = d[b + S_KIND]
    if k == K_F64 or k == K_F32:
        return _bind_double(stmt, j, _float_value(d, b, rr))
    if k == K_TEXT32 or k == K_TEXT64 or k == K_BLOB32 or k == K_BLOB64:
        start, stop = _span(d, b, rr)
        ptr = as_voidptr(d[b + S_DATA] + start) if stop > start else as_voidptr(d[b + S_OFFSETS])
        if k == K_TEXT32 or k == K_TEXT64:
            return _bind_text64(stmt, j, ptr, stop - start, SQLITE_STATIC, SQLITE_UTF8)
        return _bind_blob64(stmt, j, ptr, stop - start, SQLITE_STATIC)
    if k == K_DATETIME or k == K_DATE32:
        buf = carray(scratch, 64, np.uint8)
        if k == K_DATE32:
            n = _format_datetime(buf, _int_value(d, b, rr) * 86400000000, False)
        else:
            n = _format_datetime(buf, _micros(d, b, rr), True)
        return _bind_text64(stmt, j, scratch, n, SQLITE_TRANSIENT, SQLITE_UTF8)
    if k == K_U64:
        v = carray(as_voidptr(d[b + S_DATA] + 8 * rr), 1, np.uint64)[0]
        if v > np.uint64(INT64_MAX):
            return _bind_double(stmt, j, np.float64(v))
        return _bind_int64(stmt, j, np.int64(v))
    return _bind_int64(stmt, j, _int_value(d, b, rr))


@njit(cache=True, nogil=True)
def _insert_rows(stmt_addr, desc_addr):
    """Bind, step and reset *stmt* once per row; return (rows done, last rc)."""
    stmt = as_voidptr(stmt_addr)
    head = _slots(desc_addr, HEADER)
    nrows = head[0]
    ncols = head[1]
    d = _slots(desc_addr, HEADER + SLOTS * ncols)
    scratch = np.zeros(64, np.uint8)
    sp = as_voidptr(scratch.ctypes.data)
    for r in range(nrows):
        for c in range(ncols):
            rc = _bind_cell(stmt, c + 1, d, HEADER + SLOTS * c, r, sp)
            if rc != SQLITE_OK:
                return r, rc
        rc = _step(stmt)
        if rc != _capi_DONE:
            _reset(stmt)
            return r, rc
        _reset(stmt)
    return nrows, SQLITE_OK


def _load_by_binding(handle, target, cols, columns, nrows):
    """INSERT with a compiled bind/step/reset loop; return rows inserted."""
    sql = f"INSERT INTO {target} ({cols}) VALUES ({', '.join('?' * len(columns))})".encode()
    stmt = ctypes.c_void_p()
    rc = _capi.lib.sqlite3_prepare_v2(handle, sql, -1, ctypes.byref(stmt), None)
    if rc != SQLITE_OK:
        raise sqlite3.OperationalError(_capi.errmsg(handle))
    try:
        desc = _descriptor(columns, b"")
        done, rc = _insert_rows(stmt.value, desc.ctypes.data)
        if rc != SQLITE_OK:
            raise sqlite3.IntegrityError(_capi.errmsg(handle)) if rc == _capi.SQLITE_CONSTRAINT else sqlite3.OperationalError(_capi.errmsg(handle))
        return done
    finally:
        _capi.lib.sqlite3_finalize(stmt)


def _exec(handle: int, sql: str) -> None:
    rc = _capi.lib.sqlite3_exec(handle, sql.encode(), None, None, None)
    if rc != SQLITE_OK:
        raise sqlite3.OperationalError(_capi.errmsg(handle))


_load_counter = 0


def load_frame(con: sqlite3.Connection, name: str, frame, *, if_exists: str = "fail", _method: str = "vtab") -> int:
    """Copy *frame* into a real table *name* of *con*, in one transaction.

    Columns are declared INTEGER, REAL, TEXT or BLOB (see
    :func:`frame_columns`); values, NULLs and types round-trip exactly. The
    rows go through a temporary registration of the frame with one
    ``INSERT INTO name SELECT * FROM <registration>``: SQLite's VM reads the
    buffers through the compiled callbacks, no Python runs per row.

    Parameters
    ----------
    con : sqlite3.Connection
    name : str
    frame : pandas.DataFrame, pyarrow.Table, or object with ``__arrow_c_stream__``
    if_exists : {"fail", "replace", "append"}
        As in ``DataFrame.to_sql``. ``append`` inserts by column name.

    Returns
    -------
    int
        Rows inserted.

    Raises
    ------
    fastagg.Error
        The table exists and ``if_exists="fail"``; or any SQLite error
        (constraint, disk full): the database is left as it was (everything
        runs inside ``SAVEPOINT``, rolled back on failure). Inside a caller's
        transaction the load joins it and commits with it.

    Examples
    --------
    >>> import sqlite3, pandas as pd
    >>> con = sqlite3.connect(":memory:")
    >>> load_frame(con, "t", pd.DataFrame({"x": [1, None], "s": ["a", "b"]}))
    2
    >>> con.execute("SELECT x, s FROM t").fetchall()
    [(1.0, 'a'), (None, 'b')]
    """
    global _load_counter
    if if_exists not in ("fail", "replace", "append"):
        raise ValueError(f"if_exists must be 'fail', 'replace' or 'append', got {if_exists!r}")
    columns = frame_columns(frame)
    handle = _capi.connection_handle(con)
    exists = bool(
        con.execute(
            "SELECT 1 FROM main.sqlite_master WHERE type IN ('table', 'view') AND lower(name) = lower(?)",
            (name,),
        ).fetchall()
    )
    if exists and if_exists == "fail":
        raise Error(f"table {name!r} already exists; pass if_exists='replace' or 'append'")
    with _registry_lock:
        _load_counter += 1
        source = f"fastagg_load_{_load_counter}_{id(frame) & 0xFFFFFF:x}"
    reg = register_frame(con, source, frame)
    target = f"main.{_quote(name)}"
    cols = ", ".join(_quote(c.name) for c in columns)
    _exec(handle, "SAVEPOINT fastagg_load")
    try:
        if exists and if_exists == "replace":
            _exec(handle, f"DROP TABLE {target}")
        if not exists or if_exists == "replace":
            decl = ", ".join(f"{_quote(c.name)} {c.decl}".rstrip() for c in columns)
            _exec(handle, f"CREATE TABLE {target} ({decl})")
        if _method == "bind":
            inserted = _load_by_binding(handle, target, cols, columns, reg.nrows)
        else:
            _exec(handle, f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {_quote(source)}")
            inserted = _capi.lib.sqlite3_changes64(handle)
        _exec(handle, "RELEASE fastagg_load")
    except BaseException as exc:
        try:
            _exec(handle, "ROLLBACK TO fastagg_load")
            _exec(handle, "RELEASE fastagg_load")
        finally:
            reg.close()
        if isinstance(exc, sqlite3.Error) and not isinstance(exc, Error):
            raise Error(f"loading {name!r} failed, nothing was changed: {exc}") from exc
        raise
    reg.close()
    return int(inserted)
