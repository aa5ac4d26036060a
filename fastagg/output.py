"""The one converter of query results: an Arrow table to what the caller asked for.

Every front end (:func:`fastagg.query`, :meth:`fastagg.Database.query`,
:func:`fastagg.dask.query`, the ``fastagg`` command) reads results into a
``pyarrow.Table`` and converts it here, so that each output kind has one
definition.
"""

from __future__ import annotations

from .errors import Error

__all__ = ["OUTPUTS", "convert", "to_pandas", "to_polars"]

#: The values of ``output=``.
OUTPUTS = ("pandas", "arrow", "polars")


#: Column-name Index templates by the result's names: building a pandas Index
#: infers its dtype from the values (~40 us, most of a small result's
#: conversion); a shallow copy of a template costs ~3 us. Each result gets
#: its own copy, so renaming one result's columns touches no other.
_column_indexes: dict = {}
_INDEXES_KEPT = 256


def _columns_index(pd, names):
    key = tuple(names)
    index = _column_indexes.get(key)
    if index is None:
        if len(_column_indexes) >= _INDEXES_KEPT:
            _column_indexes.clear()
        # What pyarrow's table_to_dataframe makes of a table without pandas metadata.
        index = _column_indexes[key] = pd.Index(list(names))
    return index.copy()


def to_pandas(table):
    """Return *table* as a pandas DataFrame of ``pd.ArrowDtype`` columns (no copy of the buffers).

    The frame is built from one ``pd.arrays.ArrowExtensionArray`` per
    column, what ``table.to_pandas(types_mapper=pd.ArrowDtype)`` makes
    (the same dtypes, a ``RangeIndex``, the same column Index), at a tenth
    of its fixed cost; and a result with two columns of one name keeps
    each column's own type (pyarrow's conversion gives both the type of
    one of them).
    """
    import pandas as pd

    from_arrays = getattr(pd.DataFrame, "_from_arrays", None)
    if from_arrays is None or table.num_columns == 0:
        return table.to_pandas(types_mapper=pd.ArrowDtype)
    arrays = [pd.arrays.ArrowExtensionArray(column) for column in table.columns]
    try:
        return from_arrays(arrays, columns=_columns_index(pd, table.column_names),
                           index=pd.RangeIndex(table.num_rows), verify_integrity=False)
    except TypeError:  # a pandas whose private constructor takes other arguments
        return table.to_pandas(types_mapper=pd.ArrowDtype)


def to_polars(table):
    """Return *table* as a ``polars.DataFrame``, sharing its Arrow buffers.

    Raises
    ------
    fastagg.Error
        polars is not installed.
    """
    try:
        import polars as pl
    except ImportError:
        raise Error("output='polars' needs polars: pip install polars") from None
    # from_arrow hands the Arrow buffers to polars without copying them;
    # rechunk=False keeps a multi-chunk column as its chunks instead of
    # concatenating them into one new buffer.
    return pl.from_arrow(table, rechunk=False)


def convert(table, output: str):
    """Return the Arrow *table* as *output*: ``"arrow"``, ``"pandas"`` or ``"polars"``.

    *output* is validated by :class:`fastagg.options.QueryOptions`; an
    unknown value here raises :class:`fastagg.Error` all the same.

    Examples
    --------
    >>> import pyarrow as pa
    >>> convert(pa.table({"x": [1, 2]}), "pandas").dtypes["x"]
    int64[pyarrow]
    """
    if output == "arrow":
        return table
    if output == "pandas":
        return to_pandas(table)
    if output == "polars":
        return to_polars(table)
    raise Error(f"output must be one of {', '.join(map(repr, OUTPUTS))}; got {output!r}")
