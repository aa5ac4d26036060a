"""fastagg.reader.read_query against cursor.fetchall() on real SQLite."""

from __future__ import annotations

import ctypes
import math
import os
import sqlite3
import sys
import threading
import time

import numpy as np
import pyarrow as pa
import pytest

from conftest import run_isolated
from fastagg.sqlite import capi as _capi
from fastagg.reader import read_query

I64_MIN, I64_MAX = -(2**63), 2**63 - 1


# --------------------------------------------------------------------------
# The reference: fetchall() plus the documented type rules.


def sqlite_text(con, value) -> str:
    """Return SQLite's own CAST(value AS TEXT)."""
    return con.execute("SELECT CAST(? AS TEXT)", (value,)).fetchone()[0]


def expected_type(values, decltype_type=pa.null()):
    kinds = {type(v) for v in values if v is not None}
    if not kinds:
        return decltype_type
    if bytes in kinds:
        return pa.binary()
    if str in kinds:
        return pa.string()
    if float in kinds:
        return pa.float64()
    return pa.int64()


def expected_values(con, values, arrow_type):
    out = []
    for v in values:
        if v is None:
            out.append(None)
        elif arrow_type == pa.float64():
            out.append(float(v))
        elif arrow_type == pa.string():
            out.append(v if isinstance(v, str) else sqlite_text(con, v))
        elif arrow_type == pa.binary():
            if isinstance(v, bytes):
                out.append(v)
            else:
                out.append((v if isinstance(v, str) else sqlite_text(con, v)).encode())
        else:
            out.append(v)
    return out


def check(con, sql, params=None, types=None):
    """Compare read_query with fetchall(); return the table."""
    table = read_query(con, sql, params)
    cursor = con.execute(sql, params or ())
    rows = cursor.fetchall()
    names = [d[0] for d in cursor.description] if cursor.description else []
    assert table.column_names == names
    assert table.num_rows == len(rows)
    columns = list(zip(*rows)) if rows else [() for _ in names]
    for i, values in enumerate(columns):
        want_type = expected_type(values, table.schema.types[i] if not rows else pa.null())
        assert table.schema.types[i] == want_type, (names[i], table.schema.types[i], want_type)
        got = table.column(i).to_pylist()
        want = expected_values(con, values, want_type)
        assert _same(got, want), names[i]
    if types is not None:
        assert [str(t) for t in table.schema.types] == types
    table.validate(full=True)
    return table


def _same(got, want):
    if len(got) != len(want):
        return False
    for g, w in zip(got, want):
        if isinstance(w, float) and isinstance(g, float) and math.isnan(w):
            if not math.isnan(g):
                return False
        elif g != w or type(g) is not type(w):
            return False
    return True


def open_statements(con) -> int:
    """Return how many prepared statements *con* has (sqlite3_next_stmt).

    Includes those in sqlite3's own statement cache, so the first call runs
    a read_query to put the reader's PRAGMAs there.
    """
    read_query(con, "SELECT 1")
    handle = _capi.connection_handle(con)
    count, stmt = 0, None
    while True:
        stmt = _capi.lib.sqlite3_next_stmt(handle, stmt)
        if not stmt:
            return count
        count += 1


# --------------------------------------------------------------------------
# Type rules


def test_integers(con):
    check(con, "SELECT 1 AS a UNION ALL SELECT -5 UNION ALL SELECT NULL", types=["int64"])


def test_int64_bounds(con):
    t = check(con, f"SELECT {I64_MIN} AS lo, {I64_MAX} AS hi, 0 AS z", types=["int64"] * 3)
    assert t.column("lo").to_pylist() == [I64_MIN]


def test_integers_and_reals_make_double(con):
    check(con, "SELECT 1 AS a UNION ALL SELECT 2.5 UNION ALL SELECT NULL UNION ALL SELECT 3", types=["double"])


