"""Start-up (issue 14): a cheap import, native images loaded without numba, warm-up.

Each test runs fresh interpreters (``run_isolated``) with an empty
``FASTAGG_CACHE_DIR`` of its own; the copies of the images kept beside
numba's cache (``__pycache__`` beside fastagg's sources) stay warm, so
"building" an image is mostly a copy; one test compiles from an empty numba
cache too (child processes, fastagg.native.build).
"""

from __future__ import annotations

import json
import sys

import pytest

from conftest import run_isolated

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="native images are ELF-only")

QUERY = """
import json, sys
import numpy as np, pandas as pd
import fastagg
df = pd.DataFrame({"g": np.arange(1000) % 7, "x": np.arange(1000, dtype=float),
                   "s": [f"v{i % 5}" for i in range(1000)]})
out = fastagg.query(df, "SELECT g, sum(x) AS t, min(s) AS m, count(*) AS n FROM df "
                        "WHERE x > 3 GROUP BY g ORDER BY g", output="arrow").to_pydict()
mixed = fastagg.query(df, "SELECT 1 AS a UNION ALL SELECT 'x'", output="arrow").to_pydict()
from fastagg.reader import IMAGE as reader
from fastagg.table.callbacks import IMAGE as vtab
print(json.dumps({"out": out, "mixed": mixed, "sources": {"vtab": vtab.source, "reader": reader.source},
                  "compiler": "numba.core.compiler" in sys.modules,
                  "numba": "numba" in sys.modules}))
"""


#: How an image that was not loaded as found came to be: built by a child
#: process (fastagg.native.build), by numba in the process, or restored from
#: the copy kept beside numba's cache (fastagg.native.loader.shared_image_path).
REBUILT = {"child", "numba", "copy"}


def _run(code: str, cache, **env) -> dict:
    proc = run_isolated(code, timeout=600, env={"FASTAGG_CACHE_DIR": str(cache), **env})
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module", autouse=True)
def _fixed_images_built():
    """Build the fixed images once, with time to spare, before the tests' 120-s runs.

    Once built, a copy is kept beside numba's cache (``__pycache__``) and
    each test's empty ``FASTAGG_CACHE_DIR`` copies it; after a change to
    fastagg's compiled code the first build compiles from nothing (a minute
    or more on a loaded machine).
    """
    proc = run_isolated("import fastagg; fastagg.warmup(builtins=False)", timeout=1200)
    assert proc.returncode == 0, proc.stderr


def test_import_fastagg_imports_neither_pandas_nor_numba():
    proc = run_isolated(
        """
        import sys, fastagg
        print([m for m in ("pandas", "pyarrow", "numba", "llvmlite") if m in sys.modules])
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


@pytest.mark.parametrize("pandas_first", [True, False])
def test_accessor_registered_whichever_is_imported_first(pandas_first):
    first, second = ("pandas as pd", "fastagg") if pandas_first else ("fastagg", "pandas as pd")
    proc = run_isolated(
        f"""
        import {first}
        import {second}
        df = pd.DataFrame({{"x": [1.0, 2.0]}})
        print(df.sqlagg("SELECT sum(x) AS s FROM df")["s"].tolist())
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[3.0]"


def test_second_process_answers_plain_sql_without_numba(tmp_path):
    """First process: compiles (or loads numba's cache) and writes the images.
    Second: loads them with llvmlite alone, and answers the same."""
    cache = tmp_path / "cache"
    first = _run(QUERY, cache)
    second = _run(QUERY, cache)
    assert set(first["sources"].values()) <= REBUILT
    assert second["sources"] == {"vtab": "image", "reader": "image"}
    assert second["compiler"] is False and second["numba"] is False
    assert second["out"] == first["out"]
    assert second["mixed"] == first["mixed"] == {"a": ["1", "x"]}
    images = sorted(p.name.split("-")[0] for p in (cache / "native").glob("*.fanative"))
    assert images == ["reader", "vtab"]


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage"])
def test_damaged_image_is_ignored_and_rebuilt(tmp_path, damage):
    cache = tmp_path / "cache"
    reference = _run(QUERY, cache)
    (image,) = (cache / "native").glob("vtab-*.fanative")
    data = image.read_bytes()
    if damage == "truncate":
        image.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        middle = len(data) // 2
        image.write_bytes(data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :])
    else:
        image.write_bytes(b"not an image at all")
    again = _run(QUERY, cache)
    assert again["out"] == reference["out"]
    assert again["sources"]["vtab"] in REBUILT  # the damaged image was not loaded
    assert image.read_bytes() == data  # and rebuilt, identical
    third = _run(QUERY, cache)
    assert third["numba"] is False and third["out"] == reference["out"]


