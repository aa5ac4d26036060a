"""``fastagg.Value``: the annotation for any-typed SQL values (no numba).

An argument, a result or a state field annotated ``fastagg.Value`` holds a
SQL value with its own type (NULL, integer, real, text or blob). In the
state record a Value field is a nested record: SQLite's type code, the
number, and the text or blob bytes in a growable vector the state owns
(freed after ``finalize``, serialised with partial states like any
``fastagg.vector``). Compiled code works on it through the methods of
:class:`ValueSlot`; :mod:`fastagg.native.anyvalue` has the compiled side.
"""

from __future__ import annotations

import numpy as np

from .vector import vector_dtype

__all__ = ["Value", "ValueSlot", "VALUE_FIELD_NAMES", "value_dtype", "is_value_record"]

_TAG = "anyvalue_tag"
VALUE_FIELD_NAMES = (_TAG, "anyvalue_ival", "anyvalue_fval", "bytes")


class Value:
    """Annotation for an any-typed SQL value: NULL, integer, real, text or blob.

    As a ``step`` argument it receives SQLite's value as it is (rows where
    it is NULL are skipped, unless annotated ``fastagg.Value | None``, which
    receives NULL as a NULL value); as the result (``-> fastagg.Value``) it
    is returned with its own type; as a state field it stores one value,
    text and blobs copied into memory the state owns. Values compare by
    SQLite's rules: NULL < numbers < text < blob, integers and reals by
    numeric value (1 = 1.0), text and blobs by their bytes.

    In plain Python (the decorated class used directly) a value is the
    Python object itself (None, int, float, str or bytes), and a state
    field is a :class:`ValueSlot` with the compiled field's methods.

    Examples
    --------
    >>> import fastagg
    >>> @fastagg.aggregate
    ... class FirstNonNull:
    ...     first: fastagg.Value
    ...     def step(self, x: fastagg.Value):  # NULL rows are skipped
    ...         if self.first.is_null():
    ...             self.first.set(x)
    ...     def finalize(self) -> fastagg.Value:
    ...         return self.first.get()
    >>> s = FirstNonNull(); s.step("b"); s.step(2); s.finalize()
    'b'
    """

    __slots__ = ()

    def __new__(cls, *args, **kwargs):
        raise TypeError("fastagg.Value is an annotation; in Python a value is the object itself")


class ValueSlot:
    """Plain-Python stand-in for a Value state field, with the compiled methods."""

    __slots__ = ("_value",)

    def __init__(self):
        self._value = None

    def set(self, x) -> None:
        """Store value *x* (text and blobs are copied)."""
        if x is not None and not isinstance(x, (int, float, str, bytes)):
            raise TypeError(f"fastagg.Value: {type(x).__name__} is not a SQL value (None, int, float, str, bytes)")
        self._value = x

    def get(self):
        """Return the stored value (None until set)."""
        return self._value

    def is_null(self) -> bool:
        """Return whether the stored value is NULL (nothing stored yet, or a NULL)."""
        return self._value is None

    def __repr__(self) -> str:
        return f"ValueSlot({self._value!r})"


def value_dtype() -> np.dtype:
    """Return the nested record dtype of a Value state field."""
    return np.dtype(
        [(_TAG, np.int64), ("anyvalue_ival", np.int64), ("anyvalue_fval", np.float64), ("bytes", vector_dtype(np.uint8))]
    )


def is_value_record(dtype: np.dtype) -> bool:
    """Return whether *dtype* is a Value field's record."""
    return dtype.names == VALUE_FIELD_NAMES