def test_reals_nan_inf(con):
    con.execute("CREATE TABLE f (x REAL)")
    con.executemany("INSERT INTO f VALUES (?)", [(1.5,), (float("nan"),), (float("inf"),), (float("-inf"),), (-0.0,), (None,)])
    t = check(con, "SELECT x FROM f", types=["double"])
    # SQLite stores NaN as NULL.
    assert t.column(0).to_pylist()[1] is None
    assert t.column(0).null_count == 2


@pytest.mark.parametrize(
    "number",
    ["1.0", "0.1", "-0.0", "1e20", "1.5e-7", "123456789.123456789", "2.5e300", "1e999", "-1e999",
     "3", "-42", str(I64_MAX), str(I64_MIN), "0.30000000000000004", "100.0", "1e15", "1e16"],
)
def test_numbers_in_text_column_are_sqlite_text(con, number):
    t = check(con, f"SELECT 'x' AS a UNION ALL SELECT {number} UNION ALL SELECT NULL", types=["string"])
    want = con.execute(f"SELECT CAST({number} AS TEXT)").fetchone()[0]
    assert t.column(0).to_pylist()[1] == want


def test_text_mixed_with_numbers_every_order(con):
    con.execute("CREATE TABLE m (v)")
    values = [1, "a", 2.5, None, "", 0.1, -7, "ü€😀", 1e100, None, 3.0]
    con.executemany("INSERT INTO m VALUES (?)", [(v,) for v in values])
    check(con, "SELECT v FROM m", types=["string"])
    check(con, "SELECT v FROM m ORDER BY rowid DESC", types=["string"])


def test_text_and_null(con):
    check(con, "SELECT 'a' AS s UNION ALL SELECT NULL UNION ALL SELECT ''", types=["string"])


def test_blobs_including_empty(con):
    con.execute("CREATE TABLE b (v BLOB)")
    con.executemany("INSERT INTO b VALUES (?)", [(b"\x00\xff",), (b"",), (None,), (bytes(range(256)),)])
    t = check(con, "SELECT v FROM b", types=["binary"])
    assert t.column(0).to_pylist()[1] == b""


def test_blob_mixed_with_text_holds_utf8(con):
    t = check(con, "SELECT x'00ff' AS v UNION ALL SELECT 'ü' UNION ALL SELECT NULL", types=["binary"])
    assert "ü".encode() in t.column(0).to_pylist()


def test_blob_mixed_with_numbers_holds_their_text(con):
    con.execute("CREATE TABLE b (v)")
    con.executemany("INSERT INTO b VALUES (?)", [(1,), (b"\x01",), (0.1,), (None,), ("t",), (1.0,)])
    t = check(con, "SELECT v FROM b", types=["binary"])
    assert t.column(0).to_pylist() == [b"1", b"\x01", b"0.1", None, b"t", b"1.0"]


def test_several_text_columns(con):
    """Several byte columns share the read arena; each gets its own buffer."""
    con.execute("CREATE TABLE w (a TEXT, b BLOB, c TEXT, d)")
    rng = np.random.default_rng(1)
    rows = []
    for i in range(5000):
        rows.append((
            None if i % 7 == 0 else "a" * int(rng.integers(0, 5)),
            None if i % 5 == 0 else bytes(int(rng.integers(0, 4))),
            "é" * (i % 3),
            [1, "x", None, 2.5][i % 4],
        ))
    con.executemany("INSERT INTO w VALUES (?, ?, ?, ?)", rows)
    check(con, "SELECT a, b, c, d, a AS a2 FROM w", types=["string", "binary", "string", "string", "string"])


