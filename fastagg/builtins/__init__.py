"""The built-in library: statistics SQLite lacks, as ordinary ``@aggregate`` classes."""

from .library import *  # noqa: F403
from .library import BUILTINS, __all__  # noqa: F401
