"""Inputs and outputs of ``fastagg query``: data files, parameters, aggregate modules, result files.

Data files are read with pyarrow by their extension; results are written as
an aligned table, CSV, Parquet, JSON or JSON lines. Mistakes raise
:class:`~fastagg.cli.errors.UserError` (exit status 1) or
:class:`~fastagg.cli.errors.UsageError` (exit status 2) naming the option
and the file.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import sqlite3
import sys
from pathlib import Path

from ..output import to_pandas
from .errors import UsageError, UserError, one_line as _one_line

__all__ = [
    "check_database",
    "collect_params",
    "format_table",
    "input_format",
    "load_aggregates",
    "output_format",
    "parse_param",
    "parse_table_option",
    "read_table",
    "unique_names",
    "write_result",
]

#: File formats ``--table`` reads, by file extension (after any compression suffix).
INPUT_FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".feather": "feather",
    ".arrow": "feather",
    ".ipc": "feather",
    ".arrows": "arrow-stream",
    ".jsonl": "json",
    ".ndjson": "json",
    ".json": "json",
}
#: Compression suffixes pyarrow's CSV and JSON readers undo by themselves.
COMPRESSIONS = (".gz", ".bz2", ".zst", ".lz4")
#: Output formats, and the file extensions that select them.
OUTPUT_FORMATS = ("table", "csv", "parquet", "json", "jsonl")
OUTPUT_EXTENSIONS = {
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_NAMED_PARAM = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)\Z", re.S)


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_NAMED_PARAM = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)\Z", re.S)


# --------------------------------------------------------------------------
# Inputs


def parse_table_option(text: str) -> tuple[str, Path]:
    """Split a ``--table NAME=PATH`` value; raise :class:`UsageError` if malformed.

    Examples
    --------
    >>> parse_table_option("trades=data/trades.csv")
    ('trades', PosixPath('data/trades.csv'))
    """
    name, sep, path = text.partition("=")
    name = name.strip()
    if not sep or not path:
        raise UsageError(f"--table {text!r}: expected NAME=PATH, for example --table trades=trades.csv")
    if not _IDENTIFIER.match(name):
        raise UsageError(
            f"--table {text!r}: table name {name!r} must be a SQL identifier "
            f"(letters, digits and _, not starting with a digit)"
        )
    return name, Path(path)


def input_format(path: Path) -> str:
    """Return the format of data file *path*, from its extension."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in COMPRESSIONS:
        suffixes.pop()
    fmt = INPUT_FORMATS.get(suffixes[-1]) if suffixes else None
    if fmt is None:
        known = ", ".join(sorted(set(INPUT_FORMATS)))
        raise UserError(f"{path}: unknown file type {path.suffix or '(no extension)'!r}; use one of {known}")
    return fmt


def read_table(path: Path):
    """Read data file *path* into a :class:`pyarrow.Table`, by its extension."""
    import pyarrow as pa

    fmt = input_format(path)
    if not path.exists():
        raise UserError(f"{path}: no such file")
    if path.is_dir():
        raise UserError(f"{path}: is a directory, not a data file")
    try:
        if fmt in ("csv", "tsv"):
            from pyarrow import csv

            parse = csv.ParseOptions(delimiter="\t") if fmt == "tsv" else None
            # An empty field is NULL in text columns too, as pandas.read_csv
            # and DuckDB read it.
            convert = csv.ConvertOptions(strings_can_be_null=True)
            return csv.read_csv(path, parse_options=parse, convert_options=convert)
        if fmt == "parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path)
        if fmt == "feather":
            import pyarrow.feather as feather

            return feather.read_table(path)
        if fmt == "arrow-stream":
            with pa.OSFile(str(path)) as source:
                return pa.ipc.open_stream(source).read_all()
        from pyarrow import json

        return json.read_json(path)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot read it as {fmt}: {_one_line(exc)}") from exc


