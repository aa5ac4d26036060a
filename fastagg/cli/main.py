"""The ``fastagg`` command line.

Subcommands:

``fastagg query SQL``
    Run one statement over data files (``--table NAME=PATH``: CSV, Parquet,
    Feather/Arrow IPC, JSON lines, read with pyarrow) and/or a SQLite file
    (``--db``), with compiled aggregates loaded from a module or a ``.py``
    file (``--aggregates``). Prints a table, or writes CSV, Parquet or JSON.
``fastagg demo``
    Generate data and run a showcase: a custom compiled aggregate, a built-in
    statistic and a window aggregate, timed against the same query done the
    classic way (pandas ``to_sql`` + Python ``create_aggregate`` +
    ``pd.read_sql``).
``fastagg bench``
    Run every ``benchmarks/bench_*.py`` and write ``benchmarks/results/``
    (a markdown report and PNG plots); the same as
    ``python benchmarks/run_all.py``.

User mistakes (bad SQL, a missing or unreadable file, an unknown aggregate)
print one line on stderr and exit with status 1; usage errors exit with 2,
as argparse does. ``--traceback`` shows the full traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import itertools
import os
import re
import sqlite3
import sys
import threading
import time
from pathlib import Path

__all__ = ["build_parser", "main"]

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


class UsageError(Exception):
    """A command-line argument is malformed: exit status 2, like argparse."""


class UserError(Exception):
    """A mistake in what the user asked for: one line on stderr, exit status 1."""


# --------------------------------------------------------------------------
# Progress on stderr


class Progress:
    """A spinner with elapsed time on stderr, driven by SQLite's progress handler.

    Silent unless *stream* is a terminal (or ``enabled=True``), so pipes, files
    and CI logs never see control characters. Nothing is shown for work that
    ends within *delay* seconds.

    The handler runs on whichever thread steps the statement (fastagg's reader
    steps on a worker thread); it only reads the clock and writes a line, and
    always returns 0 so that SQLite carries on.
    """

    #: SQLite virtual-machine instructions between two calls of the handler.
    INSTRUCTIONS = 100_000
    _FRAMES = "|/-\\"

    def __init__(self, stream=None, *, enabled: bool | None = None, delay: float = 0.5):
        self.stream = sys.stderr if stream is None else stream
        if enabled is None:
            isatty = getattr(self.stream, "isatty", None)
            enabled = bool(isatty and isatty())
        self.enabled = enabled
        self.delay = delay
        self._label = ""
        self._start = time.perf_counter()
        self._last = 0.0
        self._calls = 0
        self._spin = itertools.cycle(self._FRAMES)
        self._shown = False
        self._lock = threading.Lock()

    def status(self, label: str) -> None:
        """Start timing a new step called *label*; shown once it outlasts the delay."""
        self._label = label
        self._start = time.perf_counter()
        self._calls = 0

    def _tick(self) -> int:
        self._calls += 1
        now = time.perf_counter()
        elapsed = now - self._start
        if elapsed >= self.delay and now - self._last >= 0.1:
            self._last = now
            steps = self._calls * self.INSTRUCTIONS / 1e6
            self._write(f"{next(self._spin)} {self._label}  {elapsed:.1f} s, {steps:,.0f}M SQLite steps")
        return 0  # nonzero would interrupt the statement

    def show(self, text: str) -> None:
        """Show *text* now as the progress line (if enabled)."""
        if self.enabled:
            self._write(text)

    def _write(self, text: str) -> None:
        with self._lock:
            self.stream.write("\r\x1b[K" + text)
            self.stream.flush()
            self._shown = True

    def attach(self, con: sqlite3.Connection) -> None:
        """Install the progress handler on *con* (calls ``sqlite3_progress_handler``)."""
        if self.enabled:
            con.set_progress_handler(self._tick, self.INSTRUCTIONS)

    def detach(self, con: sqlite3.Connection) -> None:
        """Remove the handler from *con* and erase the progress line."""
        if self.enabled:
            con.set_progress_handler(None, 0)
        self.clear()

    def clear(self) -> None:
        """Erase the progress line, if one is shown."""
        with self._lock:
            if self._shown:
                self.stream.write("\r\x1b[K")
                self.stream.flush()
                self._shown = False


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


def _to_pandas(table):
    import pandas as pd

    return table.to_pandas(types_mapper=pd.ArrowDtype)


def format_table(table, max_rows: int = 40) -> str:
    """Return *table* (a pyarrow Table) as aligned text, at most *max_rows* rows."""
    import pandas as pd

    frame = _to_pandas(table)
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
    frame = _to_pandas(table)
    frame.columns = unique_names(list(frame.columns))
    text = frame.to_json(orient="records", lines=fmt == "jsonl", force_ascii=False)
    if fmt == "json":
        text += "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        Path(output).write_text(text, encoding="utf-8")


# --------------------------------------------------------------------------
# Subcommands


def _query(args: argparse.Namespace) -> int:
    import fastagg

    tables = [parse_table_option(t) for t in args.table]
    names = [name.lower() for name, _ in tables]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise UsageError(f"--table: table {duplicates[0]!r} is given twice")
    params = collect_params(args.param)
    fmt = output_format(args.format, args.output)
    if args.db is not None:
        check_database(args.db)
    extensions = []
    for spec in args.aggregates:
        extensions.extend(load_aggregates(spec))

    progress = Progress(enabled={"on": True, "off": False, "auto": None}[args.progress])
    with fastagg.connect(args.db if args.db is not None else ":memory:") as db:
        for name, path in tables:
            progress.show(f"reading {path} ...")
            frame = read_table(path)
            progress.clear()
            db.register(name, frame)
        progress.status("running query")
        progress.attach(db.connection)
        try:
            result = db.query(args.sql, extensions, params=params, output="arrow")
        finally:
            progress.detach(db.connection)
    write_result(result, fmt, args.output, args.max_rows)
    return 0


def _demo(args: argparse.Namespace) -> int:
    import sqlite3

    import numpy as np
    import pandas as pd

    import fastagg

    @fastagg.aggregate(name="wavg")
    class WeightedAverage:
        """Weighted average; a window function too, thanks to inverse."""

        total: np.float64
        weight: np.float64

        def step(self, x: float, w: float):
            self.total += x * w
            self.weight += w

        def inverse(self, x: float, w: float):
            self.total -= x * w
            self.weight -= w

        def finalize(self) -> float | None:
            return self.total / self.weight if self.weight else None

    rows = args.rows
    if rows < 1:
        raise UsageError("--rows must be at least 1")
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {
            "sensor": rng.integers(0, 1000, rows),
            "reading": rng.normal(20.0, 5.0, rows),
            "weight": rng.uniform(0.5, 2.0, rows),
        }
    )
    print(f"fastagg demo: {rows:,} rows, 1,000 sensors (pandas DataFrame, in-memory SQLite)\n")

    grouped = (
        "SELECT sensor, wavg(reading, weight) AS weighted, var_samp(reading) AS variance, "
        "count(*) AS n FROM df GROUP BY sensor ORDER BY sensor"
    )
    start = time.perf_counter()
    result = fastagg.query(df, grouped, [WeightedAverage])
    first = time.perf_counter() - start
    start = time.perf_counter()
    result = fastagg.query(df, grouped, [WeightedAverage])
    fast = time.perf_counter() - start
    print("Custom compiled aggregate + built-in statistic, grouped:")
    print(f"  {grouped}")
    print(result.head(5).to_string(index=False))
    print(f"  fastagg: {fast:.3f} s (first call, compiling: {first:.3f} s)\n")

    window = (
        "SELECT sensor, reading, wavg(reading, weight) OVER "
        "(PARTITION BY sensor ORDER BY rowid ROWS BETWEEN 9 PRECEDING AND CURRENT ROW) AS moving "
        "FROM df WHERE sensor < 3 ORDER BY sensor, rowid LIMIT 5"
    )
    print("Window aggregate (moving weighted average over 10 rows):")
    print(f"  {window}")
    print(fastagg.query(df, window, [WeightedAverage]).to_string(index=False))

    class PyWeightedAverage:
        def __init__(self):
            self.total = 0.0
            self.weight = 0.0

        def step(self, x, w):
            if x is not None and w is not None:
                self.total += x * w
                self.weight += w

        def finalize(self):
            return self.total / self.weight if self.weight else None

    start = time.perf_counter()
    con = sqlite3.connect(":memory:")
    df.to_sql("df", con, index=False)
    con.create_aggregate("wavg", 2, PyWeightedAverage)
    classic = pd.read_sql(
        "SELECT sensor, wavg(reading, weight) AS weighted FROM df GROUP BY sensor ORDER BY sensor", con
    )
    slow = time.perf_counter() - start
    con.close()
    assert np.allclose(classic["weighted"].to_numpy(), result["weighted"].to_numpy(dtype=float))
    print(
        f"\nSame weighted average the classic way (to_sql + create_aggregate + read_sql): "
        f"{slow:.3f} s -> fastagg is {slow / fast:.1f}x faster"
    )
    return 0


def find_benchmarks(directory: str | None = None) -> Path:
    """Return the ``benchmarks/`` directory of a fastagg source checkout."""
    candidates = [Path(directory)] if directory else [
        Path.cwd() / "benchmarks",
        Path(__file__).resolve().parent.parent / "benchmarks",
    ]
    for candidate in candidates:
        if (candidate / "run_all.py").is_file():
            return candidate
    where = " or ".join(str(c) for c in candidates)
    raise UserError(
        f"no benchmarks/run_all.py in {where}; run `fastagg bench` from a fastagg source "
        f"checkout or give --benchmarks DIR"
    )


def _bench(args: argparse.Namespace) -> int:
    directory = find_benchmarks(args.benchmarks)
    spec = importlib.util.spec_from_file_location("_fastagg_run_all", directory / "run_all.py")
    run_all = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run_all)
    argv = ["--quick"] if args.quick else []
    for name in args.only:
        argv += ["--only", name]
    if args.results:
        argv += ["--results", args.results]
    if args.timeout is not None:
        argv += ["--timeout", str(args.timeout)]
    return run_all.main(argv)


# --------------------------------------------------------------------------
# Parser and entry point

_QUERY_EPILOG = """\
examples:
  fastagg query "SELECT g, avg(x) FROM t GROUP BY g" --table t=data.csv
  fastagg query "SELECT wavg(x, w) FROM t" --table t=data.parquet --aggregates my_aggs.py
  fastagg query "SELECT * FROM trades WHERE px > ?" --db market.sqlite --param 100
  fastagg query "SELECT * FROM t WHERE g = :g" --table t=data.feather --param g=2 --output out.parquet
