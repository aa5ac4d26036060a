"""The SQLite layer: the C API of the library Python's sqlite3 module loaded.

:mod:`.capi` (ctypes bindings, no numba), :mod:`.declarations` (the same
functions for compiled code), :mod:`.codes` (result codes -> exceptions).
"""
