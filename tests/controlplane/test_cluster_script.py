"""hack/cluster.sh and hack/build-controlplane.sh under bad conditions: a taken port, stale pid files,
an interrupted build. Each ends in a working state or a clear message, never a hang."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.cluster import REPO, bin_dir, kubectl

pytestmark = pytest.mark.integration


def _run(args: list[str], env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def _env(state: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GREEN_STATE", "GREEN_KUBECONFIG")}
    env.update(GREEN_STATE=str(state), GREEN_KUBECONFIG=str(state / "kubeconfig"), **extra)
    return env


def _pid_alive(pid: int) -> bool:
    """Running, not a zombie (a killed process stays in the table until its new parent reaps it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_second_cluster_moves_off_taken_ports_and_down_leaves_nothing(tmp_path: Path) -> None:
    # The session's cluster already holds the default ports, so this one must pick others.
    env = _env(tmp_path / "second")
    up = _run(["hack/cluster.sh", "up"], env)
    pids: list[int] = []
    try:
        assert up.returncode == 0, up.stderr
        assert "is taken by another process; using" in up.stderr
        pids = [int(p.read_text()) for p in (tmp_path / "second" / "pids").glob("*.pid")]
        assert len(pids) == 5
        nodes = kubectl("get", "nodes", "-o", "name", kubeconfig_path=tmp_path / "second" / "kubeconfig")
        assert nodes.stdout.count("node/") >= 8
        again = _run(["hack/cluster.sh", "up"], env)
        assert again.returncode == 0
        assert "already up" in again.stderr
    finally:
        down = _run(["hack/cluster.sh", "down"], env)
    assert down.returncode == 0, down.stderr
    assert not [p for p in pids if _pid_alive(p)], "cluster-down left processes running"
    assert not (tmp_path / "second" / "kubeconfig").exists()


def test_stale_pid_files_are_recognised_and_removed(tmp_path: Path) -> None:
    state = tmp_path / "stale"
    (state / "pids").mkdir(parents=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    (state / "pids" / "etcd.pid").write_text(str(dead.pid))
    # A live process that is not ours (pid reuse): must not be mistaken for the apiserver, nor killed.
    (state / "pids" / "kube-apiserver.pid").write_text(str(os.getpid()))
    status = _run(["hack/cluster.sh", "status"], _env(state))
    assert status.returncode == 0, status.stderr
    assert "etcd" in status.stdout
    assert "running" not in status.stdout
    assert not list((state / "pids").glob("*.pid"))
    down = _run(["hack/cluster.sh", "down"], _env(state))
    assert down.returncode == 0
    assert _pid_alive(os.getpid())


def test_interrupted_build_resumes_with_only_the_missing_binary(tmp_path: Path) -> None:
    # Reproduce a cache left by an interrupted build: no completion mark, one binary missing and a
    # half-written temp file. The build must finish only what is missing.
    src = bin_dir()
    cache = tmp_path / "cache"
    dst = cache / "bin" / src.name
    dst.mkdir(parents=True)
    for f in src.iterdir():
        if f.is_file() and not f.name.startswith(".") and f.name != "kube-scheduler":
            os.link(f, dst / f.name)
    (dst / ".kube-scheduler.tmp").write_bytes(b"partial")
    env = _env(tmp_path / "state", GREEN_CACHE=str(cache))
    build = _run(["hack/build-controlplane.sh"], env, timeout=600)
    assert build.returncode == 0, build.stderr
    assert "building kube-scheduler" in build.stdout
    assert "building kube-apiserver" not in build.stdout
    assert (dst / ".complete").exists()
    version = subprocess.run([dst / "kube-scheduler", "--version"], capture_output=True, text=True, check=True)
    assert "v1.35.4" in version.stdout
    again = _run(["hack/build-controlplane.sh"], env)
    assert "up to date" in again.stdout
    shutil.rmtree(cache)


def test_up_without_binaries_says_how_to_build_them(tmp_path: Path) -> None:
    env = _env(tmp_path / "state", GREEN_CACHE=str(tmp_path / "empty-cache"))
    up = _run(["hack/cluster.sh", "up"], env, timeout=30)
    assert up.returncode != 0
    assert "make controlplane" in up.stderr
