"""Build a native image in a child process, as one LLVM module.

numba compiles every jitted function into a library of its own and, to
finalise each, links in the libraries of everything it calls, runs the full
``-O3`` pipeline over the result and emits its machine code. For a call tree
like the virtual table's (some 290 libraries under 11 callbacks) that is
hundreds of optimisation runs and object emissions over overlapping code:
profiled from an empty cache, about 80 % of the LLVM time went to helpers whose
machine code nothing ever runs (their callers inline them).

Here the callbacks are compiled in a *child* process whose numba links every
library unoptimised, emits no machine code and writes nothing to numba's
cache (see :func:`_defer_llvm`); then
the callbacks' modules are linked into one module, optimised once with
numba's own pipeline (same ``-O`` level, the same "cheap" pre-pass and
reference-count pruning) and emitted once with numba's target machine (same
CPU and features). The object code is written as the image the parent
process then loads (:class:`fastagg.native.loader.NativeImage`). A child
keeps these changes to numba out of the parent, whose dispatchers stay whole,
and lets the images of the virtual table and the reader build in parallel.

Run as ``python -m fastagg.native.build SPEC`` (JSON: module, builder,
name, stages, key, path); exit status 0 when the image was written.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
from pathlib import Path

__all__ = ["main", "link_once"]

#: Set in the child: a NativeImage there builds in-process, never spawns.
CHILD_ENV = "FASTAGG_IMAGE_CHILD"


def _defer_llvm() -> None:
    """Make this process's numba link libraries without optimising or emitting them.

    Only for a process that compiles and never runs compiled code: the entry
    points numba records are placeholders, and nothing goes to numba's cache
    (its entries are object code, which other processes load and run). Tried:
    caching LLVM bitcode in a directory of the child's own; a rebuild then
    took 25.2 instead of 26.6 s of CPU (numba refuses to cache most of these
    functions, "uses dynamic globals"), not worth it.
    """
    from numba.core import caching, codegen, dispatcher
    from numba.core.registry import cpu_target

    cpu_target.target_context  # noqa: B018 - set up the target (and the NRT's own library) first

    fake = iter(range(0x1000, 1 << 40, 0x10))

    codegen.CPUCodeLibrary._optimize_final_module = lambda self: None
    # numba's function-level passes before linking stay: skipping them saved
    # 3 s of the virtual table's build, but ORDER BY over text then ran 15-30 %
    # slower (the inliner judged bigger callees).
    codegen.JITCodeLibrary._finalize_specific = lambda self: None
    codegen.JITCPUCodegen._add_module = lambda self, module: None
    codegen.JITCPUCodegen.set_env = lambda self, env_name, env: None  # no global to write to

    def placeholder(self, name):
        self._ensure_finalized()
        return next(fake)

    codegen.JITCodeLibrary.get_pointer_to_function = placeholder
    caching.Cache.save_overload = lambda self, sig, data: None

    # No Python or C wrapper around each jitted helper: nothing here calls
    # them from Python or by address, only from the callbacks' own code
    # (the callbacks' C entries are made by numba's cfunc compiler, which
    # sets its own flags). Profiled, the wrappers were ~10 % of a build.
    customize = dispatcher._FunctionCompiler._customize_flags

    def no_wrappers(self, flags):
        flags = customize(self, flags)
        flags.no_cpython_wrapper = True
        flags.no_cfunc_wrapper = True
        return flags

    dispatcher._FunctionCompiler._customize_flags = no_wrappers
    _fast_flag_values()


def _fast_flag_values() -> None:
    """Make numba's ``TargetConfig.values()`` (compile flags as a dict) a dict merge instead of a getattr per option.

    numba keys its overload implementations by the compile flags, and each
    cache lookup compares two flag sets through ``values()``: ~70,000 calls
    building 40-option dicts, ~9 % of the virtual table's build profiled.
    The result is the same dict (every option's default, overridden by the
    values set; setters only ever store options), so only the cost changes.
    In the child only: the parent's numba is left as it is.
    """
    from numba.core import targetconfig

    def values(self):
        cls = type(self)
        defaults = cls.__dict__.get("_fastagg_defaults")
        if defaults is None:
            defaults = {k: opt.default for k, opt in cls.options.items()}
            setattr(cls, "_fastagg_defaults", defaults)
        out = dict(defaults)
        out.update(self._values)
        return out

    targetconfig.TargetConfig.values = values


def link_once(cfuncs: dict) -> tuple[bytes, dict]:
    """Link the modules of *cfuncs* into one, optimise it once, emit its object code.

    Returns ``(object code, {name: symbol})``.
    """
    import llvmlite.binding as ll
    from numba.core import config
    from numba.core.compiler_lock import global_compiler_lock
    from numba.core.runtime.nrtopt import remove_redundant_nrt_refct

    first = next(iter(cfuncs.values()))
    codegen = first._targetdescr.target_context.codegen()
    module = ll.parse_assembly(str(codegen._create_empty_module("fastagg_image")))
    module.name = "fastagg_image"
    symbols = {}
    with global_compiler_lock:
        for name, cf in cfuncs.items():
            library = cf._library
            library._ensure_finalized()
            # A library numba compiled here holds its own code (external) and
            # linkable copies of its callees; one loaded from numba's cache
            # only the linkable copies (linkonce_odr), which the linker would
            # drop unreferenced: its entry is made external first.
            own = library._final_module
            part = (own if any(not f.is_declaration for f in own.functions) else library._shared_module).clone()
            part.get_function(cf.native_name).linkage = "external"
            module.link_in(part)
            symbols[name] = cf.native_name
    module.data_layout = codegen._data_layout
    cheap, cheap_pb = codegen._module_pass_manager(
        loop_vectorize=codegen._loopvect, slp_vectorize=False, opt=codegen._opt_level, cost="cheap"
    )
    cheap.run(module, cheap_pb)
    if not config.LLVM_REFPRUNE_PASS:
        module = remove_redundant_nrt_refct(module)
    full, full_pb = codegen._module_pass_manager()
    full.run(module, full_pb)
    module.verify()
    return codegen._tm.emit_object(module), symbols


def _compile_only(builder, names=None, exclude=()) -> dict:
    """``builder()``, compiling only the callbacks *names* (None: all but *exclude*).

    numba's ``@cfunc`` compiles at decoration, so the modules a builder
    imports would compile every callback; here decoration only records them,
    and the chosen ones compile afterwards.
    """
    from numba.core import ccallback

    compile_now = ccallback.CFunc.compile
    ccallback.CFunc.compile = lambda self: None
    try:
        cfuncs = builder()
    finally:
        ccallback.CFunc.compile = compile_now
    chosen = {
        name: cf for name, cf in cfuncs.items()
        if (name in names if names is not None else name not in exclude)
    }
    for cf in chosen.values():
        cf.compile()
    return chosen


def main(argv: list[str]) -> int:
    spec = json.loads(argv[0])
    os.environ[CHILD_ENV] = "1"
    # numba imports scipy (when installed) at its first compile, for the
    # BLAS / LAPACK bindings of np.linalg, which no callback uses: 0.5 s of
    # each child here. Marked absent, numba goes without (a callback that
    # needed it would fail to compile here and build in the parent instead).
    sys.modules.setdefault("scipy", None)
    from .loader import NativeImage, shared_image_path

    t0 = time.perf_counter()
    _defer_llvm()
    builder = getattr(importlib.import_module(spec["module"]), spec["builder"])
    image = NativeImage(spec["name"], builder, spec["key"], tuple(spec["stages"]))
    if str(image.path()) != spec["path"]:
        print(f"fastagg image build: key differs from the parent's ({image.path()})", file=sys.stderr)
        return 3
    cfuncs = _compile_only(builder, spec.get("only"), spec.get("exclude", ()))
    obj, symbols = link_once(cfuncs)
    out = spec.get("out")
    if out:  # one part of the image: the parent joins the parts
        image.save_object([obj], symbols, Path(out))
    else:
        path = image.save_object([obj], symbols)
        shared = shared_image_path(path)
        if shared is not None:
            image.copy_to(path, shared)
    print(f"fastagg image build: {image.name} {spec.get('only') or spec.get('exclude') or ''} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
