"""Frames to columns: buffer addresses of pandas, Arrow and numpy data, zero-copy.

:func:`frame_columns` turns a pandas DataFrame, a pyarrow Table, or any
object with ``__arrow_c_stream__`` into :class:`Column` s: raw pointers to
the existing numpy / Arrow buffers (zero-copy wherever the buffer exists)
plus the Python objects that own them (*pins*). :func:`build_table` lays
them out as the native descriptor the compiled callbacks read
(:data:`fastagg.sqlite.structs.TABLE` / ``COLUMN``).
"""

from __future__ import annotations

import sys
import threading
import weakref
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from ..errors import Error, UnsupportedDtypeError
from ..sqlite.structs import COLUMN, TABLE

__all__ = ["Column", "DECIMALS", "build_table", "check_schema", "frame_columns", "quote", "schema_text"]

#: Values of the ``decimals`` option: how Arrow decimal columns reach SQL.
DECIMALS = ("real", "text")


# Column kinds (values of COLUMN.kind).
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

# Validity kinds.
V_NONE, V_BITMAP, V_BYTEMASK = 0, 1, 2  # Arrow bitmap (1 = valid); numpy mask (1 = missing)

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
    if not arr.dtype.isnative:
        # Compiled code reads native byte order: swap once, here (an O(n) copy).
        arr = arr.astype(arr.dtype.newbyteorder("="))
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


def _one_chunk(array):
    """Return *array* (Array or ChunkedArray) as one Array; a copy for several chunks."""
    if not isinstance(array, pa.ChunkedArray):
        return array
    if array.num_chunks == 1:
        return array.chunk(0)
    if array.num_chunks == 0:
        return pa.array([], array.type)
    if pa.types.is_dictionary(array.type):
        # Chunks may have different dictionaries: one for the combined array.
        array = array.unify_dictionaries()
    return array.combine_chunks()


def _converts(typ) -> bool:
    """Whether :func:`_normalise_arrow` copies a column of Arrow type *typ*."""
    return (
        pa.types.is_decimal(typ)
        or pa.types.is_date64(typ)
        or (pa.types.is_timestamp(typ) and typ.tz is not None)
        or (hasattr(pa.types, "is_string_view") and pa.types.is_string_view(typ))
        or (hasattr(pa.types, "is_binary_view") and pa.types.is_binary_view(typ))
    )


# Converted columns of pyarrow Tables, kept while the table lives: id(table)
# -> (weak reference, {(column index, decimals): one-chunk normalised array}).
# A Table is immutable, so every later registration of the same table (each
# fastagg.query call registers its frames; parallel workers register them
# again) reuses the conversion instead of copying again.
_converted: dict[int, tuple] = {}
_converted_lock = threading.Lock()


def _table_conversions(table: pa.Table) -> dict:
    key = id(table)
    with _converted_lock:
        entry = _converted.get(key)
        if entry is None or entry[0]() is not table:
            # The callback runs when the table is freed, before its id can be reused.
            ref = weakref.ref(table, lambda _ref, key=key: _converted.pop(key, None))
            entry = _converted[key] = (ref, {})
        return entry[1]


def _table_column(table: pa.Table, i: int, name: str, decimals: str) -> Column:
    """Column *i* of *table*; a column needing a copy is converted once per table."""
    array = table.column(i)
    if array.num_chunks <= 1 and not _converts(array.type):
        return _arrow_column(name, array, decimals)  # zero-copy: nothing to keep
    conversions = _table_conversions(table)
    converted = conversions.get((i, decimals))
    if converted is None:
        converted = _one_chunk(array)
        if not pa.types.is_dictionary(converted.type):
            converted = _normalise_arrow(name, converted, decimals)
        conversions[(i, decimals)] = converted
    return _arrow_column(name, converted, decimals)


def _arrow_column(name, array, decimals="real") -> Column:
    """Column over an Arrow array (zero-copy for a single chunk)."""
    # Several chunks are combined once, at registration (a copy); one chunk is used as is.
    array = _one_chunk(array)
    typ = array.type
    if pa.types.is_dictionary(typ):
        values = _arrow_column(name, _normalise_arrow(name, array.dictionary, decimals), decimals)
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
    array = _normalise_arrow(name, array, decimals)
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


def _normalise_arrow(name, array, decimals="real"):
    """Cast the Arrow types read through another layout; O(n) copies, once, at registration."""
    typ = array.type
    if pa.types.is_decimal(typ):
        # SQLite has no decimal type: the nearest double (as DuckDB's CAST to
        # DOUBLE), or the exact digits as text ('12.50', all `scale` digits).
        return _decimal_to_double(array) if decimals == "real" else array.cast(pa.string())
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


