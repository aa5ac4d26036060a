"""Aggregate classes to native SQLite callbacks.

:mod:`.spec` and :mod:`.vector` import no numba; :mod:`.codegen` does.
"""
