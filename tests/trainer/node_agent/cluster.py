"""The node agent as a real process against the local kube-apiserver: the chart's ServiceAccount and
RBAC (and nothing else of the chart), a token for it, the kubelet double's socket, fake GPUs in a file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from green_trainer.fake_nvml import STATE_ENV, FakeNvmlFile
from harness.cluster import REPO, kubeconfig, kubectl
from harness.kubelet import FakeKubelet
from harness.processes import free_port
from harness.waiting import wait_for
from tests.charts.chart import render_text
from tests.trainer.conftest import scrape

RBAC_KINDS = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding"}


@dataclass(frozen=True)
class AgentRbac:
    namespace: str
    service_account: str
    token_file: Path
    server: str
    ca_file: Path

    @property
    def user(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"


@contextmanager
def chart_rbac(namespace: str, workdir: Path) -> Iterator[AgentRbac]:
    """The chart's node-agent ServiceAccount, ClusterRole and binding in `namespace`, with a token."""
    release = f"na-{uuid.uuid4().hex[:6]}"
    text = render_text(release=release, namespace=namespace, extra=["--show-only", "templates/node-agent.yaml"])
    objs = [o for o in yaml.safe_load_all(text) if o and o["kind"] in RBAC_KINDS]
    assert {o["kind"] for o in objs} == RBAC_KINDS
    manifest = yaml.safe_dump_all(objs)
    kubectl("apply", "-f", "-", input=manifest)
    try:
        sa = next(o["metadata"]["name"] for o in objs if o["kind"] == "ServiceAccount")
        token = kubectl("-n", namespace, "create", "token", sa, "--duration=1h").stdout.strip()
        token_file = workdir / "token"
        token_file.write_text(token)
        cluster = yaml.safe_load(kubeconfig().read_text())["clusters"][0]["cluster"]
        yield AgentRbac(namespace, sa, token_file, cluster["server"], Path(cluster["certificate-authority"]))
    finally:
        kubectl("delete", "--ignore-not-found", "--wait=false", "-f", "-", input=manifest, check=False)


@dataclass
class AgentProcess:
    rbac: AgentRbac
    node: str
    socket: Path
    nvml: FakeNvmlFile
    state_file: Path
    log_path: Path
    read_only: bool = False
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> AgentProcess:
        env = {
            **os.environ,
            STATE_ENV: str(self.nvml.path),
            "PYTHONPATH": os.pathsep.join([str(REPO / "trainer-image" / "src"), str(REPO)]),
        }
        cmd = [
            sys.executable, "-m", "green_trainer.cli", "node-agent",
            "--node-name", self.node,
            "--podresources-socket", str(self.socket),
            "--state-file", str(self.state_file),
            "--metrics-port", str(self.port), "--metrics-address", "127.0.0.1",
            "--interval", "0.25",
            "--api-server", self.rbac.server,
            "--token-file", str(self.rbac.token_file),
            "--ca-file", str(self.rbac.ca_file),
            *(["--read-only"] if self.read_only else []),
        ]  # fmt: skip
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        wait_for(lambda: self.metrics() is not None, timeout=30, message=lambda: f"the agent's metrics\n{self.log()}")
        return self

    def metrics(self) -> str | None:
        assert self.process is not None
        assert self.process.poll() is None, f"the agent exited:\n{self.log()}"
        return scrape(self.port)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


def create_pod(namespace: str, name: str, node: str, limit: str | None, job: str = "resnet") -> dict[str, Any]:
    annotations = {} if limit is None else {"greentraining.io/gpu-power-limit-watts": limit}
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "annotations": annotations,
            "labels": {"greentraining.io/job": job},
        },
        "spec": {"nodeName": node, "containers": [{"name": "train", "image": "trainer:test"}]},
    }
    kubectl("apply", "-f", "-", input=yaml.safe_dump(pod))
    return pod


def delete_pod(namespace: str, name: str) -> None:
    kubectl("-n", namespace, "delete", "pod", name, "--grace-period=0", "--force", "--wait=false")


@contextmanager
def kubelet(path: Path) -> Iterator[FakeKubelet]:
    k = FakeKubelet(path).start()
    try:
        yield k
    finally:
        k.stop()
