"""The native engine's output: key values from the descriptors, the grouped table, the direct result.

Key values are read from the registration's column descriptors at each
group's first row (:mod:`.columnar`) as SQLite's values of that column
(integers as int64, reals as float64, text and blobs as bytes; dates and
datetimes keep their day count / unit so the grouped table renders the
same text), so the grouped table shows SQLite the very values the frame's
table would. A *direct*
plan (:data:`.shape.Plan.direct`) skips SQLite altogether: the result
columns are built here with the types :func:`fastagg.reader.read_query`
gives SQLite's values (int64 / float64 / string / binary, a NULL-type
column when every value is NULL, declared types for an empty result).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from .kinds import FLOAT_KINDS, NUMERIC_KINDS, TEXT_KINDS

__all__ = ["key_array", "text_array", "number_array", "grouped_table", "direct_table"]

_UNITS = {1_000_000: "s", 1000: "ms", 1: "us", -1000: "ns"}
_DATETIME, _DATE32 = 16, 17


def _mask(null):
    return None if null is None or not null.any() else np.asarray(null, bool)


def text_array(cd, vrows, kind):
    """The text / blob values at value rows *vrows* (-1: NULL) as a large_string / large_binary array."""
    from .columnar import gather_bytes

    offs, data = gather_bytes(cd, vrows)
    null = vrows < 0
    typ = pa.large_string() if kind in TEXT_KINDS else pa.large_binary()
    validity = pa.py_buffer(np.packbits(~null, bitorder="little")) if null.any() else None
    return pa.Array.from_buffers(typ, len(vrows), [validity, pa.py_buffer(offs), pa.py_buffer(data[: offs[-1]])],
                                 null_count=int(null.sum()))


def key_array(column, cd, rows):
    """Key column *column* (descriptor *cd*) at table rows *rows*, as an Arrow array of its own kind."""
    from . import kernels
    from .columnar import value_rows

    kind = column.kind
    if kind in FLOAT_KINDS:
        values, null = kernels.column_f64(cd, rows)
        return pa.array(values, mask=_mask(null))
    if kind in NUMERIC_KINDS:
        values, null = kernels.column_i64(cd, rows)
        return pa.array(values, mask=_mask(null))
    if kind == _DATETIME:
        values, null = kernels.column_i64(cd, rows)
        return pa.array(values, type=pa.timestamp(_UNITS[int(cd["unit"])]), mask=_mask(null))
    if kind == _DATE32:
        values, null = kernels.column_i64(cd, rows)
        return pa.array(values.astype(np.int32), type=pa.date32(), mask=_mask(null))
    return text_array(cd, value_rows(cd, rows), kind)


def number_array(values, null):
    """Aggregate values with NULL mask *null* (float NaN is NULL too, as ``sqlite3_result_double`` makes it)."""
    if values.dtype.kind == "f":
        nan = np.isnan(values)
        null = nan if null is None else (np.asarray(null, bool) | nan)
    return pa.array(values, mask=_mask(null))


def grouped_table(plan, columns, keys, results):
    """The grouped result as a table for SQLite: key columns by name, then ``__faN``."""
    arrays, names = [], []
    for i, array in keys.items():
        arrays.append(array)
        names.append(columns[i].name)
    for k, array in enumerate(results):
        arrays.append(array)
        names.append(f"__fa{k}")
    if not arrays:
        return pa.table({"__fa": pa.nulls(0)})
    return pa.Table.from_arrays(arrays, names=names)


def _as_read(array, decl, is_key):
    """*array* typed as :func:`fastagg.reader.read_query` types SQLite's values of that column."""
    from ..reader import _declared_type

    if array.null_count == len(array):
        return pa.nulls(len(array), _declared_type(decl) if is_key else pa.null())
    typ = array.type
    if pa.types.is_large_string(typ) or pa.types.is_large_binary(typ):
        small = pa.string() if pa.types.is_large_string(typ) else pa.binary()
        if array.buffers()[2] is None or array.buffers()[2].size < 2**31 - 1:
            return array.cast(small)
        return array
    if pa.types.is_floating(typ):
        return array.cast(pa.float64())
    return array.cast(pa.int64())


def direct_table(plan, names, decltypes, keys, results, ngroups):
    """The statement's result built from the groups (a direct plan): its names, SQLite's types."""
    from ..reader import _empty_table

    lo = min(plan.offset, ngroups)
    hi = ngroups if plan.limit is None else min(ngroups, lo + plan.limit)
    if hi <= lo:
        return _empty_table(names, decltypes)
    arrays = []
    for (what, ref), decl in zip(plan.direct, decltypes):
        array = keys[ref] if what == "key" else results[ref]
        if lo or hi < ngroups:
            array = array.slice(lo, hi - lo)
        arrays.append(_as_read(array, decl, what == "key"))
    return pa.Table.from_arrays(arrays, names=names)
