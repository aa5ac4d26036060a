"""The options of a query, shared by :func:`fastagg.query`, :meth:`fastagg.Database.query` and :func:`fastagg.dask.query`.

The public calls keep their keyword arguments; each builds one
:class:`QueryOptions`, which checks every value here, once, with a message
that names the option and the fix.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .compile.spec import spec_of
from .errors import Error
from .output import OUTPUTS

__all__ = ["QueryOptions", "check_sql"]


def check_sql(sql) -> None:
    """Raise :class:`TypeError` unless *sql* is a str."""
    if not isinstance(sql, str):
        raise TypeError(f"sql must be a str, got {type(sql).__name__}")


def _as_tuple(value, option: str) -> tuple:
    if isinstance(value, (type, str, bytes)) or callable(value) or not hasattr(value, "__iter__"):
        raise Error(
            f"{option} must be an iterable (a list or tuple) of decorated classes or functions; "
            f"got {getattr(value, '__name__', None) or type(value).__name__}: wrap it in a list"
        )
    return tuple(value)


@dataclasses.dataclass(frozen=True)
class QueryOptions:
    """What a query registers and returns, checked once.

    The fields are the keyword arguments of :meth:`fastagg.Database.query`,
    documented there: ``aggregates`` and ``functions`` (kept as tuples),
    ``params``, ``output`` (one of :data:`fastagg.output.OUTPUTS`),
    ``builtins``, ``workers`` and ``engine`` (``"auto"``: the native
    grouped engine, :mod:`fastagg.engine.native`, when the statement is in
    its shape; ``"sqlite"`` forces SQLite; ``"native"`` fails outside the shape). :func:`fastagg.dask.query` runs its
    partial statements with ``workers=1``.

    Raises
    ------
    fastagg.Error
        A value is out of range or of the wrong kind.

    Examples
    --------
    >>> QueryOptions(output="arrow", workers=2).workers
    2
    >>> QueryOptions(output="excel")
    Traceback (most recent call last):
    ...
    fastagg.errors.Error: output must be one of 'pandas', 'arrow', 'polars'; got 'excel'
    """

    aggregates: tuple = ()
    functions: tuple = ()
    params: Any = None
    output: str = "pandas"
    builtins: bool = True
    workers: int | None = None
    engine: str = "auto"  # "auto": native grouped engine when in its shape; "sqlite"; "native" (must apply)

    def __post_init__(self):
        # frozen: the normalised tuples are set past the dataclass guard.
        object.__setattr__(self, "aggregates", _as_tuple(self.aggregates, "aggregates"))
        object.__setattr__(self, "functions", _as_tuple(self.functions, "functions"))
        if not isinstance(self.output, str) or self.output not in OUTPUTS:
            raise Error(f"output must be one of {', '.join(map(repr, OUTPUTS))}; got {self.output!r}")
        if not isinstance(self.builtins, bool):
            raise Error(f"builtins must be True or False; got {self.builtins!r}")
        w = self.workers
        if w is not None and (isinstance(w, bool) or not isinstance(w, int) or w < 1):
            raise Error(f"workers must be a positive int or None; got {w!r}")
        if self.engine not in ("auto", "sqlite", "native"):
            raise Error(f"engine must be one of 'auto', 'sqlite', 'native'; got {self.engine!r}")

    def replace(self, **changes) -> QueryOptions:
        """Return a copy with *changes* applied (and checked)."""
        return dataclasses.replace(self, **changes)

    def specs(self, sql: str) -> list:
        """Return the specs to register for *sql*: the given ones, then the built-ins it calls.

        A given aggregate hides a built-in of the same name.

        Raises
        ------
        fastagg.CompileError
            An aggregate or function is not decorated.
        """
        specs = [spec_of(obj) for obj in (*self.aggregates, *self.functions)]
        if self.builtins:
            from .registry import builtins_used

            given = {s.name.lower() for s in specs}
            specs += [s for s in builtins_used(sql) if s.name.lower() not in given]
        return specs
