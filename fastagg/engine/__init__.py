"""Execution engines beside SQLite's own VM: the parallel split and merge."""
