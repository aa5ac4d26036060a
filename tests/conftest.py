"""Shared fixtures: the ``frame_kind`` parameter over every input kind; the
report header names the SQLite, numba, pandas and pyarrow in use."""

from __future__ import annotations

import ctypes
import importlib
import importlib.util
import os
import sqlite3
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from typing import Callable

import pytest

# ------------------------------------------------------------ report header


class _DlInfo(ctypes.Structure):
    _fields_ = [
        ("dli_fname", ctypes.c_char_p),
        ("dli_fbase", ctypes.c_void_p),
        ("dli_sname", ctypes.c_char_p),
        ("dli_saddr", ctypes.c_void_p),
    ]


def sqlite_library_path() -> str:
    """Return the file of the SQLite library behind Python's ``sqlite3``.

    ``_sqlite3`` may link SQLite statically or dynamically: the file holding
    ``sqlite3_libversion`` (found by ``dladdr``) is the one fastagg calls.
    """
    import _sqlite3

    module_file = getattr(_sqlite3, "__file__", None)
    try:
        handle = ctypes.CDLL(module_file)  # None: _sqlite3 is built into the interpreter
        address = ctypes.cast(handle.sqlite3_libversion, ctypes.c_void_p).value
        libc = ctypes.CDLL(None)
        libc.dladdr.argtypes = [ctypes.c_void_p, ctypes.POINTER(_DlInfo)]
        info = _DlInfo()
        if libc.dladdr(address, ctypes.byref(info)) and info.dli_fname:
            return os.path.realpath(info.dli_fname.decode())
    except (AttributeError, OSError):  # no dladdr (not glibc/macOS): say where _sqlite3 is
        pass
    return module_file or "built into the interpreter"


def _version(module_name: str) -> str:
    try:
        return importlib.import_module(module_name).__version__
    except ImportError:
        return "not installed"


def pytest_report_header(config):
    import _sqlite3

    import fastagg

    return [
        f"sqlite {sqlite3.sqlite_version} from {sqlite_library_path()} "
        f"(via {getattr(_sqlite3, '__file__', 'built-in _sqlite3')})",
        ", ".join(f"{name} {_version(name)}" for name in ("numba", "numpy", "pandas", "pyarrow", "polars")),
        # An editable install elsewhere can shadow the tree under test.
        f"fastagg from {os.path.dirname(fastagg.__file__)}",
    ]


# ------------------------------------------------------------- frame kinds


def pytest_addoption(parser):
    parser.addoption(
        "--frame-kinds",
        default=None,
        help="comma-separated frame kinds for tests taking `frame_kind` (default: all); "
        "e.g. pandas,pyarrow[chunked]",
    )


@dataclass(frozen=True)
class FrameKind:
    """One way a user hands fastagg the same data.

    ``build(table)`` turns a canonical ``pyarrow.Table`` (types and NULLs
    explicit) into this kind; ``reference(table)`` is the pandas frame whose
    ``to_sql`` is the independent reference: the frame itself for the
    numpy-backed kinds (an int column with NULLs is float64 there, so it is
    REAL on both sides), the nullable frame, which holds the data exactly,
    for every other kind.
    """

    name: str
    build: Callable
    reference: Callable

    def __call__(self, table):
        return self.build(table)

    def __repr__(self) -> str:
        return f"FrameKind({self.name})"


def _python_lists(table) -> dict[str, list]:
    return {name: table.column(name).to_pylist() for name in table.column_names}


def to_pandas_default(table):
    """The frame ``pd.DataFrame`` builds from Python lists: numpy dtypes, text as pandas' default."""
    import pandas as pd

    return pd.DataFrame(_python_lists(table))


def to_pandas_object(table):
    """Numpy-backed pandas with text as object arrays holding ``None``."""
    import pandas as pd
    import pyarrow as pa

    frame = to_pandas_default(table)
    for field in table.schema:
        if pa.types.is_string(field.type) or pa.types.is_large_string(field.type):
            frame[field.name] = pd.Series(table.column(field.name).to_pylist(), dtype=object)
    return frame


def to_pandas_view(table):
    """Numpy-backed pandas as a strided view: every other row of a frame twice as long."""
    import pyarrow as pa

    n = table.num_rows
    doubled = pa.concat_tables([table, table.take(pa.array(range(n - 1, -1, -1), pa.int64()))]).combine_chunks()
    order = [j for pair in zip(range(n), range(n, 2 * n)) for j in pair]  # row, junk, row, junk...
    return to_pandas_default(doubled.take(pa.array(order, pa.int64()))).iloc[::2]


