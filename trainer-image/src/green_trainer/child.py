"""Run the training command as a child: forward signals, give it a grace period, return its status."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import pwd
import signal
import subprocess
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType

log = logging.getLogger(__name__)

# Forwarded as they arrive. The first three also start the grace period before SIGKILL.
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)
TERMINATING = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)

# Popen.wait(timeout) polls with sleeps of at most 50 ms, so a handler waits no longer than that.
WAIT_SLICE_SECONDS = 1.0
EXIT_NOT_EXECUTABLE = 126
EXIT_NOT_FOUND = 127


@contextmanager
def signals_blocked() -> Iterator[None]:
    """Start helper threads inside this: they inherit a mask that leaves the forwarded signals to the
    main thread. A signal the kernel hands to another thread would not interrupt the main thread's
    wait for the child, and Python would run the handler only after the child had exited."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def exit_status(returncode: int) -> int:
    """A shell's view of a child's end: its exit code, or 128+N when signal N killed it."""
    return 128 - returncode if returncode < 0 else returncode


@dataclass(frozen=True)
class ChildUser:
    uid: int
    gid: int
    name: str
    home: str


def resolve_user(spec: str) -> ChildUser:
    """A user name or numeric uid from the password database; ValueError names the fix."""
    try:
        entry = pwd.getpwuid(int(spec)) if spec.isdigit() else pwd.getpwnam(spec)
    except (KeyError, OverflowError):
        raise ValueError(
            f"GREEN_CHILD_USER={spec!r} is not a user of this image; use a name or uid from /etc/passwd"
        ) from None
    return ChildUser(entry.pw_uid, entry.pw_gid, entry.pw_name, entry.pw_dir)


@dataclass(frozen=True)
class ChildResult:
    exit_code: int
    terminated_by: str | None


class Supervisor:
    """Starts the command in its own process group so a terminal's Ctrl-C reaches it once, through us."""

    def __init__(
        self,
        command: Sequence[str],
        env: Mapping[str, str],
        grace_seconds: float,
        user: ChildUser | None = None,
    ) -> None:
        if not command:
            raise ValueError("no training command given: use `green-trainer run -- <command> [args]`")
        self._command = list(command)
        self._env = dict(env)
        self._grace_seconds = grace_seconds
        self._user = user
        self._process: subprocess.Popen[bytes] | None = None
        self._received: signal.Signals | None = None
        self._killer: threading.Timer | None = None
        self._undelivered: signal.Signals | None = None
        self._previous_handlers: dict[signal.Signals, object] = {}

    def install_signal_handlers(self) -> None:
        for signum in FORWARDED:
            self._previous_handlers[signum] = signal.signal(signum, self._on_signal)

    def restore_signal_handlers(self) -> None:
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
        self._previous_handlers.clear()

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        received = signal.Signals(signum)
        if received in TERMINATING and self._received is None:
            self._received = received
        process = self._process
        if process is None:
            self._undelivered = received
            return
        if process.returncode is not None:
            return
        log.info("forwarding %s to the training process (pid %d)", received.name, process.pid)
        try:
            os.kill(process.pid, received)
        except ProcessLookupError:
            return
        if received in TERMINATING and self._killer is None:
            self._killer = threading.Timer(self._grace_seconds, self._kill_group, args=(process,))
            self._killer.daemon = True
            with signals_blocked():
                self._killer.start()

    def _kill_group(self, process: subprocess.Popen[bytes]) -> None:
        if process.returncode is not None:
            return
        log.warning("training process still running %.0f s after the signal: killing it", self._grace_seconds)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)

    def _spawn(self) -> subprocess.Popen[bytes]:
        if self._user is None:
            return subprocess.Popen(self._command, env=self._env, process_group=0)
        user = self._user
        env = {**self._env, "HOME": user.home, "USER": user.name, "LOGNAME": user.name}
        return subprocess.Popen(self._command, env=env, process_group=0, user=user.uid, group=user.gid, extra_groups=[])

    @staticmethod
    def _wait(process: subprocess.Popen[bytes]) -> int:
        """Wait in short slices: a signal the kernel hands to another thread (one a library started
        without our mask, e.g. a BLAS pool) does not interrupt a blocking wait, and Python runs its
        handler only when the main thread next executes bytecode."""
        while True:
            try:
                return process.wait(timeout=WAIT_SLICE_SECONDS)
            except subprocess.TimeoutExpired:
                continue

    def _take_undelivered(self) -> signal.Signals | None:
        undelivered, self._undelivered = self._undelivered, None
        return undelivered

    def run(self) -> ChildResult:
        """Run to completion (signal handlers must be installed); never raises for a bad command."""
        if self._received is not None:
            log.warning("%s arrived before the training started: not starting it", self._received.name)
            return ChildResult(128 + self._received, self._received.name)
        try:
            self._process = self._spawn()
        except PermissionError as err:
            if self._user is None or err.errno != errno.EPERM:
                log.error("cannot start %r: %s", self._command[0], err)
                return ChildResult(EXIT_NOT_EXECUTABLE, None)
            # Root without CAP_SETUID/CAP_SETGID (capabilities dropped): training goes on, as root.
            log.warning(
                "cannot switch to user %s (%s): starting the training as the current user", self._user.name, err
            )
            self._user = None
            return self.run()
        except FileNotFoundError as err:
            log.error("cannot start %r: %s", self._command[0], err)
            return ChildResult(EXIT_NOT_FOUND, None)
        except OSError as err:
            log.error("cannot start %r: %s", self._command[0], err)
            return ChildResult(EXIT_NOT_EXECUTABLE, None)
        undelivered = self._take_undelivered()
        if undelivered is not None:  # arrived while the process was being created
            self._on_signal(undelivered, None)
        returncode = self._wait(self._process)
        if self._killer is not None:
            self._killer.cancel()
        return ChildResult(exit_status(returncode), self.terminated_by)

    @property
    def terminated_by(self) -> str | None:
        return self._received.name if self._received is not None else None
