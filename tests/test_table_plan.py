"""fastagg.table.plan: the xBestIndex -> xFilter plan survives encoding."""

import ctypes
import sqlite3

import numpy as np
import pandas as pd
from numba import njit

from fastagg.sqlite import capi
from fastagg.sqlite.structs import PLAN, PLAN_TERM
from fastagg.table import plan, register_frame
from fastagg.table.filtering import OP_GE, OP_LT


@njit
def _encode(kind, used, filters, order):
    addr = plan.new_plan(kind, used, len(filters), len(order))
    f = plan.plan_filters(addr)
    for i in range(len(filters)):
        f[i].column = filters[i, 0]
        f[i].op = filters[i, 1]
        f[i].argv = filters[i, 2]
    o = plan.plan_order(addr)
    for i in range(len(order)):
        o[i].column = order[i, 0]
        o[i].desc = order[i, 1]
    return addr


@njit
def _decode(addr):
    head = plan.plan_header(addr)[0]
    f = plan.plan_filters(addr)
    o = plan.plan_order(addr)
    filters = np.zeros((len(f), 3), np.int64)
    for i in range(len(f)):
        filters[i, 0] = f[i].column
        filters[i, 1] = f[i].op
        filters[i, 2] = f[i].argv
    order = np.zeros((len(o), 2), np.int64)
    for i in range(len(o)):
        order[i, 0] = o[i].column
        order[i, 1] = o[i].desc
    return head.kind, head.index, head.colUsed, filters, order


def test_round_trip():
    filters = np.array([[-1, OP_GE, 0], [3, OP_LT, 1]], np.int64)
    order = np.array([[2, 1], [0, 0], [-1, 0]], np.int64)
    used = np.int64(-(2**62))  # bit 63 set as well: high bits survive
    addr = _encode(plan.PLAN_SCAN, used, filters, order)
    try:
        assert addr != 0
        kind, index, col_used, f, o = _decode(addr)
        assert (kind, index, col_used) == (plan.PLAN_SCAN, -1, used)
        assert f.tolist() == filters.tolist()
        assert o.tolist() == order.tolist()
        # The block is the documented layout: header, then filters, then order terms.
        size = PLAN.itemsize + 5 * PLAN_TERM.itemsize
        raw = np.frombuffer((ctypes.c_char * size).from_address(addr), np.uint8)
        assert bytes(raw[:8]) == b"fastagg\0"  # what EXPLAIN QUERY PLAN prints
        head = raw[: PLAN.itemsize].view(PLAN)[0]
        assert (head["nfilter"], head["norder"]) == (2, 3)
        terms = raw[PLAN.itemsize:].view(PLAN_TERM)
        assert terms["column"].tolist() == [-1, 3, 2, 0, -1]
        assert terms["argv"].tolist() == [0, 1, -1, -1, -1]
    finally:
        capi.lib.sqlite3_free(addr)


def test_empty_plan_round_trip():
    addr = _encode(plan.PLAN_SCAN, np.int64(5), np.zeros((0, 3), np.int64), np.zeros((0, 2), np.int64))
    try:
        kind, index, col_used, f, o = _decode(addr)
        assert (kind, col_used, f.shape, o.shape) == (plan.PLAN_SCAN, 5, (0, 3), (0, 2))
    finally:
        capi.lib.sqlite3_free(addr)


def test_explain_shows_the_tag():
    con = sqlite3.connect(":memory:")
    with register_frame(con, "t", pd.DataFrame({"x": [1, 2, 3]})):
        rows = con.execute("EXPLAIN QUERY PLAN SELECT * FROM t WHERE x > 1 ORDER BY x").fetchall()
        assert any("VIRTUAL TABLE INDEX 0:fastagg" in r[-1] for r in rows), rows
        assert con.execute("SELECT x FROM t WHERE x > 1 ORDER BY x DESC").fetchall() == [(3,), (2,)]
