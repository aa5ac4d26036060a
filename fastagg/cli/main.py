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
``fastagg warmup [MODULE|FILE.py ...]``
    Compile fastagg's native code (and the aggregates of the given modules)
    into fastagg's cache ahead of time, e.g. in a Docker build step; prints
    what it compiled and how long it took.
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
import importlib.util
import sqlite3
import sys
from pathlib import Path

from .demo import run_demo
from .errors import UsageError, UserError, one_line as _one_line
from .io import (
    OUTPUT_FORMATS,
    check_database,
    collect_params,
    load_aggregates,
    output_format,
    parse_table_option,
    read_table,
    write_result,
)
from .progress import Progress

__all__ = ["build_parser", "main"]


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
    # --db is read-only unless --write: a query of a file someone else wrote
    # may not change it (nor ATTACH and write other files) by surprise.
    read_only = args.db is not None and not args.write
    if tables:
        # From an empty cache: the native images start building now and the
        # statement's aggregates compile meanwhile (and the files are read).
        from ..database import _compile_while_images_build
        from ..options import QueryOptions

        try:
            _compile_while_images_build(args.sql, QueryOptions(extensions))
        except Exception:  # noqa: BLE001 - an early start only: db.query reports any error
            pass
    with fastagg.connect(args.db if args.db is not None else ":memory:", read_only=read_only) as db:
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


def _warmup(args: argparse.Namespace) -> int:
    from ..warmup import warmup

    targets = []
    for spec in args.modules:
        load_aggregates(spec)  # a clear one-line error for a bad module, before compiling
        targets.append(spec.rpartition(":")[0] if ":" in spec and not spec.endswith(".py") else spec)
    _announce_cold_start()
    def show(entry):
        print(f"{entry['what']:<40} {entry['source']:<9} {entry['seconds']:7.2f} s", flush=True)

    steps = warmup(*targets, builtins=not args.no_builtins, on_step=show)
    compiled = sum(1 for s in steps if s["source"] == "compiled")
    total = sum(s["seconds"] for s in steps)
    print(f"{'total':<40} {compiled:>3} compiled {total:7.2f} s")
    return 0


def _announce_cold_start(stream=None) -> None:
    """On a terminal, say so in one line when fastagg must first compile its machinery."""
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    if not (isatty and isatty()):
        return
    from ..warmup import cold_start_estimate

    seconds = cold_start_estimate()
    if seconds is not None and seconds > 1:
        print(f"compiling fastagg's native code, once: ~{seconds:.0f} s", file=stream, flush=True)


