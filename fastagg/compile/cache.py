"""Compile specs into callbacks, once per process, served from a native image.

:func:`compile_spec` writes each spec's generated source (:mod:`.codegen`)
as a small module in fastagg's cache directory, imports it, jits the user's
methods into it and compiles its callbacks with ``numba.cfunc(cache=True)``,
so that numba's on-disk cache serves a second process. The module's name
carries a fingerprint of the user's code, of what it calls and of fastagg's
runtime, so changed code never reuses a stale compilation.

The compiled callbacks are also kept as a native image
(:class:`fastagg.native.loader.NativeImage`, keyed by that digest): a later
process loads them without importing numba at all. Importing this module
does not import numba; compiling does.
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

from ..errors import CompileError
from ..native.loader import NativeImage, numba_version, runtime_fingerprint
from .codegen import generate_source
from .spec import AggregateSpec, FunctionSpec

__all__ = ["compile_spec", "CompiledCallbacks", "cache_dir"]

_METHODS = ("step", "finalize", "inverse", "value", "call", "partial_final", "merge_step")
_FINAL_METHODS = ("finalize", "value", "partial_final")

#: Compile user methods with numba's bounds checks: an index past a
#: ``fastagg.array`` field (or any array) raises IndexError, which fails the
#: statement, instead of writing past the state into SQLite's heap. Keyed
#: into the cached module's name, so a change never reuses stale code.
BOUNDSCHECK = True


def cache_dir() -> Path | None:
    """Return the directory for generated callback modules, or None if unwritable.

    ``FASTAGG_CACHE_DIR`` overrides the default ``~/.cache/fastagg``.
    """
    base = os.environ.get("FASTAGG_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "fastagg",
    )
    path = Path(base) / f"numba-{numba_version()}"
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".probe-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError:
        return None
    return path


class _Loaded:
    """A callback loaded from a native image (what a numba cfunc offers here)."""

    __slots__ = ("address",)
    cache_hits = 1  # served from the cache: nothing was compiled

    def __init__(self, address: int):
        self.address = address


class CompiledCallbacks:
    """The native callbacks of one aggregate or scalar function.

    SQLite holds raw pointers to these functions in every connection they
    are registered on, so they live for the rest of the process.
    """

    def __init__(self, spec: AggregateSpec | FunctionSpec, callbacks: dict):
        self.spec = spec
        # numba cfuncs (which keep their code alive), or _Loaded entries of an
        # image (whose code lives in the process's one MCJIT engine).
        self._callbacks = callbacks

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


def _module_name(spec: AggregateSpec | FunctionSpec) -> tuple[str, str]:
    """Return the generated source of *spec* and its module's name.

    The name carries a digest of the source, of the user's code and what it
    calls (``spec.fingerprint()``), of numba's version and of fastagg's own
    runtime (:func:`~fastagg.native.loader.runtime_fingerprint`): numba keys
    a cached function on its own file only, so without these a changed
    runtime helper would be served stale from the cache.
    """
    source = generate_source(spec)
    digest = hashlib.sha256(
        (source + spec.fingerprint() + numba_version() + runtime_fingerprint() + f"boundscheck={BOUNDSCHECK}").encode()
    ).hexdigest()[:20]
    # The digest identifies the module; the name (cut short: numba's cache
    # files add their own suffixes, and file names stop at 255 bytes) is for people.
    return source, f"fastagg_callbacks_{spec.name.lower()[:40]}_{digest}"


def _load_module(spec: AggregateSpec | FunctionSpec):
    source, modname = _module_name(spec)
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


def _cacheable(spec: AggregateSpec | FunctionSpec) -> bool:
    # Code defined by exec() or in a module no later process can import
    # compiles every time: numba could not rebuild it from the cache, and the
    # digest could not tell two such definitions apart.
    return cache_dir() is not None and all(
        _importable(fn) for fn, _ in _user_methods(spec).values() if fn is not None
    )


def _compile(spec: AggregateSpec | FunctionSpec) -> CompiledCallbacks:
    """Return *spec*'s callbacks: from its native image, else compiled by numba."""
    if not _cacheable(spec):
        return CompiledCallbacks(spec, _compile_cfuncs(spec))
    _, modname = _module_name(spec)
    built = {}

    def build():
        built.update(_compile_cfuncs(spec))
        return built

    image = NativeImage(modname, build)
    addresses = image.addresses()
    if built:
        return CompiledCallbacks(spec, built)
    return CompiledCallbacks(spec, {m: _Loaded(a) for m, a in addresses.items()})


def prepared_module(spec: AggregateSpec | FunctionSpec):
    """Return *spec*'s generated module with the user's methods jitted into it, and cacheability.

    Sets ``STATE``, ``user_<method>`` (numba dispatchers with bounds checks)
    and ``trap_<method>`` in the module, once per process: the SQLite
    callbacks and the native engine's array entry points both call them,
    including when the callbacks themselves came from a native image.
    """
    from numba import njit

    from . import float_repr  # noqa: F401 - gives floats str()/repr() before user code compiles
    from . import value_ops  # noqa: F401 - registers the fastagg.Value field methods likewise
    from . import vector_ops  # noqa: F401 - registers the vector methods before user code compiles
    from .trap import make_trap

    module, cacheable = _load_module(spec)
    cacheable = cacheable and _cacheable(spec)
    ns = module.__dict__
    with _compile_lock:
        if not ns.get("__fastagg_prepared__"):
            if isinstance(spec, AggregateSpec):
                ns["STATE"] = spec.state
            jitted = {}
            for method, (fn, where) in _user_methods(spec).items():
                if fn is not None:
                    if fn not in jitted:  # value defaults to finalize: one dispatcher
                        jitted[fn] = njit(fn, boundscheck=BOUNDSCHECK)
                    ns[f"user_{method}"] = jitted[fn]
                ns[f"trap_{method}"] = make_trap(ns[f"{method}_body"], where)
            ns["__fastagg_prepared__"] = True
    return module, cacheable


def _compile_cfuncs(spec: AggregateSpec | FunctionSpec) -> dict:
    """Compile *spec*'s callbacks with numba; return ``{method: cfunc}``."""
    from numba import cfunc, types

    # The C signatures of xStep/xInverse/xFunc and of xFinal/xValue.
    step_sig = types.void(types.voidptr, types.int32, types.CPointer(types.voidptr))
    final_sig = types.void(types.voidptr)
    module, cacheable = prepared_module(spec)
    ns = module.__dict__
    callbacks = {}
    for method in _METHODS:
        if callable(ns.get(method)):
            sig = final_sig if method in _FINAL_METHODS else step_sig
            callbacks[method] = cfunc(sig, cache=cacheable)(ns[method])
    return callbacks