def _decimal_to_double(array):
    """Return the nearest doubles of Arrow decimal *array*; O(n), once, at registration.

    Arrow's own decimal -> double cast is not correctly rounded (5755.94
    becomes 5755.9400000000005). Up to 15 digits the unscaled integer is
    exact in a double and so is ``10**scale`` (up to 22), so one IEEE
    division (multiplication for a negative scale) gives the nearest
    double; wider decimals go through Arrow's text -> double parse, which
    is correctly rounded too, and slower.
    """
    typ = array.type
    if typ.precision > 15 or abs(typ.scale) > 22 or sys.byteorder != "little":
        return array.cast(pa.string()).cast(pa.float64())
    words = typ.bit_width // 64  # 128 / 256 bits: the low 64-bit word holds the value
    itype = np.int64 if words else (np.int32 if typ.bit_width == 32 else np.int64)
    stride = max(words, 1)
    n = array.offset + len(array)
    data = array.buffers()[1]
    unscaled = np.frombuffer(data, itype, count=n * stride)[::stride].astype(np.float64)
    if typ.scale >= 0:
        values = unscaled / 10.0 ** typ.scale
    else:
        values = unscaled * 10.0 ** -typ.scale
    validity = array.buffers()[0] if array.null_count else None
    return pa.Array.from_buffers(
        pa.float64(), len(array), [validity, pa.py_buffer(values)], null_count=array.null_count, offset=array.offset
    )


def _tz_text(series):
    """Render tz-aware datetimes as ``to_sql`` does (local time and offset); O(n)."""
    import pandas as pd

    series = pd.Series(series)
    out = [None if ts is pd.NaT or ts is None else ts.to_pydatetime().isoformat(" ") for ts in series]
    return out


