import errno
import logging
import os
import pwd
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from green_trainer.child import FORWARDED, Supervisor, exit_status, resolve_user, signals_blocked
from green_trainer.runner import resolve_child_user
from green_trainer.settings import Settings

# Every child here ends itself after 20 s (SIGALRM, status 142) so a broken test fails instead of hanging.
WAIT_FOR_TERM = """
import pathlib, signal, sys
signal.alarm(20)
out = pathlib.Path(sys.argv[1])
def on_term(signum, frame):
    out.write_text(signal.Signals(signum).name)
    sys.exit(143)
signal.signal(signal.SIGTERM, on_term)
signal.signal(signal.SIGUSR1, lambda s, f: (out.parent / "usr1").write_text("yes"))
(out.parent / "ready").write_text("1")
while True:
    signal.pause()
"""

IGNORE_TERM = """
import pathlib, signal, sys
signal.alarm(20)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
pathlib.Path(sys.argv[1]).parent.joinpath("ready").write_text("1")
while True:
    signal.pause()
"""


@pytest.mark.parametrize(("returncode", "status"), [(0, 0), (3, 3), (-15, 143), (-9, 137), (-2, 130)])
def test_exit_status_is_what_a_shell_would_report(returncode, status):
    assert exit_status(returncode) == status


def _run(supervisor):
    supervisor.install_signal_handlers()
    try:
        return supervisor.run()
    finally:
        supervisor.restore_signal_handlers()


def _signal_when_ready(ready, signals, wait_until):
    def send():
        # Like the wrapper's own helper threads: leave the signal to the main thread.
        signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED)
        wait_until(ready.exists, timeout=15)
        for signum in signals:
            os.kill(os.getpid(), signum)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def test_the_exit_code_is_the_childs():
    assert _run(Supervisor([sys.executable, "-c", "raise SystemExit(7)"], os.environ, 5.0)).exit_code == 7
    killed = _run(Supervisor([sys.executable, "-c", "import os; os.kill(os.getpid(), 9)"], os.environ, 5.0))
    assert killed.exit_code == 137
    assert killed.terminated_by is None


def test_a_missing_or_non_executable_command_is_127_or_126(tmp_path):
    assert _run(Supervisor([str(tmp_path / "nope")], os.environ, 5.0)).exit_code == 127
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(stat.S_IRUSR)
    assert _run(Supervisor([str(script)], os.environ, 5.0)).exit_code == 126


def test_sigterm_and_other_signals_are_forwarded_to_the_child(tmp_path, wait_until):
    out = tmp_path / "got"
    previous = signal.getsignal(signal.SIGTERM)
    sender = _signal_when_ready(tmp_path / "ready", [signal.SIGUSR1, signal.SIGTERM], wait_until)
    result = _run(Supervisor([sys.executable, "-c", WAIT_FOR_TERM, str(out)], os.environ, 10.0))
    sender.join()
    assert result.exit_code == 143
    assert result.terminated_by == "SIGTERM"
    assert out.read_text() == "SIGTERM"
    assert (tmp_path / "usr1").read_text() == "yes"
    assert signal.getsignal(signal.SIGTERM) is previous


def test_a_child_that_ignores_sigterm_is_killed_after_the_grace_period(tmp_path, wait_until, caplog):
    sender = _signal_when_ready(tmp_path / "ready", [signal.SIGTERM], wait_until)
    with caplog.at_level(logging.WARNING):
        result = _run(Supervisor([sys.executable, "-c", IGNORE_TERM, str(tmp_path / "x")], os.environ, 0.3))
    sender.join()
    assert result.exit_code == 137
    assert result.terminated_by == "SIGTERM"
    assert "killing it" in caplog.text


def test_a_signal_before_the_start_means_the_command_never_runs(tmp_path):
    supervisor = Supervisor([sys.executable, "-c", f"open({str(tmp_path / 'ran')!r}, 'w')"], os.environ, 1.0)
    supervisor.install_signal_handlers()
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        result = supervisor.run()
    finally:
        supervisor.restore_signal_handlers()
    assert result.exit_code == 143
    assert not (tmp_path / "ran").exists()