def test_image_of_another_machine_key_is_not_loaded(tmp_path):
    """A file under the right name whose recorded key differs (another CPU,
    another numba) is refused: the key inside the file is checked too."""
    cache = tmp_path / "cache"
    reference = _run(QUERY, cache)
    (image,) = (cache / "native").glob("reader-*.fanative")
    code = f"""
import json, pathlib
from fastagg.native import loader
path = pathlib.Path({str(image)!r})
header, blobs = loader._decode(path.read_bytes())
header["key"]["machine"]["cpu"] = "some-other-cpu"
path.write_bytes(loader._encode(header, blobs))
print(json.dumps({{}}))
"""
    _run(code, cache)
    again = _run(QUERY, cache)
    assert again["sources"]["reader"] in REBUILT and again["out"] == reference["out"]


INDEX_QUERY = """
import json, sqlite3, sys
import numpy as np, pandas as pd
import fastagg
from fastagg.table import callbacks
FAIL = False
if FAIL:  # the index image cannot be had: every statement must still answer (scans)
    def _fail():
        raise RuntimeError("no index image here")
    callbacks.INDEX_IMAGE.addresses = _fail
rng = np.random.default_rng(1)
a = pd.DataFrame({"k": rng.integers(0, 50, 3000), "x": rng.normal(size=3000)})
b = pd.DataFrame({"k": np.arange(50), "name": [f"n{i}" for i in range(50)]})
plain = fastagg.query(a, "SELECT k, count(*) AS n FROM df WHERE x > 0 GROUP BY k ORDER BY k")
# Comparisons with constants on a table with no index: the scan, priced without the index image.
plain = fastagg.query(a, "SELECT k, x FROM df WHERE k = 7 AND x <= 0.5 ORDER BY x, k")
after_plain = callbacks.index_loaded()
queries = [
    "SELECT b.name, count(*) AS n, min(a.x) AS lo FROM a JOIN b ON a.k = b.k GROUP BY b.name ORDER BY b.name",
    "SELECT k, x FROM a ORDER BY x DESC LIMIT 5 OFFSET 2",
    "SELECT name FROM b WHERE k IN (SELECT k FROM a WHERE x > 2.5) ORDER BY name",
]
con = sqlite3.connect(":memory:")
a.to_sql("a", con, index=False)
b.to_sql("b", con, index=False)
same = []
for q in queries:
    got = fastagg.query({"a": a, "b": b}, q, output="arrow").to_pylist()
    ref = [dict(zip([d[0] for d in cur.description], row)) for cur in [con.execute(q)] for row in cur.fetchall()]
    same.append(got == ref)
print(json.dumps({"after_plain": after_plain, "loaded": callbacks.index_loaded(),
                  "source": callbacks.INDEX_IMAGE.source, "same": same,
                  "compiler": "numba.core.compiler" in sys.modules}))
"""