def _object_array(name, values: np.ndarray):
    """Return the Arrow array of object column *values*, or raise UnsupportedDtypeError."""
    import pandas as pd

    try:
        array = pa.array(values, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise _unsupported(name, values.dtype,
                           f"its values could not become one Arrow type ({exc})") from None
    except OverflowError:
        raise _unsupported(name, values.dtype, "it holds integers outside the int64 range; "
                           "convert them to float or str first") from None
    except UnicodeError as exc:
        raise _unsupported(name, values.dtype, f"it holds text that is not valid Unicode "
                           f"({exc.reason} at {exc.start}, e.g. a lone surrogate)") from None
    if pa.types.is_binary(array.type) or pa.types.is_large_binary(array.type):
        # pyarrow turns str mixed with bytes into binary, silently: the text
        # would then never equal a SQL string. Refused, as int mixed with str is.
        kind = pd.api.types.infer_dtype(values, skipna=True)
        if kind != "bytes":
            raise _unsupported(name, values.dtype, f"its values mix bytes with other types ({kind}); "
                               "make them all str or all bytes")
    return array


def _pandas_column(name, array, decimals="real") -> Column:
    """Column over *array*, a pandas column's own values (``Series._values``: an ndarray or an ExtensionArray)."""
    import pandas as pd

    dtype = array.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        values = _pandas_column(name, pd.Series(array.categories)._values, decimals)
        codes = np.ascontiguousarray(array.codes)  # -1 = missing
        values.codes, values.codes_width = codes.ctypes.data, codes.dtype.itemsize
        values.nrows = len(codes)
        values.pins += [codes, array]
        return values
    if isinstance(dtype, pd.DatetimeTZDtype):
        return _arrow_column(name, pa.array(_tz_text(array), type=pa.string()))
    if isinstance(dtype, np.dtype):
        if dtype.kind in "iufbM":
            # A DatetimeArray's numpy values (NaT is the int64 minimum), as Series.to_numpy gives them.
            values = array if isinstance(array, np.ndarray) else array.to_numpy()
            return _numpy_column(name, values, owner=array)
        if dtype.kind == "O":
            values = np.asarray(array)
            arrow = _object_array(name, values)
            try:
                return _arrow_column(name, arrow, decimals)
            except UnsupportedDtypeError:
                raise _unsupported(name, f"object (values of Arrow type {arrow.type})") from None
        raise _unsupported(name, dtype)
    mask = getattr(array, "_mask", None)
    if isinstance(mask, np.ndarray) and isinstance(getattr(array, "_data", None), np.ndarray):
        # Int64 / Float64 / boolean: the numpy values and the missing mask, as they are.
        return _numpy_column(name, array._data, mask=array._mask, owner=array)
    if hasattr(array, "__arrow_array__"):
        try:
            arrow = array.__arrow_array__()
        except Exception as exc:  # noqa: BLE001 - reported as unsupported
            raise _unsupported(name, dtype, str(exc)) from None
        return _arrow_column(name, arrow, decimals)
    raise _unsupported(name, dtype)


def _pandas_values(frame, i: int):
    """Column *i* of DataFrame *frame* as its own values, without building a Series.

    ``df.iloc[:, i]`` costs ~30 us a column (a Series, its index, its
    name): most of a small statement's registration. ``_get_column_array``
    (pandas >= 1.5) hands over the block's values, the same object
    ``Series._values`` is.
    """
    get = getattr(frame, "_get_column_array", None)
    if get is not None:
        try:
            return get(i)
        except Exception:  # noqa: BLE001 - a pandas without it, or that changed it
            pass
    return frame.iloc[:, i]._values


def frame_columns(frame, *, decimals: str = "real") -> list[Column]:
    """Return the columns of *frame* as buffer addresses plus their owners.

    Parameters
    ----------
    frame : pandas.DataFrame, pyarrow.Table, or object with ``__arrow_c_stream__``
    decimals : {"real", "text"}
        How Arrow ``decimal32/64/128/256`` columns are exposed: ``"real"``
        (the nearest double; declared REAL) or ``"text"`` (the exact digits,
        ``'12.50'``; declared TEXT).

    Returns
    -------
    list of Column
        Zero-copy over numpy (native byte order), single-chunk Arrow and
        ``large_string`` / ``large_binary`` buffers. Copies once, here:
        object columns (to Arrow), multi-chunk Arrow columns (combined),
        big-endian numpy columns (byte-swapped), decimals (to double or
        text), tz-aware datetimes (to text), ``string_view`` /
        ``binary_view`` (to ``large_string`` / ``large_binary``) and date64.
        The copies of a pyarrow Table's columns are kept while the table
        lives and reused by every later call on the same table.

    Raises
    ------
    fastagg.UnsupportedDtypeError
        A column holds timedeltas, periods, intervals, nested or mixed
        values (str with bytes or numbers), integers outside the int64 range
        in an object column, or text that is not valid Unicode; the message
        names the column and its dtype.
    fastagg.Error
        Duplicate column names, or a name SQLite cannot declare (a NUL
        character, a lone surrogate).

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

    if decimals not in DECIMALS:
        raise Error(f"decimals must be one of {', '.join(map(repr, DECIMALS))}; got {decimals!r}")
    pd = sys.modules.get("pandas")
    if pd is not None and isinstance(frame, pd.DataFrame):
        names = [str(c) for c in frame.columns]
        _check_names(names)
        return [_pandas_column(n, _pandas_values(frame, i), decimals) for i, n in enumerate(names)]
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
    return [_table_column(frame, i, n, decimals) for i, n in enumerate(names)]


def _check_names(names):
    seen = set()
    for n in names:
        if "\0" in n:
            raise Error(f"column name {n!r} contains a NUL character, which SQLite cannot declare; rename it")
        try:
            n.encode("utf-8")
        except UnicodeEncodeError:
            raise Error(f"column name {n!r} is not valid Unicode (a lone surrogate); rename it") from None
        if n.lower() in seen:
            raise Error(f"duplicate column name {n!r} (SQLite column names are case-insensitive); rename it")
        seen.add(n.lower())


def check_schema(table: str, columns, max_columns: int) -> None:
    """Raise :class:`fastagg.Error` if SQLite cannot declare *columns* as table *table*.

    *max_columns* is the connection's ``SQLITE_LIMIT_COLUMN`` (2000 unless
    lowered); past it ``sqlite3_declare_vtab`` fails at first use with
    nothing but "vtable constructor failed", so the check is made at
    registration.
    """
    if len(columns) > max_columns:
        raise Error(
            f"cannot register {table!r}: it has {len(columns)} columns and SQLite allows at "
            f"most {max_columns} per table (SQLITE_LIMIT_COLUMN); register a subset of them, "
            f"or several tables"
        )


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def schema_text(columns) -> bytes:
    cols = ", ".join(f"{quote(c.name)} {c.decl}".rstrip() for c in columns)
    return f"CREATE TABLE x({cols})".encode() + b"\0"


def build_table(columns, schema: np.ndarray):
    """Return the native descriptor of *columns*: a :data:`TABLE` and its :data:`COLUMN` s.

    Both arrays must stay referenced while compiled code may read them (the
    ``Registration`` pins them); *schema* is the NUL-terminated ``CREATE
    TABLE`` text as a uint8 array (pinned likewise), or None.
    """
    cols = np.zeros(len(columns), COLUMN)
    for i, c in enumerate(columns):
        cd = cols[i]
        cd["kind"], cd["data"], cd["offsets"], cd["unit"], cd["nvalues"] = c.kind, c.data, c.offsets, c.unit, c.nvalues
        cd["validity"], cd["validity_kind"], cd["validity_offset"] = c.validity, c.validity_kind, c.validity_offset
        cd["codes"], cd["codes_width"] = c.codes, c.codes_width
        cd["codes_validity"], cd["codes_validity_offset"] = c.codes_validity, c.codes_validity_offset
    table = np.zeros(1, TABLE)
    table[0]["nrows"] = columns[0].nrows if columns else 0
    table[0]["ncols"] = len(columns)
    table[0]["schema"] = schema.ctypes.data if schema is not None else 0
    table[0]["columns"] = cols.ctypes.data
    return table, cols
