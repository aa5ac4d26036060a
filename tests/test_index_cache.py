"""Indexes kept with an immutable source across registrations (fastagg.table.directory)."""

from __future__ import annotations

import gc
import sqlite3
import weakref

import numpy as np
import pandas as pd
import pyarrow as pa

import fastagg
from fastagg.sqlite import capi
from fastagg.table.directory import kept_directories

JOIN = "SELECT count(*) AS n, sum(s.w) AS w FROM big b JOIN small s ON s.k = b.k"


def _tables(n=50_000, m=500, seed=3):
    rng = np.random.default_rng(seed)
    big = pa.table({"k": rng.integers(0, m + 20, n), "x": rng.random(n)})
    small = pa.table({"k": np.arange(m), "w": np.arange(m) % 7})
    return big, small


def _reference(frames, sql):
    ref = sqlite3.connect(":memory:")
    for name, frame in frames.items():
        (frame.to_pandas() if isinstance(frame, pa.Table) else frame).to_sql(name, ref, index=False)
    return ref.execute(sql).fetchall()


def _built(db):
    return {name: [ix["columns"] for ix in info["indexes"]] for name, info in db.table_info.items()}


def test_arrow_indexes_outlive_the_registration():
    big, small = _tables()
    frames = {"big": big, "small": small}
    first = fastagg.query(frames, JOIN, output="arrow").to_pylist()
    with fastagg.connect() as db:
        db.register("big", big)
        db.register("small", small)
        # Kept from the one-shot query above: there before any query of this Database.
        built = _built(db)
        assert sum(len(v) for v in built.values()) == 1, built
        assert all(info["indexes_kept"] for info in db.table_info.values())
        again = db.query(JOIN, output="arrow").to_pylist()
        assert _built(db) == built  # reused, not rebuilt
    assert first == again
    assert [tuple(r.values()) for r in first] == _reference(frames, JOIN)


def test_one_source_in_use_twice_gets_a_private_directory():
    big, small = _tables(n=5000, m=100)
    with fastagg.connect() as db1, fastagg.connect() as db2:
        for db in (db1, db2):
            db.register("big", big)
            db.register("small", small)
        assert db1.table_info["small"]["indexes_kept"] and not db2.table_info["small"]["indexes_kept"]
        a = db1.query(JOIN, output="arrow").to_pylist()
        b = db2.query(JOIN, output="arrow").to_pylist()
    assert a == b
    # The same table under two names in one query: a self-join, each its own directory while both live.
    sql = "SELECT count(*) FROM big a JOIN big2 b ON b.k = a.k WHERE a.x < 0.01"
    got = fastagg.query({"big": big, "big2": big}, sql, output="arrow").to_pylist()
    assert [tuple(r.values()) for r in got] == _reference({"big": big, "big2": big}, sql)


def test_decimals_option_has_its_own_directory():
    import decimal

    keys = pa.array([decimal.Decimal("1.10"), decimal.Decimal("2.00"), None, decimal.Decimal("1.10")],
                    pa.decimal128(5, 2))
    t = pa.table({"k": keys, "v": [1, 2, 3, 4]})
    u = pa.table({"k": pa.array([decimal.Decimal("1.10"), None], pa.decimal128(5, 2))})
    sql = "SELECT t.v, t.k FROM u JOIN t ON t.k = u.k ORDER BY t.v"
    real = fastagg.query({"t": t, "u": u}, sql, output="arrow").to_pylist()
    text = fastagg.query({"t": t, "u": u}, sql, output="arrow", decimals="text").to_pylist()
    assert [r["v"] for r in real] == [r["v"] for r in text] == [1, 4]
    assert real[0]["k"] == 1.1 and text[0]["k"] == "1.10"


def test_pandas_in_place_change_is_seen():
    rng = np.random.default_rng(5)
    big = pd.DataFrame({"k": rng.integers(0, 60, 20_000), "x": rng.random(20_000)})
    small = pd.DataFrame({"k": np.arange(50), "w": np.arange(50) % 7})
    frames = {"big": big, "small": small}
    first = fastagg.query(frames, JOIN, output="arrow").to_pylist()
    assert [tuple(r.values()) for r in first] == _reference(frames, JOIN)
    # Written in place, same buffers: a kept index would give the old answer.
    small.loc[0:9, "k"] = 10_000 + np.arange(10)
    big.iloc[:100, 0] = 3
    second = fastagg.query(frames, JOIN, output="arrow").to_pylist()
    assert second != first
    assert [tuple(r.values()) for r in second] == _reference(frames, JOIN)
    with fastagg.connect() as db:
        db.register("small", small)
        assert db.table_info["small"]["indexes"] == [] and not db.table_info["small"]["indexes_kept"]


def test_kept_indexes_are_freed_with_the_source():
    gc.collect()
    before = kept_directories()
    big, small = _tables(n=200_000, m=2000, seed=7)
    fastagg.query({"big": big, "small": small}, JOIN, output="arrow")
    with fastagg.connect() as db:
        db.register("big", big)
        db.register("small", small)
        built = sum(info["index_bytes"] for info in db.table_info.values())
        perms = sum(ix["bytes"] for info in db.table_info.values() for ix in info["indexes"])
    # The keys are dense integers: the index has a key-start table besides the permutation.
    assert perms >= 8 * 2000 and built > perms
    assert kept_directories()["bytes"] - before["bytes"] >= built
    refs = [weakref.ref(big), weakref.ref(small)]
    used = capi.lib.sqlite3_memory_used()
    del big, small
    gc.collect()
    assert all(r() is None for r in refs)
    assert used - capi.lib.sqlite3_memory_used() >= built
    assert kept_directories()["directories"] == before["directories"]


def test_source_collected_while_registered():
    big, small = _tables(n=5000, m=100)
    con = sqlite3.connect(":memory:")
    from fastagg.table import register_frame

    regs = [register_frame(con, "big", big), register_frame(con, "small", small)]
    want = con.execute(JOIN).fetchall()
    del big, small
    gc.collect()
    # The registration pins the buffers, not the Table: the orphaned directory lives on until close.
    assert con.execute(JOIN).fetchall() == want
    assert sum(len(r.indexes) for r in regs) == 1 and not any(r.indexes_kept for r in regs)
    for r in regs:
        r.close()
    assert kept_directories()["directories"] >= 0