@pytest.mark.parametrize(
    "decl, arrow",
    [
        ("INTEGER", "int64"), ("INT", "int64"), ("BIGINT", "int64"), ("UNSIGNED BIG INT", "int64"),
        ("FLOATING POINT", "int64"),  # contains INT: SQLite's own first rule
        ("TEXT", "string"), ("VARCHAR(10)", "string"), ("NCHAR(5)", "string"), ("CLOB", "string"),
        ("BLOB", "binary"), ("REAL", "double"), ("DOUBLE", "double"), ("FLOAT", "double"),
        ("DOUBLE PRECISION", "double"), ("NUMERIC", "null"), ("DECIMAL(10,5)", "null"),
        ("BOOLEAN", "null"), ("", "null"),
    ],
)
def test_all_null_column_takes_declared_type(con, decl, arrow):
    con.execute(f"CREATE TABLE d (v {decl})")
    con.execute("INSERT INTO d VALUES (NULL), (NULL)")
    t = read_query(con, "SELECT v FROM d")
    assert str(t.schema.types[0]) == arrow
    assert t.column(0).to_pylist() == [None, None]
    empty = read_query(con, "SELECT v FROM d WHERE 0")
    assert str(empty.schema.types[0]) == arrow and empty.num_rows == 0


def test_values_win_over_declared_type(con):
    con.execute("CREATE TABLE d (v INTEGER)")
    con.execute("INSERT INTO d VALUES (1), ('abc'), (2.5)")
    check(con, "SELECT v FROM d", types=["string"])


def test_empty_result_names_and_types(con):
    con.execute("CREATE TABLE e (i INTEGER, r REAL, s TEXT, b BLOB, n)")
    t = check(con, "SELECT i, r, s, b, n, i + 1 AS expr FROM e")
    assert t.column_names == ["i", "r", "s", "b", "n", "expr"]
    assert [str(x) for x in t.schema.types] == ["int64", "double", "string", "binary", "null", "null"]
    assert t.num_rows == 0


def test_no_decltype_all_null_is_null_type(con):
    t = check(con, "SELECT NULL AS a, NULL AS b", types=["null", "null"])
    assert t.column(0).null_count == 1


def test_duplicate_column_names_survive(con):
    t = check(con, "SELECT 1 AS a, 'x' AS a, 2.5 AS a")
    assert t.column_names == ["a", "a", "a"]
    assert [str(x) for x in t.schema.types] == ["int64", "string", "double"]


def test_unicode_text(con):
    con.execute("CREATE TABLE u (s TEXT)")
    words = ["", "a", "é", "€", "😀", "naïve café", "日本語テキスト", "\u0000inside", None, "x" * 1000]
    con.executemany("INSERT INTO u VALUES (?)", [(w,) for w in words])
    t = check(con, "SELECT s FROM u", types=["string"])
    got = t.column(0).to_pylist()
    assert got[0] == "" and got[8] is None


def test_utf16_database(con):
    con.execute("PRAGMA encoding = 'UTF-16le'")
    con.execute("CREATE TABLE u (s TEXT)")
    con.executemany("INSERT INTO u VALUES (?)", [("é😀",), ("",), (None,), ("abc",)])
    check(con, "SELECT s, s || 'z' AS t FROM u", types=["string", "string"])


def test_text_not_utf8_raises(con):
    with pytest.raises(sqlite3.OperationalError, match="UTF-8"):
        read_query(con, "SELECT CAST(x'ff' AS TEXT) AS bad")
    assert read_query(con, "SELECT CAST(x'ff' AS BLOB) AS ok").column(0).to_pylist() == [b"\xff"]


def test_many_rows_mixed(con):
    n = 120_000
    rng = np.random.default_rng(0)
    con.execute("CREATE TABLE big (i INTEGER, x REAL, s TEXT, b BLOB, m)")
    ints = rng.integers(I64_MIN, I64_MAX, n, dtype=np.int64, endpoint=True).tolist()
    reals = rng.normal(size=n).tolist()
    rows = []
    for k in range(n):
        rows.append((
            None if k % 11 == 0 else ints[k],
            None if k % 13 == 0 else reals[k],
            None if k % 17 == 0 else f"row{k}-é" * (k % 4),
            None if k % 19 == 0 else ints[k].to_bytes(8, "little", signed=True)[: k % 9],
            [k, reals[k], f"t{k}", None][k % 4],
        ))
    con.executemany("INSERT INTO big VALUES (?, ?, ?, ?, ?)", rows)
    t = check(con, "SELECT * FROM big", types=["int64", "double", "string", "binary", "string"])
    assert t.num_rows == n