def parse_param(text: str):
    """Return ``(name or None, value)`` of a ``--param`` value.

    ``name=value`` is a named parameter (``:name`` in SQL); anything else is
    positional (``?``). Values become int, then float, else stay str.

    Examples
    --------
    >>> parse_param("10"), parse_param("2.5"), parse_param("lo=abc")
    ((None, 10), (None, 2.5), ('lo', 'abc'))
    """
    match = _NAMED_PARAM.match(text)
    name, value = (match.group(1), match.group(2)) if match else (None, text)
    for convert in (int, float):
        try:
            return name, convert(value)
        except ValueError:
            pass
    return name, value


def collect_params(values: list[str]):
    """Return the ``params`` for a query from the ``--param`` values (None if none)."""
    if not values:
        return None
    parsed = [parse_param(v) for v in values]
    named = [p for p in parsed if p[0] is not None]
    if named and len(named) != len(parsed):
        raise UsageError("--param: use either all positional (?) or all named (name=value) parameters")
    if named:
        return dict(named)
    return [value for _, value in parsed]


def _has_spec(obj) -> bool:
    from ..compile.spec import SPEC_ATTRIBUTE

    if isinstance(obj, type):
        return SPEC_ATTRIBUTE in obj.__dict__  # not a subclass of a decorated class
    return callable(obj) and hasattr(obj, SPEC_ATTRIBUTE)


def _import_target(target: str, option: str):
    """Import module *target*: a dotted module name or a path to a ``.py`` file."""
    looks_like_path = target.endswith(".py") or os.sep in target or (os.altsep and os.altsep in target)
    if looks_like_path:
        path = Path(target)
        if not path.is_file():
            raise UserError(f"{option}: no such file {target!r}")
        # Import the file under its own name, as `import stem` from its
        # directory would: numba's cache records the module of compiled code,
        # so the same file must get the same module name in every process.
        module_name = path.stem
        if not module_name.isidentifier() or module_name in sys.modules:
            module_name = "_fastagg_cli_" + re.sub(r"\W", "_", path.stem)
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        # Registered so that dataclasses, pickling and typing can find it.
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            sys.modules.pop(module_name, None)
            raise UserError(f"{option}: error in {target}: {type(exc).__name__}: {_one_line(exc)}") from exc
        return module
    # A module named on the command line is looked up where the user is, as
    # `python -m` does; the console script's own directory is no help.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as exc:
        if exc.name and (target == exc.name or target.startswith(exc.name + ".")):
            raise UserError(f"{option}: no module named {target!r} (a module name or a .py file path)") from exc
        raise UserError(f"{option}: error importing {target}: {type(exc).__name__}: {_one_line(exc)}") from exc
    except Exception as exc:
        raise UserError(f"{option}: error importing {target}: {type(exc).__name__}: {_one_line(exc)}") from exc


def load_aggregates(text: str) -> list:
    """Return the aggregates and functions named by an ``--aggregates`` value.

    ``module:Name`` or ``file.py:Name`` picks one decorated class or function;
    ``module`` or ``file.py`` takes every ``@fastagg.aggregate`` class and
    ``@fastagg.function`` in it.
    """
    option = f"--aggregates {text}"
    target, sep, attr = text.rpartition(":")
    if not sep or not _IDENTIFIER.match(attr):  # no ":Name" (or a Windows drive letter)
        target, attr = text, None
    if not target:
        raise UsageError(f"{option}: expected MODULE, MODULE:NAME, FILE.py or FILE.py:NAME")
    module = _import_target(target, option)
    if attr is not None:
        obj = getattr(module, attr, None)
        if obj is None:
            raise UserError(f"{option}: {target} has no attribute {attr!r}")
        if not _has_spec(obj):
            raise UserError(
                f"{option}: {attr} is not a fastagg aggregate or function; "
                f"decorate it with @fastagg.aggregate or @fastagg.function"
            )
        return [obj]
    found = []
    for obj in vars(module).values():
        if _has_spec(obj) and not any(obj is f for f in found):
            found.append(obj)
    if not found:
        raise UserError(f"{option}: {target} defines no @fastagg.aggregate class or @fastagg.function")
    return found


