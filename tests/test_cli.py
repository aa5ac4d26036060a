"""The ``fastagg`` command, run as a user runs it, on small files.

Most tests call ``cli.main(argv)`` in this process (what the console script
runs), capturing stdout, stderr and the exit status; a real subprocess is
used where it is the point: the interpreter printing a traceback, and binary
output to a redirected stdout. Each error case checks the exit status and
that stderr is one clear line with no traceback.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fastagg import cli

ROOT = Path(__file__).resolve().parent.parent

FRAME = pd.DataFrame(
    {
        "g": [1, 1, 2, 2, 3],
        "x": [1.0, 2.0, 3.0, 5.0, None],
        "w": [1.0, 3.0, 1.0, 1.0, 2.0],
        "s": ["a", "b", "c", "d", None],
    }
)

AGGREGATES = textwrap.dedent(
    """
    import numpy as np
    import fastagg

    @fastagg.aggregate(name="wavg")
    class WAvg:
        total: np.float64
        weight: np.float64

        def step(self, x: float, w: float):
            self.total += x * w
            self.weight += w

        def finalize(self) -> float | None:
            return self.total / self.weight if self.weight else None

    @fastagg.aggregate
    class Strict:
        n: np.int64

        def step(self, x: float):
            if x > 4:
                raise ValueError("too big")
            self.n += 1

        def finalize(self) -> int:
            return self.n

    @fastagg.function
    def twice(x: float) -> float:
        return 2.0 * x

    NOT_AN_AGGREGATE = 3
    """
)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A directory with the same small frame as CSV, TSV, Parquet, Feather, JSONL and SQLite."""
    d = tmp_path_factory.mktemp("cli")
    FRAME.to_csv(d / "data.csv", index=False)
    FRAME.to_csv(d / "data.tsv", index=False, sep="\t")
    FRAME.to_parquet(d / "data.parquet")
    FRAME.to_feather(d / "data.feather")
    FRAME.to_json(d / "data.jsonl", orient="records", lines=True)
    with sqlite3.connect(d / "data.sqlite") as con:
        FRAME.to_sql("t", con, index=False)
    con.close()
    (d / "garbage.parquet").write_bytes(b"this is not parquet at all")
    (d / "garbage.csv").write_bytes(b'"unterminated\n1,2,3\n4\n')
    (d / "notes.txt").write_text("hello\n")
    (d / "my_aggs.py").write_text(AGGREGATES)
    (d / "broken_aggs.py").write_text("import fastagg\nraise RuntimeError('broken on purpose')\n")
    (d / "empty_aggs.py").write_text("X = 1\n")
    return d


def _cache_dir() -> str:
    """A compile cache of these tests' own, under the usual one.

    numba's cache records the module that compiled code came from, and
    fastagg's cache key does not include it: identical aggregate code
    compiled first from another module (a docs example, another test) would
    be served with a module these processes cannot import.
    """
    base = os.environ.get("FASTAGG_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "fastagg"
    )
    return os.path.join(base, "cli-tests")


