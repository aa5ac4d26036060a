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


def to_pandas(table):
    """Return *table* as a pandas DataFrame of ``pd.ArrowDtype`` columns (no copy of the buffers)."""
    import pandas as pd

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
