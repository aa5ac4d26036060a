"""Run every benchmark script and write a report with plots.

Each ``benchmarks/bench_*.py`` runs in its own process with ``--json``
(a fresh interpreter per script: no compiled code, cache or allocator state
leaks from one comparison into the next). Every script measures its
baselines in the same run and checks that both sides agree before timing.
The JSON payloads become ``results/REPORT.md`` (tables and the machine from
``_harness.machine()``), ``results/results.json`` and one PNG plot per
script (when matplotlib is installed: ``pip install 'fastagg[bench]'``).

Run: ``python benchmarks/run_all.py [--quick] [--only NAME] [--results DIR]
[--tpch-sf 1]`` (or ``fastagg bench``). ``--quick`` uses small sizes and one
repetition: it checks that everything runs, its numbers mean little. TPC-H
runs at scale factor 0.1 unless ``--tpch-sf`` says otherwise (its data are
generated once into ``benchmarks/data/``). A script that declares ``--plot``
draws its own figure too (``results/<name>-detail.png``, in the report).
"""

from __future__ import annotations

import argparse
import ast
import datetime
import json
import math
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: Options every script may take for a quick run; each script gets those it defines.
QUICK_OPTIONS = {
    "--rows": "20000",
    "--groups": "50",
    "--repeat": "1",
    "--reps": "1",
    "--big": "0",
    "--partitions": "2",
    "--workers": "2",
    "--dask-rows": "20000,40000",
    "--sf": "0.01",
    "--timeout": "10",
}

#: Scripts that need more than the per-script timeout (TPC-H waits out a
#: timeout per slow fastagg query; so does the joins benchmark).
TIMEOUT_FACTOR = {"tpch": 2.0, "joins": 2.0}

_OPTION = re.compile(r"""add_argument\(\s*["'](--[a-z0-9-]+)["']""")
_MISSING_MODULE = re.compile(r"ModuleNotFoundError: No module named '([^']+)'")


def discover(only: list[str] | None = None) -> list[Path]:
    """Return the benchmark scripts, ``bench_*.py`` in name order, optionally filtered."""
    scripts = sorted(HERE.glob("bench_*.py"))
    if only:
        wanted = {name.removeprefix("bench_").removesuffix(".py") for name in only}
        unknown = wanted - {short_name(s) for s in scripts}
        if unknown:
            raise SystemExit(f"run_all: no benchmark named {', '.join(sorted(unknown))}")
        scripts = [s for s in scripts if short_name(s) in wanted]
    return scripts


def short_name(script: Path) -> str:
    """Return ``aggregates`` for ``bench_aggregates.py``."""
    return script.stem.removeprefix("bench_")


def options_of(script: Path) -> set[str]:
    """Return the ``--options`` *script* declares (read from its source, not run)."""
    return set(_OPTION.findall(script.read_text()))


def summary_of(script: Path) -> str:
    """Return the first line of *script*'s module docstring."""
    doc = ast.get_docstring(ast.parse(script.read_text())) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def run_script(
    script: Path, quick: bool, timeout: float, extra: dict | None = None, plot: Path | None = None
) -> dict:
    """Run one benchmark script; return its status, output and JSON payload.

    *extra* maps options to values given to the script when it declares them
    (after the quick options, so they win); *plot* is passed as ``--plot``
    to a script that declares it.
    """
    args = []
    declared = options_of(script)
    options = dict(QUICK_OPTIONS) if quick else {}
    options.update(extra or {})
    for option, value in options.items():
        if option in declared:
            args += [option, value]
    if plot is not None and "--plot" in declared:
        args += ["--plot", str(plot.resolve())]
    timeout *= TIMEOUT_FACTOR.get(short_name(script), 1.0)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        command = [sys.executable, script.name, *args, "--json", str(out)]
        start = time.perf_counter()
        try:
            proc = subprocess.run(command, cwd=HERE, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            return {
                "status": "failed",
                "reason": f"timed out after {timeout:.0f} s",
                "args": args,
                "seconds": time.perf_counter() - start,
                "stdout": exc.stdout or "",
            }
        seconds = time.perf_counter() - start
        result = {"args": args, "seconds": seconds, "stdout": proc.stdout}
        if proc.returncode == 0 and out.exists():
            result.update(status="ok", payload=json.loads(out.read_text()))
            return result
    missing = _MISSING_MODULE.search(proc.stderr)
    if missing:
        # An optional baseline (duckdb, dask, ...) is not installed: not a failure of fastagg.
        result.update(status="skipped", reason=f"needs {missing.group(1)} (pip install 'fastagg[bench]')")
    else:
        lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
        result.update(status="failed", reason=lines[-1] if lines else f"exit status {proc.returncode}")
        result["stderr"] = proc.stderr[-4000:]
    return result


# --------------------------------------------------------------------------
# Payload -> tables


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def tables_of(payload: dict) -> tuple[dict, list[tuple[str, list[dict]]]]:
    """Split a script's JSON payload into (parameters, [(title, rows), ...]).

    Lists of records are tables as they are; a mapping of names to numbers
    becomes a two-column table; other scalars are the run's parameters.
    """
    params, tables = {}, []
    for key, value in payload.items():
        if key == "machine":
            continue
        if isinstance(value, list) and value and all(isinstance(r, dict) for r in value):
            tables.append((key, value))
        elif isinstance(value, dict) and value and all(_is_number(v) for v in value.values()):
            tables.append((key, [{"case": k, key: v} for k, v in value.items()]))
        elif isinstance(value, (str, int, float, bool)) or value is None:
            params[key] = value
    return params, tables


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|")


def markdown_table(rows: list[dict]) -> str:
    """Return *rows* as a markdown table (columns: the union of the keys, in order)."""
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    lines = ["| " + " | ".join(keys) + " |", "|" + "|".join("---" for _ in keys) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row.get(k)) for k in keys) + " |")
    return "\n".join(lines)


