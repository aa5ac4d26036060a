"""Errors of the command line and how they are shown: one line, an exit status."""

from __future__ import annotations

__all__ = ["UsageError", "UserError", "one_line"]


class UsageError(Exception):
    """A command-line argument is malformed: exit status 2, like argparse."""


class UserError(Exception):
    """A mistake in what the user asked for: one line on stderr, exit status 1."""


def one_line(exc: BaseException) -> str:
    """Return the message of *exc* on one line (its type name if it has none)."""
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split())
