"""``DataFrame.sqlagg``: the one import side effect of fastagg, labelled here.

``df.sqlagg(sql, aggregates=[...])`` is ``fastagg.query(df, sql, aggregates=[...])``.

``import fastagg`` does not import pandas. The accessor is registered

* at ``import fastagg`` if pandas is already imported (``sys.modules``, as
  narwhals checks), and otherwise
* right after pandas is imported, by a one-shot import hook
  (:class:`_PandasImportHook`, on ``sys.meta_path`` until pandas loads):
  ``import fastagg; import pandas`` gives frames the accessor too, without
  fastagg importing pandas itself.

Registering on the first ``fastagg.query`` instead would leave ``df.sqlagg``
missing until then; a module ``__getattr__`` is never consulted for an
attribute of a DataFrame. The hook costs nothing for imports of other
modules (one string comparison) and removes itself once pandas is loaded.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
import threading

__all__ = ["SQLAggAccessor", "install"]


class SQLAggAccessor:
    """Run SQL over this frame (the table ``df``) with compiled aggregates.

    Examples
    --------
    >>> import pandas as pd, fastagg
    >>> pd.DataFrame({"x": [1.0, 2.0]}).sqlagg("SELECT sum(x) AS s FROM df")["s"].tolist()
    [3.0]
    """

    def __init__(self, frame: "pd.DataFrame"):  # noqa: F821 - pandas is not imported here
        self._frame = frame

    def __call__(self, sql: str, aggregates=(), **kw):
        """Return ``fastagg.query(frame, sql, aggregates, **kw)``."""
        from .database import query

        return query(self._frame, sql, aggregates, **kw)


_registered = False
_lock = threading.Lock()


def _register(pd) -> None:
    global _registered
    with _lock:
        if not _registered:
            pd.api.extensions.register_dataframe_accessor("sqlagg")(SQLAggAccessor)
            _registered = True


class _PandasImportHook(importlib.abc.MetaPathFinder):
    """Registers the accessor right after ``pandas`` itself has been executed."""

    def find_spec(self, name, path=None, target=None):
        if name != "pandas":
            return None
        _remove_hook()
        spec = importlib.util.find_spec("pandas")
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_register(module):
            exec_module(module)
            _register(module)

        # An attribute of this one loader instance: the loader keeps its type
        # (importlib.resources and pandas' own code may inspect it).
        spec.loader.exec_module = exec_then_register
        return spec


_hook: _PandasImportHook | None = None


def _remove_hook() -> None:
    global _hook
    with _lock:
        if _hook is not None:
            try:
                sys.meta_path.remove(_hook)
            except ValueError:
                pass
            _hook = None


def install() -> None:
    """Register the accessor now if pandas is imported, else when it is."""
    global _hook
    pd = sys.modules.get("pandas")
    if pd is not None and hasattr(pd, "api"):
        _register(pd)
        return
    with _lock:
        if _hook is None and not _registered:
            _hook = _PandasImportHook()
            sys.meta_path.insert(0, _hook)
