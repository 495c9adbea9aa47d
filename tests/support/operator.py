"""Run the real operator (`green-operator run`) as a subprocess against the local control plane.

Each test gets its own operator watching only the test's namespace, with carbon traces written for
the test: timestamps around "now" at a short step, so windows open seconds, not hours, away.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from tests.support.cluster import REPO, kubeconfig
from tests.support.waiting import wait_for

REGIONS = ("europe-west2", "europe-west3", "europe-west9", "us-west2")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_trace(path: Path, start: datetime, step: timedelta, values: Sequence[float]) -> Path:
    """A trace CSV like data/carbon: naive UTC timestamps, one value per step."""
    lines = ["Time,Carbon Intensity"]
    lines += [f"{(start + i * step).strftime('%Y-%m-%d %H:%M:%S')},{v}" for i, v in enumerate(values)]
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class TraceGrid:
    """Per-region intensity profiles on a grid of `step` starting `start` (before now)."""

    start: datetime
    step: timedelta
    values: dict[str, list[float]] = field(default_factory=dict)

    def at(self, t: datetime) -> int:
        return int((t - self.start) / self.step)


def make_config(
    tmp: Path,
    traces: TraceGrid,
    *,
    slot: timedelta,
    horizon: timedelta,
    replan: timedelta = timedelta(minutes=10),
    live_regions: dict[str, dict[str, Any]] | None = None,
    carbon: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Operator config: every region reads its trace (shift none); `live_regions` overrides a region's
    carbon block (e.g. a live provider at an unreachable URL with the trace as fallback)."""
    files = {}
    for region, values in traces.values.items():
        files[region] = str(write_trace(tmp / f"{region}.csv", traces.start, traces.step, values))
    providers: dict[str, Any] = {"traces": {"type": "trace", "files": files, "shift": "none"}}
    regions = []
    for region in traces.values:
        block: dict[str, Any] = {"provider": "traces", "zone": region}
        if live_regions and region in live_regions:
            block = live_regions[region]
        regions.append({"name": region, "carbon": block})
    for spec in (live_regions or {}).values():
        providers.update(spec.pop("_providers", {}))
    doc = {
        "providers": providers,
        "carbon": carbon or {"cacheTTL": "2s", "staleAfter": "1m", "retryBackoff": "1s", "maxRetries": 0},
        "regions": regions,
        "planner": {
            "slot": f"{int(slot.total_seconds())}s",
            "horizon": f"{int(horizon.total_seconds())}s",
            "replanInterval": f"{int(replan.total_seconds())}s",
            "forecastRefresh": "1s",
        },
    }
    doc.update(extra or {})
    path = tmp / "operator-config.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


class OperatorProcess:
    def __init__(
        self, config: Path, namespace: str, log: Path, extra_env: dict[str, str] | None = None, metrics_port: int = 0
    ) -> None:
        self.metrics_port = metrics_port
        self.config = config
        self.namespace = namespace
        self.log_path = log
        self.extra_env = extra_env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.liveness_port = 0

    def start(self, timeout: float = 60) -> OperatorProcess:
        self.liveness_port = free_port()
        env = {**os.environ, "KUBECONFIG": str(kubeconfig()), **self.extra_env}
        cmd = [
            sys.executable, "-m", "green_operator.cli", "run",
            "--config", str(self.config),
            "--namespace", self.namespace,
            "--metrics-port", str(self.metrics_port),
            "--liveness", f"http://127.0.0.1:{self.liveness_port}/healthz",
        ]  # fmt: skip
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        wait_for(self._healthy, timeout=timeout, message=self._why_not_healthy)
        return self

    def _healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"the operator exited with {self.proc.returncode}:\n{self.tail()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.liveness_port}/healthz", timeout=1) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def _why_not_healthy(self) -> str:
        return f"the operator's liveness endpoint; log:\n{self.tail()}"

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def kill(self) -> None:
        """SIGKILL: no graceful shutdown, as in a node crash or OOM kill."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