def test_statement_without_columns_runs(con):
    t = read_query(con, "CREATE TABLE made (a)")
    assert t.num_columns == 0 and t.num_rows == 0
    read_query(con, "INSERT INTO made VALUES (1), (2)")
    assert con.execute("SELECT count(*) FROM made").fetchone() == (2,)


def test_returning_rows(con):
    con.execute("CREATE TABLE r (a INTEGER PRIMARY KEY, b TEXT)")
    t = read_query(con, "INSERT INTO r (b) VALUES ('x'), ('y') RETURNING a, b")
    assert t.to_pydict() == {"a": [1, 2], "b": ["x", "y"]}


def test_empty_sql_and_trailing_semicolons(con):
    assert read_query(con, "").num_columns == 0
    assert read_query(con, "  -- nothing\n").num_columns == 0
    assert read_query(con, "SELECT 1 AS a;  ").to_pydict() == {"a": [1]}
    assert read_query(con, "SELECT 1 AS a; ; -- done\n /* c */ ").to_pydict() == {"a": [1]}


def test_python_function_runs_on_worker(con):
    con.create_function("twice", 1, lambda v: v * 2)
    check(con, "SELECT twice(3) AS a, twice('ab') AS b", types=["int64", "string"])


def test_compiled_aggregate():
    import fastagg

    @fastagg.aggregate(name="total_sq")
    class TotalSq:
        acc: np.float64

        def step(self, x: float):
            self.acc += x * x

        def finalize(self) -> float:
            return self.acc

    con = sqlite3.connect(":memory:")
    fastagg.register(con, TotalSq)
    check(con, "SELECT total_sq(v) AS s FROM (SELECT 1 AS v UNION ALL SELECT 2)", types=["double"])


# --------------------------------------------------------------------------
# Parameters


def test_qmark_params(con):
    params = (1, 2.5, "é", b"\x00", None, True, np.int32(7), np.float32(0.5), np.bool_(False),
              bytearray(b"ab"), memoryview(b"cd"), np.int64(I64_MAX), np.str_("s"))
    sql = "SELECT " + ", ".join(f"? AS p{i}" for i in range(len(params)))
    t = read_query(con, sql, params)
    assert t.to_pylist()[0] == {
        "p0": 1, "p1": 2.5, "p2": "é", "p3": b"\x00", "p4": None, "p5": 1, "p6": 7, "p7": 0.5,
        "p8": 0, "p9": b"ab", "p10": b"cd", "p11": I64_MAX, "p12": "s",
    }
    check(con, "SELECT ?, ?, ?", [1, "a", None])


def test_named_params(con):
    t = read_query(con, "SELECT :a AS a, @b AS b, $c AS c, :a AS again", {"a": 1, "b": "x", "c": None})
    assert t.to_pydict() == {"a": [1], "b": ["x"], "c": [None], "again": [1]}
    check(con, "SELECT :x AS x", {"x": 3.5})


def test_params_in_where(con):
    con.execute("CREATE TABLE p (a INTEGER, s TEXT)")
    con.executemany("INSERT INTO p VALUES (?, ?)", [(i, str(i)) for i in range(100)])
    check(con, "SELECT * FROM p WHERE a >= ? AND s <> ?", (90, "95"))


