"""Shared fixtures; the report header names the SQLite and numba in use."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap

import pytest


def pytest_report_header(config):
    import _sqlite3

    import numba

    return [
        f"sqlite {sqlite3.sqlite_version} via {getattr(_sqlite3, '__file__', 'built-in')}",
        f"numba {numba.__version__}",
    ]


@pytest.fixture
def con():
    """A fresh in-memory sqlite3 connection, closed after the test."""
    connection = sqlite3.connect(":memory:")
    yield connection
    connection.close()


def run_isolated(code: str, timeout: float = 120, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run *code* in a fresh interpreter, so that a crash fails one test only.

    *env* adds to (or overrides) this process's environment.
    """
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
