"""The native engine's ``sum``/``total``/``avg`` as SQLite >= 3.43 computes them (compensated sums).

Python's ``sqlite3`` here may load an older SQLite (3.40 adds doubles in row
order), so the engine's 3.43+ mode (:data:`fastagg.engine.shape.KBN_SUMMATION`)
is switched on for these tests and its answers are compared, bit for bit,
with a newer SQLite itself: the one apsw bundles, run in a subprocess (two
copies of SQLite are never loaded into one process). The data mixes
magnitudes from 1e-5 to 1e17 so that compensated and plain sums differ (the
test checks they do), with NULLs, all-NULL groups, integers past 2**53, a
nullable float column (a NULL mask) and expressions, FILTER and WHERE.
Integer overflow and infinities are left to SQLite (the engine gives way).
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import fastagg
from fastagg.engine import shape
from fastagg.engine.native import last_run

# The native engine leaves small frames to SQLite while numba is not loaded.
import numba  # noqa: E402, F401

apsw = pytest.importorskip("apsw")
if tuple(int(p) for p in apsw.sqlite_lib_version().split(".")[:2]) < (3, 44):
    pytest.skip("apsw's SQLite is older than 3.44", allow_module_level=True)

_REFERENCE = r"""
import json, sys
import numpy as np
import apsw

data = np.load(sys.argv[1])
con = apsw.Connection(":memory:")
con.execute("CREATE TABLE df (g INTEGER, x REAL, f REAL, i INTEGER)")
rows = [(int(g), None if np.isnan(x) else float(x), None if np.isnan(f) else float(f), int(i))
        for g, x, f, i in zip(data["g"], data["x"], data["f"], data["i"])]
con.executemany("INSERT INTO df VALUES (?, ?, ?, ?)", rows)

def cell(v):
    return {"real": float(v).hex()} if isinstance(v, float) else v

out = []
for sql in json.loads(sys.argv[2]):
    try:
        out.append([[cell(v) for v in row] for row in con.execute(sql)])
    except apsw.Error as exc:
        out.append({"error": str(exc)})