def check_database(path: str) -> None:
    """Raise :class:`UserError` unless *path* is an existing SQLite database file."""
    if not Path(path).is_file():
        raise UserError(f"--db {path}: no such SQLite database file")
    # Reading the schema now names the file in the message; the same error at
    # query time would not say which input is at fault.
    try:
        con = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)
        try:
            con.execute("SELECT count(*) FROM sqlite_master").fetchone()
        finally:
            con.close()
    except sqlite3.Error as exc:
        raise UserError(f"--db {path}: {_one_line(exc)}") from exc


# --------------------------------------------------------------------------
# Outputs


def output_format(fmt: str | None, output: str | None) -> str:
    """Return the output format from ``--format`` and the ``--output`` extension."""
    if fmt is not None:
        return fmt
    if output is None:
        return "table"
    suffix = Path(output).suffix.lower()
    if suffix not in OUTPUT_EXTENSIONS:
        known = ", ".join(OUTPUT_EXTENSIONS)
        raise UsageError(f"--output {output}: unknown extension {suffix or '(none)'!r}; use {known} or --format")
    return OUTPUT_EXTENSIONS[suffix]


def unique_names(names: list[str]) -> list[str]:
    """Return *names* with repeats renamed ``name_1``, ``name_2``, ... (as DuckDB does).

    Examples
    --------
    >>> unique_names(["g", "x", "x", "x_1"])
    ['g', 'x', 'x_2', 'x_1']
    """
    taken = set(names)
    seen: set[str] = set()
    out = []
    for name in names:
        new = name
        if name in seen:
            k = 1
            while f"{name}_{k}" in taken:
                k += 1
            new = f"{name}_{k}"
            taken.add(new)
        seen.add(name)
        out.append(new)
    return out


def format_table(table, max_rows: int = 40) -> str:
    """Return *table* (a pyarrow Table) as aligned text, at most *max_rows* rows."""
    import pandas as pd

    frame = to_pandas(table)
    n = len(frame)
    if n == 0:
        # pandas would print "Empty DataFrame ... Index: []".
        return "  ".join(map(str, frame.columns)) + "\n(0 rows)"
    limit = n if max_rows <= 0 else max_rows
    with pd.option_context("display.max_colwidth", 60, "display.width", 10_000):
        text = frame.to_string(index=False, max_rows=limit, min_rows=min(limit, 10))
    return f"{text}\n({n:,} row{'s' if n != 1 else ''})"


def write_result(table, fmt: str, output: str | None, max_rows: int) -> None:
    """Write *table* in format *fmt* to file *output*, or to stdout if None."""
    if fmt == "table":
        if table.num_columns == 0:
            return  # a statement without a result (CREATE, INSERT, ...)
        text = format_table(table, max_rows)
        if output is None:
            print(text)
        else:
            Path(output).write_text(text + "\n")
        return
    if fmt == "parquet":
        import pyarrow.parquet as pq

        if output is None:
            if sys.stdout.isatty():
                raise UsageError("--format parquet writes binary data: give --output FILE or redirect stdout")
            sys.stdout.flush()
            pq.write_table(table, sys.stdout.buffer)
            return
        pq.write_table(table, output)
        return
    if fmt == "csv":
        from pyarrow import csv

        if output is None:
            sys.stdout.flush()
            csv.write_csv(table, sys.stdout.buffer)
            sys.stdout.buffer.flush()
        else:
            csv.write_csv(table, output)
        return
    # JSON through pandas: nulls become null. Records need unique keys, so a
    # repeated column name (SELECT * over a join) gets a suffix: x, x_1, ...
    frame = to_pandas(table)
    frame.columns = unique_names(list(frame.columns))
    text = frame.to_json(orient="records", lines=fmt == "jsonl", force_ascii=False)
    if fmt == "json":
        text += "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        Path(output).write_text(text, encoding="utf-8")