def _is_time_column(key: str) -> bool:
    k = key.lower()
    return k.endswith(" s") or k.endswith("_s") or "seconds" in k or k in ("s", "us")


def plot_series(title: str, rows: list[dict]):
    """Return ``(labels, {column: values}, unit)`` to plot for a table, or None.

    Labels join the text columns; series are the columns holding times.
    """
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    text_keys = [k for k in keys if all(isinstance(r.get(k), str) or r.get(k) is None for r in rows)]
    time_keys = [k for k in keys if _is_time_column(k) and any(_is_number(r.get(k)) for r in rows)]
    if not time_keys and _is_time_column(title):
        time_keys = [k for k in keys if any(_is_number(r.get(k)) for r in rows)]
    if not text_keys or not time_keys:
        return None
    labels = [" / ".join(str(r[k]) for k in text_keys if r.get(k)) for r in rows]
    if len(set(labels)) < len(labels):
        # Rows told apart by a number (rows, workers): name it in the label.
        varying = [
            k for k in keys
            if k not in time_keys and all(isinstance(r.get(k), int) for r in rows)
            and len({r[k] for r in rows}) > 1
        ]
        labels = [
            ", ".join([label] + [f"{k}={r[k]:,}" for k in varying]) for label, r in zip(labels, rows)
        ]
    series = {
        k: [float(r[k]) if _is_number(r.get(k)) else math.nan for r in rows] for k in time_keys
    }
    unit = "µs" if all(k.lower() == "us" for k in time_keys) else "seconds"
    return labels, series, unit


