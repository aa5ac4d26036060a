"""Timing helpers shared by the benchmark scripts: medians, a table, JSON."""

from __future__ import annotations

import json
import platform
import statistics
import time


def median_time(fn, repeat: int = 5, warmup: int = 1) -> float:
    """Return the median wall time of *fn()* in seconds over *repeat* runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def print_table(title: str, rows: list[dict]) -> None:
    """Print *rows* (dicts; columns: the union of their keys) as an aligned markdown table."""
    print(f"\n### {title}\n")
    if not rows:
        return
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    cells = [[_fmt(r.get(k)) for k in keys] for r in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    print("| " + " | ".join(k.ljust(w) for k, w in zip(keys, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for c in cells:
        print("| " + " | ".join(v.ljust(w) for v, w in zip(c, widths)) + " |")


def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def machine() -> dict:
    """Describe the machine the numbers come from."""
    import os

    import numba
    import sqlite3

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "sqlite": sqlite3.sqlite_version,
        "numba": numba.__version__,
    }


def write_json(path: str | None, payload: dict) -> None:
    """Write *payload* plus the machine description to *path* (if given)."""
    if path:
        with open(path, "w") as fh:
            json.dump({"machine": machine(), **payload}, fh, indent=2)