"""


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``fastagg`` command."""
    parser = argparse.ArgumentParser(
        prog="fastagg",
        description="SQL over DataFrames and data files with aggregates compiled by numba.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument(
        "--traceback", action="store_true", help="show the full traceback of an error instead of one line"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    query = sub.add_parser(
        "query",
        help="run one SQL statement over data files or a SQLite database",
        description=(
            "Run one SQL statement over data files (each read with pyarrow and exposed to\n"
            "SQLite without copying) and/or a SQLite database file, with compiled aggregates."
        ),
        epilog=_QUERY_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    query.add_argument("sql", metavar="SQL", help="the SQL statement")
    query.add_argument(
        "-t",
        "--table",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="expose a data file as table NAME; the format follows the extension: .csv, .tsv, "
        ".parquet, .feather/.arrow (Arrow IPC file), .arrows (IPC stream), .jsonl/.ndjson/.json "
        "(JSON lines); .gz etc. for CSV and JSON. Repeatable.",
    )
    query.add_argument("--db", metavar="FILE", help="an existing SQLite database file to query (and write to)")
    query.add_argument(
        "-a",
        "--aggregates",
        action="append",
        default=[],
        metavar="SPEC",
        help="load aggregates: MODULE or FILE.py (every @fastagg.aggregate class and "
        "@fastagg.function in it) or MODULE:NAME / FILE.py:NAME. Repeatable.",
    )
    query.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="VALUE",
        help="a SQL parameter, in order for ?; or NAME=VALUE for :NAME. Values become int, "
        "then float, else text. Repeatable.",
    )
    query.add_argument(
        "-o", "--output", metavar="FILE", help="write the result to FILE (.csv, .parquet, .json, .jsonl)"
    )
    query.add_argument(
        "-f",
        "--format",
        choices=OUTPUT_FORMATS,
        help="output format (default: from the --output extension, else table); json is an "
        "array of records, jsonl one record per line",
    )
    query.add_argument(
        "--max-rows",
        type=int,
        default=40,
        metavar="N",
        help="rows shown by the table format, first and last halves (default 40; 0 = all)",
    )
    query.add_argument(
        "--progress",
        choices=("auto", "on", "off"),
        default="auto",
        help="spinner on stderr for long loads and queries (default auto: only when stderr is a terminal)",
    )
    query.set_defaults(run=_query)

    demo = sub.add_parser(
        "demo",
        help="generate data and run a timed showcase",
        description=(
            "Generate sensor readings and run a custom compiled aggregate, a built-in statistic and "
            "a window aggregate, timed against to_sql + create_aggregate + read_sql."
        ),
    )
    demo.add_argument("--rows", type=int, default=1_000_000, help="rows of generated data (default 1,000,000)")
    demo.set_defaults(run=_demo)

    bench = sub.add_parser(
        "bench",
        help="run the benchmark suite; write a report and plots",
        description=(
            "Run every benchmarks/bench_*.py (baselines measured in the same run) and write "
            "REPORT.md, results.json and PNG plots (with matplotlib: pip install 'fastagg[bench]') "
            "under benchmarks/results/. Needs a fastagg source checkout."
        ),
    )
    bench.add_argument("--quick", action="store_true", help="small sizes, one repetition: checks that all runs")
    bench.add_argument(
        "--only", action="append", default=[], metavar="NAME", help="run only bench_NAME.py (repeatable)"
    )
    bench.add_argument("--results", metavar="DIR", help="output directory (default benchmarks/results)")
    bench.add_argument("--benchmarks", metavar="DIR", help="the benchmarks directory (default: found)")
    bench.add_argument("--timeout", type=float, metavar="S", help="seconds allowed per benchmark script")
    bench.set_defaults(run=_bench)
    return parser


def _version() -> str:
    from .. import __version__

    return __version__


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split())


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status.

    0 on success, 1 for an error in what was asked (bad SQL, missing or
    unreadable file, unknown aggregate, an error raised by an aggregate),
    2 for malformed arguments, 130 when interrupted.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print("fastagg: interrupted", file=sys.stderr)
        return 130
    except UsageError as exc:
        if args.traceback:
            raise
        parser.exit(2, f"fastagg {args.command}: error: {exc}\n")
    except (UserError, sqlite3.Error) as exc:
        # fastagg.Error derives from sqlite3.Error: bad SQL, unknown table or
        # function, an exception in an aggregate, a file that is no database.
        if args.traceback:
            raise
        print(f"fastagg: error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - one clear line, no traceback
        if args.traceback:
            raise
        print(
            f"fastagg: error: {type(exc).__name__}: {_one_line(exc)} (--traceback shows where)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
