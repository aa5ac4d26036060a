"""The virtual-table stage: DataFrames and Arrow tables as SQLite tables.

One module per job:

``columns``       frame / Arrow / pandas -> :class:`Column` (buffer addresses), dtype checks
``values``        reading one value per column kind; the one value -> SQLite dispatch
``ordering``      ORDER BY / GROUP BY as dense ranks and counting sorts
``filtering``     pushed-down WHERE comparisons
``index``         indexes (sorted row permutations) probed by joins, IN, ranges, ORDER BY
``plan``          the xBestIndex -> xFilter plan (idxStr), encoded and decoded
``gather``        ordered cursors' chunked gather of the used columns
``module``        the x* callbacks (numba cfuncs)
``callbacks``     the ``sqlite3_module``, its callbacks from a native image when cached
``registration``  :func:`register_frame`, :class:`Registration`, lifetimes
``load``          :func:`load_frame`

Importing this package does not import numba: registering a frame loads
the callbacks from a native image when one is cached; :func:`load_frame`
(whose loop is compiled by numba) is imported on first use.
"""

from .columns import Column, frame_columns
from .registration import Registration, register_frame, release_pending, unregister_frame

__all__ = [
    "Column",
    "Registration",
    "frame_columns",
    "load_frame",
    "register_frame",
    "release_pending",
    "unregister_frame",
]


def __getattr__(name):
    # load_frame's module imports numba; only a bulk load needs it.
    if name == "load_frame":
        from .load import load_frame

        return load_frame
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