def run_subprocess(*args, cwd=None, timeout=120) -> subprocess.CompletedProcess:
    """Run ``python -m fastagg ARGS`` (the console script's code) and capture it."""
    env = {**os.environ, "COLUMNS": "200", "FASTAGG_CACHE_DIR": _cache_dir()}
    return subprocess.run(
        [sys.executable, "-m", "fastagg", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env=env,
    )


@dataclasses.dataclass
class Completed:
    """What :func:`run` captured, named as :class:`subprocess.CompletedProcess` names it."""

    returncode: int
    stdout: str
    stderr: str


#: Modules the tests' aggregate files are imported as; forgotten after each
#: run, so that every run imports them afresh, as a new process would.
_USER_MODULES = ("my_aggs", "broken_aggs", "empty_aggs")


@contextlib.contextmanager
def _environment(**values):
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run(*args, cwd=None, timeout=None) -> Completed:
    """Run ``fastagg ARGS`` in this process (``cli.main``, as the console script does) and capture it.

    stdout is a text stream over bytes, as a real one is, so binary formats
    written to ``sys.stdout.buffer`` are captured too. *timeout* is accepted
    for the subprocess runs' sake and unused.
    """
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", newline="")
    err = io.StringIO()
    saved_path = list(sys.path)
    try:
        with contextlib.ExitStack() as stack:
            stack.enter_context(_environment(COLUMNS="200", FASTAGG_CACHE_DIR=_cache_dir()))
            stack.enter_context(contextlib.chdir(cwd or os.getcwd()))
            stack.enter_context(contextlib.redirect_stdout(out))
            stack.enter_context(contextlib.redirect_stderr(err))
            try:
                status = cli.main([str(a) for a in args])
            except SystemExit as exc:  # argparse: --help, --version, usage errors
                status = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    finally:
        sys.path[:] = saved_path  # a module named on the command line adds the cwd
        for name in [m for m in sys.modules if m in _USER_MODULES or m.startswith("_fastagg_cli_")]:
            del sys.modules[name]
    out.flush()
    return Completed(status, out.buffer.getvalue().decode("utf-8"), err.getvalue())


def assert_one_line_error(proc, status: int, *fragments: str) -> None:
    assert proc.returncode == status, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("fastagg"), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert proc.stdout == ""


# --------------------------------------------------------------------------
# query: inputs


@pytest.mark.parametrize("ext", ["csv", "tsv", "parquet", "feather", "jsonl"])
def test_query_reads_each_format(files, ext, tmp_path):
    out = tmp_path / "out.csv"
    proc = run(
        "query",
        "SELECT g, sum(x) AS sx, count(s) AS ns FROM t GROUP BY g ORDER BY g",
        "--table",
        f"t={files / f'data.{ext}'}",
        "--output",
        out,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # no progress display: stderr is not a terminal
    back = pd.read_csv(out)
    assert back["g"].tolist() == [1, 2, 3]
    assert back["sx"].tolist()[:2] == [3.0, 8.0] and np.isnan(back["sx"][2])
    assert back["ns"].tolist() == [2, 2, 0]


def test_query_prints_a_table(files):
    proc = run("query", "SELECT g, x, s FROM t ORDER BY rowid", "-t", f"t={files / 'data.csv'}")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    lines = proc.stdout.strip().splitlines()
    assert lines[0].split() == ["g", "x", "s"]
    assert lines[1].split() == ["1", "1.0", "a"]
    assert lines[-1] == "(5 rows)"


def test_query_empty_result_and_no_result(files):
    proc = run("query", "SELECT g, x FROM t WHERE 0", "-t", f"t={files / 'data.csv'}")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["g  x", "(0 rows)"]
    proc = run("query", "CREATE TEMP TABLE z (a)")
    assert proc.returncode == 0 and proc.stdout == "" and proc.stderr == ""


def test_query_max_rows_elides_the_middle(files):
    count_to_100 = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100) SELECT i FROM n"
    proc = run("query", count_to_100, "--max-rows", "6")
    assert proc.returncode == 0, proc.stderr
    assert "\n ..\n" in proc.stdout and "(100 rows)" in proc.stdout
    assert " 50\n" not in proc.stdout


def test_query_sqlite_db_with_positional_params(files):
    proc = run("query", "SELECT s FROM t WHERE g = ? AND x > ?", "--db", files / "data.sqlite",
               "--param", "2", "--param", "3.5", "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ['"s"', '"d"']


def test_query_named_params_and_text_values(files):
    proc = run("query", "SELECT count(*) AS n FROM t WHERE s = :s OR g = :g", "--db", files / "data.sqlite",
               "-p", "s=a", "-p", "g=3", "-f", "json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [{"n": 2}]


def test_query_db_and_tables_together(files):
    proc = run("query", "SELECT count(*) AS n FROM t JOIN f USING (g)", "--db", files / "data.sqlite",
               "--table", f"f={files / 'data.parquet'}", "-f", "jsonl")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"n": 9}


def test_query_writes_to_the_db(tmp_path):
    db = tmp_path / "w.sqlite"
    sqlite3.connect(db).close()
    assert run("query", "CREATE TABLE k AS SELECT 41 + 1 AS v", "--db", db).returncode == 0
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT v FROM k").fetchall() == [(42,)]
    con.close()


# --------------------------------------------------------------------------
# query: aggregates


def test_aggregates_from_a_py_file(files):
    proc = run("query", "SELECT g, wavg(x, w) AS wx, twice(g) AS g2 FROM t GROUP BY g ORDER BY g",
               "-t", f"t={files / 'data.parquet'}", "--aggregates", files / "my_aggs.py", "-f", "json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [
        {"g": 1, "wx": 1.75, "g2": 2.0},
        {"g": 2, "wx": 4.0, "g2": 4.0},
        {"g": 3, "wx": None, "g2": 6.0},
    ]


def test_aggregates_one_class_from_a_module(files):
    # A module name is looked up in the current directory.
    proc = run("query", "SELECT wavg(x, w) AS wx FROM t", "-t", "t=data.csv", "-a", "my_aggs:WAvg",
               "-f", "jsonl", cwd=files)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"wx": 2.5}  # the NULL x row is skipped
    # Only WAvg was loaded.
    proc = run("query", "SELECT twice(1)", "-a", "my_aggs:WAvg", cwd=files)
    assert_one_line_error(proc, 1, "no such function: twice")


def test_aggregates_whole_module_and_file_colon_name(files):
    proc = run("query", "SELECT strict(x) AS n, twice(2) AS t FROM t WHERE x < 4", "-t", "t=data.feather",
               "-a", "my_aggs", "-f", "jsonl", cwd=files)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"n": 3, "t": 4.0}
    proc = run("query", "SELECT twice(2) AS t", "-a", f"{files / 'my_aggs.py'}:twice", "-f", "jsonl")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"t": 4.0}


