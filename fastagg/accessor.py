"""``DataFrame.sqlagg``: the one import side effect of fastagg, labelled here.

Importing fastagg registers the accessor, so ``df.sqlagg(sql, aggregates=[...])``
is ``fastagg.query(df, sql, aggregates=[...])``.
"""

from __future__ import annotations

import pandas as pd

from .database import query

__all__ = ["SQLAggAccessor"]


@pd.api.extensions.register_dataframe_accessor("sqlagg")
class SQLAggAccessor:
    """Run SQL over this frame (the table ``df``) with compiled aggregates.

    Examples
    --------
    >>> import pandas as pd, fastagg
    >>> pd.DataFrame({"x": [1.0, 2.0]}).sqlagg("SELECT sum(x) AS s FROM df")["s"].tolist()
    [3.0]
    """

    def __init__(self, frame: pd.DataFrame):
        self._frame = frame

    def __call__(self, sql: str, aggregates=(), **kw):
        """Return ``fastagg.query(frame, sql, aggregates, **kw)``."""
        return query(self._frame, sql, aggregates, **kw)
