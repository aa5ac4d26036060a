"""Compile (or load) all of fastagg's native code ahead of time.

:func:`warmup` (and ``fastagg warmup`` on the command line) compiles the
virtual table's callbacks, the reader's loop, every built-in aggregate and,
optionally, the aggregates of user modules, and keeps each as a native image
in fastagg's cache (:mod:`fastagg.native.loader`). Run it once in a Docker
build step or after ``pip install``: every later process answers its first
query without compiling, and plain SQL without importing numba.

:func:`cold_start_estimate` tells the CLI whether the fixed machinery must
still be compiled, and roughly how long that took last time.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

__all__ = ["warmup", "cold_start_estimate"]

#: Seconds the fixed machinery took to compile from an empty cache here
#: (2 shared cores; numba 0.68); used until this machine has measured it.
_DEFAULT_COLD_SECONDS = 60.0


def _timings_path() -> Path:
    from .native.loader import native_cache_dir

    return native_cache_dir() / "timings.json"


def _fixed_images() -> list:
    from .reader import IMAGE as reader_image
    from .table.callbacks import IMAGE as vtab_image

    return [vtab_image, reader_image]


def _lazy_images() -> list:
    from .table.callbacks import INDEX_IMAGE, TEXT_IMAGE

    return [INDEX_IMAGE, TEXT_IMAGE]


def _record(seconds: float) -> None:
    path = _timings_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"fixed_machinery_seconds": round(seconds, 1)}))
        os.replace(tmp, path)
    except OSError:
        pass


def cold_start_estimate() -> float | None:
    """Seconds the next query will spend compiling fastagg's machinery, or None if cached.

    Cheap: checks that the images of the virtual table and the reader exist
    for this machine and fastagg version (their file names carry the key).
    The estimate is what the last compile on this machine took
    (``timings.json`` in the cache), else a default.
    """
    from .native.loader import images_enabled

    if not images_enabled():
        return None
    try:
        if all(image.path().exists() for image in _fixed_images()):
            return None
    except Exception:  # noqa: BLE001 - an estimate must never fail a command
        return None
    try:
        return float(json.loads(_timings_path().read_text())["fixed_machinery_seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return _DEFAULT_COLD_SECONDS


def _module_specs(target: str) -> list:
    """Aggregate and function specs defined in module or ``.py`` file *target*."""
    from .compile.spec import spec_of

    if target.endswith(".py") or os.sep in target:
        path = Path(target).resolve()
        name = path.stem
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot import {target}")
        module = importlib.util.module_from_spec(spec)
        # Registered like an import so that numba's cache (and the image's
        # digest) see an importable module, as the CLI's --aggregates does.
        sys.modules[name] = module
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(target)
    specs = []
    for value in vars(module).values():
        if getattr(value, "__fastagg_spec__", None) is None:
            continue
        try:
            spec = spec_of(value)
        except Exception:  # noqa: BLE001 - an instance or a subclass, not a decorated object
            continue
        if not any(spec is s for s in specs):
            specs.append(spec)
    return specs


def warmup(*modules: str, builtins: bool = True, verbose: bool = False, on_step=None) -> list[dict]:
    """Compile fastagg's native code now, so that later processes only load it.

    Compiles (or loads from the cache, if already compiled) the virtual
    table's callbacks, the reader's loop, the virtual table's index machinery
    (otherwise built when a first statement probes an index, prices a join
    or takes an ORDER BY ... LIMIT top-k) and its sort keys of columns that
    are not plain int64 / float64 (otherwise built when a first statement
    orders by one), every built-in aggregate (unless
    ``builtins=False``) and the aggregates and functions of *modules*, and
    keeps each as a native image in fastagg's cache directory
    (``FASTAGG_CACHE_DIR``, default ``~/.cache/fastagg``).

    Parameters
    ----------
    *modules : str
        Importable module names or paths of ``.py`` files whose
        ``@fastagg.aggregate`` classes and ``@fastagg.function`` functions
        should be compiled too.
    builtins : bool, default True
        Compile the built-in aggregates (``median``, ``var_samp``, ...).
    verbose : bool, default False
        Print one line per step on stderr.
    on_step : callable, optional
        Called with each step's dict as soon as the step is done.

    Returns
    -------
    list of dict
        One entry per step: ``{"what": str, "seconds": float, "source": str}``
        where *source* is ``"compiled"`` (numba ran, the image was written)
        or ``"cache"`` (loaded from an existing image or numba's cache).

    Examples
    --------
    >>> import fastagg
    >>> steps = fastagg.warmup(builtins=False)   # doctest: +SKIP
    >>> [s["what"] for s in steps]               # doctest: +SKIP
    ['virtual table', 'reader', 'index machinery', 'sort keys']
    """
    steps = []

    def step(what, fn):
        t0 = time.perf_counter()
        source = fn()
        entry = {"what": what, "seconds": time.perf_counter() - t0, "source": source}
        steps.append(entry)
        if on_step is not None:
            on_step(entry)
        if verbose:
            print(f"fastagg warmup: {what}: {entry['source']} in {entry['seconds']:.2f} s", file=sys.stderr)

    def image_step(image):
        def run():
            image.addresses()
            return "compiled" if image.source in ("numba", "child") else "cache"

        return run

    t0 = time.perf_counter()
    cold = cold_start_estimate() is not None
    # The index machinery and the sort keys are built on first need by
    # queries; here with the others, their children started first so that
    # they all build side by side.
    lazy = _lazy_images()
    for image in lazy:
        image.prefetch()
    for what, image in zip(("virtual table", "reader"), _fixed_images()):
        step(what, image_step(image))
    if cold:
        _record(time.perf_counter() - t0)
    for what, image in zip(("index machinery", "sort keys"), lazy):
        step(what, image_step(image))

    specs = []
    if builtins:
        from .builtins import BUILTINS
        from .compile.spec import spec_of

        specs += [("built-in " + spec_of(cls).name, spec_of(cls)) for cls in BUILTINS]
    for target in modules:
        specs += [(f"{target}: {s.name}", s) for s in _module_specs(target)]
    if specs:
        from .compile.cache import _Loaded, compile_spec

        for what, spec in specs:
            def run(spec=spec):
                compiled = compile_spec(spec)
                loaded = all(isinstance(cb, _Loaded) for cb in compiled._callbacks.values())
                hits = all(getattr(cb, "cache_hits", 0) for cb in compiled._callbacks.values())
                return "cache" if loaded or hits else "compiled"

            step(what, run)
    return steps
