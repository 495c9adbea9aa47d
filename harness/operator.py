"""The real operator (`green-operator run`) as a subprocess against the local control plane.

Always namespaced: the control plane is shared, and an operator watching every namespace would take
other tests' GreenTrainingJobs. Started means its liveness endpoint answers.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from harness.cluster import REPO, kubeconfig
from harness.processes import Running, free_port, http_get, kill, start, stop
from harness.waiting import wait_for

IMAGE_ENV = {"MALLOC_ARENA_MAX": "2"}
"""The operator image's own environment that changes how the process runs (operator/Dockerfile):
the local operator gets it too, so tests and benchmarks measure what the chart deploys."""


class OperatorProcess:
    def __init__(
        self,
        config: Path,
        namespace: str,
        log: Path,
        extra_env: dict[str, str] | None = None,
        metrics_port: int = 0,
        kubeconfig_path: Path | None = None,
        args: Sequence[str] = (),
    ) -> None:
        self.config = config
        self.namespace = namespace
        self.log_path = log
        self.extra_env = extra_env or {}
        self.metrics_port = metrics_port
        self.kubeconfig_path = kubeconfig_path
        self.args = list(args)
        self.liveness_port = 0
        self.running: Running | None = None

    def start(self, timeout: float = 60) -> OperatorProcess:
        self.liveness_port = free_port()
        kube = self.kubeconfig_path or kubeconfig()
        cmd = [
            sys.executable, "-m", "green_operator.cli.main", "run",
            "--config", str(self.config),
            "--kubeconfig", str(kube),
            "--namespace", self.namespace,
            "--metrics-port", str(self.metrics_port),
            "--liveness", f"http://127.0.0.1:{self.liveness_port}/healthz",
            *self.args,
        ]  # fmt: skip
        self.running = start(cmd, self.log_path, {**IMAGE_ENV, "KUBECONFIG": str(kube), **self.extra_env}, cwd=REPO)
        state = wait_for(
            self._state, timeout=timeout, message=lambda: f"the operator's liveness endpoint\n{self.tail()}"
        )
        assert state == "live", f"the operator exited with {self.running.process.returncode}:\n{self.tail()}"
        return self

    def _state(self) -> str | None:
        if not self.alive():
            return "exited"
        try:
            http_get(f"http://127.0.0.1:{self.liveness_port}/healthz", timeout=1)
        except OSError:
            return None
        return "live"

    @property
    def pid(self) -> int:
        assert self.running is not None, "the operator was not started"
        return self.running.process.pid

    def alive(self) -> bool:
        return self.running is not None and self.running.alive()

    def log(self) -> str:
        return self.running.log() if self.running else "(not started)"

    def tail(self, lines: int = 40) -> str:
        return self.running.tail(lines) if self.running else "(not started)"

    def metrics(self) -> str:
        return http_get(f"http://127.0.0.1:{self.metrics_port}/metrics")

    def kill(self) -> None:
        """SIGKILL: no graceful shutdown, as in a node crash or OOM kill."""
        if self.running:
            kill(self.running.process)

    def stop(self) -> None:
        if self.running:
            stop(self.running.process, grace=20)


@contextmanager
def operator(
    config: Mapping[str, Any], kubeconfig_path: Path, namespace: str, workdir: Path, args: Sequence[str] = ()
) -> Iterator[OperatorProcess]:
    """An operator for the block, from a configuration mapping, with a metrics port of its own."""
    config_path = workdir / "operator-config.yaml"
    config_path.write_text(yaml.safe_dump(dict(config)))
    op = OperatorProcess(
        config_path,
        namespace,
        workdir / "operator.log",
        metrics_port=free_port(),
        kubeconfig_path=kubeconfig_path,
        args=args,
    )
    try:
        yield op.start(timeout=30)
    finally:
        op.stop()
