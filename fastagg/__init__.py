"""fastagg: SQL over pandas DataFrames with aggregates compiled by numba.

Importing fastagg compiles nothing and imports neither numba, pandas nor
pyarrow. Each aggregate compiles at its first registration; later processes
load its machine code from fastagg's cache (a native image, without numba).
:func:`warmup` compiles everything ahead of time. Importing fastagg registers
the ``DataFrame.sqlagg`` accessor (now if pandas is imported, otherwise as
soon as it is; see :mod:`fastagg.accessor`).
"""

from __future__ import annotations

from . import accessor as _accessor
from .compile.spec import aggregate, array, function
from .compile.value import Value
from .compile.vector import vector
from .database import Database, connect, explain, query, sql
from .registry import register
from .warmup import warmup
from .errors import (
    AggregateError,
    CompileError,
    Error,
    SQLiteLibraryError,
    UnsupportedDtypeError,
)

__version__ = "0.2.0"

_accessor.install()  # DataFrame.sqlagg

__all__ = [
    "AggregateError",
    "CompileError",
    "Database",
    "Error",
    "SQLiteLibraryError",
    "UnsupportedDtypeError",
    "Value",
    "aggregate",
    "array",
    "connect",
    "explain",
    "function",
    "query",
    "register",
    "sql",
    "vector",
    "warmup",
]
