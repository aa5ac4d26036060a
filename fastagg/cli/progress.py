"""Progress of long loads and statements on stderr, for terminals only."""

from __future__ import annotations

import itertools
import sqlite3
import sys
import threading
import time

__all__ = ["Progress"]


class Progress:
    """A spinner with elapsed time on stderr, driven by SQLite's progress handler.

    Silent unless *stream* is a terminal (or ``enabled=True``), so pipes, files
    and CI logs never see control characters. Nothing is shown for work that
    ends within *delay* seconds.

    The handler runs on whichever thread steps the statement (fastagg's reader
    steps on a worker thread); it only reads the clock and writes a line, and
    always returns 0 so that SQLite carries on.
    """

    #: SQLite virtual-machine instructions between two calls of the handler.
    INSTRUCTIONS = 100_000
    _FRAMES = "|/-\\"

    def __init__(self, stream=None, *, enabled: bool | None = None, delay: float = 0.5):
        self.stream = sys.stderr if stream is None else stream
        if enabled is None:
            isatty = getattr(self.stream, "isatty", None)
            enabled = bool(isatty and isatty())
        self.enabled = enabled
        self.delay = delay
        self._label = ""
        self._start = time.perf_counter()
        self._last = 0.0
        self._calls = 0
        self._spin = itertools.cycle(self._FRAMES)
        self._shown = False
        self._lock = threading.Lock()

    def status(self, label: str) -> None:
        """Start timing a new step called *label*; shown once it outlasts the delay."""
        self._label = label
        self._start = time.perf_counter()
        self._calls = 0

    def _tick(self) -> int:
        self._calls += 1
        now = time.perf_counter()
        elapsed = now - self._start
        if elapsed >= self.delay and now - self._last >= 0.1:
            self._last = now
            steps = self._calls * self.INSTRUCTIONS / 1e6
            self._write(f"{next(self._spin)} {self._label}  {elapsed:.1f} s, {steps:,.0f}M SQLite steps")
        return 0  # nonzero would interrupt the statement

    def show(self, text: str) -> None:
        """Show *text* now as the progress line (if enabled)."""
        if self.enabled:
            self._write(text)

    def _write(self, text: str) -> None:
        with self._lock:
            self.stream.write("\r\x1b[K" + text)
            self.stream.flush()
            self._shown = True

    def attach(self, con: sqlite3.Connection) -> None:
        """Install the progress handler on *con* (calls ``sqlite3_progress_handler``)."""
        if self.enabled:
            con.set_progress_handler(self._tick, self.INSTRUCTIONS)

    def detach(self, con: sqlite3.Connection) -> None:
        """Remove the handler from *con* and erase the progress line."""
        if self.enabled:
            con.set_progress_handler(None, 0)
        self.clear()

    def clear(self) -> None:
        """Erase the progress line, if one is shown."""
        with self._lock:
            if self._shown:
                self.stream.write("\r\x1b[K")
                self.stream.flush()
                self._shown = False
