"""Start-up: the first answer in a fresh process, warm cache and (``--cold``) empty cache.

Every figure comes from new interpreters (``subprocess``), medians of
``--repeat`` (5) runs, measured inside the child with ``time.perf_counter``
(interpreter start-up excluded; the parent's wall time per process is
reported beside it). Issue 14's targets:

- warm cache: ``import fastagg`` <= 0.15 s, alone and with pandas already
  imported; then the first plain ``SELECT g, sum(x) FROM df GROUP BY g`` over
  a 1,000-row frame <= 0.3 s; then the first use of a custom aggregate whose
  compiled code is cached <= 0.3 s; or of a new, uncached one (a class with a
  unique name and source each run) <= 1.0 s;
- cold cache (``--cold``; minutes): an empty ``FASTAGG_CACHE_DIR`` and an empty
  ``NUMBA_CACHE_DIR`` (numba's cache of fastagg's own ``cache=True``
  functions, otherwise ``__pycache__`` beside the sources): the first plain
  query <= 10 s, ``fastagg demo`` <= 20 s in total.

``--importtime`` adds the largest entries of ``python -X importtime -c
"import fastagg"``. Before the warm runs, each scenario runs once untimed so
that the cache is warm. Answers are checked (the plain query's sums against
pandas) in every child.

Run: ``python benchmarks/bench_startup.py [--repeat 5] [--cold] [--cold-repeat 1]
[--importtime] [--root CHECKOUT] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _harness import print_table, write_json  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

AGGREGATE_SOURCE = '''
import numpy as np
import fastagg


@fastagg.aggregate(name="{name}")
class {name}:
    """Welford variance ({salt})."""

    n: np.int64
    mean: np.float64
    m2: np.float64

    def step(self, x: float):
        self.n += 1
        delta = x - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (x - self.mean) * {salt_one}

    def finalize(self) -> float | None:
        return self.m2 / (self.n - 1) if self.n > 1 else None
'''

PRELUDE = """
import json, sys, time
T0 = time.perf_counter()
out = {}
"""

MAKE_FRAME = """
import numpy as np
import pandas as pd
df = pd.DataFrame({"g": np.arange(1000) % 10, "x": np.random.default_rng(0).normal(size=1000)})
"""

IMPORT = """
t = time.perf_counter()
import fastagg
out["import"] = time.perf_counter() - t
out["modules"] = {m: m in sys.modules for m in ("numba", "numba.core.compiler", "pandas", "pyarrow", "scipy")}
"""

PLAIN = """
t = time.perf_counter()
r = fastagg.query(df, "SELECT g, sum(x) AS s FROM df GROUP BY g ORDER BY g")
out["plain"] = time.perf_counter() - t
out["to_first_answer"] = time.perf_counter() - T0
expected = df.groupby("g")["x"].sum().to_numpy()
assert r["g"].tolist() == list(range(10)), r
assert np.allclose(r["s"].to_numpy(float), expected, rtol=1e-12), r
"""

CUSTOM = """
sys.path.insert(0, {directory!r})
t = time.perf_counter()
from {module} import {name}
r = fastagg.query(df, "SELECT g, {name}(x) AS v FROM df GROUP BY g ORDER BY g", [{name}])
out["custom"] = time.perf_counter() - t
assert np.allclose(r["v"].to_numpy(float), df.groupby("g")["x"].var().to_numpy(), rtol=1e-9), r
"""

DONE = """
import resource
cpu = [resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
out["cpu"] = sum(r.ru_utime + r.ru_stime for r in cpu)  # this process and the image builds it waited for
print("RESULT " + json.dumps(out))
"""


def run_child(code: str, env: dict, timeout: float = 1800) -> tuple[dict, float]:
    """Run *code* in a fresh interpreter; return its RESULT payload and the wall seconds."""
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=timeout, cwd=env["FASTAGG_BENCH_ROOT"]
    )
    wall = time.perf_counter() - start
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"child failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):]), wall


def write_aggregate(directory: Path, name: str) -> str:
    """Write a module defining aggregate class *name*; return the module name."""
    module = f"startup_{name.lower()}"
    salt = uuid.uuid4().hex
    # A unique source (the salt is in the docstring and a literal): nothing cached can match it.
    (directory / f"{module}.py").write_text(
        AGGREGATE_SOURCE.format(name=name, salt=salt, salt_one=f"(1.0 + 0.0 * 0x{salt[:8]})")
    )
    return module


def median_of(runs: list[tuple[dict, float]], key: str) -> float:
    return statistics.median(r[key] for r, _ in runs)


def scenario(label: str, key: str, runs: list, target: float | None) -> dict:
    value = median_of(runs, key)
    return {
        "measure": label,
        "median s": value,
        # Not named "... s": run_all plots those columns, and these two only add clutter.
        "fastest": min(r[key] for r, _ in runs),
        "target s": target,
        "meets target": None if target is None else ("yes" if value <= target else "no"),
        "process wall (s)": statistics.median(w for _, w in runs),
        # CPU of the process and of the children it waited for (the image builds):
        # on a loaded machine a steadier figure than the wall time.
        "process cpu (s)": statistics.median(r.get("cpu", float("nan")) for r, _ in runs),
        "runs": len(runs),
    }


def importtime_top(env: dict, top: int = 12) -> list[dict]:
    """The largest cumulative entries of ``python -X importtime -c "import fastagg"`` (nesting depth <= 2)."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import fastagg"], env=env, capture_output=True, text=True, cwd=env["FASTAGG_BENCH_ROOT"]
    )
    entries = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cumulative_us, name = line.split(":", 1)[1].split("|")
        depth = (len(name) - len(name.lstrip()) - 1) // 2  # two spaces a level after "| "
        entries.append({
            "module": name.strip(), "depth": depth,
            "self ms": int(self_us) / 1000, "cumulative ms": int(cumulative_us) / 1000,
        })
    entries = [e for e in entries if e["depth"] <= 2]
    return sorted(entries, key=lambda e: -e["cumulative ms"])[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5, help="fresh processes per warm figure (median)")
    parser.add_argument("--cold", action="store_true", help="also measure with empty caches (takes minutes)")
    parser.add_argument("--cold-repeat", type=int, default=1, help="processes per cold figure")
    parser.add_argument("--importtime", action="store_true", help="add python -X importtime's largest entries")
    parser.add_argument("--json", default=None)
    parser.add_argument(
        "--root", default=str(ROOT),
        help="the fastagg checkout the processes import (default: this one; another, e.g. "
        "`git archive` of a base commit, for a before/after in the same run)",
    )
    args = parser.parse_args()

    env = dict(os.environ)
    root = str(Path(args.root).resolve())
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    env["FASTAGG_BENCH_ROOT"] = root
    work = Path(tempfile.mkdtemp(prefix="fastagg-startup-"))
    try:
        cached_module = write_aggregate(work, "StartupCachedVar")

        import_alone = PRELUDE + IMPORT + DONE
        import_pandas = PRELUDE + "import pandas\n" + IMPORT + DONE
        cached = PRELUDE + MAKE_FRAME + IMPORT + PLAIN + CUSTOM.format(
            directory=str(work), module=cached_module, name="StartupCachedVar"
        ) + DONE

        def uncached_code() -> str:
            name = f"Fresh{uuid.uuid4().hex[:12]}"
            module = write_aggregate(work, name)
            return PRELUDE + MAKE_FRAME + IMPORT + PLAIN + CUSTOM.format(
                directory=str(work), module=module, name=name
            ) + DONE

        print("bench_startup: warming the cache ...", flush=True)
        run_child(cached, env)  # compiles whatever is missing; later runs are warm
        run_child(uncached_code(), env)

        print("bench_startup: warm runs ...", flush=True)
        alone = [run_child(import_alone, env) for _ in range(args.repeat)]
        with_pandas = [run_child(import_pandas, env) for _ in range(args.repeat)]
        warm = [run_child(cached, env) for _ in range(args.repeat)]
        fresh = [run_child(uncached_code(), env) for _ in range(args.repeat)]
        baseline = statistics.median(
            run_child(PRELUDE + DONE, env)[1] for _ in range(args.repeat)
        )  # the interpreter alone

        rows = [
            scenario("import fastagg (alone)", "import", alone, 0.15),
            scenario("import fastagg (pandas already imported)", "import", with_pandas, 0.15),
            scenario("first plain SELECT g, sum(x) ... GROUP BY g, 1,000 rows, after import", "plain", warm, 0.3),
            scenario("then first use of a cached custom aggregate", "custom", warm, 0.3),
            scenario("then first use of a new, uncached custom aggregate", "custom", fresh, 1.0),
            scenario("process start (after the interpreter) to the first plain answer", "to_first_answer", warm, None),
        ]
        modules = [
            {"imported by `import fastagg`": m, "alone": "yes" if imported else "no"}
            for m, imported in alone[0][0]["modules"].items()
        ]

        cold_rows = []
        if args.cold:
            print("bench_startup: cold runs (empty FASTAGG_CACHE_DIR and NUMBA_CACHE_DIR) ...", flush=True)
            plain_cold, demo_cold = [], []
            for _ in range(args.cold_repeat):
                for bucket, code in ((plain_cold, PRELUDE + MAKE_FRAME + IMPORT + PLAIN + DONE), (demo_cold, None)):
                    cold_env = dict(env)
                    cold_env["FASTAGG_CACHE_DIR"] = tempfile.mkdtemp(prefix="fastagg-cold-", dir=work)
                    cold_env["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix="numba-cold-", dir=work)
                    if code is None:
                        demo = PRELUDE + "from fastagg.cli import main\nrc = main(['demo'])\nassert rc == 0\n"
                        demo += "out['demo'] = time.perf_counter() - T0\n" + DONE
                        bucket.append(run_child(demo, cold_env, timeout=3600))
                    else:
                        bucket.append(run_child(code, cold_env, timeout=3600))
            cold_rows = [
                scenario("cold: import + first plain query", "to_first_answer", plain_cold, 10.0),
                scenario("cold: of which the first plain query", "plain", plain_cold, None),
                scenario("cold: fastagg demo, total", "demo", demo_cold, 20.0),
            ]

    finally:
        shutil.rmtree(work, ignore_errors=True)  # the generated modules and cold caches

    imports = importtime_top(env) if args.importtime else []

    print(f"fastagg from {root}")
    print_table(f"Warm cache, fresh processes (median of {args.repeat}; interpreter alone {baseline:.3f} s wall)", rows)
    print_table("Modules loaded by `import fastagg`", modules)
    if cold_rows:
        print_table(f"Cold cache (median of {args.cold_repeat})", cold_rows)
    if imports:
        print_table("python -X importtime -c 'import fastagg' (largest, depth <= 2)", imports)
    payload = {
        "root": root,
        "repeat": args.repeat,
        "interpreter_wall_s": baseline,
        "warm": rows,
        "modules": modules,
    }
    if cold_rows:
        payload["cold"] = cold_rows
    if imports:
        payload["importtime"] = imports
    write_json(args.json, payload)


if __name__ == "__main__":
    main()