print(json.dumps(out))
"""


def _reference(df: pd.DataFrame, statements: list[str], tmp_path) -> list:
    """Each statement's rows from apsw's SQLite (floats as hex), or ``{"error": ...}``."""
    path = tmp_path / "frame.npz"
    np.savez(path, g=df["g"].to_numpy(), x=df["x"].to_numpy(),
             f=df["f"].to_numpy(dtype=float, na_value=np.nan), i=df["i"].to_numpy())
    proc = subprocess.run([sys.executable, "-c", _REFERENCE, str(path), json.dumps(statements)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _cells(table) -> list:
    return [[{"real": v.hex()} if isinstance(v, float) else v for v in row.values()] for row in table.to_pylist()]


def _frame(n: int, groups: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    magnitude = 10.0 ** rng.integers(-5, 18, n)
    x = rng.normal(size=n) * magnitude
    x[rng.random(n) < 0.1] = np.nan
    g = rng.integers(0, groups, n)
    x[g == groups - 1] = np.nan  # one all-NULL group
    f = pd.array(np.round(rng.normal(size=n) * 10.0 ** rng.integers(0, 17, n), 3), dtype="Float64")
    f[rng.random(n) < 0.05] = pd.NA
    i = rng.integers(-(2**40), 2**40, n)
    i[::997] = rng.integers(2**53, 2**55, len(i[::997]))  # past 2**53, no overflow even in one group
    return pd.DataFrame({"g": g, "x": x, "f": f, "i": i})


STATEMENTS = [
    "SELECT g, sum(x), total(x), avg(x), count(x), count(*) FROM df GROUP BY g",
    "SELECT g, sum(f), total(f), avg(f) FROM df GROUP BY g",
    "SELECT g, sum(i), total(i), avg(i) FROM df GROUP BY g",
    "SELECT g, sum(x * 3.0 - i), avg(x + f), sum(i + 1) FROM df GROUP BY g",
    "SELECT g, sum(x) FILTER (WHERE i > 0), avg(x) FILTER (WHERE f IS NOT NULL) FROM df GROUP BY g",
    "SELECT g, sum(x), avg(f) FROM df WHERE i < 1000 GROUP BY g",
    "SELECT sum(x), total(x), avg(x), sum(f), avg(i), total(i) FROM df",
]


@pytest.fixture
def compensated(monkeypatch):
    monkeypatch.setattr(shape, "KBN_SUMMATION", True)


@pytest.mark.parametrize("groups", [1, 7, 5000])
def test_bit_identical_to_a_newer_sqlite(compensated, tmp_path, groups):
    df = _frame(40_000, groups, seed=groups)
    want = _reference(df, STATEMENTS, tmp_path)
    for sql, expected in zip(STATEMENTS, want):
        for workers in (1, 2, 3):
            got = fastagg.query(df, sql, workers=workers, output="arrow")
            assert last_run().engine == "native", (sql, last_run())
            assert _cells(got) == expected, (sql, workers)


def test_the_reference_tells_compensated_from_plain_sums(tmp_path):
    # Without the switch the engine (and SQLite 3.40) add in plain row order: some sums differ.
    df = _frame(40_000, 7, seed=1)
    sql = "SELECT g, sum(x), avg(x) FROM df GROUP BY g"
    plain = _cells(fastagg.query(df, sql, engine="sqlite", output="arrow"))
    if fastagg.engine.shape.KBN_SUMMATION:
        pytest.skip("the loaded SQLite sums with compensation itself")
    assert plain != _reference(df, [sql], tmp_path)[0]


def test_overflow_and_infinities_are_left_to_sqlite(compensated):
    df = pd.DataFrame({"g": [1, 1, 2, 2], "i": [2**62, 2**62, 1, 2], "x": [1.0, np.inf, 2.0, 3.0]})
    for sql in ("SELECT g, avg(i) FROM df GROUP BY g", "SELECT g, total(i) FROM df GROUP BY g",
                "SELECT g, sum(x) FROM df GROUP BY g"):
        fastagg.query(df, sql, engine="sqlite")
        fastagg.query(df, sql)
        assert last_run().engine == "sqlite", sql
        assert "native run stopped" in last_run().reason
    assert fastagg.query(df, "SELECT g, sum(i) FROM df WHERE g = 2 GROUP BY g")["sum(i)"].tolist() == [3]
    assert last_run().engine == "native"


def test_explain_says_native_for_sums(compensated):
    df = _frame(100, 3, seed=0)
    assert fastagg.explain(df, "SELECT g, sum(x), avg(x), total(i) FROM df GROUP BY g").engine == "native"


def test_fused_sums_of_several_arguments(compensated, tmp_path):
    # Several float sums without FILTER take one fused pass (TPC-H Q1's shape).
    df = _frame(30_000, 4, seed=9)
    sql = "SELECT g, sum(x), avg(f), total(x * 2.0), sum(f - x), count(*) FROM df GROUP BY g"
    want = _reference(df, [sql], tmp_path)[0]
    for workers in (1, 2):
        got = fastagg.query(df, sql, workers=workers, output="arrow")
        assert last_run().engine == "native"
        assert _cells(got) == want


# ------------------------------------------------------------ generated statements

_GEN_REFERENCE = r"""
import json, sys
import numpy as np
import apsw

cases = json.load(open(sys.argv[1]))
out = []
for case in cases:
    con = apsw.Connection(":memory:")
    con.execute("CREATE TABLE df (ki INTEGER, kt TEXT, kb INTEGER, x REAL, i INTEGER, f REAL)")
    con.executemany("INSERT INTO df VALUES (?, ?, ?, ?, ?, ?)", [tuple(r) for r in case["rows"]])
    try:
        rows = [[{"real": v.hex()} if isinstance(v, float) else v for v in row] for row in con.execute(case["sql"])]
        out.append(rows)
    except apsw.Error as exc:
        out.append({"error": str(exc)})
    con.close()