def test_resolve_user():
    assert resolve_user("root").uid == 0
    assert resolve_user("0").name == "root"
    with pytest.raises(ValueError, match="GREEN_CHILD_USER='no-such-user'"):
        resolve_user("no-such-user")


def test_a_root_wrapper_runs_the_training_as_the_configured_user(caplog):
    nobody = pwd.getpwnam("nobody")
    # pytest's tmp_path sits under a 0700 directory that the dropped user could not enter.
    with tempfile.TemporaryDirectory() as directory:
        shared = Path(directory)
        shared.chmod(0o777)
        _check_dropped_user(shared, nobody, caplog)


def _check_dropped_user(shared, nobody, caplog):
    with caplog.at_level(logging.WARNING):
        user = resolve_child_user(Settings(child_user="nobody"))
    script = 'echo "$(id -u) $(id -g) $(id -G) $HOME" > "$1"'
    result = _run(Supervisor(["/bin/sh", "-c", script, "sh", str(shared / "id")], os.environ, 5.0, user))
    assert result.exit_code == 0
    uid, gid, groups, home = (shared / "id").read_text().split()
    if os.geteuid() == 0:
        # No supplementary groups of root's survive: only the user's own group.
        assert (int(uid), int(gid), int(groups), home) == (nobody.pw_uid, nobody.pw_gid, nobody.pw_gid, nobody.pw_dir)
    else:  # only root can switch: the wrapper says so and runs the training as itself
        assert int(uid) == os.geteuid()
        assert "only root can switch users" in caplog.text


def test_threads_started_with_signals_blocked_leave_them_to_the_main_thread():
    seen = {}

    def record():
        seen["mask"] = signal.pthread_sigmask(signal.SIG_BLOCK, [])

    with signals_blocked():
        thread = threading.Thread(target=record)
        thread.start()
    thread.join()
    assert set(FORWARDED) <= seen["mask"]
    assert not set(FORWARDED) & signal.pthread_sigmask(signal.SIG_BLOCK, [])


def test_without_the_capability_to_switch_users_the_training_still_runs(monkeypatch, caplog):
    real_popen = subprocess.Popen
    calls = []

    def popen(*args, **kwargs):
        calls.append(kwargs.get("user"))
        if kwargs.get("user") is not None:  # what setuid() says in a root container without CAP_SETUID
            raise PermissionError(errno.EPERM, "Operation not permitted")
        return real_popen(*args, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", popen)
    user = resolve_user("nobody")
    with caplog.at_level(logging.WARNING):
        result = _run(Supervisor([sys.executable, "-c", "raise SystemExit(6)"], os.environ, 5.0, user))
    assert result.exit_code == 6
    assert calls == [user.uid, None]
    assert "cannot switch to user nobody" in caplog.text


def test_a_signal_taken_by_another_thread_still_reaches_the_child(tmp_path, wait_until):
    # Libraries start threads we do not control (BLAS pools): one of them may be the thread the kernel
    # hands SIGTERM to. Here the main thread refuses it, so only the bystander can take it.
    idle = threading.Event()
    bystander = threading.Thread(target=idle.wait, daemon=True)
    bystander.start()
    out = tmp_path / "got"
    sender = _signal_when_ready(tmp_path / "ready", [signal.SIGTERM], wait_until)
    child = "import signal; signal.pthread_sigmask(signal.SIG_SETMASK, [])\n" + WAIT_FOR_TERM
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED)
    try:
        started = time.monotonic()
        result = _run(Supervisor([sys.executable, "-c", child, str(out)], os.environ, 10.0))
        elapsed = time.monotonic() - started
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        idle.set()
    sender.join()
    bystander.join()
    assert result.exit_code == 143
    assert out.read_text() == "SIGTERM"
    assert elapsed < 10.0  # forwarded, not ended by the grace-period kill
