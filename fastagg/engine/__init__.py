"""Execution engines beside SQLite's own VM: :mod:`.split` rewrites a grouped statement, :mod:`.parallel` runs it on threads."""
