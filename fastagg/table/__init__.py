"""The virtual-table stage: DataFrames and Arrow tables as SQLite tables.

Importing this package imports numba; :mod:`fastagg.database` imports it
only when a frame is first registered.
"""

from .frame_table import (
    Column,
    Registration,
    frame_columns,
    load_frame,
    register_frame,
    release_pending,
    unregister_frame,
)

__all__ = [
    "Column",
    "Registration",
    "frame_columns",
    "load_frame",
    "register_frame",
    "release_pending",
    "unregister_frame",
]