@pytest.mark.parametrize(
    "sql, params, message",
    [
        ("SELECT ?", None, "Incorrect number of bindings supplied. The current statement uses 1, and there are 0 supplied."),
        ("SELECT ?, ?", (1,), "uses 2, and there are 1 supplied"),
        ("SELECT ?", (1, 2), "uses 1, and there are 2 supplied"),
        ("SELECT :a", {"b": 1}, "You did not supply a value for binding parameter :a."),
        ("SELECT ?", {"a": 1}, "has no name"),
        ("SELECT ?", ([1],), "type 'list' is not supported"),
        ("SELECT ?", {1, 2}, "unsupported type"),
    ],
)
def test_bad_params(con, sql, params, message):
    before = open_statements(con)
    with pytest.raises(sqlite3.ProgrammingError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_query(con, sql, params)
    assert open_statements(con) == before


def test_int_too_large(con):
    with pytest.raises(OverflowError):
        read_query(con, "SELECT ?", (2**63,))


def test_adapted_param(con):
    import datetime

    sqlite3.register_adapter(complex, lambda z: f"{z.real}+{z.imag}j")
    try:
        assert read_query(con, "SELECT ? AS z", (1 + 2j,)).to_pydict() == {"z": ["1.0+2.0j"]}
    finally:
        del sqlite3.adapters[(complex, sqlite3.PrepareProtocol)]
    day = datetime.date(2024, 1, 2)
    want = con.execute("SELECT ?", (day,)).fetchone()[0]
    assert read_query(con, "SELECT ? AS d", (day,)).column(0).to_pylist() == [want]


# --------------------------------------------------------------------------
# Errors and statement lifetime


def _sqlite_message(con, sql):
    with pytest.raises(sqlite3.Error) as info:
        con.execute(sql).fetchall()
    return type(info.value), str(info.value)


@pytest.mark.parametrize(
    "sql",
    [
        "SELEC 1",
        "SELECT * FROM no_such_table",
        "SELECT no_such_column FROM sqlite_master",
        "SELECT no_such_function(1)",
        "SELECT abs(-9223372036854775808)",  # integer overflow: fails while stepping
    ],
)
def test_sql_errors_match_sqlite3(con, sql):
    kind, message = _sqlite_message(con, sql)
    before = open_statements(con)
    with pytest.raises(sqlite3.OperationalError) as info:
        read_query(con, sql)
    assert type(info.value) is kind is sqlite3.OperationalError
    assert str(info.value) == message
    assert open_statements(con) == before
    assert read_query(con, "SELECT 1 AS ok").to_pydict() == {"ok": [1]}


def test_constraint_error_is_integrity_error(con):
    con.execute("CREATE TABLE c (a INTEGER UNIQUE)")
    read_query(con, "INSERT INTO c VALUES (1)")
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE constraint failed"):
        read_query(con, "INSERT INTO c VALUES (1)")


@pytest.mark.parametrize("sql", ["SELECT 1; SELECT 2", "SELECT 1; garbage", "CREATE TABLE x (a); DROP TABLE x"])
def test_more_than_one_statement(con, sql):
    before = open_statements(con)
    with pytest.raises(sqlite3.ProgrammingError, match="You can only execute one statement at a time."):
        read_query(con, sql)
    assert open_statements(con) == before
    assert con.execute("SELECT count(*) FROM sqlite_master").fetchone() == (0,)


def test_null_character_and_closed_connection(con):
    with pytest.raises(sqlite3.ProgrammingError):
        read_query(con, "SELECT 1\0")
    other = sqlite3.connect(":memory:")
    other.close()
    with pytest.raises(sqlite3.ProgrammingError):
        read_query(other, "SELECT 1")


def test_error_mid_result_finalizes(con):
    con.create_function("boom", 1, lambda v: 1 / (v - 50))
    before = open_statements(con)
    with pytest.raises(sqlite3.OperationalError, match="user-defined function raised exception"):
        read_query(con, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100) SELECT boom(x) FROM c")
    assert open_statements(con) == before
    con.close()  # nothing left open


def test_aggregate_error_has_cause():
    import fastagg

    @fastagg.aggregate(name="fails")
    class Fails:
        n: np.int64

        def step(self, x: float):
            if x > 2:
                raise ValueError("x too big")
            self.n += 1

        def finalize(self) -> int:
            return self.n

    con = sqlite3.connect(":memory:")
    fastagg.register(con, Fails)
    before = open_statements(con)
    with pytest.raises(fastagg.AggregateError, match="x too big") as info:
        read_query(con, "SELECT fails(v) FROM (SELECT 1 AS v UNION ALL SELECT 3)")
    assert isinstance(info.value.__cause__, ValueError)
    assert open_statements(con) == before
    # The failure is forgotten: a later, unrelated error is plain SQLite's.
    with pytest.raises(sqlite3.OperationalError) as later:
        read_query(con, "SELECT * FROM nowhere")
    assert not isinstance(later.value, fastagg.AggregateError)


def test_repeated_reads_keep_memory_flat(con):
    con.execute("CREATE TABLE t (i INTEGER, x REAL, s TEXT, b BLOB)")
    con.executemany(
        "INSERT INTO t VALUES (?, ?, ?, ?)",
        [(i, i / 3, f"s{i}", bytes([i % 256])) for i in range(2000)],
    )
    queries = ["SELECT * FROM t", "SELECT i, s, i FROM t WHERE i % 2", "SELECT * FROM nowhere", "SELECT 1; SELECT 2"]

    def run(times):
        for k in range(times):
            try:
                read_query(con, queries[k % len(queries)])
            except sqlite3.Error:
                pass

    def rss():
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    run(100)  # warm up caches and workers
    before_stmts = open_statements(con)
    before = rss()
    run(800)
    growth = rss() - before
    assert growth < 8 * 2**20, f"RSS grew by {growth / 2**20:.1f} MiB over 800 reads"
    assert open_statements(con) == before_stmts


# --------------------------------------------------------------------------
# Interrupt

LONG_QUERY = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000) "
    "SELECT count(*) FROM c"
)