def find_benchmarks(directory: str | None = None) -> Path:
    """Return the ``benchmarks/`` directory of a fastagg source checkout."""
    candidates = [Path(directory)] if directory else [
        Path.cwd() / "benchmarks",
        Path(__file__).resolve().parents[2] / "benchmarks",  # the checkout of fastagg/cli/main.py
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
  fastagg query "DELETE FROM trades WHERE px < 0" --db market.sqlite --write
  fastagg query "SELECT * FROM t WHERE g = :g" --table t=data.feather --param g=2 --output out.parquet
"""


def _command(sub, name: str, run, summary: str, description: str, **kw) -> argparse.ArgumentParser:
    """Add subcommand *name*: *summary* in the command list, *description* in its --help; it runs *run*."""
    command = sub.add_parser(name, help=summary, description=description, **kw)
    command.set_defaults(run=run)
    return command


def _repeatable(parser, short: str, long: str, metavar: str, text: str) -> None:
    """Add option *short*/*long*, given any number of times, collected in a list (empty if never)."""
    parser.add_argument(short, long, action="append", default=[], metavar=metavar, help=text)


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

    query = _command(
        sub, "query", _query, "run one SQL statement over data files or a SQLite database",
        "Run one SQL statement over data files (each read with pyarrow and exposed to\n"
        "SQLite without copying) and/or a SQLite database file, with compiled aggregates.",
        epilog=_QUERY_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    query.add_argument("sql", metavar="SQL", help="the SQL statement")
    _repeatable(
        query, "-t", "--table", "NAME=PATH",
        "expose a data file as table NAME; the format follows the extension: .csv, .tsv, "
        ".parquet, .feather/.arrow (Arrow IPC file), .arrows (IPC stream), .jsonl/.ndjson/.json "
        "(JSON lines); .gz etc. for CSV and JSON. Repeatable.",
    )
    query.add_argument(
        "--db", metavar="FILE",
        help="an existing SQLite database file to query; read-only (no INSERT, UPDATE, DELETE, CREATE, "
        "DROP, ATTACH, VACUUM INTO or PRAGMA writes) unless --write is given",
    )
    query.add_argument(
        "--write", action="store_true", help="let the statement change the --db database (and attach others)"
    )
    _repeatable(
        query, "-a", "--aggregates", "SPEC",
        "load aggregates: MODULE or FILE.py (every @fastagg.aggregate class and "
        "@fastagg.function in it) or MODULE:NAME / FILE.py:NAME. Repeatable.",
    )
    _repeatable(
        query, "-p", "--param", "VALUE",
        "a SQL parameter, in order for ?; or NAME=VALUE for :NAME. Values become int, "
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

    demo = _command(
        sub, "demo", run_demo, "generate data and run a timed showcase",
        "Generate sensor readings and run a custom compiled aggregate, a built-in statistic and "
        "a window aggregate, timed against to_sql + create_aggregate + read_sql.",
    )
    warm = _command(
        sub, "warmup", _warmup, "compile fastagg's native code ahead of time",
        "Compile the virtual table, the reader, every built-in aggregate and the aggregates of the "
        "given modules into fastagg's cache (FASTAGG_CACHE_DIR), so that later processes only load "
        "machine code; e.g. in a Docker build step. Prints each step, whether it was compiled or "
        "already cached, and its time.",
    )
    warm.add_argument(
        "modules", nargs="*", metavar="MODULE",
        help="a module name or FILE.py whose @fastagg.aggregate classes and @fastagg.function "
        "functions are compiled too",
    )
    warm.add_argument("--no-builtins", action="store_true", help="skip the built-in aggregates")

    demo.add_argument("--rows", type=int, default=1_000_000, help="rows of generated data (default 1,000,000)")

    bench = _command(
        sub, "bench", _bench, "run the benchmark suite; write a report and plots",
        "Run every benchmarks/bench_*.py (baselines measured in the same run) and write "
        "REPORT.md, results.json and PNG plots (with matplotlib: pip install 'fastagg[bench]') "
        "under benchmarks/results/. Needs a fastagg source checkout.",
    )
    bench.add_argument("--quick", action="store_true", help="small sizes, one repetition: checks that all runs")
    bench.add_argument(
        "--only", action="append", default=[], metavar="NAME", help="run only bench_NAME.py (repeatable)"
    )
    bench.add_argument("--results", metavar="DIR", help="output directory (default benchmarks/results)")
    bench.add_argument("--benchmarks", metavar="DIR", help="the benchmarks directory (default: found)")
    bench.add_argument("--timeout", type=float, metavar="S", help="seconds allowed per benchmark script")
    return parser


def _broken_pipe() -> int:
    """Return 141 (128 + SIGPIPE, what a Unix tool killed by SIGPIPE ends with), after
    pointing stdout at /dev/null: the interpreter flushes stdout at exit, and a
    second BrokenPipeError there would print "Exception ignored"."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass  # stdout is no file (captured in-process): nothing to silence
    return 141


def _version() -> str:
    from .. import __version__

    return __version__


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status.

    0 on success, 1 for an error in what was asked (bad SQL, missing or
    unreadable file, unknown aggregate, an error raised by an aggregate),
    2 for malformed arguments, 130 when interrupted, 141 (quietly) when
    stdout is a pipe closed by its reader (``| head``).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command in ("query", "demo"):
            _announce_cold_start()
        status = args.run(args)
        sys.stdout.flush()  # here, not at exit, so that a closed pipe is caught below
        return status
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as Unix tools do.
        return _broken_pipe()
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
        text = _one_line(exc)
        if text.startswith("read_only=True") and getattr(args, "db", None) is not None:
            text += "; --db is read-only: pass --write to let the statement change it"
        print(f"fastagg: error: {text}", file=sys.stderr)
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
