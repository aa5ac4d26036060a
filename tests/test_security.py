"""read_only=True (issue 11, part 4): an authorizer that denies writes, ATTACH and PRAGMA writes.

What fastagg itself does on a read-only connection must keep working:
frames (virtual tables), built-in and given aggregates (registered through
SQLite's C API), the parallel path, reading PRAGMAs, ``fastagg.sql``.
"""

from __future__ import annotations

import sqlite3

import numpy as np
import pandas as pd
import pytest

import fastagg

pytest.importorskip("sqlglot")


@fastagg.aggregate(name="ro_total")
class RoTotal:
    total: float

    def step(self, x: float):
        self.total += x

    def merge(self, other):
        self.total += other.total

    def finalize(self) -> float:
        return self.total


@pytest.fixture
def dbfile(tmp_path):
    path = tmp_path / "data.sqlite"
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE t(g INTEGER, x REAL)")
        con.executemany("INSERT INTO t VALUES (?, ?)", [(i % 3, float(i)) for i in range(30)])
        con.execute("CREATE INDEX t_g ON t(g)")
    con.close()
    return path


WRITES = [
    ("INSERT INTO t VALUES (1, 2.0)", "INSERT INTO t"),
    ("UPDATE t SET x = 0", "UPDATE t"),
    ("DELETE FROM t", "DELETE FROM t"),
    ("CREATE TABLE u(a)", "CREATE TABLE u"),
    ("CREATE TEMP TABLE u(a)", "CREATE TEMP TABLE u"),
    ("CREATE VIEW v AS SELECT 1", "CREATE VIEW v"),
    ("CREATE INDEX i ON t(g)", "CREATE INDEX i"),
    ("DROP TABLE t", "DELETE FROM sqlite_master"),  # SQLite asks about the schema row first
    ("ALTER TABLE t ADD COLUMN y", "ALTER TABLE"),
    ("ATTACH ':memory:' AS other", "ATTACH"),
    ("VACUUM INTO '{tmp}/copy.sqlite'", "ATTACH"),
    ("PRAGMA user_version = 3", "PRAGMA user_version = 3"),
    ("PRAGMA journal_mode = wal", "PRAGMA journal_mode = wal"),
    ("PRAGMA writable_schema = 1", "PRAGMA writable_schema = 1"),
    ("PRAGMA optimize", "PRAGMA optimize"),
    ("REINDEX t_g", "REINDEX t_g"),
    ("REINDEX", "REINDEX t_g"),
    ("ANALYZE", "CREATE TABLE sqlite_stat1"),
]


@pytest.mark.parametrize("sql, what", WRITES)
def test_read_only_query_denies_writes(dbfile, tmp_path, sql, what):
    before = dbfile.read_bytes()
    sql = sql.format(tmp=tmp_path)
    with pytest.raises(fastagg.Error, match=f"read_only=True: the statement may not {what}"):
        fastagg.query(dbfile, sql, read_only=True)
    with fastagg.connect(dbfile, read_only=True) as db:
        with pytest.raises(fastagg.Error, match="read_only=True"):
            db.query(sql)
        with pytest.raises(sqlite3.DatabaseError):
            db.connection.execute(sql)  # the session's own connection is read-only too
    assert dbfile.read_bytes() == before
    assert not (tmp_path / "copy.sqlite").exists()


def test_without_read_only_writes_commit(dbfile):
    fastagg.query(dbfile, "DELETE FROM t WHERE g = 0")
    with sqlite3.connect(dbfile) as con:
        assert con.execute("SELECT count(*) FROM t").fetchone() == (20,)
    con.close()


READS = [
    "SELECT g, count(*) AS n, sum(x) AS s FROM t GROUP BY g ORDER BY g",
    "SELECT var_samp(x) AS v, median(x) AS m FROM t",  # built-ins, registered through the C API
    "SELECT ro_total(x) AS r FROM t",  # a given aggregate
    "SELECT sum(x) OVER (ORDER BY x ROWS 2 PRECEDING) AS w FROM t LIMIT 3",
    "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 5) SELECT sum(i) FROM c",
    "SELECT name FROM pragma_table_info('t')",
    "PRAGMA table_info(t)",
    "PRAGMA user_version",
    "SELECT count(*) AS n FROM sqlite_master",
]


@pytest.mark.parametrize("sql", READS)
def test_read_only_allows_reads(dbfile, sql):
    want = fastagg.query(dbfile, sql, [RoTotal], output="arrow")
    got = fastagg.query(dbfile, sql, [RoTotal], output="arrow", read_only=True)
    assert got.equals(want)


def test_read_only_session_frames_builtins_parallel_and_sql():
    df = pd.DataFrame({"g": np.arange(3000) % 4, "x": np.arange(3000, dtype=np.float64)})
    with fastagg.connect(read_only=True) as db:
        db.register("f", df)  # a virtual table: SQLite's C API, allowed
        single = db.query("SELECT g, ro_total(x) AS r, var_samp(x) AS v FROM f GROUP BY g ORDER BY g",
                          [RoTotal], output="arrow", workers=1)
        split = db.query("SELECT g, ro_total(x) AS r, var_samp(x) AS v FROM f GROUP BY g ORDER BY g",
                         [RoTotal], output="arrow", workers=3)
        # approx per row: pytest >= 9.2 refuses approx of a list of dicts.
        assert split.to_pylist() == [pytest.approx(row) for row in single.to_pylist()] or split.equals(single)
        assert single.column("r").to_pylist() == [float(sum(range(k, 3000, 4))) for k in range(4)]
        with pytest.raises(fastagg.Error, match="read-only"):
            db.load("copy", df)
        with pytest.raises(fastagg.Error, match="read_only"):
            db.query("CREATE TABLE k AS SELECT * FROM f")
        db.unregister("f")
        db.register("f", df.head(3))
        assert db.query("SELECT count(*) AS n FROM f", output="arrow").column("n").to_pylist() == [3]
    frame = df.head(5)
    assert fastagg.sql("SELECT count(*) AS n FROM frame", read_only=True)["n"].tolist() == [5]


def test_read_only_on_a_callers_connection_lasts_one_query():
    con = sqlite3.connect(":memory:")
    with pytest.raises(fastagg.Error, match="CREATE TABLE"):
        fastagg.query(con, "CREATE TABLE a(x)", read_only=True)
    assert con.execute("PRAGMA query_only").fetchone() == (0,)
    fastagg.query(con, "CREATE TABLE a(x)")  # the authorizer was removed after the query
    con.execute("INSERT INTO a VALUES (1)")
    assert fastagg.query(con, "SELECT x FROM a", read_only=True, output="arrow").to_pylist() == [{"x": 1}]
    con.close()


def test_read_only_is_checked():
    with pytest.raises(fastagg.Error, match="read_only"):
        fastagg.query(pd.DataFrame({"x": [1]}), "SELECT 1", read_only="yes")
    with pytest.raises(fastagg.Error, match="read_only"):
        fastagg.connect(read_only=1)


def test_zero_copy_buffers_are_live():
    """Documented: an in-place change to a registered numpy buffer is visible to SQL."""
    values = np.array([1.0, 2.0, 3.0])
    df = pd.DataFrame({"x": values}, copy=False)
    with fastagg.connect() as db:
        db.register("t", df)
        values[0] = 10.0  # in place: the registered buffer itself
        assert db.query("SELECT sum(x) AS s FROM t", output="arrow").column("s").to_pylist() == [15.0]
        df["x"] = 0.0  # a new column: the registration keeps the old buffer
        assert db.query("SELECT sum(x) AS s FROM t", output="arrow").column("s").to_pylist() == [15.0]
