"""Report training progress to the green-trainer wrapper.

    from green_trainer import progress
    progress.report(samples=batch_size, steps=1, tokens=batch_size * seq_len)

Counts are increments, per process: each data-parallel rank reports what it processed and the
wrapper adds the ranks up. Calls are cheap (a lock and three additions); the file the wrapper reads
is rewritten at most every 0.2 s, and once more at exit or on `flush()` (call it from a SIGTERM
handler before exiting). Without the wrapper (GREEN_PROGRESS_DIR unset) the counts are only kept
in memory, and `totals()` still returns them.

Pause and resume (an interruptible GreenTrainingJob): the operator pauses a job by suspending its
Job, so the pod gets SIGTERM and the checkpoint grace period. The contract:

    from green_trainer import progress
    directory = progress.checkpoint_dir()          # GREEN_CHECKPOINT_DIR (the job's volume), or None
    ...resume from the latest checkpoint in `directory`, if any...
    for step in range(start, total):
        train_one_step()
        if progress.should_checkpoint():           # SIGTERM/SIGINT arrived: a pause (or an end)
            save_checkpoint(directory, step + 1)
            progress.checkpointed((step + 1) / total)
            sys.exit(0)

`checkpointed(fraction)` tells the operator how much of the training the latest checkpoint holds;
the wrapper's "paused" report carries it. A trainer that never says so (or restarts from zero) is
seen as making no progress across a pause, and is not paused again.
"""

from __future__ import annotations

import atexit
import logging
import operator
import os
import secrets
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import SupportsIndex

from green_trainer.progress_files import PROGRESS_DIR_ENV, Progress, write_atomically

__all__ = [
    "CHECKPOINT_DIR_ENV",
    "Progress",
    "Reporter",
    "checkpoint_dir",
    "checkpointed",
    "flush",
    "on_pause",
    "report",
    "should_checkpoint",
    "totals",
]

CHECKPOINT_DIR_ENV = "GREEN_CHECKPOINT_DIR"

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

    def set_fraction(self, fraction: float) -> None:
        with self._lock:
            self._counts = replace(self._counts, fraction=fraction)
            self._write()  # at once: the process is about to exit

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


def checkpointed(fraction: float) -> None:
    """The latest checkpoint holds this share (0-1) of the whole training: written for the wrapper
    at once. Call it after the checkpoint is durably saved, not before."""
    value = float(fraction)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"progress.checkpointed({value}) takes the share of the training saved, from 0 to 1")
    _reporter.set_fraction(value)


def checkpoint_dir() -> Path | None:
    """Where to keep checkpoints: the job's checkpoint volume (GREEN_CHECKPOINT_DIR), None if unset."""
    raw = os.environ.get(CHECKPOINT_DIR_ENV, "")
    return Path(raw) if raw else None


class _PauseSignal:
    """SIGTERM/SIGINT, caught once: the training loop checks `should_checkpoint()` at a step
    boundary rather than being interrupted mid-step. Callbacks run in the signal handler: keep them
    short (set a flag)."""

    def __init__(self) -> None:
        self.received: int | None = None
        self.callbacks: list[Callable[[int], None]] = []
        self.installed = False

    def install(self) -> None:
        if self.installed or threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._handle)
        self.installed = True

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.received = signum
        for callback in self.callbacks:
            callback(signum)


_pause = _PauseSignal()


def should_checkpoint() -> bool:
    """True once SIGTERM or SIGINT arrived: checkpoint, call `checkpointed`, and exit. The first
    call (from the main thread) installs the handler; call it once before training starts."""
    _pause.install()
    return _pause.received is not None


def on_pause(callback: Callable[[int], None]) -> None:
    """Run `callback(signum)` when SIGTERM or SIGINT arrives (from the signal handler)."""
    _pause.install()
    _pause.callbacks.append(callback)


def pause_signal() -> int | None:
    """The signal that asked for the pause, if any."""
    return _pause.received
