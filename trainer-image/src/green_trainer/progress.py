"""Report training progress to the green-trainer wrapper.

    from green_trainer import progress
    progress.report(samples=batch_size, steps=1, tokens=batch_size * seq_len)

Counts are increments, per process: each data-parallel rank reports what it processed and the
wrapper adds the ranks up. Calls are cheap (a lock and three additions); the file the wrapper reads
is rewritten at most every 0.2 s, and once more at exit or on `flush()` (call it from a SIGTERM
handler before exiting). Without the wrapper (GREEN_PROGRESS_DIR unset) the counts are only kept
in memory, and `totals()` still returns them.
"""

from __future__ import annotations

import atexit
import logging
import operator
import os
import secrets
import threading
import time
from pathlib import Path
from typing import SupportsIndex

from green_trainer.progress_files import PROGRESS_DIR_ENV, Progress, write_atomically

__all__ = ["Progress", "Reporter", "flush", "report", "totals"]

log = logging.getLogger(__name__)

WRITE_INTERVAL_SECONDS = 0.2


class Reporter:
    """One process's counts, written for the wrapper to `directory` (None: kept in memory only)."""

    def __init__(self, directory: Path | None, write_interval: float = WRITE_INTERVAL_SECONDS) -> None:
        self._lock = threading.Lock()
        self._write_interval = write_interval
        self._start(directory)

    def _start(self, directory: Path | None) -> None:
        self.directory = directory
        self.name = f"{os.getpid()}-{secrets.token_hex(4)}.json"
        self._counts = Progress()
        self._dirty = False
        self._last_write = -float("inf")
        self._warned = False
        if directory is None:
            log.debug("%s not set (no green-trainer wrapper): progress kept in memory only", PROGRESS_DIR_ENV)

    def after_fork(self) -> None:
        """In a forked child: its own counts and file; the parent's numbers stay the parent's."""
        self._lock = threading.Lock()
        self._start(self.directory)

    def add(self, samples: int, steps: int, tokens: int) -> None:
        with self._lock:
            self._counts = self._counts + Progress(samples, steps, tokens)
            self._dirty = True
            if time.monotonic() - self._last_write >= self._write_interval:
                self._write()

    def flush(self) -> None:
        with self._lock:
            if self._dirty:
                self._write()

    def totals(self) -> Progress:
        with self._lock:
            return self._counts

    def _write(self) -> None:
        self._last_write = time.monotonic()
        if self.directory is None:
            return
        try:
            write_atomically(self.directory, self.name, self._counts)
            self._dirty = False
        except OSError as err:
            if not self._warned:
                self._warned = True
                log.warning("cannot write progress to %s: %s (training goes on)", self.directory, err)


def _directory_from_env() -> Path | None:
    raw = os.environ.get(PROGRESS_DIR_ENV, "")
    return Path(raw) if raw else None


_reporter = Reporter(_directory_from_env())
os.register_at_fork(after_in_child=_reporter.after_fork)
atexit.register(_reporter.flush)


def _count(name: str, value: SupportsIndex) -> int:
    try:
        number = operator.index(value)
    except TypeError:
        raise TypeError(f"progress.report({name}=...) takes an integer count, got {value!r}") from None
    if number < 0:
        raise ValueError(f"progress.report({name}={number}) must not be negative: pass the increment")
    return number


def report(*, samples: SupportsIndex = 0, steps: SupportsIndex = 0, tokens: SupportsIndex = 0) -> None:
    """Add this many samples, optimizer steps and tokens to this process's counts."""
    _reporter.add(_count("samples", samples), _count("steps", steps), _count("tokens", tokens))


def flush() -> None:
    """Write the counts for the wrapper now (e.g. in a SIGTERM handler, before exiting)."""
    _reporter.flush()


def totals() -> Progress:
    """This process's counts so far."""
    return _reporter.totals()