def test_index_image_only_for_statements_that_need_it(tmp_path):
    """A scan with a WHERE and a GROUP BY neither builds nor loads the index
    image, nor do comparisons with constants (its cost model is not asked:
    no index exists, so it would choose the scan); a join, a top-k and an IN subquery load it (no numba) and answer
    as SQLite does."""
    cache = tmp_path / "cache"
    first = _run(INDEX_QUERY, cache)
    assert first["after_plain"] is False and first["loaded"] is True
    assert first["same"] == [True, True, True]
    second = _run(INDEX_QUERY, cache)
    assert second["source"] == "image" and second["compiler"] is False
    assert second["same"] == [True, True, True]
    # A plain query alone leaves no index image in a new cache.
    plain = _run(QUERY, tmp_path / "plain")
    assert plain["out"] and not list((tmp_path / "plain" / "native").glob("vtab-index-*"))


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_index_image_is_ignored_and_rebuilt(tmp_path, damage):
    cache = tmp_path / "cache"
    reference = _run(INDEX_QUERY, cache)
    (image,) = (cache / "native").glob("vtab-index-*.fanative")
    data = image.read_bytes()
    if damage == "truncate":
        image.write_bytes(data[: len(data) // 3])
    else:
        middle = len(data) // 2
        image.write_bytes(data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :])
    again = _run(INDEX_QUERY, cache)
    assert again["source"] in REBUILT and again["same"] == reference["same"] == [True, True, True]
    assert image.read_bytes() == data


def test_statements_answer_when_the_index_image_is_unavailable(tmp_path):
    """If the index image cannot be loaded, xBestIndex plans scans: same answers."""
    out = _run(INDEX_QUERY.replace("FAIL = False", "FAIL = True"), tmp_path / "cache")
    assert out["loaded"] is False and out["same"] == [True, True, True]


def test_cached_custom_aggregate_loads_without_numba(tmp_path):
    module = tmp_path / "startup_aggs.py"
    module.write_text(
        "import numpy as np, fastagg\n\n"
        "@fastagg.aggregate(name='span_startup')\n"
        "class SpanStartup:\n"
        "    lo: np.float64\n"
        "    hi: np.float64\n"
        "    n: np.int64\n"
        "    def step(self, x: float):\n"
        "        if self.n == 0 or x < self.lo:\n"
        "            self.lo = x\n"
        "        if self.n == 0 or x > self.hi:\n"
        "            self.hi = x\n"
        "        self.n += 1\n"
        "    def finalize(self) -> float | None:\n"
        "        if self.n == 0:\n"
        "            raise ValueError('no rows')\n"
        "        return self.hi - self.lo\n"
    )
    code = f"""
import json, sys
sys.path.insert(0, {str(tmp_path)!r})
import sqlite3, fastagg
from startup_aggs import SpanStartup
con = sqlite3.connect(":memory:")
fastagg.register(con, SpanStartup)
value = con.execute("SELECT span_startup(x) FROM (SELECT 3.0 AS x UNION ALL SELECT -2.5)").fetchone()[0]
compiler = "numba.core.compiler" in sys.modules
try:
    con.execute("SELECT span_startup(x) FROM (SELECT 1.0 AS x) WHERE x > 5").fetchone()
    error = None
except sqlite3.Error as exc:
    error = str(exc)
print(json.dumps({{"value": value, "error": error, "compiler": compiler}}))
"""
    cache = tmp_path / "cache"
    first = _run(code, cache)
    second = _run(code, cache)
    assert first["value"] == second["value"] == 5.5
    assert second["compiler"] is False
    # A user error raised by code loaded from an image still fails the statement.
    assert "no rows" in first["error"] and "no rows" in second["error"]


def test_new_aggregate_on_a_small_frame_in_a_fresh_process_runs_on_sqlite(tmp_path):
    """The statement that first imports numba (to compile its aggregate) does not also compile
    the native engine's entry points for a small frame: SQLite answers, with the same result."""
    code = """
import json, sys
import numpy as np, pandas as pd, fastagg
from fastagg.engine.native import last_run

@fastagg.aggregate(name="mean_small_frame")
class MeanSmallFrame:
    total: np.float64
    n: np.int64
    def step(self, x: float):
        self.total += x
        self.n += 1
    def finalize(self) -> float | None:
        return self.total / self.n if self.n else None

df = pd.DataFrame({"g": np.arange(1000) % 7, "x": np.arange(1000) * 0.5})
sql = "SELECT g, mean_small_frame(x) AS m FROM df GROUP BY g"
first = fastagg.query(df, sql, aggregates=[MeanSmallFrame])
engine_first = last_run().engine
again = fastagg.query(df, sql, aggregates=[MeanSmallFrame])  # numba is loaded now
print(json.dumps({"first": first["m"].tolist(), "again": again["m"].tolist(),
                  "engine_first": engine_first, "engine_again": last_run() and last_run().engine}))
"""
    out = _run(code, tmp_path / "cache")
    assert out["engine_first"] == "sqlite"
    assert out["first"] == out["again"]


KEYS_QUERY = """
import json, sqlite3, sys
import numpy as np, pandas as pd
import fastagg
from fastagg.table import callbacks
FAIL = False
if FAIL:  # the keys image cannot be had: SQLite sorts, same answers
    def _fail():
        raise RuntimeError("no keys image here")
    callbacks.TEXT_IMAGE.addresses = _fail
rng = np.random.default_rng(2)
n = 400
df = pd.DataFrame({
    "i": rng.integers(-5, 5, n), "f": rng.normal(size=n).round(1),
    "n32": rng.integers(-3, 3, n).astype(np.int32),
    "ni": pd.array(np.where(rng.random(n) < 0.2, None, rng.integers(0, 6, n)), dtype="Int64"),
    "c": pd.Categorical(rng.choice(["b", "a", "c"], n)),
    "t": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 5, n), unit="h"),
    "s": rng.choice(["x", "B", "a", ""], n),
    "flag": rng.random(n) < 0.5,
})
plain = fastagg.query(df, "SELECT i, f FROM df ORDER BY i, f DESC LIMIT 0")
after_plain = callbacks.text_loaded()
cols = ["n32", "ni", "c", "t", "s", "flag"]
ref = sqlite3.connect(":memory:")
df.assign(t=df["t"].astype(str), c=df["c"].astype(str)).to_sql("df", ref, index=False)
same = []
for col in cols:
    q = f"SELECT rowid, {col} FROM df ORDER BY {col} DESC, i, rowid"
    got = [tuple(r) for r in fastagg.query(df, q, output="arrow").to_pylist() for r in [list(r.values())]]
    want = ref.execute(q).fetchall()
    same.append([(a, None if b is None else str(b)) for a, b in got] == [(a, None if b is None else str(b)) for a, b in want])
print(json.dumps({"after_plain": after_plain, "loaded": callbacks.text_loaded(),
                  "source": callbacks.TEXT_IMAGE.source, "same": same}))
"""


def test_keys_image_only_for_orders_on_non_plain_columns(tmp_path):
    """An order on numpy int64 / float64 columns is keyed by the base image; one on int32,
    nullable Int64, categorical, datetime, text or bool loads the keys image (built once),
    and every order matches SQLite's."""
    cache = tmp_path / "cache"
    first = _run(KEYS_QUERY, cache)
    assert first["after_plain"] is False and first["loaded"] is True
    assert first["source"] in REBUILT and first["same"] == [True] * 6
    second = _run(KEYS_QUERY, cache)
    assert second["source"] == "image" and second["same"] == [True] * 6


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_keys_image_is_ignored_and_rebuilt(tmp_path, damage):
    cache = tmp_path / "cache"
    _run(KEYS_QUERY, cache)
    (image,) = (cache / "native").glob("vtab-text-*.fanative")
    data = image.read_bytes()
    if damage == "truncate":
        image.write_bytes(data[: len(data) // 3])
    else:
        middle = len(data) // 2
        image.write_bytes(data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :])
    again = _run(KEYS_QUERY, cache)
    assert again["source"] in REBUILT and again["same"] == [True] * 6
    assert image.read_bytes() == data


def test_orders_answer_when_the_keys_image_is_unavailable(tmp_path):
    """Without the keys image, xBestIndex leaves those orders to SQLite: same answers."""
    out = _run(KEYS_QUERY.replace("FAIL = False", "FAIL = True"), tmp_path / "cache")
    assert out["loaded"] is False and out["same"] == [True] * 6


OVERLAP_QUERY = """
import json, sys
import numpy as np, pandas as pd, fastagg
from fastagg.engine.native import last_run
from fastagg.table import callbacks, registration

numba_at_register = []
real = registration.module_address if hasattr(registration, "module_address") else None
original = callbacks.module_address

def spy():
    numba_at_register.append("numba" in sys.modules)
    return original()

callbacks.module_address = spy
if real is not None:
    registration.module_address = spy

@fastagg.aggregate(name="mean_overlap")
class MeanOverlap:
    total: np.float64
    n: np.int64
    def step(self, x: float):
        self.total += x
        self.n += 1
    def finalize(self) -> float | None:
        return self.total / self.n if self.n else None

df = pd.DataFrame({"g": np.arange(1000) % 7, "x": np.arange(1000) * 0.5})
sql = "SELECT g, mean_overlap(x) AS m, var_samp(x) AS v FROM df GROUP BY g ORDER BY g"
first = fastagg.query(df, sql, aggregates=[MeanOverlap])
engine_first = last_run().engine if last_run() else None
print(json.dumps({"m": first["m"].tolist(), "v": first["v"].tolist(), "engine_first": engine_first,
                  "numba_at_register": numba_at_register[:1], "vtab": callbacks.IMAGE.source}))
"""


def test_cold_query_compiles_its_aggregates_while_the_images_build(tmp_path):
    """From empty caches, fastagg.query starts the image builds, compiles the statement's
    aggregates (given and built-in) meanwhile, then waits: same answers as a warm process,
    and the small-frame rule still sees numba as not loaded before the statement."""
    empty_numba = {"NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    cold = _run(OVERLAP_QUERY, tmp_path / "cache", **empty_numba)
    assert cold["vtab"] == "child"
    assert cold["numba_at_register"] == [True]  # compiled before the registration waited
    assert cold["engine_first"] == "sqlite"
    warm = _run(OVERLAP_QUERY, tmp_path / "cache", **empty_numba)
    assert warm["vtab"] == "image" and warm["numba_at_register"] == [False]
    assert (warm["m"], warm["v"], warm["engine_first"]) == (cold["m"], cold["v"], cold["engine_first"])


def test_warmup_compiles_then_serves_from_cache(tmp_path):
    code = """
import json, sys, fastagg
steps = fastagg.warmup(builtins=False)
print(json.dumps({"steps": steps, "numba": "numba" in sys.modules}))
"""
    cache = tmp_path / "cache"
    # An empty numba cache too (no copy of an image to restore): the images
    # are compiled, by child processes as one module each
    # (fastagg.native.build), so this process never imports numba.
    empty_numba = {"NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    first = _run(code, cache, **empty_numba)
    second = _run(code, cache, **empty_numba)
    assert [s["what"] for s in first["steps"]] == ["virtual table", "reader", "index machinery", "sort keys"]
    assert {s["source"] for s in first["steps"]} == {"compiled"}
    assert first["numba"] is False
    assert {s["source"] for s in second["steps"]} == {"cache"}


def test_cold_start_message_only_on_a_terminal_and_only_when_cold(tmp_path):
    code = """
import io, json
from fastagg.cli.main import _announce_cold_start

class Tty(io.StringIO):
    def isatty(self):
        return True

tty, pipe = Tty(), io.StringIO()
_announce_cold_start(tty)
_announce_cold_start(pipe)
print(json.dumps([tty.getvalue(), pipe.getvalue()]))
"""
    cache = tmp_path / "cache"
    cold = _run(code, cache)
    assert cold[0].startswith("compiling fastagg's native code, once: ~") and cold[1] == ""
    _run("import fastagg, json; fastagg.warmup(builtins=False); print(json.dumps(0))", cache)
    warm = _run(code, cache)
    assert warm == ["", ""]


def test_builtin_names_list_is_complete():
    """registry.BUILTIN_NAMES lets plain SQL skip importing the built-ins (numba)."""
    from fastagg.builtins import BUILTINS
    from fastagg.compile.spec import spec_of
    from fastagg.registry import BUILTIN_NAMES

    assert {spec_of(cls).name.lower() for cls in BUILTINS} == set(BUILTIN_NAMES)


def test_undefined_symbols_of_an_elf_object():
    from fastagg.native.loader import undefined_symbols

    with pytest.raises(ValueError):
        undefined_symbols(b"\x7fELF" + b"\0" * 60)