def to_pandas_nullable(table):
    """Pandas extension dtypes: Int64, Float64, string, boolean; NULL is ``pd.NA``."""
    import pandas as pd
    import pyarrow as pa

    mapping = {
        pa.int8(): pd.Int8Dtype(),
        pa.int16(): pd.Int16Dtype(),
        pa.int32(): pd.Int32Dtype(),
        pa.int64(): pd.Int64Dtype(),
        pa.float32(): pd.Float32Dtype(),
        pa.float64(): pd.Float64Dtype(),
        pa.string(): pd.StringDtype(),
        pa.large_string(): pd.StringDtype(),
        pa.bool_(): pd.BooleanDtype(),
    }
    return table.to_pandas(types_mapper=mapping.get)


def to_pandas_arrow(table):
    """Pandas with ``pd.ArrowDtype`` columns over the table's own buffers."""
    import pandas as pd

    return table.to_pandas(types_mapper=pd.ArrowDtype)


def to_single_chunk(table):
    return table.combine_chunks()


def to_chunked(table):
    """The table as uneven chunks: one row, an empty chunk, then two larger ones."""
    import pyarrow as pa

    table = table.combine_chunks()
    n = table.num_rows
    bounds = [0, min(1, n), n // 3, n // 2, n]
    pieces = [table.slice(start, stop - start) for start, stop in zip(bounds, bounds[1:])]
    pieces.insert(1, table.slice(0, 0))
    return pa.concat_tables(pieces)


class ArrowStream:
    """An object with only ``__arrow_c_stream__`` (the Arrow PyCapsule protocol)."""

    def __init__(self, table):
        self._table = table

    def __arrow_c_stream__(self, requested_schema=None):
        return self._table.__arrow_c_stream__(requested_schema)


def to_arrow_stream(table):
    return ArrowStream(to_chunked(table))


def to_polars(table):
    import polars as pl

    return pl.from_arrow(to_chunked(table), rechunk=False)


def _has(module_name: str) -> bool:
    return importlib.util.find_spec(module_name) is not None


FRAME_KINDS = [
    FrameKind("pandas", to_pandas_default, to_pandas_default),
    FrameKind("pandas[object]", to_pandas_object, to_pandas_object),
    FrameKind("pandas[view]", to_pandas_view, to_pandas_view),
    FrameKind("pandas[nullable]", to_pandas_nullable, to_pandas_nullable),
    FrameKind("pandas[pyarrow]", to_pandas_arrow, to_pandas_nullable),
    FrameKind("pyarrow", to_single_chunk, to_pandas_nullable),
    FrameKind("pyarrow[chunked]", to_chunked, to_pandas_nullable),
    FrameKind("arrow_c_stream", to_arrow_stream, to_pandas_nullable),
    FrameKind("polars", to_polars, to_pandas_nullable),
]


def pytest_generate_tests(metafunc):
    """Run every test that takes ``frame_kind`` once per kind (narwhals' ``constructor``)."""
    if "frame_kind" not in metafunc.fixturenames:
        return
    chosen = metafunc.config.getoption("--frame-kinds")
    names = [n.strip() for n in chosen.split(",")] if chosen else [k.name for k in FRAME_KINDS]
    known = {k.name: k for k in FRAME_KINDS}
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise pytest.UsageError(f"--frame-kinds: unknown {unknown}; choose from {sorted(known)}")
    params = []
    for name in names:
        marks = [pytest.mark.skip(reason="polars is not installed")] if name == "polars" and not _has("polars") else []
        params.append(pytest.param(known[name], id=name, marks=marks))
    # Module scope: a module-scoped fixture built from frame_kind is built once per kind.
    metafunc.parametrize("frame_kind", params, scope="module")


# ---------------------------------------------------------------- fixtures


@pytest.fixture
def con():
    """A fresh in-memory sqlite3 connection, closed after the test."""
    connection = sqlite3.connect(":memory:")
    yield connection
    connection.close()


def run_isolated(code: str, timeout: float = 120, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run *code* in a fresh interpreter, so that a crash fails one test only.

    *env* adds to (or overrides) this process's environment.
    """
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
