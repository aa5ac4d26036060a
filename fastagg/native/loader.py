"""Native images: compiled callbacks kept as object code and loaded without numba.

A process that only runs SQL over frames needs the same machine code every
time: the virtual table's callbacks, the reader's loop, the built-ins
compiled once. Loading them through numba costs about a second per process
(``import numba``, numba importing scipy for its BLAS check, numba
initialising its CPU target before its first cache load). A *native image*
keeps that code as the object code numba produced and loads it with
llvmlite's MCJIT alone: a few milliseconds, no ``import numba``.

Generic: a :class:`NativeImage` is a name, a *builder* (a function that
imports numba and returns ``{name: numba cfunc}``) and the cache directory.
:meth:`NativeImage.addresses` returns ``{name: C address}``: from the image
file if a valid one exists, otherwise from the builder, after which the
image file is written for the next process.

What the object code is bound to, at load:

* SQLite's functions: the very library Python's ``sqlite3`` uses
  (:mod:`fastagg.sqlite.capi`), by symbol name, as numba binds them.
* numba's runtime helpers (``NRT_*`` from ``numba/core/runtime/_nrt_python``
  and ``numba_*`` from ``numba/_helperlib``): those C extensions are loaded
  by file, without importing numba's Python package. CPython caches a
  loaded extension by name and path, so a later ``import numba`` in the same
  process shares their state (the allocator, the NRT statistics).
* CPython's C API and libc/libm: looked up in the process with ``dlsym``.

Every undefined symbol of every object file is listed in the image at build
time (read from the ELF symbol table); an image with a symbol this process
cannot resolve is not loaded (MCJIT would abort the process on it).

Key: everything that changes the machine code or its bindings goes into the
file name and is checked again inside the file: fastagg's runtime
fingerprint (the ``.py`` files of the subpackages the code is made of, per
image), the numba and llvmlite versions,
Python's version, the process triple, the host CPU name and features, every
``NUMBA_*`` setting but the cache directory, and the SQLite version. A file
whose key differs, whose checksum fails (truncated, corrupted) or that does
not parse is ignored and rebuilt; it is never loaded.

Building. An image whose builder is a module-level function (the fixed
machinery: the virtual table, the reader; see :data:`FIXED_IMAGES`) is built
by a child process (:mod:`.build`) that compiles the callbacks with numba
and links everything into one LLVM module optimised and emitted once; the
parent waits, then loads the image like any other, without importing numba.
The fixed images' children start together. A copy of each is kept beside
numba's cache (:func:`shared_image_path`), so that a new ``FASTAGG_CACHE_DIR``
copies instead of compiling. If a child fails, the builder runs in-process
(numba's per-function object code, as numba's cache holds it);
``FASTAGG_IMAGE_CHILDREN=0`` always builds in-process. Images of user code
(:mod:`fastagg.compile.cache`) build in-process.

Only ELF platforms (Linux) use images; elsewhere :meth:`NativeImage.addresses`
always takes the builder's numba cfuncs. ``FASTAGG_NATIVE_IMAGES=0``
switches images off (an internal switch, for comparison and debugging).

This module imports neither numba nor (until an image is loaded) llvmlite.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.machinery
import importlib.util
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

from ..sqlite import capi as _capi

__all__ = [
    "NativeImage", "images_enabled", "native_cache_dir", "numba_version", "prefetch_fixed_images", "runtime_fingerprint",
]

MAGIC = b"FASTAGG-NATIVE-IMAGE-1\n"
_SUFFIX = ".fanative"


def images_enabled() -> bool:
    """Whether native images are used in this process (ELF only; the switch is on)."""
    return sys.platform.startswith("linux") and os.environ.get("FASTAGG_NATIVE_IMAGES", "1") != "0"


def native_cache_dir() -> Path:
    """The directory of native images (``FASTAGG_CACHE_DIR`` or ``~/.cache/fastagg``)."""
    base = os.environ.get("FASTAGG_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "fastagg",
    )
    return Path(base) / "native"


def shared_image_path(path: Path) -> Path | None:
    """Where a copy of image *path* is kept beside numba's own cache, or None.

    numba caches fastagg's ``cache=True`` functions in ``NUMBA_CACHE_DIR`` or
    else in ``__pycache__`` beside the sources; the linked image is the
    same kind of compiled artefact, so it is kept there too. An empty
    ``FASTAGG_CACHE_DIR`` (a new user cache, a test) then copies it instead
    of compiling again. Validated exactly like the image itself.
    """
    base = os.environ.get("NUMBA_CACHE_DIR")
    if base:
        directory = Path(base) / "fastagg-images"
    else:
        here = Path(__file__).resolve().parent
        if not os.access(here, os.W_OK):
            return None
        directory = here / "__pycache__" / "fastagg-images"
    return directory / path.name


_fingerprints: dict[tuple, str] = {}

#: The package's subpackages whose code compiled callbacks are made of.
RUNTIME_STAGES = ("compile", "native", "sqlite")


def runtime_fingerprint(stages: tuple[str, ...] = RUNTIME_STAGES) -> str:
    """sha256 of the ``.py`` files of fastagg's subpackages *stages*, by name and bytes.

    Compiled callbacks are made of the code of these subpackages (helpers,
    struct layouts, constants); numba keys a cached function on its own file
    only, so every image and generated module name carries this hash.
    Reading the files costs about a millisecond, once per process.
    """
    stages = tuple(stages)
    done = _fingerprints.get(stages)
    if done is None:
        package = Path(__file__).resolve().parent.parent
        h = hashlib.sha256()
        for stage in stages:
            for path in sorted((package / stage).glob("*.py")):
                h.update(path.name.encode())
                h.update(path.read_bytes())
        done = _fingerprints[stages] = h.hexdigest()
    return done


def _package_dir(name: str) -> str | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return list(spec.submodule_search_locations)[0]


_numba_version: str | None = None


def numba_version() -> str:
    """numba's version, read from its ``_version.py`` without importing numba."""
    global _numba_version
    if _numba_version is None:
        mod = sys.modules.get("numba")
        if mod is not None and getattr(mod, "__version__", None):
            _numba_version = mod.__version__
        else:
            directory = _package_dir("numba")
            text = Path(directory, "_version.py").read_text() if directory else ""
            m = re.search(r'"version":\s*"([^"]+)"', text)
            _numba_version = m.group(1) if m else "unknown"
    return _numba_version


