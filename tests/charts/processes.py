"""Real processes for the integration and end-to-end tiers: the operator (`green-operator run`) against
the local control plane, with a kubeconfig of its own, and the bits of cluster set-up they share."""

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
from typing import Any

import yaml

from tests.support.cluster import REPO, kubeconfig, kubectl
from tests.support.waiting import wait_for

VENV_BIN = Path(sys.executable).parent
IMAGE_TRACES = "/opt/green/data/carbon"
"""Where operator/Dockerfile puts the traces the chart's default configuration names."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(url: str, timeout: float = 2.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return str(resp.read().decode())


def with_local_traces(config: Mapping[str, Any]) -> dict[str, Any]:
    """The chart's configuration with the image's trace paths pointed at the repository's data/carbon."""
    text = yaml.safe_dump(dict(config)).replace(IMAGE_TRACES, str(REPO / "data" / "carbon"))
    doc: dict[str, Any] = yaml.safe_load(text)
    return doc


def token_kubeconfig(namespace: str, service_account: str, path: Path) -> Path:
    """A kubeconfig that authenticates as the ServiceAccount with a short-lived token (TokenRequest)."""
    token = kubectl("-n", namespace, "create", "token", service_account, "--duration=1h").stdout.strip()
    admin = yaml.safe_load(kubeconfig().read_text())
    cluster = admin["clusters"][0]["cluster"]
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": cluster}],
        "users": [{"name": service_account, "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "local", "user": service_account, "namespace": namespace}}],
        "current-context": "sa",
    }
    path.write_text(yaml.safe_dump(doc))
    path.chmod(0o600)
    return path


@dataclass
class Running:
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None


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


@contextmanager
def running(
    cmd: Sequence[str], log_path: Path, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> Iterator[Running]:
    """Run ``cmd`` in its own session with stdout+stderr in ``log_path``; always stopped on exit."""
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            list(cmd),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=True,
        )
    try:
        yield Running(proc, log_path)
    finally:
        stop(proc)


@dataclass
class Operator(Running):
    metrics_port: int
    namespace: str

    def metrics(self) -> str:
        return http_get(f"http://127.0.0.1:{self.metrics_port}/metrics")


@contextmanager
def operator(config: Mapping[str, Any], kubeconfig_path: Path, namespace: str, workdir: Path) -> Iterator[Operator]:
    """`green-operator run` watching one namespace, until its liveness endpoint answers.

    Always namespaced: the control plane is shared, and an operator watching every namespace would
    take other tests' GreenTrainingJobs.
    """
    config_path = workdir / "operator-config.yaml"
    config_path.write_text(yaml.safe_dump(dict(config)))
    metrics_port, liveness_port = free_port(), free_port()
    cmd = [
        str(VENV_BIN / "green-operator"),
        "run",
        "--config",
        str(config_path),
        "--kubeconfig",
        str(kubeconfig_path),
        "--namespace",
        namespace,
        "--metrics-port",
        str(metrics_port),
        "--liveness",
        f"http://127.0.0.1:{liveness_port}/healthz",
    ]
    with running(cmd, workdir / "operator.log") as proc:
        op = Operator(proc.process, proc.log_path, metrics_port, namespace)

        def state() -> str | None:
            if not op.alive():
                return "exited"
            try:
                http_get(f"http://127.0.0.1:{liveness_port}/healthz")
            except OSError:
                return None
            return "live"

        started = wait_for(state, timeout=30, message=lambda: f"the operator's liveness endpoint\n{op.log()[-3000:]}")
        assert started == "live", f"the operator exited while starting:\n{op.log()[-3000:]}"
        try:
            yield op
        finally:
            stop(op.process)