def write_plot(path: Path, name: str, tables: list[tuple[str, list[dict]]]) -> bool:
    """Draw every plottable table of one script as horizontal bars into *path* (PNG).

    Returns False when there is nothing to plot or matplotlib is missing.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only, never a window
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    panels = [(title, s) for title, rows in tables if (s := plot_series(title, rows))]
    if not panels:
        return False
    heights = [max(1.6, 0.32 * len(labels) * len(series) + 1.0) for _, (labels, series, _) in panels]
    fig, axes = plt.subplots(len(panels), 1, figsize=(9, sum(heights)), height_ratios=heights, squeeze=False)
    for ax, (title, (labels, series, unit)) in zip(axes[:, 0], panels):
        n, k = len(labels), len(series)
        width = 0.8 / k
        for j, (column, values) in enumerate(series.items()):
            ys = [i + (j - (k - 1) / 2) * width for i in range(n)]
            ax.barh(ys, [0 if math.isnan(v) else v for v in values], height=width, label=column)
        ax.set_yticks(range(n), labels, fontsize=8)
        ax.invert_yaxis()
        finite = [v for vs in series.values() for v in vs if v > 0 and not math.isnan(v)]
        if finite and max(finite) / min(finite) > 50:
            ax.set_xscale("log")
        ax.set_xlabel(f"{unit} (shorter is faster)")
        ax.set_title(f"{name}: {title}", fontsize=10)
        if k > 1:
            ax.legend(fontsize=8)
        ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# --------------------------------------------------------------------------
# Report


def machine() -> dict:
    """Describe this machine with ``_harness.machine()``."""
    sys.path.insert(0, str(HERE))
    try:
        from _harness import machine as describe

        return describe()
    finally:
        sys.path.remove(str(HERE))


def write_report(
    results_dir: Path, runs: dict[str, dict], quick: bool, started: str, description: dict | None = None
) -> Path:
    """Write REPORT.md, results.json and the plots into *results_dir*; return the report path.

    *description* is the machine the numbers come from (default: this one).
    """
    results_dir.mkdir(parents=True, exist_ok=True)
    description = description or machine()
    lines = [
        "# fastagg benchmark report",
        "",
        f"Generated by `python benchmarks/run_all.py{' --quick' if quick else ''}` on {started} UTC.",
        "Every comparison measures its baseline in the same run, after checking that both sides agree.",
        "Times are medians of repeated runs, in seconds unless a column says otherwise.",
        "Plots are the PNG files beside this report (not committed: a full run copies them to",
        "`docs/img/bench-*.png`, where the documentation's performance page shows them).",
    ]
    if quick:
        lines += ["", "**Quick run: small sizes, one repetition. These numbers only show that everything runs.**"]
    lines += ["", "## Machine", "", markdown_table([{"": k, "value": v} for k, v in description.items()]), ""]
    lines += ["## Summary", "", markdown_table([
        {
            "benchmark": f"`bench_{name}.py`",
            "status": run["status"] + (f": {run['reason']}" if run.get("reason") else ""),
            "wall s": run["seconds"],
            "options": " ".join(run["args"]) or "(defaults)",
        }
        for name, run in runs.items()
    ]), ""]
    for name, run in runs.items():
        lines += [f"## {name}", "", run.get("summary", ""), ""]
        if run["status"] != "ok":
            lines += [f"Not measured: {run['status']} ({run.get('reason', '')}).", ""]
            continue
        params, tables = tables_of(run["payload"])
        if params:
            lines += ["Parameters: " + ", ".join(f"{k} = {_fmt(v)}" for k, v in params.items()), ""]
        plot = results_dir / f"{name}.png"
        if write_plot(plot, name, tables):
            lines += [f"![{name}]({plot.name})", ""]
        detail = results_dir / f"{name}-detail.png"
        if detail.exists() and detail.stat().st_mtime >= run.get("started_at", 0):
            lines += [f"![{name}, the script's own figure]({detail.name})", ""]
        for title, rows in tables:
            lines += [f"### {title}", "", markdown_table(rows), ""]
    report = results_dir / "REPORT.md"
    report.write_text("\n".join(lines).rstrip() + "\n")
    combined = {
        "machine": description,
        "quick": quick,
        "started": started,
        "runs": {
            name: {k: v for k, v in run.items() if k not in ("stdout", "stderr")} for name, run in runs.items()
        },
    }
    (results_dir / "results.json").write_text(json.dumps(combined, indent=2, default=str) + "\n")
    return report


def _copy_plots_to_docs(results_dir: Path, quick: bool) -> None:
    """Copy a full run's plots to docs/img/, where the performance page shows them."""
    if quick or results_dir.resolve() != (HERE / "results").resolve():
        return
    docs_img = HERE.parent / "docs" / "img"
    if docs_img.parent.is_dir():
        docs_img.mkdir(exist_ok=True)
        for png in results_dir.glob("*.png"):
            shutil.copyfile(png, docs_img / f"bench-{png.name}")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks and write the report; return 1 if a script failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one repetition")
    parser.add_argument(
        "--only", action="append", default=[], metavar="NAME",
        help="run only bench_NAME.py (the report keeps the other scripts' earlier runs)",
    )
    parser.add_argument("--results", default=str(HERE / "results"), help="output directory")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per script (default 120 quick, 3600)")
    parser.add_argument("--tpch-sf", default=None, help="TPC-H scale factor for bench_tpch.py (default 0.1; 1)")
    parser.add_argument(
        "--rerender", action="store_true", help="rewrite the report and plots from results.json without running"
    )
    args = parser.parse_args(argv)
    timeout = args.timeout or (120.0 if args.quick else 3600.0)

    if args.rerender:
        saved = json.loads((Path(args.results) / "results.json").read_text())
        report = write_report(
            Path(args.results), saved["runs"], saved["quick"], saved["started"], saved["machine"]
        )
        print(f"run_all: rewrote {report}")
        _copy_plots_to_docs(Path(args.results), saved["quick"])
        return 0

    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
    runs = {}
    results_dir = Path(args.results)
    results_dir.mkdir(parents=True, exist_ok=True)
    saved_path = results_dir / "results.json"
    if args.only and not args.quick and saved_path.exists():
        # --only refreshes those scripts' sections; the others keep their
        # earlier runs (each run records when it started).
        saved = json.loads(saved_path.read_text())
        if not saved.get("quick"):
            runs.update(saved.get("runs", {}))
    for script in discover(args.only):
        name = short_name(script)
        print(f"run_all: bench_{name}.py ...", end=" ", flush=True)
        extra = {"--sf": args.tpch_sf} if name == "tpch" and args.tpch_sf else {}
        started_at = time.time()
        run = run_script(script, args.quick, timeout, extra, plot=results_dir / f"{name}-detail.png")
        run["started_at"] = started_at
        run["summary"] = summary_of(script)
        runs[name] = run
        print(f"{run['status']} ({run['seconds']:.1f} s){': ' + run['reason'] if run.get('reason') else ''}")
        if run["status"] == "failed" and run.get("stderr"):
            print(run["stderr"], file=sys.stderr)
    report = write_report(results_dir, runs, args.quick, started)
    print(f"run_all: wrote {report}")
    _copy_plots_to_docs(results_dir, args.quick)
    return 1 if any(run["status"] == "failed" for run in runs.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
