"""Run a fastagg aggregate class through Python's own sqlite3 callbacks.

This is the independent reference for the compiled callbacks: the same class
body, interpreted by CPython and driven by ``create_aggregate`` /
``create_window_function``, with fastagg's NULL rule applied (rows with NULL
in a non-optional argument are skipped by step and inverse).
"""

from __future__ import annotations

import numpy as np


def _to_sql(value):
    if isinstance(value, np.ndarray):
        return value.tobytes()
    if isinstance(value, np.generic):
        return value.item()
    return value


def python_version_of(cls):
    """Return a class usable with ``create_aggregate`` that runs *cls* in Python."""
    spec = cls.__fastagg_spec__
    optional = [arg.optional for arg in spec.args]
    value_fn = spec.value or spec.finalize

    casts = [
        arg.dtype.type
        if arg.dtype is not None and arg.dtype not in (np.dtype("f8"), np.dtype("i8"), np.dtype("?"))
        else None
        for arg in spec.args
    ]

    def skip(args):
        return any(a is None and not opt for a, opt in zip(args, optional))

    def convert(args):
        # The compiled callback hands numpy-annotated arguments over as that type.
        return [c(a) if c is not None and a is not None else a for a, c in zip(args, casts)]

    class Reference:
        def __init__(self):
            self.state = cls()

        def step(self, *args):
            if not skip(args):
                self.state.step(*convert(args))

        def inverse(self, *args):
            if not skip(args):
                self.state.inverse(*convert(args))

        def value(self):
            return _to_sql(value_fn(self.state))

        def finalize(self):
            return _to_sql(self.state.finalize())

    return Reference


def register_python(con, cls, name=None):
    """Register the Python version of *cls* on *con* under *name*."""
    spec = cls.__fastagg_spec__
    ref = python_version_of(cls)
    if spec.is_window:
        con.create_window_function(name or spec.name, spec.narg, ref)
    else:
        con.create_aggregate(name or spec.name, spec.narg, ref)
