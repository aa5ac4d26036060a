"""Aggregate classes to native SQLite callbacks.

:mod:`.spec` and :mod:`.vector` describe a class and import no numba;
:mod:`.codegen` generates the callbacks' source (no numba either);
:mod:`.cache` compiles it (``compile_spec``; numba loads there), with
:mod:`.trap` for user errors and :mod:`.vector_ops` for vector fields.
"""