def _llvm():
    import llvmlite.binding as ll

    return ll


_key_cache: dict | None = None


def machine_key() -> dict:
    """Everything besides the callbacks' own code that changes machine code or bindings."""
    global _key_cache
    if _key_cache is None:
        import llvmlite

        ll = _llvm()
        try:
            features = ll.get_host_cpu_features().flatten()
        except RuntimeError:
            features = ""
        _key_cache = {
            "numba": numba_version(),
            "llvmlite": llvmlite.__version__,
            "python": sys.version,
            "triple": ll.get_process_triple(),
            "cpu": ll.get_host_cpu_name(),
            "features": features,
            "numba_env": sorted(
                (k, v) for k, v in os.environ.items() if k.startswith("NUMBA_") and k != "NUMBA_CACHE_DIR"
            ),
            "sqlite": _capi.LIBVERSION,
        }
    return _key_cache


# --------------------------------------------------------------------------
# ELF: the undefined symbols of an object file


def undefined_symbols(obj: bytes) -> list[str]:
    """Names of the undefined global symbols of ELF64 little-endian object *obj*."""
    if obj[:4] != b"\x7fELF" or obj[4] != 2 or obj[5] != 1:
        raise ValueError("not an ELF64 little-endian object")
    (shoff,) = struct.unpack_from("<Q", obj, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", obj, 0x3A)
    names = []
    for i in range(shnum):
        sh = shoff + i * shentsize
        sh_type = struct.unpack_from("<I", obj, sh + 4)[0]
        if sh_type != 2:  # SHT_SYMTAB
            continue
        offset, size = struct.unpack_from("<QQ", obj, sh + 0x18)
        link = struct.unpack_from("<I", obj, sh + 0x28)[0]
        entsize = struct.unpack_from("<Q", obj, sh + 0x38)[0]
        str_sh = shoff + link * shentsize
        str_off = struct.unpack_from("<Q", obj, str_sh + 0x18)[0]
        for s in range(offset, offset + size, entsize):
            st_name, st_info, _other, st_shndx = struct.unpack_from("<IBBH", obj, s)
            if st_shndx == 0 and st_name and (st_info >> 4) in (1, 2):  # UNDEF, GLOBAL/WEAK
                end = obj.index(b"\0", str_off + st_name)
                names.append(obj[str_off + st_name : end].decode())
    return sorted(set(names))


# --------------------------------------------------------------------------
# Symbols the object code is bound to


def _load_extension(name: str, relative: str):
    """Load one of numba's C extensions by file, without importing numba."""
    existing = sys.modules.get(name)
    if existing is not None:
        return existing
    directory = _package_dir("numba")
    if directory is None:
        raise ImportError("numba is not installed")
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = os.path.join(directory, relative + suffix)
        if os.path.exists(path):
            loader = importlib.machinery.ExtensionFileLoader(name, path)
            spec = importlib.util.spec_from_file_location(name, path, loader=loader)
            module = importlib.util.module_from_spec(spec)
            loader.exec_module(module)
            return module
    raise ImportError(f"numba's {relative} extension was not found")


_runtime_symbols: dict[str, int] | None = None


def runtime_symbols() -> dict[str, int]:
    """``{symbol: address}`` for SQLite, numba's runtime helpers and CPython's exceptions."""
    global _runtime_symbols
    if _runtime_symbols is None:
        symbols = dict(_capi._ADDRESSES)
        helperlib = _load_extension("numba._helperlib", "_helperlib")
        for name, addr in helperlib.c_helpers.items():
            symbols["numba_" + name] = addr
        nrt = _load_extension("numba.core.runtime._nrt_python", "core/runtime/_nrt_python")
        # What numba.core.runtime.nrt does at import: the NRT allocates with
        # CPython's raw allocator. Repeated by numba if it is imported later.
        nrt.memsys_use_cpython_allocator()
        for name, addr in nrt.c_helpers.items():
            symbols[name if name.startswith("_") else "NRT_" + name] = addr
        symbols["_Py_NoneStruct"] = id(None)
        import builtins

        for obj in vars(builtins).values():
            if isinstance(obj, type) and issubclass(obj, BaseException):
                symbols[f"PyExc_{obj.__name__}"] = id(obj)
        _runtime_symbols = symbols
    return _runtime_symbols


_process = ctypes.CDLL(None)


def _process_symbol(name: str) -> int | None:
    """Address of *name* in the process (CPython, libc, libm), or None."""
    try:
        return ctypes.addressof(ctypes.c_char.in_dll(_process, name))
    except ValueError:
        return None


# --------------------------------------------------------------------------
# The engine: one MCJIT engine holds every image of the process


_engine = None
_engine_lock = threading.RLock()
_loaded: dict[str, dict[str, int]] = {}  # image path -> addresses, per process


def _get_engine():
    global _engine
    if _engine is None:
        ll = _llvm()
        ll.initialize_native_target()
        ll.initialize_native_asmprinter()
        target = ll.Target.from_triple(ll.get_process_triple())
        # The target machine only compiles the (empty) module the engine is
        # created with; the images' code is already machine code.
        tm = target.create_target_machine(codemodel="jitdefault", reloc="static" if target.name.startswith("x86") else "default")
        module = ll.parse_assembly("")
        module.triple = ll.get_process_triple()
        _engine = ll.create_mcjit_compiler(module, tm)
    return _engine


# --------------------------------------------------------------------------
# Child builds (fastagg.native.build)

_CHILD_ENV = "FASTAGG_IMAGE_CHILD"  # set in a child: it builds in-process
_CHILD_TIMEOUT = 3600.0
#: The fixed machinery's images, as (module, builder, name, stages, parts):
#: when one of them must be built, the children of all start at once, so that
#: they build in parallel (named here as data: this stage imports neither).
#: *parts* can split an image's callbacks between children, each compiling
#: its callbacks' call trees (``None``: every callback not named in another
#: part). Not used for now: split three ways, the virtual table took 51 s of
#: CPU instead of 28 s (the call trees share most helpers, which each child
#: compiles again), a loss on two cores.
FIXED_IMAGES = (
    ("fastagg.table.callbacks", "_build", "vtab", ("table", "native", "sqlite"), (None,)),
    ("fastagg.reader", "_loop_entries", "reader", ("native", "sqlite"), (None,)),
)
_children: dict = {}  # image path -> [(child process, part file or None)]


def children_enabled() -> bool:
    """Whether images are built by child processes (``FASTAGG_IMAGE_CHILDREN=0``: in-process)."""
    return (
        images_enabled()
        and not os.environ.get(_CHILD_ENV)
        and os.environ.get("FASTAGG_IMAGE_CHILDREN", "1") != "0"
    )


def _child_target(builder) -> tuple[str, str] | None:
    module = getattr(builder, "__module__", None)
    name = getattr(builder, "__qualname__", "")
    if not module or module == "__main__" or not name.isidentifier():
        return None
    return module, name


def _shared_exists(path: Path) -> bool:
    shared = shared_image_path(path)
    return shared is not None and shared.exists()


def prefetch_fixed_images() -> int:
    """Start the children that build whichever of :data:`FIXED_IMAGES` are missing; how many images that is.

    Does not wait. Nothing starts for an image that exists (or its copy
    beside numba's cache), is loaded or is being built, nor when children
    are not used. The first load of an image then waits for its child
    (:meth:`NativeImage.addresses`); in between, the caller can compile
    what its statement needs (:func:`fastagg.database.query` does).
    """
    global _fixed_present
    if _fixed_present or not children_enabled():
        return 0
    started = 0
    present = True
    for module, builder, name, stages, _ in FIXED_IMAGES:
        image = NativeImage(name, None, "", stages)
        image._target = (module, builder)
        path = image.path()
        if str(path) in _loaded or path.exists():
            continue
        present = False
        if str(path) not in _children and not _shared_exists(path):
            if image._spawn() is not None:
                started += 1
    # Every fixed image there: later calls (one per statement) cost nothing.
    _fixed_present = present
    return started


_fixed_present = False


# --------------------------------------------------------------------------
# Images


class ImageError(Exception):
    """An image file that must not be loaded (wrong key, corrupt, unresolvable)."""


def _encode(header: dict, blobs: list[bytes]) -> bytes:
    head = json.dumps(header, sort_keys=True).encode()
    body = struct.pack("<Q", len(head)) + head + b"".join(blobs)
    return MAGIC + hashlib.sha256(body).digest() + body


def _decode(data: bytes) -> tuple[dict, list[bytes]]:
    if not data.startswith(MAGIC):
        raise ImageError("not a fastagg native image")
    digest = data[len(MAGIC) : len(MAGIC) + 32]
    body = data[len(MAGIC) + 32 :]
    if len(digest) != 32 or hashlib.sha256(body).digest() != digest:
        raise ImageError("checksum mismatch (truncated or corrupted)")
    (n,) = struct.unpack_from("<Q", body, 0)
    header = json.loads(body[8 : 8 + n])
    blobs, pos = [], 8 + n
    for size in header["sizes"]:
        blobs.append(body[pos : pos + size])
        pos += size
    if pos != len(body):
        raise ImageError("object sizes do not add up")
    return header, blobs


def _object_code(cf) -> bytes:
    """The object code of numba cfunc *cf*, as numba's cache holds it.

    Read from numba's cache entry (what a cache load would give MCJIT); for a
    cfunc compiled without a cache, emitted from its final LLVM module with
    numba's own target machine (same optimisation level and CPU features).
    """
    target_context = cf._targetdescr.target_context
    codegen = target_context.codegen()
    cache = getattr(cf, "_cache", None)
    if cache is not None and hasattr(cache, "_cache_file"):
        payload = cache._cache_file.load(cache._index_key(cf._sig, codegen))
        if payload is not None:
            for part in payload:
                if isinstance(part, tuple) and len(part) == 3 and part[1] == "object":
                    return part[2][0]
    module = cf._library._final_module
    if not any(not f.is_declaration for f in module.functions):
        raise ImageError(f"no object code available for {cf.__qualname__}")
    return codegen._tm.emit_object(module)


class NativeImage:
    """Compiled callbacks persisted as object code; see the module docstring.

    Parameters
    ----------
    name : str
        File-name stem of the image (``[A-Za-z0-9_.-]``).
    builder : callable
        ``builder() -> {callback name: numba cfunc}``; imports numba and
        compiles (or loads from numba's cache) the callbacks.
    key : str
        What else the code depends on (for generated code: its digest).
    stages : tuple of str
        fastagg's subpackages the compiled code is made of (hashed into the key).
    """

    def __init__(self, name: str, builder, key: str = "", stages: tuple[str, ...] = RUNTIME_STAGES):
        self.name = name
        self.builder = builder
        self.extra_key = key
        self.stages = tuple(stages)
        self._addresses: dict[str, int] | None = None
        self._keep = None  # the numba cfuncs, when built in this process
        # "image" (loaded), "copy" (loaded from the copy beside numba's cache),
        # "child" (built by a child process, then loaded) or "numba"
        # (compiled or loaded by numba in this process), once resolved.
        self.source = None
        # A module-level builder can run in a child process (see .build).
        self._target = _child_target(builder)
        self.timings: dict[str, float] = {}

    # -- paths and keys ---------------------------------------------------

    def key(self) -> dict:
        return {
            "machine": machine_key(),
            "fastagg": runtime_fingerprint(self.stages),
            "image": self.name,
            "extra": self.extra_key,
        }

    def path(self) -> Path:
        digest = hashlib.sha256(json.dumps(self.key(), sort_keys=True).encode()).hexdigest()[:24]
        return native_cache_dir() / f"{self.name}-{digest}{_SUFFIX}"

    # -- loading ----------------------------------------------------------

    def addresses(self) -> dict[str, int]:
        """``{callback name: C address}``, from the image if possible, else from numba."""
        if self._addresses is not None:
            return self._addresses
        with _engine_lock:
            if self._addresses is None:
                loaded = None
                if images_enabled():
                    try:
                        loaded = self.load()
                    except (ImageError, RuntimeError, OSError):
                        loaded = None  # numba serves this process; the image stays for inspection
                if loaded is None:
                    loaded = self._build()
                self._addresses = loaded
        return self._addresses

    def load(self) -> dict[str, int] | None:
        """Load the image file; None if there is none or it must not be loaded."""
        t0 = time.perf_counter()
        path = self.path()
        done = _loaded.get(str(path))
        if done is not None:
            # Loaded already (another spec object with the same code): the
            # engine must not see the same strong symbols twice.
            self.source = "image"
            return done
        header = self._read(path)
        source = "image"
        if header is None:
            shared = shared_image_path(path)
            if shared is None or self._read(shared) is None:
                return None
            try:
                self.copy_to(shared, path)
            except OSError:
                return None
            header = self._read(path)
            if header is None:
                return None
            source = "copy"
        header, blobs = header
        try:
            symbols = runtime_symbols()
            missing = []
            ll = _llvm()
            for name in header["undefined"]:
                if name in symbols:
                    continue
                addr = _process_symbol(name)
                if addr is None:
                    missing.append(name)
                else:
                    symbols[name] = addr
            if missing:
                raise ImageError(f"unresolvable symbols: {', '.join(missing[:5])}")
        except (ImageError, KeyError, TypeError) as exc:
            self._discard(path, exc)
            return None
        except ImportError:
            return None
        for name in header["undefined"]:
            ll.add_symbol(name, symbols[name])
        engine = _get_engine()
        for blob in blobs:
            engine.add_object_file(ll.ObjectFileRef.from_data(blob))
        engine.finalize_object()
        addresses = {}
        for name, symbol in header["symbols"].items():
            addr = engine.get_function_address(symbol)
            if not addr:
                raise ImageError(f"{self.name}: {symbol} not found in its own image")
            addresses[name] = addr
        _loaded[str(path)] = addresses
        # Written by a child this process started (perhaps for another image's
        # build, see _build_in_child): built here, not found in the cache.
        self.source = "child" if str(path) in _children else source
        self.timings["load"] = time.perf_counter() - t0
        return addresses

    def _read(self, path: Path):
        """``(header, blobs)`` of the valid image file *path*, or None (a bad file is deleted)."""
        try:
            data = path.read_bytes()
        except OSError:
            return None
        try:
            header, blobs = _decode(data)
            if header.get("key") != json.loads(json.dumps(self.key(), sort_keys=True)):
                raise ImageError("key mismatch")
            header["undefined"], header["symbols"]  # noqa: B018 - present
        except (ImageError, ValueError, KeyError, TypeError, struct.error) as exc:
            self._discard(path, exc)
            return None
        return header, blobs

    @staticmethod
    def copy_to(src: Path, dst: Path) -> None:
        """Copy image file *src* to *dst* atomically."""
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(f"{dst.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)

    @staticmethod
    def _discard(path: Path, why: BaseException) -> None:
        # A bad file is removed so that this process's build replaces it.
        # Files are only ever replaced atomically (os.replace), so a reader
        # never sees another process's half-written image.
        try:
            path.unlink()
        except OSError:
            pass

    # -- building ---------------------------------------------------------

    def prefetch(self) -> bool:
        """Start building this image in a child process without waiting; whether one was started.

        Nothing happens when the image (or its copy) is there already, when
        it is being built, or when children are not used. A later
        :meth:`addresses` waits for that child. For :func:`fastagg.warmup`,
        which needs every image: building them side by side is shorter.
        """
        if self._addresses is not None or self._target is None or not children_enabled():
            return False
        path = self.path()
        if str(path) in _children or str(path) in _loaded or path.exists() or _shared_exists(path):
            return False
        return self._spawn() is not None

    def _parts(self) -> tuple:
        for module, builder, _, _, parts in FIXED_IMAGES:
            if self._target == (module, builder):
                return parts
        return (None,)

    def _spawn(self) -> list | None:
        """Start (once per process) the children that build this image; None if they cannot.

        Returns ``[(process, part file or None)]``: with several parts, each
        child writes its part and the parent joins them (:meth:`_join`).
        """
        path = self.path()
        started = _children.get(str(path))
        if started is None:
            if not os.path.basename(sys.executable or "").lower().startswith("python"):
                return None  # embedded: sys.executable is the host program, not an interpreter
            env = dict(os.environ)
            # The child imports this very fastagg (and the builder's modules).
            paths = [os.getcwd() if p == "" else p for p in sys.path if isinstance(p, str)]
            env["PYTHONPATH"] = os.pathsep.join(paths)
            module, builder = self._target
            parts = self._parts()
            named = [n for part in parts if part is not None for n in part]
            started = []
            for i, part in enumerate(parts):
                spec = {
                    "module": module, "builder": builder, "name": self.name,
                    "stages": list(self.stages), "key": self.extra_key, "path": str(path),
                }
                out = None
                if len(parts) > 1:
                    out = path.with_name(f"{path.name}.{os.getpid()}.part{i}")
                    spec["out"] = str(out)
                    spec["only" if part is not None else "exclude"] = list(part if part is not None else named)
                try:
                    proc = subprocess.Popen(
                        [sys.executable, "-m", "fastagg.native.build", json.dumps(spec)],
                        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                        stderr=None if os.environ.get("FASTAGG_IMAGE_LOG") else subprocess.DEVNULL,
                    )
                except OSError:
                    for proc, _ in started:
                        proc.kill()
                    return None
                started.append((proc, out))
            _children[str(path)] = started
        return started

    def _join(self, parts: list[Path]) -> None:
        """Write the image from the part files its children wrote, then remove them."""
        blobs, symbols = [], {}
        try:
            for part in parts:
                header, part_blobs = _decode(part.read_bytes())
                if header.get("key") != json.loads(json.dumps(self.key(), sort_keys=True)):
                    raise ImageError("part of another key")
                blobs += part_blobs
                symbols.update(header["symbols"])
            path = self.save_object(blobs, symbols)
            shared = shared_image_path(path)
            if shared is not None:
                self.copy_to(path, shared)
        finally:
            for part in parts:
                try:
                    part.unlink()
                except OSError:
                    pass

    def _build_in_child(self) -> dict[str, int] | None:
        """Build the image in child processes (:mod:`.build`) and load it; None if that failed."""
        if self._target is None or not children_enabled():
            return None
        if any(self._target == (module, builder) for module, builder, *_ in FIXED_IMAGES):
            prefetch_fixed_images()
        started = self._spawn()
        if started is None:
            return None
        t0 = time.perf_counter()
        ok = True
        for proc, _ in started:
            try:
                ok = proc.wait(timeout=_CHILD_TIMEOUT) == 0 and ok
            except subprocess.TimeoutExpired:
                proc.kill()
                ok = False
        parts = [out for _, out in started if out is not None]
        if parts:
            try:
                if ok:
                    self._join(parts)
            except (ImageError, OSError, ValueError, KeyError, TypeError, struct.error):
                ok = False
        if not ok:
            return None
        loaded = self.load()
        if loaded is not None:
            self.source = "child"
            self.timings["compile"] = time.perf_counter() - t0
        return loaded

    def _build(self) -> dict[str, int]:
        loaded = self._build_in_child()
        if loaded is not None:
            return loaded
        t0 = time.perf_counter()
        cfuncs = self.builder()
        self._keep = cfuncs
        self.timings["compile"] = time.perf_counter() - t0
        self.source = "numba"
        addresses = {name: cf.address for name, cf in cfuncs.items()}
        if images_enabled():
            try:
                path = self.save(cfuncs)
                shared = shared_image_path(path) if self._target is not None else None
                if shared is not None:
                    self.copy_to(path, shared)
            except (ImageError, OSError, ValueError):
                pass  # no image: the next process compiles (or loads numba's cache) again
        return addresses

    def save(self, cfuncs: dict) -> Path:
        """Write the image of *cfuncs* (numba cfuncs) atomically; return its path."""
        blobs = [_object_code(cf) for cf in cfuncs.values()]
        return self.save_object(blobs, {name: cf.native_name for name, cf in cfuncs.items()})

    def save_object(self, blobs: list[bytes], symbols: dict[str, str], path: Path | None = None) -> Path:
        """Write an image of object files *blobs* defining *symbols* ``{name: symbol}``.

        Written to :meth:`path`, or to *path* (a part of the image, see :meth:`_build_in_child`).
        """
        undefined = set()
        for obj in blobs:
            undefined.update(undefined_symbols(obj))
        header = {
            "key": self.key(),
            "symbols": symbols,
            "undefined": sorted(undefined),
            "sizes": [len(b) for b in blobs],
        }
        path = self.path() if path is None else path
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_bytes(_encode(header, blobs))
        os.replace(tmp, path)
        return path
