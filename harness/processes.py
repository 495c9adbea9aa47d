"""Real processes for the integration, end-to-end and benchmark tiers: started in their own session
with their output in a log file, and always stopped, the whole session with them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

VENV_BIN = Path(sys.executable).parent
"""The running interpreter's bin directory: the entry points (green-operator, green-trainer) beside it."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(url: str, timeout: float = 2.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return str(resp.read().decode())


@dataclass
class Running:
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def alive(self) -> bool:
        return self.process.poll() is None


def start(cmd: Sequence[str], log_path: Path, env: Mapping[str, str] | None = None, cwd: Path | None = None) -> Running:
    """Start ``cmd`` in its own session, appending stdout+stderr to ``log_path``."""
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            list(cmd),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=True,
        )
    return Running(proc, log_path)


def stop(proc: subprocess.Popen[bytes], grace: float = 15.0) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds: the process and anything in its session."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


def kill(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL at once, as in a node crash or an OOM kill: no graceful shutdown."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@contextmanager
def running(
    cmd: Sequence[str], log_path: Path, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> Iterator[Running]:
    """Run ``cmd`` (see `start`) for the duration of the block; always stopped on exit."""
    if log_path.exists():
        log_path.unlink()
    proc = start(cmd, log_path, env, cwd)
    try:
        yield proc
    finally:
        stop(proc.process)
