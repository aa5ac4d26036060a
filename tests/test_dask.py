"""fastagg.dask: partial per partition, tree combine, merge == one connection."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import fastagg

dask = pytest.importorskip("dask")
dd = pytest.importorskip("dask.dataframe")
import fastagg.dask as fdask  # noqa: E402

from test_parallel import PVar, PMinK, PSumNoMerge, assert_same  # noqa: E402

AGGS = [PVar, PMinK, PSumNoMerge]


@pytest.fixture(scope="module")
def frame():
    rng = np.random.default_rng(3)
    n = 20_000
    x = rng.normal(5.0, 2.0, n)
    x[rng.random(n) < 0.05] = np.nan
    return pd.DataFrame(
        {
            "g": rng.integers(0, 25, n),
            "s": pd.array(rng.choice(["a", "b", None], n), dtype=object),
            "k": pd.array(np.where(rng.random(n) < 0.1, None, rng.integers(-9, 9, n)), dtype="Int64"),
            "x": x,
        }
    )


QUERIES = [
    ("SELECT g, count(*), sum(k), avg(x), min(s), max(x), total(k) FROM df GROUP BY g", None, False),
    ("SELECT s, g % 4 AS m, pvar(x) AS v, pmink(k) FROM df WHERE x > ? GROUP BY s, m", (4.0,), False),
    ("SELECT s, count(*) AS n, pvar(x) FROM df GROUP BY s HAVING count(*) > 10 ORDER BY n DESC LIMIT 2", None, True),
    ("SELECT k, sum(x) / count(*) FROM df GROUP BY k ORDER BY k", None, True),  # NULL key
    ("SELECT count(*), pvar(x) FROM df WHERE g > 100", None, True),  # no rows in any partition
    ("SELECT s, psumnomerge(x) FROM df GROUP BY s", None, False),  # no merge: falls back
    ("SELECT s, group_concat(g) FROM df WHERE g = 1 AND k = 2 GROUP BY s", None, False),  # falls back
]


@pytest.mark.parametrize("sql, params, ordered", QUERIES)
def test_threaded_scheduler_equals_single(frame, sql, params, ordered):
    ddf = dd.from_pandas(frame, npartitions=11)
    one = fastagg.query(frame, sql, AGGS, params=params, output="arrow", workers=1)
    many = fdask.query(ddf, sql, AGGS, params=params, output="arrow", split_every=3, scheduler="threads")
    if "group_concat" in sql:  # order of concatenation is the partition order
        assert sorted(one.column(0).to_pylist(), key=str) == sorted(many.column(0).to_pylist(), key=str)
        return
    assert_same(one, many, ordered)


def test_graph_is_lazy_and_has_a_tree(frame):
    ddf = dd.from_pandas(frame, npartitions=9)
    out = fdask.query(ddf, "SELECT g, pvar(x) FROM df GROUP BY g", [PVar], compute=False, split_every=3)
    from dask.delayed import Delayed

    assert isinstance(out, Delayed)
    keys = [key[0] if isinstance(key, tuple) else key for key in dict(out.__dask_graph__())]
    assert sum(str(k).startswith("_combine") for k in keys) == 4  # 9 -> 3 -> 1
    assert sum(str(k).startswith("_partial") for k in keys) == 9
    assert out.compute(scheduler="sync").num_rows == 25


def test_import_fastagg_does_not_import_dask():
    code = "import sys, fastagg; fastagg.query; assert 'dask' not in sys.modules, 'dask imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_local_cluster(frame):
    distributed = pytest.importorskip("distributed")
    ddf = dd.from_pandas(frame, npartitions=4)
    sql = "SELECT s, count(*) AS n, pvar(x) AS v, avg(k) FROM df GROUP BY s ORDER BY s"
    one = fastagg.query(frame, sql, [PVar], output="arrow", workers=1)
    with distributed.LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
    ) as cluster, distributed.Client(cluster):
        many = fdask.query(ddf, sql, [PVar], output="arrow")
    assert_same(one, many, ordered=True)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT count(*) AS n FROM df WHERE rowid <= 100",
        "SELECT g, max(_rowid_) AS r, sum(oid) AS s FROM df GROUP BY g ORDER BY g",
    ],
)
def test_rowid_is_the_whole_frames(frame, sql):
    """rowid numbers the frame's rows; partitions number theirs from 1 each: not split."""
    ddf = dd.from_pandas(frame, npartitions=4)
    one = fastagg.query(frame, sql, output="arrow", workers=1)
    many = fdask.query(ddf, sql, output="arrow", scheduler="threads")
    assert_same(one, many, True)


def test_aggregate_named_like_sqlite_builtin_is_refused_before_any_task(frame):
    from test_database import SumNamedLikeSQLite

    ddf = dd.from_pandas(frame, npartitions=2)
    with pytest.raises(fastagg.Error, match="SQLite's own"):
        fdask.query(ddf, "SELECT g, sum(x) FROM df GROUP BY g", [SumNamedLikeSQLite], compute=False)
