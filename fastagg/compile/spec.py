"""Describe a decorated class: its state dtype, SQL arguments and result.

This stage only reads the class (annotations, method signatures); it needs
numpy but not numba, so decorating a class is cheap and ``import fastagg``
compiles nothing. :mod:`fastagg.compile.codegen` and :mod:`fastagg.compile.cache`
turn the description into native callbacks the first time the aggregate is
registered.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import sys
import types as pytypes
import typing
from typing import Any

import numpy as np

from .value import Value, ValueSlot, is_value_record, value_dtype
from .vector import Vector, VectorField, vector_dtype, vector_element
from ..errors import CompileError, Error

# Python annotation -> (kind, numpy dtype used in compiled code)
_SCALAR_KINDS = {
    float: ("float", np.dtype(np.float64)),
    int: ("int", np.dtype(np.int64)),
    bool: ("bool", np.dtype(np.bool_)),
    str: ("str", None),
    bytes: ("bytes", None),
}

ARGUMENT_HINT = "use float, int, str, bytes, bool, fastagg.Value or a numpy scalar type, optionally `| None`"
STATE_HINT = (
    "use a numpy scalar type (np.float64, np.int32, ...), float, int, bool, "
    "fastagg.array(dtype, shape) for a fixed-size array, fastagg.vector(dtype) "
    "for a growable one, or fastagg.Value for one any-typed SQL value"
)


@dataclasses.dataclass(frozen=True)
class ValueSpec:
    """One SQL argument or result: its kind, numpy dtype and NULL handling."""

    name: str
    kind: str  # "float", "int", "bool", "str", "bytes", "value" (fastagg.Value)
    dtype: np.dtype | None  # the numeric dtype user code sees (None for str/bytes/value)
    optional: bool  # receives/returns None for SQL NULL


@dataclasses.dataclass(frozen=True)
class ArrayField:
    """Annotation marker for a fixed-size array field of the state record."""

    dtype: np.dtype
    shape: tuple[int, ...]

    def as_field(self) -> tuple:
        return (self.dtype, self.shape)


def array(dtype: Any, shape: int | tuple[int, ...]) -> ArrayField:
    """Declare a fixed-size array field of an aggregate's state.

    Parameters
    ----------
    dtype : numpy dtype or scalar type of the elements.
    shape : int or tuple of ints, the array's shape.

    Examples
    --------
    >>> import numpy as np, fastagg
    >>> @fastagg.aggregate
    ... class Hist:
    ...     counts: fastagg.array(np.int64, 8)
    ...     def step(self, x: int):
    ...         self.counts[min(max(x, 0), 7)] += 1
    ...     def finalize(self) -> int:
    ...         return int(self.counts.argmax())
    """
    shape = _array_shape(shape)
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise CompileError(f"fastagg.array dtype {dtype!r} is not a numpy dtype: {exc}") from None
    if dt.kind not in "biuf":
        raise CompileError(f"fastagg.array elements must be numeric or bool, got {dt}")
    nbytes = dt.itemsize * int(np.prod(shape, dtype=object))
    if nbytes > MAX_STATE_BYTES:
        raise CompileError(
            f"fastagg.array({dt}, {shape if len(shape) > 1 else shape[0]}) is {nbytes:,} bytes; "
            f"a state lives in one SQLite allocation of at most {MAX_STATE_BYTES:,} bytes "
            f"(per group). Use fastagg.vector(dtype) for storage that grows as needed"
        )
    return ArrayField(dt, shape)


#: SQLite's largest allocation (SQLITE_MAX_ALLOCATION_SIZE), which holds a
#: whole state record (and the byte that records __init__) per aggregate context.
MAX_STATE_BYTES = 2147483391 - 1

#: SQLite refuses function names longer than 255 bytes (sqlite3_create_function).
MAX_NAME_BYTES = 255


def _array_shape(shape) -> tuple[int, ...]:
    """Validate a ``fastagg.array`` shape: positive ints, not floats (``3e8``) or bools."""
    items = shape if isinstance(shape, (tuple, list)) else (shape,)
    out = []
    for n in items:
        if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)):
            raise CompileError(
                f"fastagg.array shape must be positive integers, got {shape!r} "
                f"({type(n).__name__} {n!r}); write an int, such as {_int_hint(n)}"
            )
        out.append(int(n))
    if not out or any(n <= 0 for n in out):
        raise CompileError(f"fastagg.array shape must be positive integers, got {shape!r}")
    return tuple(out)


def _int_hint(n) -> str:
    try:
        if float(n).is_integer():
            return f"{int(float(n)):_}"
    except (TypeError, ValueError, OverflowError):
        pass
    return "8 or (4, 4)"


class _SQLFunction:
    """What both kinds of spec share: a SQL name taking ``args``."""

    @property
    def narg(self) -> int:
        """Number of SQL arguments."""
        return len(self.args)


@dataclasses.dataclass(frozen=True)
class AggregateSpec(_SQLFunction):
    """Everything fastagg knows about a decorated aggregate class."""

    cls: type
    name: str  # SQL name
    state: np.dtype
    init: Any  # user __init__ or None
    step: Any
    finalize: Any
    value: Any  # None: use finalize
    inverse: Any  # None: not a window function
    merge: Any  # None: partial states cannot be combined
    args: tuple[ValueSpec, ...]
    result: ValueSpec

    @property
    def qualname(self) -> str:
        return self.cls.__qualname__

    @property
    def is_mergeable(self) -> bool:
        return self.merge is not None

    @property
    def partial_names(self) -> tuple[str, str, str]:
        """SQL names of the partial-state functions: (partial, combine, merge)."""
        return (f"{self.name}_partial", f"{self.name}_combine", f"{self.name}_merge")

    def layout_hash(self) -> int:
        """Return a 63-bit hash of the state layout, stamped on serialised states."""
        digest = hashlib.sha256(repr((self.name.lower(), self.state.descr)).encode()).digest()
        return int.from_bytes(digest[:8], "little") >> 1

    @property
    def vector_fields(self) -> tuple[str, ...]:
        """Paths of the growable (``fastagg.vector``) fields of the state.

        A ``fastagg.Value`` field ``x`` keeps its bytes in the vector ``x.bytes``.
        """
        out = []
        for n in self.state.names:
            base = self.state.fields[n][0]
            if vector_element(base) is not None:
                out.append(n)
            elif is_value_record(base):
                out.append(f"{n}.bytes")
        return tuple(out)

    @property
    def is_window(self) -> bool:
        return self.inverse is not None

    def fingerprint(self) -> str:
        """Return a hash of everything the compiled code depends on."""
        h = hashlib.sha256()
        h.update(repr((self.name, self.state.descr, self.args, self.result)).encode())
        for fn in (self.init, self.step, self.finalize, self.value, self.inverse, self.merge):
            h.update(_code_fingerprint(fn).encode())
        return h.hexdigest()[:24]


@dataclasses.dataclass(frozen=True)
class FunctionSpec(_SQLFunction):
    """Everything fastagg knows about a decorated scalar function."""

    func: Any
    name: str  # SQL name
    args: tuple[ValueSpec, ...]
    result: ValueSpec
    deterministic: bool

    @property
    def qualname(self) -> str:
        return self.func.__qualname__

    def fingerprint(self) -> str:
        """Return a hash of everything the compiled code depends on."""
        h = hashlib.sha256()
        h.update(repr((self.name, self.args, self.result, self.deterministic)).encode())
        h.update(_code_fingerprint(self.func).encode())
        return h.hexdigest()[:24]


def _code_fingerprint(fn, seen: set | None = None) -> str:
    """Fingerprint *fn*'s code and what it depends on: constants and called functions.

    Functions (plain or numba-jitted) that *fn* calls through its globals are
    compiled into the same machine code, so a change to them must change the
    fingerprint too; simple global constants are frozen into the code.
    """
    if fn is None:
        return "-"
    seen = set() if seen is None else seen
    if id(fn) in seen:
        return "<recursive>"
    seen.add(id(fn))
    code = fn.__code__
    # The module too: numba's cached code refers to its functions' modules.
    parts = [str(getattr(fn, "__module__", None)), code.co_code.hex(), repr(code.co_names), repr(code.co_varnames)]
    for const in code.co_consts:
        parts.append(
            _code_fingerprint(pytypes.FunctionType(const, {}), seen)
            if isinstance(const, pytypes.CodeType)
            else repr(const)
        )
    for name in code.co_names:
        value = getattr(fn, "__globals__", {}).get(name)
        if isinstance(value, (int, float, str, bool, tuple)):
            parts.append(f"{name}={value!r}")
        else:
            callee = getattr(value, "py_func", value)  # numba dispatchers wrap py_func
            if inspect.isfunction(callee):
                parts.append(f"{name}:{_code_fingerprint(callee, seen)}")
    return "|".join(parts)


def _resolve_hints(obj, namespace: dict | None = None) -> dict[str, Any]:
    """Return *obj*'s annotations with strings (PEP 563) evaluated where possible.

    *namespace* is the scope the class was defined in, so that annotations
    naming local variables resolve too.
    """
    try:
        return typing.get_type_hints(obj, localns=namespace)
    except Exception:
        pass
    module = sys.modules.get(getattr(obj, "__module__", None) or "")
    scope = {**(vars(module) if module else {}), **(namespace or {})}
    raw = {}
    for klass in reversed(getattr(obj, "__mro__", [obj])):
        raw.update(getattr(klass, "__annotations__", {}) if klass is not object else {})
    hints = {}
    for key, value in raw.items():
        if isinstance(value, str):
            try:
                value = eval(value, scope)  # noqa: S307 - the user's own annotation
            except Exception:
                pass
        hints[key] = value
    return hints


def _split_optional(annotation) -> tuple[Any, bool]:
    """Return (inner type, is_optional) for ``T | None`` / ``Optional[T]``."""
    origin = typing.get_origin(annotation)
    if origin is typing.Union or (
        hasattr(pytypes, "UnionType") and isinstance(annotation, pytypes.UnionType)
    ):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(members) == 1 and len(typing.get_args(annotation)) == 2:
            return members[0], True
        return annotation, False
    return annotation, False


def _value_kind(annotation) -> tuple[str, np.dtype | None] | None:
    if annotation is Value:
        return "value", None
    if annotation in _SCALAR_KINDS:
        return _SCALAR_KINDS[annotation]
    try:
        is_numpy_scalar = isinstance(annotation, type) and issubclass(annotation, np.generic)
    except TypeError:
        is_numpy_scalar = False
    if is_numpy_scalar:
        dt = np.dtype(annotation)
        if dt.kind == "f" and dt.itemsize in (4, 8):
            return "float", dt
        if dt.kind in "iu" and dt.itemsize <= 8:
            return "int", dt
        if dt.kind == "b":
            return "bool", dt
        if dt.kind == "U":
            return "str", None
        if dt.kind == "S":
            return "bytes", None
    return None


def _describe_value(owner: str, name: str, annotation, *, is_result: bool) -> ValueSpec:
    if annotation is inspect.Parameter.empty:
        what = "the result" if is_result else f"argument {name!r}"
        raise CompileError(
            f"{owner}: {what} has no annotation; {ARGUMENT_HINT}"
        )
    inner, optional = _split_optional(annotation)
    kind = _value_kind(inner)
    if kind is None:
        what = "the result" if is_result else f"argument {name!r}"
        raise CompileError(
            f"{owner}: {what} is annotated {_type_name(annotation)}; {ARGUMENT_HINT}"
        )
    return ValueSpec(name, kind[0], kind[1], optional)


def _type_name(annotation) -> str:
    if isinstance(annotation, type):
        return annotation.__name__
    return repr(annotation)


def _state_field(owner: str, name: str, annotation):
    if annotation is Value:
        return (name, value_dtype())
    if isinstance(annotation, VectorField):
        return (name, vector_dtype(annotation.dtype))
    if isinstance(annotation, ArrayField):
        return (name, annotation.dtype, annotation.shape)
    if isinstance(annotation, np.dtype):
        if annotation.subdtype is not None:
            base, shape = annotation.subdtype
            return (name, base, shape)
        annotation = annotation.type
    kind = _value_kind(annotation)
    if kind is None or kind[1] is None:
        raise CompileError(
            f"{owner}: state field {name!r} is annotated {_type_name(annotation)}; {STATE_HINT}"
        )
    return (name, kind[1])


def _check_state_dtype(owner: str, dtype: np.dtype) -> np.dtype:
    if dtype.names is None or not dtype.names:
        raise CompileError(
            f"{owner}: state must be a structured dtype with named fields, got {dtype}"
        )
    for field in dtype.names:
        base = dtype.fields[field][0]
        if vector_element(base) is not None or is_value_record(base):
            continue
        base = base.subdtype[0] if base.subdtype else base
        if base.kind not in "biuf" or base.itemsize > 8:
            raise CompileError(
                f"{owner}: state field {field!r} has dtype {base}; {STATE_HINT}"
            )
    _check_state_size(owner, dtype.itemsize)
    return dtype


def _check_state_size(owner: str, nbytes: int) -> None:
    # numpy's record size can wrap negative past 2**31: callers add up fields too.
    if nbytes <= 0 or nbytes > MAX_STATE_BYTES:
        raise CompileError(
            f"{owner}: the state record is {nbytes:,} bytes; SQLite allocates it whole, at "
            f"most {MAX_STATE_BYTES:,} bytes per group. Use fastagg.vector(dtype) for "
            f"storage that grows as needed"
        )


def _state_dtype(cls, state, namespace=None) -> np.dtype:
    owner = cls.__qualname__
    if state is not None:
        try:
            dtype = np.dtype(state)
        except TypeError as exc:
            raise CompileError(f"{owner}: state= is not a numpy dtype: {exc}") from None
        return _check_state_dtype(owner, dtype)
    hints = _resolve_hints(cls, namespace)
    if not hints:
        raise CompileError(
            f"{owner}: no state fields; annotate them on the class "
            f"(`total: np.float64`) or pass state=np.dtype([...])"
        )
    fields = [_state_field(owner, name, ann) for name, ann in hints.items()]
    _check_state_size(owner, sum(np.dtype(f[1]).itemsize * int(np.prod(f[2:], dtype=object)) for f in fields))
    # align=True: fields at their natural alignment, as C would lay them out.
    return _check_state_dtype(owner, np.dtype(fields, align=True))


def _method(cls, name: str, required: bool):
    fn = cls.__dict__.get(name)
    if fn is None:
        for base in cls.__mro__[1:]:
            if base is object:
                break
            fn = base.__dict__.get(name)
            if fn is not None:
                break
    if fn is None:
        if required:
            raise CompileError(
                f"{cls.__qualname__}: missing method {name}(self{', ...' if name in ('step', 'inverse') else ''}); "
                f"an aggregate needs step and finalize"
            )
        return None
    if isinstance(fn, (staticmethod, classmethod)) or not inspect.isfunction(fn):
        raise CompileError(
            f"{cls.__qualname__}.{name} must be a plain method (def {name}(self, ...))"
        )
    return fn


def _parameters(owner: str, fn) -> list[inspect.Parameter]:
    params = list(inspect.signature(fn).parameters.values())
    if not params or params[0].kind not in (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
    ):
        raise CompileError(f"{owner}: the first parameter must be self")
    for p in params[1:]:
        if p.kind not in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD):
            raise CompileError(
                f"{owner}: parameter {p.name!r} is {p.kind.description}; "
                f"use plain positional parameters"
            )
        if p.default is not inspect.Parameter.empty:
            raise CompileError(f"{owner}: parameter {p.name!r} has a default; SQL arity is fixed")
    return params[1:]


def describe(cls: type, *, name: str | None = None, state=None, namespace: dict | None = None) -> AggregateSpec:
    """Validate *cls* as an aggregate and return its :class:`AggregateSpec`."""
    if not isinstance(cls, type):
        raise CompileError(f"@fastagg.aggregate decorates a class, got {type(cls).__name__}")
    owner = cls.__qualname__
    sql_name = name if name is not None else cls.__name__
    if not isinstance(sql_name, str) or not sql_name.isidentifier():
        raise CompileError(f"{owner}: SQL name {sql_name!r} is not a valid identifier")

    dtype = _state_dtype(cls, state, namespace)
    init = _method(cls, "__init__", required=False)
    if init is not None and hasattr(init, "__fastagg_user_init__"):
        init = init.__fastagg_user_init__  # the class was decorated before
    step = _method(cls, "step", required=True)
    finalize = _method(cls, "finalize", required=True)
    value = _method(cls, "value", required=False)
    inverse = _method(cls, "inverse", required=False)
    merge = _method(cls, "merge", required=False)
    if merge is not None and len(_parameters(f"{owner}.merge", merge)) != 1:
        raise CompileError(
            f"{owner}.merge must take (self, other): other is a second state to fold into self"
        )
    if value is not None and inverse is None:
        raise CompileError(
            f"{owner}: value() is for window functions and needs inverse(self, ...) too"
        )
    _check_name_length(owner, sql_name, "_partial" if merge is not None else "")

    if init is not None and _parameters(f"{owner}.__init__", init):
        raise CompileError(f"{owner}.__init__ must take only self: SQL gives it no arguments")
    step_params = _parameters(f"{owner}.step", step)
    hints = _resolve_hints(step, namespace)
    args = tuple(
        _describe_value(f"{owner}.step", p.name, hints.get(p.name, p.annotation), is_result=False)
        for p in step_params
    )
    if len(args) > 127:
        raise CompileError(f"{owner}.step takes {len(args)} arguments; SQLite allows 127")

    if inverse is not None:
        inv_params = _parameters(f"{owner}.inverse", inverse)
        if len(inv_params) != len(step_params):
            raise CompileError(
                f"{owner}.inverse takes {len(inv_params)} argument(s) but step takes "
                f"{len(step_params)}; inverse removes a row that step added, so give it "
                f"the same parameters"
            )
    for method_name, fn in (("finalize", finalize), ("value", value)):
        if fn is not None and _parameters(f"{owner}.{method_name}", fn):
            raise CompileError(f"{owner}.{method_name} must take only self")

    result_hint = _resolve_hints(finalize, namespace).get("return", inspect.signature(finalize).return_annotation)
    result = _describe_value(f"{owner}.finalize", "return", result_hint, is_result=True)

    return AggregateSpec(
        cls=cls,
        name=sql_name,
        state=dtype,
        init=init,
        step=step,
        finalize=finalize,
        value=value,
        inverse=inverse,
        merge=merge,
        args=args,
        result=result,
    )


def _check_name_length(owner: str, sql_name: str, longest_suffix: str) -> None:
    """Refuse a SQL name SQLite would refuse: over 255 bytes (with ``_partial`` if mergeable)."""
    if len((sql_name + longest_suffix).encode("utf-8")) <= MAX_NAME_BYTES:
        return
    limit = MAX_NAME_BYTES - len(longest_suffix)
    why = f" ({limit} with merge, for {sql_name[:8]}...{longest_suffix})" if longest_suffix else ""
    owner = owner if len(owner) <= 60 else owner[:40] + "..."
    raise CompileError(
        f"{owner}: SQL name {sql_name[:16]}... is {len(sql_name.encode('utf-8'))} bytes long; "
        f"SQLite allows function names of at most {MAX_NAME_BYTES} bytes{why}. "
        f"Give a shorter one with name=..."
    )


SPEC_ATTRIBUTE = "__fastagg_spec__"


def _check_not_decorated(target, spec) -> None:
    """Refuse a second decoration of one class or function under another SQL name.

    The spec lives on the object, so the second would silently replace the
    first: queries naming the first would find no such function.
    """
    previous = vars(target).get(SPEC_ATTRIBUTE)
    if previous is not None and previous.name.lower() != spec.name.lower():
        kind = "class" if isinstance(target, type) else "function"
        raise CompileError(
            f"{spec.qualname} is already decorated as SQL function {previous.name!r}; one "
            f"{kind} holds one SQL function, so it cannot also be {spec.name!r}. "
            + (
                f"Decorate a subclass for the second name (class Other({target.__name__}): pass)"
                if kind == "class"
                else "Decorate a second def (or a wrapper that calls this one) for the second name"
            )
        )


def check_distinct_names(specs) -> None:
    """Raise :class:`fastagg.Error` if two of *specs* would create the same SQL function.

    SQLite keys a function by name (case-insensitive) and argument count; the
    second registration would silently replace the first. The helper
    functions of a mergeable aggregate (``f_partial``, ...) count too.
    """
    seen: dict[tuple[str, int], AggregateSpec | FunctionSpec] = {}
    for spec in specs:
        created = [(spec.name, spec.narg)]
        if isinstance(spec, AggregateSpec) and spec.is_mergeable:
            partial, combine, merge = spec.partial_names
            created += [(partial, spec.narg), (combine, 1), (merge, 1)]
        for name, narg in created:
            other = seen.setdefault((name.lower(), narg), spec)
            if other is not spec and other != spec:  # one spec given twice is one function
                raise Error(
                    f"{other.qualname} and {spec.qualname} both define SQL function "
                    f"{name!r} with {narg} argument(s); the second would silently replace "
                    f"the first. Give one of them another name (name=...)"
                )


def _caller_namespace() -> dict:
    """Return the names visible where the decorator is applied (two frames up).

    String annotations may name variables local to that scope.
    """
    caller = sys._getframe(2)
    try:
        return {**caller.f_globals, **caller.f_locals}
    finally:
        del caller  # a frame reference would keep every local alive


def aggregate(cls=None, *, name: str | None = None, state=None):
    """Declare a class as a SQL aggregate function compiled by numba.

    Use as ``@fastagg.aggregate`` or ``@fastagg.aggregate(name="wavg",
    state=np.dtype([...]))``. Annotated class fields form the state record;
    ``step(self, ...)`` takes annotated SQL arguments and ``finalize(self)``
    returns the result. ``inverse`` (and optionally ``value``) make it a
    window function. The class is validated now and compiled at its first
    registration; it stays an ordinary Python class, whose instances start
    with every state field zeroed, as the compiled state does.

    Raises
    ------
    fastagg.CompileError
        The class cannot become an aggregate; the message says what to fix.

    Examples
    --------
    >>> import fastagg
    >>> @fastagg.aggregate(name="mysum")
    ... class MySum:
    ...     total: float
    ...     def step(self, x: float):
    ...         self.total += x
    ...     def finalize(self) -> float:
    ...         return self.total
    >>> s = MySum(); s.step(2.0); s.step(3.0); s.finalize()
    5.0
    """
    namespace = _caller_namespace()

    def decorate(target):
        spec = describe(target, name=name, state=state, namespace=namespace)
        _check_not_decorated(target, spec)
        _install_python_init(target, spec)
        setattr(target, SPEC_ATTRIBUTE, spec)
        return target

    return decorate if cls is None else decorate(cls)


def _zero(field_dtype: np.dtype):
    if is_value_record(field_dtype):
        return ValueSlot()
    element = vector_element(field_dtype)
    if element is not None:
        return Vector(element)
    if field_dtype.shape:
        return np.zeros(field_dtype.shape, field_dtype.base)
    # Python scalars, not numpy ones: float division by zero must raise as
    # it does in compiled code, not warn and return inf.
    return {"f": 0.0, "b": False}.get(field_dtype.kind, 0)


def _install_python_init(cls, spec: AggregateSpec) -> None:
    user_init = spec.init
    fields = [(name, spec.state.fields[name][0]) for name in spec.state.names]

    def __init__(self):
        for field, field_dtype in fields:
            setattr(self, field, _zero(field_dtype))
        if user_init is not None:
            user_init(self)

    __init__.__fastagg_user_init__ = user_init
    __init__.__doc__ = f"Start a {cls.__qualname__} state: fields zeroed, then the class's own __init__."
    __init__.__qualname__ = f"{cls.__qualname__}.__init__"
    cls.__init__ = __init__


def spec_of(obj) -> AggregateSpec | FunctionSpec:
    """Return the spec of a decorated class or function, else raise CompileError."""
    if isinstance(obj, type):
        spec = obj.__dict__.get(SPEC_ATTRIBUTE)
    else:
        spec = getattr(obj, SPEC_ATTRIBUTE, None) if inspect.isfunction(obj) else None
    if spec is None:
        what = getattr(obj, "__qualname__", None) or repr(obj)
        raise CompileError(
            f"{what} is not a fastagg aggregate or function; decorate the class with "
            f"@fastagg.aggregate (or the function with @fastagg.function)"
        )
    return spec


def describe_function(
    func, *, name: str | None = None, deterministic: bool = True, namespace: dict | None = None
) -> FunctionSpec:
    """Validate *func* as a scalar SQL function and return its :class:`FunctionSpec`."""
    if not inspect.isfunction(func):
        raise CompileError(f"@fastagg.function decorates a function, got {type(func).__name__}")
    owner = func.__qualname__
    sql_name = name if name is not None else func.__name__
    if not isinstance(sql_name, str) or not sql_name.isidentifier():
        raise CompileError(f"{owner}: SQL name {sql_name!r} is not a valid identifier")
    _check_name_length(owner, sql_name, "")
    params = list(inspect.signature(func).parameters.values())
    hints = _resolve_hints(func, namespace)
    for p in params:
        if p.kind not in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD):
            raise CompileError(f"{owner}: parameter {p.name!r} is {p.kind.description}; use plain positional parameters")
        if p.default is not inspect.Parameter.empty:
            raise CompileError(f"{owner}: parameter {p.name!r} has a default; SQL arity is fixed")
    args = tuple(
        _describe_value(owner, p.name, hints.get(p.name, p.annotation), is_result=False) for p in params
    )
    if len(args) > 127:
        raise CompileError(f"{owner} takes {len(args)} arguments; SQLite allows 127")
    result_hint = hints.get("return", inspect.signature(func).return_annotation)
    result = _describe_value(owner, "return", result_hint, is_result=True)
    return FunctionSpec(func, sql_name, args, result, bool(deterministic))


def function(func=None, *, name: str | None = None, deterministic: bool = True):
    """Declare a Python function as a scalar SQL function compiled by numba.

    Arguments and result are annotated like an aggregate's. A NULL in a
    non-optional argument makes the result NULL without calling the function
    (SQL's usual rule); ``T | None`` arguments receive None. With
    ``deterministic=True`` (the default) SQLite may use the function in
    indexes and fold calls with constant arguments. The function stays
    callable from Python.

    Examples
    --------
    >>> import fastagg
    >>> @fastagg.function
    ... def clamp(x: float, lo: float, hi: float) -> float:
    ...     return min(max(x, lo), hi)
    >>> clamp(5.0, 0.0, 1.0)
    1.0
    """
    namespace = _caller_namespace()

    def decorate(target):
        spec = describe_function(target, name=name, deterministic=deterministic, namespace=namespace)
        _check_not_decorated(target, spec)
        setattr(target, SPEC_ATTRIBUTE, spec)
        return target

    return decorate if func is None else decorate(func)
