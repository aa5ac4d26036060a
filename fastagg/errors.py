"""Exceptions raised by fastagg.

Every exception derives from :class:`Error`, itself a :class:`sqlite3.Error`,
so code that already catches SQLite errors keeps working.
"""

from __future__ import annotations

import sqlite3

__all__ = [
    "Error",
    "CompileError",
    "AggregateError",
    "UnsupportedDtypeError",
    "SQLiteLibraryError",
]


class Error(sqlite3.Error):
    """Base for everything fastagg raises."""


class CompileError(Error, TypeError):
    """A class or function cannot become a compiled SQLite function.

    Raised at decoration or registration time; the message names the method
    or annotation at fault and says what to write instead.
    """


class AggregateError(Error):
    """User code raised inside a compiled callback; the statement failed.

    The message names the aggregate and method (``WAvg.step``) and carries the
    original exception's type and message.
    """


class UnsupportedDtypeError(Error, TypeError):
    """A column's dtype has no SQLite representation."""


class SQLiteLibraryError(Error):
    """The SQLite library behind Python's ``sqlite3`` cannot be used safely.

    For example its symbols are not exported (a statically linked build), or
    a connection's handle could not be verified.
    """
