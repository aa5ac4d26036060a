"""Loops the engine generates over a compiled aggregate's user methods, and fused kernels for SQLite's.

The compile stage's array entry points (``array_step`` in the generated
callback module) read each argument with a NULL mask array. The loops here
are generated per aggregate *and per way each argument signals NULL*:

- ``m``: a uint8 mask array (a column with a validity mask, codes, a gather);
- ``n``: NaN is NULL (a plain float64 buffer, an evaluated real expression):
  tested in the loop, so no mask is built (a pass over the column and a
  second stream the loop would read);
- ``z``: never NULL (a plain int64 buffer).

Each loop calls the same ``user_init`` / ``user_step`` / ``user_merge``
dispatchers as the SQLite callbacks (the prepared module's), so user code
is still written once. The loops:

- ``groups_step(arena, seen, gids, base, lo, hi, far, x0[, m0], ...)``: as
  ``array_step`` (``__init__`` at each group's first row, marking ``seen``);
  *far* (an arena beyond the caches, :data:`FAR_BYTES`): each row prefetches
  the state of the row :data:`PREFETCH_ROWS` ahead;
- ``lanes_step(states, seen, lo, hi, ...)``: no GROUP BY, :data:`LANES`
  states, row ``lo + k`` to state ``k % LANES`` (independent dependency
  chains the CPU overlaps; ``x.sum()``-like speed for a running total);
  used only for a mergeable aggregate on several threads (one thread
  keeps one state in row order), the states then merged in lane
  order (summation order differs from SQLite's row order: user aggregates
  only, within 1e-12 relative, as with threads);
- ``single_step(states, seen, lo, hi, ...)``: one state, row order (an
  aggregate without ``merge``, or one thread);
- ``merge_free(dst, dseen, src, sseen)``: ``user_merge`` where both
  reached a group, then frees the merged-in state's vectors (the merged
  state copied them), so vector-field aggregates can run on threads;
- ``merge_lanes(states, seen)``: ``merge_free`` of every later state of
  one arena into its first, in order (an ungrouped statement's lanes and
  ranges, side by side in one arena: one call);
- ``free_all(arena)``: frees every vector of an arena (a failed run).

``lanes_step`` runs blocks of :data:`LANES` rows without a NULL argument in
a loop of their own (no test between the lanes; a block with a NULL takes
the per-row tests): the same calls in the same order.

The sources are written beside the prepared module (in the fastagg cache
directory, once, atomically, named by a hash of the source) so numba caches
them like the callbacks.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import threading

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["LANES", "null_variant", "loops", "result_type_exact", "sum_float_rows", "count_all"]

#: States of an ungrouped mergeable aggregate per range of rows.
LANES = 8

#: Named in the generated source (so in its file name): a change to the
#: intrinsics below, which the source does not show, still makes new files.
_LAYOUT = "unsigned-prefetch-2"

_LOOPS = ("groups_init", "groups_step", "groups_step_seen", "lanes_step", "single_step", "merge_free", "merge_lanes",
          "free_all")

_lock = threading.Lock()
_cache: dict = {}


def _record_pointer(context, builder, aryty, ary, k):
    array = context.make_array(aryty)(context, builder, ary)
    return cgutils.get_item_pointer(context, builder, aryty, array, [k], wraparound=False)


@intrinsic
def stack_copy(typingctx, states, k):
    """A copy of record ``states[k]`` on the stack, as a record (the caller writes it back with :func:`store_back`).

    Lane states copied so: LLVM keeps a stack record's fields in registers
    through the loop, whereas a store into the arena per row stays (numba's
    arrays carry no ``noalias``: the arena might be the column).
    """
    rec = states.dtype

    def codegen(context, builder, sig, args):
        src = _record_pointer(context, builder, sig.args[0], args[0], args[1])
        slot = cgutils.alloca_once(builder, ir.ArrayType(ir.IntType(8), rec.size))
        cgutils.raw_memcpy(builder, builder.bitcast(slot, cgutils.voidptr_t), builder.bitcast(src, cgutils.voidptr_t),
                           context.get_constant(types.intp, rec.size), 1)
        return slot

    return rec(states, k), codegen


@intrinsic
def store_back(typingctx, states, k, record):
    """Copy *record* (from :func:`stack_copy`) into ``states[k]``."""
    rec = states.dtype

    def codegen(context, builder, sig, args):
        dst = _record_pointer(context, builder, sig.args[0], args[0], args[1])
        cgutils.raw_memcpy(builder, builder.bitcast(dst, cgutils.voidptr_t), builder.bitcast(args[2], cgutils.voidptr_t),
                           context.get_constant(types.intp, rec.size), 1)
        return context.get_dummy_value()

    return types.void(states, k, record), codegen


#: Rows ahead whose group state a loop over a far arena prefetches.
PREFETCH_ROWS = 16

#: Arenas (and per-group arrays) from this many bytes are "far": beyond the
#: caches, a row's random access waits on memory unless prefetched (Welford over
#: 1,000,000 groups: twice as fast; over 1,000 groups the prefetch costs ~4%).
FAR_BYTES = 1 << 20


@intrinsic
def prefetch(typingctx, arr, k):
    """Prefetch ``arr[k]`` for writing (a hint: an index out of range does not fault)."""

    def codegen(context, builder, sig, args):
        aryty = sig.args[0]
        array = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aryty, array, [args[1]], wraparound=False)
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [cgutils.voidptr_t, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        builder.call(fn, [builder.bitcast(ptr, cgutils.voidptr_t), ir.Constant(i32, 1), ir.Constant(i32, 3),
                          ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return types.void(arr, k), codegen


@intrinsic
def zero_record(typingctx, states, k):
    """Set every byte of record ``states[k]`` to zero."""
    rec = states.dtype

    def codegen(context, builder, sig, args):
        dst = _record_pointer(context, builder, sig.args[0], args[0], args[1])
        cgutils.memset(builder, builder.bitcast(dst, cgutils.voidptr_t), context.get_constant(types.intp, rec.size), 0)
        return context.get_dummy_value()

    return types.void(states, k), codegen


def null_variant(kind: str) -> str:
    """The variant letter for an argument loaded as *kind* ("mask", "nan", "none")."""
    return {"mask": "m", "nan": "n", "none": "z"}[kind]


def _read(arg, i: int, value: str) -> str:
    read = {"float": value, "int": value, "bool": f"{value} != 0.0"}[arg.kind]
    if arg.kind in ("float", "int") and arg.dtype is not None and arg.dtype not in (
        np.dtype(np.float64),
        np.dtype(np.int64),
    ):
        read = f"np.{arg.dtype.name}({read})"
    return read


def _params(variant: str) -> str:
    return "".join(f", x{i}" + (f", m{i}" if v == "m" else "") for i, v in enumerate(variant))


def _row_body(spec, variant, state, row, indent, skip):
    """Statements stepping *state* with row *row*; *skip* is "continue" or None (nest instead)."""
    pad = " " * indent
    lines, tests, names = [], [], []
    for i, (arg, v) in enumerate(zip(spec.args, variant)):
        if v == "n":
            lines.append(f"{pad}v{i} = x{i}[{row}]")
            null, read = f"v{i} != v{i}", _read(arg, i, f"v{i}")
        elif v == "m":
            null, read = f"m{i}[{row}] != 0", _read(arg, i, f"x{i}[{row}]")
        else:
            null, read = None, _read(arg, i, f"x{i}[{row}]")
        if null is None:
            lines.append(f"{pad}a{i} = {read}")
        elif arg.optional:
            lines += [f"{pad}if {null}:", f"{pad}    a{i} = None", f"{pad}else:", f"{pad}    a{i} = {read}"]
        elif skip:
            lines += [f"{pad}if {null}:", f"{pad}    {skip}", f"{pad}a{i} = {read}"]
        else:
            tests.append(f"not ({null})")
            lines.append(f"{pad}a{i} = {read}" if v == "n" else "")
        names.append(f"a{i}")
    call = f"user_step({state}" + "".join(f", {n}" for n in names) + ")"
    if tests:
        # Values are read before the test only when already loaded (NaN); a
        # masked value is read inside, as its row may be past a gather's end.
        inner = [ln for ln in lines if ln]
        masked = [f"{pad}    a{i} = {_read(a, i, f'x{i}[{row}]')}" for i, (a, v) in enumerate(zip(spec.args, variant))
                  if v == "m" and not a.optional]
        return inner + [f"{pad}if {' and '.join(tests)}:", *masked, f"{pad}    {call}"]
    return [ln for ln in lines if ln] + [f"{pad}{call}"]


def _block_test(variant, rows):
    """An expression true when no argument is NULL at any of *rows*, or None (no argument can be NULL)."""
    tests = []
    for i, v in enumerate(variant):
        if v == "n":
            tests += [f"(x{i}[{r}] == x{i}[{r}])" for r in rows]
        elif v == "m":
            tests += [f"(m{i}[{r}] == 0)" for r in rows]
    return " & ".join(tests) or None


def _fast_row(spec, variant, state, row, indent):
    """:func:`_row_body` for a row known to have no NULL argument."""
    pad = " " * indent
    lines = [f"{pad}b{i} = {_read(arg, i, f'x{i}[{row}]')}" for i, arg in enumerate(spec.args)]
    return lines + [f"{pad}user_step({state}" + "".join(f", b{i}" for i in range(len(spec.args))) + ")"]


def _source(spec, variant: str, modname: str) -> str:
    names = ["user_step", "free_vector"]
    if spec.init is not None:
        names.append("user_init")
    if spec.is_mergeable:
        names.append("user_merge")
    params = _params(variant)
    # Lane states live on the stack (registers, once LLVM has inlined user_step)
    # unless a field is a vector: a failing step would leave the stack copy's
    # allocation where free_all cannot reach it.
    local = not spec.vector_fields
    out = [
        f"# Generated by fastagg.engine.reduce for {spec.qualname} (argument NULL variant {variant!r}).",
        f"# Loop layout {_LAYOUT}.",
        "import numpy as np",
        f"from {modname} import {', '.join(names)}",
        "from fastagg.engine.reduce import prefetch, stack_copy, store_back, zero_record",
        "",
        "def groups_init(arena):",
        "    for g in range(len(arena)):",
        "        user_init(arena[g])" if spec.init is not None else "        pass",
        "",
    ]
    for name, seen in (("groups_step", False), ("groups_step_seen", True)):
        # Unsigned row and group indices: numba then emits no negative-index
        # wraparound (a third of the loop's instructions). A group id outside
        # the arena stops the loop instead of writing past it.
        # far: the arena is larger than the caches; each row prefetches the state of
        # the row PREFETCH_ROWS ahead (a loop-invariant test: LLVM unswitches it).
        out += [
            f"def {name}(arena, {'seen, ' if seen else ''}gids, base, lo, hi, far{params}):",
            "    n = np.uint64(len(arena))",
            "    h = np.uint64(hi)",
            "    for i in range(np.uint64(lo), h):",
            "        if far:",
            f"            j = i + np.uint64({PREFETCH_ROWS})",
            "            if j < h:",
            "                prefetch(arena, np.uint64(gids[j] - base))",
            "        g = np.uint64(gids[i] - base)",
            "        if g >= n:",
            "            raise IndexError('group id out of range')",
        ]
        if seen:
            out.append("        seen[g] = 1")
        out += _row_body(spec, variant, "arena[g]", "i", 8, "continue")
        out.append("")
    for name, lanes in (("lanes_step", LANES), ("single_step", 1)):
        out += [f"def {name}(states, seen, lo, hi{params}):",
                f"    if len(states) < {lanes} or len(seen) < {lanes}:",
                f"        raise ValueError('{name}: {lanes} states needed')"]
        for k in range(lanes):
            out.append(f"    s{k} = stack_copy(states, {k})" if local else f"    s{k} = states[{k}]")
            # Lane k's first row is lo + k when a whole block of rows exists (else every
            # row goes to lane 0): its __init__ may as well run now.
            out += [f"    if hi - lo > 0:" if k == 0 else f"    if hi - lo >= {lanes}:", f"        seen[{k}] = 1"]
            if spec.init is not None:
                out.append(f"        user_init(s{k})")
        out += ["    i = np.uint64(lo)", "    h = np.uint64(hi)",
                *[f"    u{k} = np.uint64({k})" for k in range(1, lanes + 1)],
                f"    while i + u{lanes} <= h:"]
        rows = ["i" if k == 0 else f"i + u{k}" for k in range(lanes)]
        block = _block_test(variant, rows) if lanes > 1 else None
        if block is not None:
            # Blocks with no NULL (the usual case) in a loop of their own: every
            # lane steps, with no branch between the lanes, so the lanes' chains
            # overlap (LLVM may pack them into vector registers). A block with
            # a NULL takes the per-row tests below: the same calls either way.
            out += [f"        while i + u{lanes} <= h and {block}:"]
            for k, row in enumerate(rows):
                out += _fast_row(spec, variant, f"s{k}", row, 12)
            out += [f"            i += u{lanes}", f"        if i + u{lanes} > h:", "            break"]
            for k, row in enumerate(rows):
                out += _row_body(spec, variant, f"s{k}", row, 8, None)
        else:
            for k, row in enumerate(rows):
                out += _row_body(spec, variant, f"s{k}", row, 8, None)
        out += [f"        i += u{lanes}"]
        if lanes > 1:
            out += ["    while i < h:", *_row_body(spec, variant, "s0", "i", 8, None), "        i += u1"]
        if local:
            out += [f"    store_back(states, {k}, s{k})" for k in range(lanes)]
        out.append("")
    out += ["def merge_free(dst, dseen, src, sseen):"]
    if spec.is_mergeable:
        out += [
            "    for g in range(len(dst)):",
            "        if sseen[g] != 0 and dseen[g] != 0:",
            "            user_merge(dst[g], src[g])",
            *[f"            free_vector(src[g].{v})" for v in spec.vector_fields],
        ]
        if spec.vector_fields:
            # Only src reached g: its state replaces dst's fresh one (copied over by the caller).
            out += ["        elif sseen[g] != 0:", *[f"            free_vector(dst[g].{v})" for v in spec.vector_fields]]
    out += ["    return", "", "def merge_lanes(states, seen):"]
    if spec.is_mergeable:
        # merge_free of each later state into the first, in order; a state the first has
        # not reached yet moves over whole (its bytes then zeroed: one owner per vector).
        out += [
            "    for k in range(1, len(states)):",
            "        if seen[k] == 0:",
            "            continue",
            "        if seen[0] != 0:",
            "            user_merge(states[0], states[k])",
            *[f"            free_vector(states[k].{v})" for v in spec.vector_fields],
            "        else:",
            *[f"            free_vector(states[0].{v})" for v in spec.vector_fields],
            "            store_back(states, 0, stack_copy(states, k))",
            "            zero_record(states, k)",
            "            seen[0] = 1",
        ]
    out += ["    return", "", "def free_all(arena):", "    for g in range(len(arena)):"]
    out += [f"        free_vector(arena[g].{v})" for v in spec.vector_fields] or ["        pass"]
    return "\n".join(out) + "\n"


def loops(spec, variant: str) -> dict:
    """*spec*'s generated loops for argument NULL *variant* (one letter per argument), jitted ``nogil``.

    The caller has made the array entry points first
    (:func:`fastagg.engine.grouped._array_entry_points`: the prepared module
    with its ``user_*`` dispatchers, and the result-type check).
    """
    key = (id(spec), variant)
    hit = _cache.get(key)
    if hit is not None and hit[0] is spec:
        return hit[1]
    from ..compile import cache as _compile_cache

    module, cacheable = _compile_cache.prepared_module(spec)
    modname = module.__name__
    source = _source(spec, variant, modname)
    # Named by its source: a changed generator never reuses an older file (or numba's cache of it).
    name = f"{modname}_loops_{variant}_{hashlib.sha256(source.encode()).hexdigest()[:12]}"
    with _lock:
        mod = sys.modules.get(name)
        if mod is None:
            path = os.path.join(os.path.dirname(module.__file__), name + ".py")
            if not os.path.exists(path):
                # Written once: numba's cache index is keyed on the file's mtime.
                tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
                with open(tmp, "w") as fh:
                    fh.write(source)
                os.replace(tmp, path)
            loader = importlib.util.spec_from_file_location(name, path)
            mod = importlib.util.module_from_spec(loader)
            loader.loader.exec_module(mod)
            sys.modules[name] = mod
    funcs = {fn: njit(nogil=True, cache=cacheable)(getattr(mod, fn)) for fn in _LOOPS}
    _cache[key] = (spec, funcs)
    return funcs


def result_type_exact(spec, finalize) -> bool:
    """Whether ``finalize``'s inferred return type stores into the result as the SQLite callback would.

    The array entry point writes the value into an int64 / float64 array;
    the SQLite callback converts it with checks (a float for ``-> int`` out
    of range, None for a non-optional result, a float for ``-> bool`` raise).
    Only the types both treat alike run natively: integers (and booleans)
    for ``-> int``, booleans for ``-> bool``, numbers for ``-> float`` (None
    too when ``float | None``). Typing ``finalize`` compiles it once per
    process when numba's cache gave the entry points without it.
    """
    if finalize is None:
        return True
    from numba import from_dtype, types

    argtype = from_dtype(spec.state)
    try:
        finalize.compile((argtype,))
        ret = finalize.overloads[(argtype,)].signature.return_type
    except Exception:  # noqa: BLE001 - SQLite reports what is wrong with it
        return False
    kind = spec.result.kind
    if isinstance(ret, types.Optional):
        if not spec.result.optional or kind != "float":
            return False
        ret = ret.type
    if isinstance(ret, types.NoneType):
        return spec.result.optional and kind == "float"
    if kind == "bool":
        return isinstance(ret, types.Boolean)
    if kind == "int":
        return isinstance(ret, (types.Integer, types.Boolean))
    return isinstance(ret, (types.Float, types.Integer, types.Boolean))


# --------------------------------------------------------------------------
# SQLite's own aggregates


@njit(cache=True, nogil=True)
def sum_float_rows(gids, ngroups, x, far):
    """sumStep over a float64 buffer whose NaN is NULL: (rSum, cnt, rows) per group, in row order.

    *far*: prefetch the groups :data:`PREFETCH_ROWS` rows ahead (many groups).

    The same additions as :func:`.kernels.sum_float` with ``null = isnan(x)``
    (bit-identical), without the mask; ``rows`` counts every row of the
    group (``count(*)`` from the same pass). Rows of group -1 are skipped.
    """
    rsum = np.zeros(ngroups, np.float64)
    cnt = np.zeros(ngroups, np.int64)
    rows = np.zeros(ngroups, np.int64)
    n = len(gids)
    for i in range(n):
        if far and i + PREFETCH_ROWS < n:
            p = gids[i + PREFETCH_ROWS]
            if p >= 0:
                prefetch(rsum, p)
                prefetch(cnt, p)
                prefetch(rows, p)
        g = gids[i]
        if g < 0:
            continue
        rows[g] += 1
        v = x[i]
        if v == v:
            rsum[g] += v
            cnt[g] += 1
    return rsum, cnt, rows


@njit(cache=True, nogil=True)
def count_all(gids, ngroups):
    """count(*) per group (rows of group -1 skipped)."""
    out = np.zeros(ngroups, np.int64)
    for i in range(len(gids)):
        g = gids[i]
        if g >= 0:
            out[g] += 1
    return out


# --------------------------------------------------------------------------
# Order statistics over many small groups: one array, each group's values contiguous


@njit(cache=True, nogil=True)
def segments(gids, ngroups, x, m, nan_is_null):
    """Each group's non-NULL values of *x*, contiguous and in row order: ``(starts, values)``.

    A counting sort by group id (two passes, stable): group ``g``'s values
    are ``values[starts[g]:starts[g + 1]]``, in the order the rows give
    them, as a ``fastagg.vector`` field appended row by row holds them, so
    an order statistic selected from them is the same value (signed zeros
    included). NULL: NaN when *nan_is_null*, else ``m[i] != 0``. Replaces a
    vector per group (an allocation each, scattered in memory) where a
    plain form names a segment finalizer (``__fastagg_segments__``).
    """
    n = len(gids)
    starts = np.zeros(ngroups + 1, np.int64)
    for i in range(n):
        v = x[i]
        if (v == v) if nan_is_null else (m[i] == 0):
            starts[gids[i] + 1] += 1
    for g in range(ngroups):
        starts[g + 1] += starts[g]
    pos = starts[:ngroups].copy()
    values = np.empty(starts[ngroups], np.float64)
    for i in range(n):
        v = x[i]
        if (v == v) if nan_is_null else (m[i] == 0):
            g = gids[i]
            values[pos[g]] = v
            pos[g] += 1
    return starts, values


# --------------------------------------------------------------------------
# Integer sum over row ranges


@njit(cache=True, nogil=True)
def sum_int_range(gids, ngroups, x, null, lo, hi):
    """sumStep over integer rows ``lo..hi-1``, for combining ranges: per group
    ``(isum, cnt, top, bottom, wrapped, big)``.

    ``top`` / ``bottom`` are the largest / smallest running sum within the
    range (starting from 0), so that, given the exact sum of the rows
    before the range, whether SQLite's running sum overflows anywhere in
    the range is decided (:func:`combine_int_sums`). ``wrapped``: the
    range's own running sum left int64 (undecided here). ``big``: a value
    of magnitude over 2**53 (its double sum may round).
    """
    isum = np.zeros(ngroups, np.int64)
    cnt = np.zeros(ngroups, np.int64)
    top = np.zeros(ngroups, np.int64)
    bottom = np.zeros(ngroups, np.int64)
    wrapped = np.zeros(ngroups, np.uint8)
    big = np.zeros(ngroups, np.uint8)
    for i in range(lo, hi):
        g = gids[i]
        if null[i] != 0 or g < 0:
            continue
        v = x[i]
        cnt[g] += 1
        if v > 9007199254740992 or v < -9007199254740992:
            big[g] = 1
        a = isum[g]
        s = a + v  # wraps; overflow when the sign flips away from both operands
        if (a >= 0) == (v >= 0) and (s >= 0) != (a >= 0):
            wrapped[g] = 1
        isum[g] = s
        top[g] = max(top[g], s)
        bottom[g] = min(bottom[g], s)
    return isum, cnt, top, bottom, wrapped, big


_I64_MAX = np.int64(2**63 - 1)
_I64_MIN = np.int64(-(2**63))
_EXACT = np.int64(2**53)


def combine_int_sums(parts):
    """Combine :func:`sum_int_range` results of consecutive ranges into :func:`.kernels.sum_int`'s
    ``(isum, rsum, cnt, overflow)``, or None when the ranges cannot decide it (one thread then).

    Range ``t``'s running sums are ``P + s`` for ``s`` in ``[bottom, top]``
    and ``P`` the exact sum of the earlier ranges, so SQLite's running sum
    overflows in the range exactly when ``P + top > MAX`` or
    ``P + bottom < MIN``: then None (the one-thread pass gives SQLite's
    state, and ``sum`` fails over to SQLite's own error). The double sum
    SQLite adds in row order equals the integer sum when no value and no
    running sum exceeds 2**53 in magnitude (every addition exact); else None.
    """
    isum = np.zeros_like(parts[0][0])
    cnt = np.zeros_like(parts[0][1])
    for psum, pcnt, top, bottom, wrapped, big in parts:
        if wrapped.any() or big.any():
            return None
        up = np.maximum(isum, 0)
        down = np.minimum(isum, 0)
        if ((top > _I64_MAX - up) | (bottom < _I64_MIN - down)).any():
            return None
        if ((isum + top > _EXACT) | (isum + bottom < -_EXACT)).any():
            return None
        isum = isum + psum
        cnt += pcnt
    return isum, isum.astype(np.float64), cnt, np.zeros(len(isum), np.uint8)
