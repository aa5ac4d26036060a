"""The virtual-table stage: DataFrames and Arrow tables as SQLite tables.

One module per job:

``columns``       frame / Arrow / pandas -> :class:`Column` (buffer addresses), dtype checks
``values``        reading one value per column kind; the one value -> SQLite dispatch
``ordering``      ORDER BY / GROUP BY as dense ranks and counting sorts
``filtering``     pushed-down WHERE comparisons
``index``         indexes (sorted row permutations) probed by joins, IN, ranges, ORDER BY
``plan``          the xBestIndex -> xFilter plan (idxStr), encoded and decoded
``gather``        ordered cursors' chunked gather of the used columns
``module``        the x* callbacks and the ``sqlite3_module``
``registration``  :func:`register_frame`, :class:`Registration`, lifetimes
``load``          :func:`load_frame`

Importing this package imports numba; :mod:`fastagg.database` imports it
only when a frame is first registered.
"""

from .columns import Column, frame_columns
from .load import load_frame
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