print(json.dumps(out))
"""

_KEYS = [(), ("ki",), ("kt",), ("kb",), ("kt", "ki")]
_AGGS = ["count(*)", "count(x)", "sum(x)", "total(x)", "avg(x)", "sum(i)", "total(i)", "avg(i)", "sum(f)",
         "avg(f)", "min(x)", "max(i)", "sum(x * 2.5 - i)", "avg(x + f)", "total(i * 3 - 1)", "sum(kb)",
         "avg(i / 3)", "sum(x) FILTER (WHERE i > 0)", "avg(f) FILTER (WHERE kt = 'a' OR kt IS NULL)",
         "total(x) FILTER (WHERE x > 1e3)"]
_WHERES = [None, "x > 0", "i >= 0 AND kt IS NOT NULL", "x BETWEEN -1e6 AND 1e12 OR kb = 1", "f IS NULL"]
_TAILS = ["", " HAVING count(*) > 1", " ORDER BY 1 DESC", " LIMIT 2"]


def _generated_case(rng):
    n = int(rng.choice([0, 1, 5, 40, 300, 3000]))
    big = rng.random() < 0.3
    x = rng.normal(size=n) * 10.0 ** rng.integers(-3, 17, n)
    x[rng.random(n) < 0.1] = np.nan
    i = rng.integers(-(2**58), 2**58, n) if big else rng.integers(-1000, 1000, n)
    f = np.round(rng.normal(size=n) * 10.0 ** rng.integers(0, 15, n), 2)
    f[rng.random(n) < 0.1] = np.nan
    ki = rng.integers(-3, 4, n).astype(float)
    ki[rng.random(n) < 0.1] = np.nan
    kt = rng.choice(np.array(["a", "b", "\u00e9", "zz", None], dtype=object), n)
    kb = rng.random(n) < 0.5
    df = pd.DataFrame({"ki": pd.array([None if np.isnan(v) else int(v) for v in ki], dtype="Int64"),
                       "kt": pd.array(list(kt), dtype=object), "kb": kb, "x": x, "i": i,
                       "f": pd.array([None if np.isnan(v) else v for v in f], dtype="Float64")})
    keys = _KEYS[rng.integers(len(_KEYS))]
    aggs = list(rng.choice(_AGGS, int(rng.integers(1, 4)), replace=False))
    where = _WHERES[rng.integers(len(_WHERES))]
    sql = f"SELECT {', '.join(list(keys) + aggs)} FROM df"
    if where:
        sql += f" WHERE {where}"
    if keys:
        sql += " GROUP BY " + ", ".join(keys) + _TAILS[rng.integers(len(_TAILS))]
    rows = [[None if pd.isna(v) else (bool(v) * 1 if isinstance(v, (bool, np.bool_)) else
             (float(v) if isinstance(v, (float, np.floating)) else (int(v) if isinstance(v, (int, np.integer)) else v)))
             for v in rec] for rec in df.itertuples(index=False)]
    return df, sql, rows


def test_generated_statements_match_a_newer_sqlite(compensated, tmp_path):
    """60 generated frames and statements (keys, sums of columns and expressions, FILTER, WHERE,
    HAVING / ORDER BY / LIMIT), compared with apsw's SQLite wherever the native engine answered."""
    rng = np.random.default_rng(2026)
    cases = [_generated_case(rng) for _ in range(60)]
    path = tmp_path / "cases.json"
    path.write_text(json.dumps([{"sql": sql, "rows": rows} for _, sql, rows in cases]))
    proc = subprocess.run([sys.executable, "-c", _GEN_REFERENCE, str(path)], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    want = json.loads(proc.stdout)
    native = 0
    for (df, sql, _), expected in zip(cases, want):
        try:
            got = fastagg.query(df, sql, workers=2, output="arrow")
        except Exception as exc:  # noqa: BLE001 - then the reference must have failed too
            assert isinstance(expected, dict), (sql, exc)
            continue
        ran = last_run()
        if ran is None or ran.engine != "native":
            continue  # answered by the SQLite loaded here, which is not the reference
        native += 1
        assert _cells(got) == expected, sql
    assert native >= 30, native  # the rest: outside the shape (empty object columns, OR rules), or an overflow
