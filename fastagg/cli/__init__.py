"""The ``fastagg`` command: :mod:`.main` (parser, dispatch), :mod:`.io`, :mod:`.progress`, :mod:`.demo`."""

from .io import collect_params, parse_param, parse_table_option
from .main import build_parser, main
from .progress import Progress

__all__ = ["Progress", "build_parser", "collect_params", "main", "parse_param", "parse_table_option"]