def test_interrupt_from_another_thread(con):
    """con.interrupt() from elsewhere gives SQLite's 'interrupted'.

    Repeated: SQLite drops an interrupt made before the statement starts.
    """
    read_query(con, "SELECT 1")  # load the compiled reader first
    done = threading.Event()

    def interrupt():
        while not done.wait(0.2):
            con.interrupt()

    thread = threading.Thread(target=interrupt)
    thread.start()
    start = time.monotonic()
    try:
        with pytest.raises(sqlite3.OperationalError, match="interrupted"):
            read_query(con, LONG_QUERY)
    finally:
        done.set()
        thread.join()
    assert time.monotonic() - start < 5
    assert read_query(con, "SELECT 2 AS ok").to_pydict() == {"ok": [2]}


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("query", [LONG_QUERY, LONG_QUERY.replace("SELECT count(*) FROM c", "SELECT x FROM c")])
def test_sigint_stops_query_and_connection_survives(query):
    """A real SIGINT while the first step (or the row loop) runs."""
    code = f"""
        import os, signal, sqlite3, threading, time
        from fastagg.reader import read_query
        from fastagg.sqlite import capi as _capi
        con = sqlite3.connect(":memory:")
        read_query(con, "SELECT 1")  # compile / load the cache first
        handle = _capi.connection_handle(con)

        def open_statements():
            count, stmt = 0, None
            while (stmt := _capi.lib.sqlite3_next_stmt(handle, stmt)):
                count += 1
            return count

        before = open_statements()
        threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()
        start = time.monotonic()
        try:
            read_query(con, {query!r})
        except KeyboardInterrupt:
            print("interrupted after", round(time.monotonic() - start, 2))
        else:
            print("not interrupted")
        assert open_statements() == before, "statement left open"
        print(read_query(con, "SELECT 41 + 1 AS answer").to_pydict())
        print(con.execute("SELECT 'still usable'").fetchone()[0])
    """
    result = run_isolated(code, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("interrupted after"), result.stdout
    assert float(lines[0].split()[-1]) < 5
    assert lines[1:] == ["{'answer': [42]}", "still usable"]


def test_keyboard_interrupt_in_process(con):
    """KeyboardInterrupt in the waiting thread stops the query."""
    import _thread

    before = open_statements(con)
    timer = threading.Timer(0.05, _thread.interrupt_main)
    timer.start()
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        read_query(con, LONG_QUERY)
    timer.join()
    assert time.monotonic() - start < 5
    assert open_statements(con) == before
    assert read_query(con, "SELECT 3 AS ok").to_pydict() == {"ok": [3]}


def test_interrupt_before_first_step_is_not_lost(con):
    """SQLite drops a sqlite3_interrupt made before the statement's first
    step; the reader repeats it until the worker has stopped."""
    import _thread

    from fastagg import reader as _reader

    handle = _capi.connection_handle(con)
    stmt = _reader._prepare(handle, LONG_QUERY)

    def late_start():
        time.sleep(0.3)  # the interrupt arrives before this first step
        return _reader._read_rows(stmt, 1, True)

    timer = threading.Timer(0.05, _thread.interrupt_main)
    timer.start()
    start = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            _reader._run_interruptibly(handle, late_start)
    finally:
        _capi.lib.sqlite3_finalize(stmt)
    timer.join()
    assert time.monotonic() - start < 5
    assert read_query(con, "SELECT 3 AS ok").to_pydict() == {"ok": [3]}


# --------------------------------------------------------------------------
# Issue 11 defects


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 'abc' AS a, '' AS b",
        "SELECT 'abc' AS a, '' AS b UNION ALL SELECT 'd', NULL",
        "SELECT 'abc' AS a, NULL AS b UNION ALL SELECT 'd', ''",
        "SELECT 'abc' AS a, x'' AS b",
        "SELECT x'00ff' AS a, '' AS b, x'' AS c UNION ALL SELECT x'01', NULL, NULL",
        "SELECT 'abc' AS a, '' AS b, 'de' AS c UNION ALL SELECT 'f', '', NULL",  # bytes in two columns
        "SELECT 'abc' AS a, '' AS b UNION ALL SELECT 'd', 5",  # '' with a number
        "SELECT 'abc' AS a, '' AS b, 2.5 AS c UNION ALL SELECT NULL, '', 'x'",
    ],
)
def test_empty_text_after_a_bytes_column(con, sql):
    """A text/blob column of only '' (and NULL) after a column with bytes reads as such."""
    rows = con.execute(sql).fetchall()
    table = read_query(con, sql)
    assert [tuple(r.values()) for r in table.to_pylist()] == [
        tuple(sqlite_text(con, v) if isinstance(v, (int, float)) and table.schema[i].type == pa.string() else v
              for i, v in enumerate(row))
        for row in rows
    ]
    table.validate(full=True)


