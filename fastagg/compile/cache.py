"""Compile specs into callbacks, once per process, served from numba's on-disk cache.

:func:`compile_spec` writes each spec's generated source (:mod:`.codegen`)
as a small module in fastagg's cache directory, imports it, jits the user's
methods into it and compiles its callbacks with ``numba.cfunc(cache=True)``,
so that numba's on-disk cache serves a second process. The module's name
carries a fingerprint of the user's code, of what it calls and of fastagg's
runtime, so changed code never reuses a stale compilation. This is the
module whose import loads numba.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import sys
import tempfile
import threading
from pathlib import Path

import numba
from numba import cfunc, njit, types

from ..errors import CompileError
from . import vector_ops  # noqa: F401 - registers the vector methods before user code compiles
from . import value_ops  # noqa: F401 - registers the fastagg.Value field methods likewise
from .codegen import generate_source
from .spec import AggregateSpec, FunctionSpec
from .trap import make_trap

__all__ = ["compile_spec", "CompiledCallbacks", "cache_dir"]

# The C signatures of xStep/xInverse/xFunc and of xFinal/xValue.
STEP_SIG = types.void(types.voidptr, types.int32, types.CPointer(types.voidptr))
FINAL_SIG = types.void(types.voidptr)


def cache_dir() -> Path | None:
    """Return the directory for generated callback modules, or None if unwritable.

    ``FASTAGG_CACHE_DIR`` overrides the default ``~/.cache/fastagg``.
    """
    base = os.environ.get("FASTAGG_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "fastagg",
    )
    path = Path(base) / f"numba-{numba.__version__}"
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".probe-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError:
        return None
    return path


class CompiledCallbacks:
    """The native callbacks of one aggregate or scalar function.

    SQLite holds raw pointers to these functions in every connection they
    are registered on, so they live for the rest of the process.
    """

    def __init__(self, spec: AggregateSpec | FunctionSpec, callbacks: dict):
        self.spec = spec
        self._callbacks = callbacks  # keeps the cfunc objects (and code) alive

    def address(self, method: str) -> int | None:
        """Return the C address of callback *method* or None."""
        cb = self._callbacks.get(method)
        return None if cb is None else cb.address

    @property
    def state_nbytes(self) -> int:
        """Bytes requested from ``sqlite3_aggregate_context`` per context."""
        return self.spec.state.itemsize + (1 if self.spec.init is not None else 0)


_compiled: dict[int, CompiledCallbacks] = {}
_compile_lock = threading.RLock()


def compile_spec(spec: AggregateSpec | FunctionSpec) -> CompiledCallbacks:
    """Return the compiled callbacks of *spec*, compiling once per process."""
    key = id(spec)
    with _compile_lock:
        done = _compiled.get(key)
        if done is not None and done.spec is spec:
            return done
        try:
            done = _compile(spec)
        except CompileError:
            raise
        except Exception as exc:  # numba raises its own errors and, internally, KeyError & co.
            what = "function" if isinstance(spec, FunctionSpec) else "aggregate"
            detail = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
            raise CompileError(
                f"{spec.qualname}: numba could not compile the {what} (every method "
                f"must be valid nopython code; an aggregate's `self` is the numpy "
                f"state record):\n{detail}"
            ) from exc
        _compiled[key] = done
        return done


def _runtime_fingerprint() -> str:
    """Hash fastagg's own runtime code, which generated callbacks compile in.

    numba keys a cached function on its own file only; without this a
    changed runtime helper would be served stale from the cache.
    """
    package = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for stage in ("compile", "native", "sqlite"):
        for path in sorted((package / stage).glob("*.py")):
            h.update(path.name.encode())
            h.update(path.read_bytes())
    return h.hexdigest()


_RUNTIME_FINGERPRINT = _runtime_fingerprint()


def _load_module(spec: AggregateSpec | FunctionSpec):
    source = generate_source(spec)
    digest = hashlib.sha256(
        (source + spec.fingerprint() + numba.__version__ + _RUNTIME_FINGERPRINT).encode()
    ).hexdigest()[:20]
    modname = f"fastagg_callbacks_{spec.name.lower()}_{digest}"
    directory = cache_dir()
    cacheable = directory is not None
    if directory is None:
        directory = Path(tempfile.mkdtemp(prefix="fastagg-"))
    path = directory / f"{modname}.py"
    if not path.exists():
        # Write once, atomically: numba's cache index is keyed on the file's
        # modification time, so rewriting it would invalidate the cache.
        tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(source)
        os.replace(tmp, path)
    module = sys.modules.get(modname)
    if module is None:
        loader_spec = importlib.util.spec_from_file_location(modname, path)
        module = importlib.util.module_from_spec(loader_spec)
        loader_spec.loader.exec_module(module)
        sys.modules[modname] = module
    return module, cacheable


def _user_methods(spec: AggregateSpec | FunctionSpec) -> dict[str, tuple]:
    """Map each generated body to (user function, name used in error messages)."""
    if isinstance(spec, FunctionSpec):
        return {"call": (spec.func, spec.qualname)}
    methods = {"step": (spec.step, "step"), "finalize": (spec.finalize, "finalize")}
    if spec.init is not None:
        methods["init"] = (spec.init, "__init__")
    if spec.is_window:
        methods["inverse"] = (spec.inverse, "inverse")
        methods["value"] = (spec.value, "value") if spec.value else (spec.finalize, "finalize")
    if spec.is_mergeable:
        methods["merge"] = (spec.merge, "merge")
        methods["load"] = (None, "merge")  # validation of the partial state: no user code
    return {k: (fn, f"{spec.qualname}.{label}") for k, (fn, label) in methods.items()}


def _importable(fn) -> bool:
    """Whether a later process can import *fn*'s module, as numba's cache needs."""
    module = sys.modules.get(getattr(fn, "__module__", None) or "")
    return module is not None and (module.__name__ == "__main__" or getattr(module, "__file__", None) is not None)


def _compile(spec: AggregateSpec | FunctionSpec) -> CompiledCallbacks:
    module, cacheable = _load_module(spec)
    # Code defined by exec() or in a module no later process can import
    # compiles every time: numba could not rebuild it from the cache.
    cacheable = cacheable and all(_importable(fn) for fn, _ in _user_methods(spec).values() if fn is not None)
    ns = module.__dict__
    if isinstance(spec, AggregateSpec):
        ns["STATE"] = spec.state
    jitted = {}
    for method, (fn, where) in _user_methods(spec).items():
        if fn is not None:
            if fn not in jitted:  # value defaults to finalize: one dispatcher
                jitted[fn] = njit(fn)
            ns[f"user_{method}"] = jitted[fn]
        ns[f"trap_{method}"] = make_trap(ns[f"{method}_body"], where)
    callbacks = {}
    for method in ("step", "finalize", "inverse", "value", "call", "partial_final", "merge_step"):
        if callable(ns.get(method)):
            sig = FINAL_SIG if method in ("finalize", "value", "partial_final") else STEP_SIG
            callbacks[method] = cfunc(sig, cache=cacheable)(ns[method])
    return CompiledCallbacks(spec, callbacks)
