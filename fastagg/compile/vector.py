"""Growable array fields of an aggregate's state: ``fastagg.vector(dtype)``.

In the state record a vector is a nested record of three integers: the
address of its elements, their count and the allocated capacity. Compiled
code allocates and grows the elements with SQLite's allocator
(``sqlite3_realloc64``) and frees them after ``finalize``; SQLite calls
``finalize`` for every aggregate context it created, also when a statement
is reset or fails part-way, so no vector outlives its group.

In plain Python (a decorated class used directly) the field is a
:class:`Vector`, which has the same methods.
"""

from __future__ import annotations

import dataclasses

import numpy as np

__all__ = ["Vector", "VectorField", "vector", "vector_dtype", "vector_element"]

_PREFIX = "vec_data_"


@dataclasses.dataclass(frozen=True)
class VectorField:
    """Annotation marker for a growable array field; see :func:`vector`."""

    dtype: np.dtype


def vector(dtype) -> VectorField:
    """Declare a growable array field of an aggregate's state.

    The field supports ``append(x)``, ``extend(array)``, ``remove(x)``
    (removes one equal element, not keeping order; returns whether one was
    found), ``clear()``, ``len(v)``, ``v[i]`` and ``as_array()``, a numpy array
    over the elements that is valid until the next call that grows the
    vector. Its memory is freed after ``finalize``.

    Parameters
    ----------
    dtype : numeric numpy dtype or scalar type of the elements.

    Examples
    --------
    >>> import numpy as np, fastagg
    >>> @fastagg.aggregate
    ... class Median:
    ...     values: fastagg.vector(np.float64)
    ...     def step(self, x: float):
    ...         self.values.append(x)
    ...     def finalize(self) -> float | None:
    ...         return float(np.median(self.values.as_array())) if len(self.values) else None
    >>> m = Median(); m.step(3.0); m.step(1.0); m.step(2.0); m.finalize()
    2.0
    """
    dt = np.dtype(dtype)
    if dt.kind not in "biuf" or dt.itemsize > 8:
        from ..errors import CompileError

        raise CompileError(f"fastagg.vector elements must be numeric or bool, got {dt}")
    return VectorField(dt)


def vector_dtype(element: np.dtype) -> np.dtype:
    """Return the nested record dtype that stores a vector of *element*."""
    return np.dtype(
        [(_PREFIX + np.dtype(element).name, np.intp), ("vec_size", np.int64), ("vec_capacity", np.int64)]
    )


def vector_element(dtype: np.dtype) -> np.dtype | None:
    """Return the element dtype if *dtype* is a vector record, else None."""
    names = dtype.names
    if names and len(names) == 3 and names[0].startswith(_PREFIX) and names[1:] == ("vec_size", "vec_capacity"):
        return np.dtype(names[0][len(_PREFIX) :])
    return None


class Vector:
    """Plain-Python stand-in for a vector field, with the compiled methods."""

    __slots__ = ("_data", "_size")

    def __init__(self, dtype):
        self._data = np.empty(16, dtype)
        self._size = 0

    def append(self, x) -> None:
        """Add *x* at the end."""
        if self._size == len(self._data):
            self._data = np.resize(self._data, 2 * len(self._data))
        self._data[self._size] = x
        self._size += 1

    def extend(self, values) -> None:
        """Add every element of *values* at the end."""
        for x in np.asarray(values).ravel():
            self.append(x)

    def remove(self, x) -> bool:
        """Remove one element equal to *x* (the last takes its place)."""
        for i in range(self._size):
            if self._data[i] == x:
                self._size -= 1
                self._data[i] = self._data[self._size]
                return True
        return False

    def clear(self) -> None:
        """Remove every element."""
        self._size = 0

    def as_array(self) -> np.ndarray:
        """Return a numpy array over the elements (valid until the vector grows)."""
        return self._data[: self._size]

    def __len__(self) -> int:
        return self._size

    def __getitem__(self, i):
        return self.as_array()[i]

    def __repr__(self) -> str:
        return f"Vector({self.as_array().tolist()!r})"