def _overwrite_error_from_another_thread(monkeypatch, con):
    """Make every read of the connection's error message first let another thread run a call.

    That thread's successful call replaces the message, as a concurrent
    unregister or query does; the reader must report the failing call's own.
    """
    original = _capi.errmsg

    def errmsg(handle):
        def call():
            try:
                con.execute("SELECT 1 UNION ALL SELECT 2").fetchone()  # 'another row available'
            except sqlite3.Error:
                pass

        thread = threading.Thread(target=call)
        thread.start()
        thread.join(timeout=0.5)
        return original(handle)

    monkeypatch.setattr(_capi, "errmsg", errmsg)


@pytest.mark.parametrize(
    "sql, message",
    [
        ("SELECT * FROM no_such_table", "no such table: no_such_table"),  # prepare
        ("SELECT abs(-9223372036854775807 - 1)", "integer overflow"),  # step
        ("SELECT json('{')", "malformed JSON"),  # step
    ],
)
def test_error_message_is_the_failing_calls_own(monkeypatch, sql, message):
    con = sqlite3.connect(":memory:", check_same_thread=False)
    try:
        with pytest.raises(sqlite3.OperationalError) as info:
            con.execute(sql).fetchall()
        assert str(info.value) == message  # sqlite3's reference
        _overwrite_error_from_another_thread(monkeypatch, con)
        with pytest.raises(sqlite3.OperationalError) as info:
            read_query(con, sql)
        assert str(info.value) == message
    finally:
        con.close()