# --------------------------------------------------------------------------
# query: outputs


@pytest.mark.parametrize("ext", ["csv", "parquet", "json", "jsonl"])
def test_output_files_read_back(files, tmp_path, ext):
    out = tmp_path / f"out.{ext}"
    proc = run("query", "SELECT g, x, s FROM t ORDER BY rowid", "-t", f"t={files / 'data.csv'}", "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    back = {
        "csv": lambda: pd.read_csv(out),
        "parquet": lambda: pd.read_parquet(out),
        "json": lambda: pd.read_json(out),
        "jsonl": lambda: pd.read_json(out, lines=True),
    }[ext]()
    assert back["g"].tolist() == FRAME["g"].tolist()
    assert back["x"].tolist()[:4] == FRAME["x"].tolist()[:4] and pd.isna(back["x"].iloc[4])
    assert back["s"].tolist()[:4] == FRAME["s"].tolist()[:4] and pd.isna(back["s"].iloc[4])


def test_format_overrides_the_extension(files, tmp_path):
    out = tmp_path / "out.txt"
    proc = run("query", "SELECT 1 AS one", "-o", out, "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    assert pd.read_csv(out)["one"].tolist() == [1]


def test_parquet_to_stdout_when_redirected(tmp_path):
    out = tmp_path / "out.parquet"
    with open(out, "wb") as fh:
        proc = subprocess.run([sys.executable, "-m", "fastagg", "query", "SELECT 2 AS two", "-f", "parquet"],
                              stdout=fh, stderr=subprocess.PIPE, text=True, timeout=120,
                              env={**os.environ, "FASTAGG_CACHE_DIR": _cache_dir()})
    assert proc.returncode == 0, proc.stderr
    assert pd.read_parquet(out)["two"].tolist() == [2]


def test_json_records_with_repeated_column_names(files):
    proc = run("query", "SELECT a.g, b.g FROM t a JOIN t b USING (g) WHERE a.rowid = 1 AND b.rowid = 1",
               "-t", f"t={files / 'data.csv'}", "-f", "json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [{"g": 1, "g_1": 1}]


# --------------------------------------------------------------------------
# query: errors


def test_error_bad_sql():
    assert_one_line_error(run("query", "SELEC 1"), 1, 'near "SELEC": syntax error')


def test_error_unknown_table_and_function(files):
    assert_one_line_error(run("query", "SELECT * FROM nope"), 1, "no such table: nope")
    assert_one_line_error(run("query", "SELECT nofunc(1)"), 1, "no such function: nofunc")


def test_error_missing_file(files):
    proc = run("query", "SELECT 1", "--table", f"t={files / 'missing.csv'}")
    assert_one_line_error(proc, 1, "missing.csv: no such file")


@pytest.mark.parametrize("name, fragment", [
    ("garbage.parquet", "cannot read it as parquet"),
    ("garbage.csv", "cannot read it as csv"),
    ("notes.txt", "unknown file type '.txt'"),
])
def test_error_unreadable_file(files, name, fragment):
    proc = run("query", "SELECT * FROM t", "--table", f"t={files / name}")
    assert_one_line_error(proc, 1, name, fragment)


@pytest.mark.parametrize("value, fragment", [
    ("nodata.csv", "expected NAME=PATH"),
    ("=x.csv", "must be a SQL identifier"),
    ("t=", "expected NAME=PATH"),
    ("1t=x.csv", "must be a SQL identifier"),
])
def test_error_bad_table_syntax(value, fragment):
    assert_one_line_error(run("query", "SELECT 1", "--table", value), 2, fragment)


def test_error_duplicate_table(files):
    path = files / "data.csv"
    assert_one_line_error(run("query", "SELECT 1", "-t", f"t={path}", "-t", f"T={path}"), 2, "given twice")


@pytest.mark.parametrize("spec, fragment", [
    ("no_such_module_xyz", "no module named 'no_such_module_xyz'"),
    ("my_aggs:Nope", "has no attribute 'Nope'"),
    ("my_aggs:NOT_AN_AGGREGATE", "is not a fastagg aggregate or function"),
    ("missing_file.py", "no such file"),
    ("broken_aggs.py", "RuntimeError: broken on purpose"),
    ("broken_aggs", "RuntimeError: broken on purpose"),
    ("empty_aggs.py", "defines no @fastagg.aggregate"),
])
def test_error_unknown_aggregate(files, spec, fragment):
    assert_one_line_error(run("query", "SELECT 1", "--aggregates", spec, cwd=files), 1, fragment)


def test_error_raised_by_an_aggregate(files):
    proc = run("query", "SELECT strict(x) FROM t", "-t", "t=data.csv", "-a", "my_aggs.py", cwd=files)
    assert_one_line_error(proc, 1, "Strict.step: ValueError: too big")


def test_error_db(files):
    assert_one_line_error(run("query", "SELECT 1", "--db", files / "nope.sqlite"), 1, "no such SQLite database file")
    assert_one_line_error(run("query", "SELECT 1", "--db", files / "notes.txt"), 1, "file is not a database")
    assert not (files / "nope.sqlite").exists()


def test_error_usage(files):
    assert_one_line_error(run("query", "SELECT 1", "-o", "out.xlsx"), 2, "unknown extension '.xlsx'")
    assert_one_line_error(run("query", "SELECT ?", "-p", "1", "-p", "a=2"), 2, "either all positional")
    proc = run("query")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    proc = run("nosuchcommand")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_traceback_option_shows_the_traceback():
    # A subprocess: the traceback is printed by the interpreter, past main().
    proc = run_subprocess("--traceback", "query", "SELEC 1")
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and "syntax error" in proc.stderr


# --------------------------------------------------------------------------
# Progress, in process


def test_progress_reports_long_statements():
    stream = io.StringIO()
    progress = cli.Progress(stream, enabled=True, delay=0.0)
    progress.INSTRUCTIONS = 1000
    con = sqlite3.connect(":memory:")
    progress.status("running query")
    progress.attach(con)
    n = con.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200000) SELECT count(*) FROM n"
    ).fetchone()[0]
    progress.detach(con)
    assert n == 200000
    text = stream.getvalue()
    assert "running query" in text and "SQLite steps" in text
    assert text.endswith("\r\x1b[K")  # the line is erased at the end


