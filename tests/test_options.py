"""QueryOptions: one set of checks for fastagg.query, Database.query and fastagg.dask.query."""

from __future__ import annotations

import doctest
import importlib

import numpy as np
import pandas as pd
import pytest

import fastagg
from fastagg.options import QueryOptions
from fastagg.registry import builtins_used, called_functions

from test_parallel import PSumNoMerge as OSum  # any decorated class

@pytest.mark.parametrize(
    "kw, fragment",
    [
        ({"output": "excel"}, "output must be one of 'pandas', 'arrow', 'polars'; got 'excel'"),
        ({"output": None}, "output must be one of"),
        ({"workers": 0}, "workers must be a positive int or None; got 0"),
        ({"workers": True}, "workers must be a positive int or None"),
        ({"workers": 2.0}, "workers must be a positive int or None"),
        ({"builtins": "yes"}, "builtins must be True or False"),
        ({"aggregates": OSum}, "aggregates must be an iterable"),
        ({"functions": 3}, "functions must be an iterable"),
    ],
)
def test_bad_options_raise_one_clear_error(kw, fragment):
    with pytest.raises(fastagg.Error, match=fragment):
        QueryOptions(**kw)
    # Every front end builds the same object, so it raises the same error.
    df = pd.DataFrame({"x": [1.0]})
    with pytest.raises(fastagg.Error, match=fragment):
        fastagg.query(df, "SELECT 1", **kw)
    with fastagg.connect() as db, pytest.raises(fastagg.Error, match=fragment):
        db.query("SELECT 1", **kw)


def test_options_are_frozen_and_normalised():
    opts = QueryOptions(aggregates=[OSum], functions=iter(()), params=(1,))
    assert opts.aggregates == (OSum,) and opts.functions == ()
    with pytest.raises(AttributeError):
        opts.output = "arrow"
    assert opts.replace(output="arrow").output == "arrow"
    with pytest.raises(fastagg.Error):
        opts.replace(workers=-1)


def test_specs_given_then_builtins_and_given_names_win():
    @fastagg.aggregate(name="median")
    class MyMedian:
        n: np.int64

        def step(self, x: float):
            self.n += 1

        def finalize(self) -> int:
            return self.n

    names = [s.name for s in QueryOptions(aggregates=[MyMedian]).specs("SELECT median(x), var_samp(x) FROM df")]
    assert names[0] == "median" and names.count("median") == 1 and "var_samp" in names
    assert QueryOptions(builtins=False).specs("SELECT median(x) FROM df") == []


def test_called_functions_by_sqlglot():
    sql = "SELECT g, MEDIAN(x), 'var_samp(y)', min_by(x, g) -- stddev(x)\nFROM df WHERE abs(x) > 1 GROUP BY g"
    called = called_functions(sql)
    assert {"median", "abs", "min_by"} <= called
    assert "var_samp" not in called and "stddev" not in called  # text and comments are not calls


def test_called_functions_fall_back_to_every_identifier_before_a_parenthesis():
    # sqlglot cannot parse SQLite's MATCH function form; the query still gets its built-ins.
    sql = "SELECT median(x), match(a, 1) FROM df"
    assert {"median", "match"} <= called_functions(sql)
    assert [s.name for s in builtins_used(sql)] == ["median"]


def test_every_builtin_is_found_when_called():
    from fastagg.builtins import BUILTINS
    from fastagg.compile.spec import spec_of

    for cls in BUILTINS:
        spec = spec_of(cls)
        for name in (spec.name, *(spec.partial_names if spec.is_mergeable else ())):
            args = ", ".join(["x"] * max(spec.narg, 1)) if name == spec.name else "x"
            assert spec in builtins_used(f"SELECT {name}({args}) FROM df"), name


def test_plain_sql_does_not_parse():
    assert builtins_used("SELECT count(*), sum(x) FROM df") == []


@pytest.mark.parametrize("module_name", ["fastagg.options", "fastagg.registry", "fastagg.output", "fastagg.cli.io"])
def test_docstring_examples_run(module_name):
    module = importlib.import_module(module_name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0