def test_error_message_under_concurrent_reregistration():
    """Unregister/re-register from another thread: every error is the real 'no such table'."""
    import pandas as pd

    from fastagg.table import register_frame

    con = sqlite3.connect(":memory:", check_same_thread=False)
    frame = pd.DataFrame({"x": range(100)})
    stop = threading.Event()
    messages = set()

    def churn():
        while not stop.is_set():
            register_frame(con, "t", frame, replace=True).close()

    thread = threading.Thread(target=churn)
    thread.start()
    try:
        for _ in range(400):
            try:
                assert read_query(con, "SELECT sum(x) AS s FROM t")["s"].to_pylist() == [4950]
            except sqlite3.OperationalError as exc:
                messages.add(str(exc))
    finally:
        stop.set()
        thread.join()
        con.close()
    assert messages <= {"no such table: t"}


def test_error_message_of_a_replaced_error_is_the_codes_own(con):
    """capi.error_message: a message another call replaced is not reported as this call's."""
    handle = _capi.connection_handle(con)
    con.execute("SELECT 1").fetchall()  # the connection's error is now 'not an error'
    assert _capi.error_message(handle, _capi.SQLITE_ERROR) == ("SQL logic error", _capi.SQLITE_ERROR)
    with pytest.raises(sqlite3.OperationalError):
        con.execute("SELECT * FROM nowhere")
    assert _capi.error_message(handle, _capi.SQLITE_ERROR) == ("no such table: nowhere", _capi.SQLITE_ERROR)


def test_handle_check_from_many_threads_at_once():
    """connection_handle's layout probe (a limit set through the handle) runs one thread at a
    time: concurrent checks of one connection neither fail nor leave the limit changed."""
    from fastagg.sqlite import capi

    con = sqlite3.connect(":memory:", check_same_thread=False)
    limit = con.getlimit(capi._PROBE_LIMIT)
    errors = []

    def check():
        try:
            for _ in range(300):
                capi.connection_handle(con)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=check) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert con.getlimit(capi._PROBE_LIMIT) == limit
    con.close()


def test_interrupt_raised_just_after_the_job_finished_does_not_hang(monkeypatch):
    """A signal's exception can arrive right after ``done.acquire`` took the lock (CPython runs the
    handler at the next bytecode): the caller must still see the job as finished, not wait forever."""
    from fastagg import reader

    class LateInterruptLock:
        def __init__(self):
            self._lock = threading.Lock()
            self.raised = False

        def acquire(self, blocking=True, timeout=-1):
            got = self._lock.acquire(blocking, timeout)
            if got and not self.raised:
                self.raised = True
                raise KeyboardInterrupt  # the lock is now taken: the job's completion is consumed
            return got

        def release(self):
            self._lock.release()

    class Job(reader._Job):
        __slots__ = ()

        def __init__(self, fn, args):
            super().__init__(fn, args)
            self.done = LateInterruptLock()
            self.done._lock.acquire()

    monkeypatch.setattr(reader, "_Job", Job)
    con = sqlite3.connect(":memory:")
    handle = _capi.connection_handle(con)
    outcome = []

    def call():
        try:
            reader._run_interruptibly(handle, lambda: 42)
            outcome.append("returned")
        except KeyboardInterrupt:
            outcome.append("interrupted")

    caller = threading.Thread(target=call, daemon=True)
    caller.start()
    caller.join(10)
    assert outcome == ["interrupted"], "the interrupted caller waited for a job that had already finished"
    con.close()
