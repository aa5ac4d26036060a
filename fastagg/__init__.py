"""fastagg: SQL over pandas DataFrames with aggregates compiled by numba.

Importing fastagg compiles nothing and does not import numba; each aggregate
compiles at its first registration and numba's on-disk cache serves later
processes. Importing it registers the ``DataFrame.sqlagg`` accessor.
"""

from __future__ import annotations

from . import accessor as _accessor  # noqa: F401 - registers DataFrame.sqlagg
from .compile.spec import aggregate, array, function
from .compile.vector import vector
from .database import Database, connect, explain, query, sql
from .registry import register
from .errors import (
    AggregateError,
    CompileError,
    Error,
    SQLiteLibraryError,
    UnsupportedDtypeError,
)

__version__ = "0.1.0"

__all__ = [
    "AggregateError",
    "CompileError",
    "Database",
    "Error",
    "SQLiteLibraryError",
    "UnsupportedDtypeError",
    "aggregate",
    "array",
    "connect",
    "explain",
    "function",
    "query",
    "register",
    "sql",
    "vector",
]
