"""fastagg: SQL over pandas DataFrames with aggregates compiled by numba.

Importing fastagg compiles nothing; each aggregate compiles at its first
registration and numba's on-disk cache serves later processes.
"""

from __future__ import annotations

from ._spec import aggregate, array
from .database import register
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
    "Error",
    "SQLiteLibraryError",
    "UnsupportedDtypeError",
    "aggregate",
    "array",
    "register",
]