def test_progress_is_quiet_when_not_a_terminal():
    stream = io.StringIO()  # isatty() is False
    progress = cli.Progress(stream, delay=0.0)
    assert not progress.enabled
    con = sqlite3.connect(":memory:")
    progress.attach(con)
    con.execute("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000) SELECT count(*) FROM n")
    progress.show("reading")
    progress.detach(con)
    assert stream.getvalue() == ""


def test_param_parsing():
    assert cli.collect_params(["1", "2.5", "x", "-3", "1e3"]) == [1, 2.5, "x", -3, 1000.0]
    assert cli.collect_params(["a=1", "b=two", "c=x=y"]) == {"a": 1, "b": "two", "c": "x=y"}
    assert cli.collect_params([]) is None


# --------------------------------------------------------------------------
# demo, bench, help


def test_demo_runs():
    proc = run("demo", "--rows", "20000", timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "wavg" in proc.stdout and "var_samp" in proc.stdout
    assert "x faster" in proc.stdout


def test_help_and_version():
    for args in ([], ["query"], ["demo"], ["bench"]):
        proc = run(*args, "--help")
        assert proc.returncode == 0 and proc.stdout.startswith("usage: fastagg"), proc.stderr
    proc = run("--version")
    assert proc.returncode == 0 and proc.stdout.strip().startswith("fastagg ")


def test_console_script_entry_point():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["fastagg"] == "fastagg.cli:main"
    assert "matplotlib" in " ".join(project["optional-dependencies"]["bench"])


# bench_builtins registers every built-in: compiling them all on a cold
# cache (as in CI) takes over a minute, so the quick run here leaves it out.
QUICK_BENCHES = ("aggregates", "query", "reader")


def test_bench_quick_writes_a_report(tmp_path):
    results = tmp_path / "results"
    only = [arg for name in QUICK_BENCHES for arg in ("--only", name)]
    proc = run("bench", "--quick", *only, "--results", results, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = (results / "REPORT.md").read_text()
    assert "## Machine" in report and "Quick run" in report
    for name in QUICK_BENCHES:
        assert f"`bench_{name}.py`" in report
    data = json.loads((results / "results.json").read_text())
    assert data["machine"]["cpus"] >= 1
    ok = [name for name, r in data["runs"].items() if r["status"] == "ok"]
    assert "aggregates" in ok
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return
    for name in ok:
        assert (results / f"{name}.png").stat().st_size > 1000


def test_run_all_finds_every_benchmark_and_its_quick_options():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import run_all
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    scripts = run_all.discover()
    assert [s.name for s in scripts] == sorted(p.name for p in (ROOT / "benchmarks").glob("bench_*.py"))
    for script in scripts:
        options = run_all.options_of(script)
        assert "--json" in options, f"{script.name} must accept --json PATH"
        assert options & {"--rows", "--repeat", "--reps"}, f"{script.name} has no option to make --quick small"


def test_run_all_renders_any_payload(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import run_all
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    params, tables = run_all.tables_of({
        "machine": {}, "rows": 10,
        "speed": [{"case": "a", "fastagg s": 1.0, "baseline s": 2.0}],
        "seconds": {"x": 0.5, "y": 0.25},
    })
    assert params == {"rows": 10}
    assert [t for t, _ in tables] == ["speed", "seconds"]
    assert run_all.markdown_table(tables[0][1]).splitlines()[0] == "| case | fastagg s | baseline s |"
    labels, series, unit = run_all.plot_series(*tables[1])
    assert labels == ["x", "y"] and series == {"seconds": [0.5, 0.25]} and unit == "seconds"
