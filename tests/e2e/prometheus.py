"""A real Prometheus (Debian's package) for the end-to-end tier: generated config, temporary storage,
1 s scrape and rule evaluation, queried over its HTTP API."""

from __future__ import annotations

import json
import math
import shutil
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harness.processes import free_port, http_get, running
from harness.waiting import wait_for


@dataclass(frozen=True)
class Target:
    job: str
    port: int
    labels: Mapping[str, str]
    """Target labels, as the Prometheus Operator's service/pod discovery would attach them."""
    honor_labels: bool = False
    """As the chart's monitor sets it: only the operator's ServiceMonitor keeps its metrics' `namespace`."""


@dataclass(frozen=True)
class Prometheus:
    url: str
    log: Path

    def api(self, path: str, **params: str | Sequence[str]) -> Any:
        query = urllib.parse.urlencode(params, doseq=True)
        body = json.loads(http_get(f"{self.url}/api/v1/{path}?{query}", timeout=10))
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query: the result series (vector) or the scalar as one series."""
        data = self.api("query", query=expr)
        if data["resultType"] == "vector":
            result: list[dict[str, Any]] = data["result"]
            return result
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        raise AssertionError(f"unexpected result type {data['resultType']} for {expr}")

    def label_values(self, label: str, selector: str) -> list[str]:
        values: list[str] = self.api(f"label/{label}/values", **{"match[]": [selector]})
        return values


def values_of(series: list[dict[str, Any]]) -> list[float]:
    return [float(s["value"][1]) for s in series]


def finite(series: list[dict[str, Any]]) -> bool:
    return any(math.isfinite(v) for v in values_of(series))


@contextmanager
def prometheus(
    workdir: Path, targets: Sequence[Target], rule_groups: Sequence[Mapping[str, Any]]
) -> Iterator[Prometheus]:
    binary = shutil.which("prometheus")
    assert binary, "prometheus not found: install Debian's package (make prometheus)"
    rules = workdir / "rules.yaml"
    rules.write_text(yaml.safe_dump({"groups": [dict(g) for g in rule_groups]}))
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules)],
        "scrape_configs": [
            {
                "job_name": t.job,
                "honor_labels": t.honor_labels,
                "static_configs": [{"targets": [f"127.0.0.1:{t.port}"], "labels": dict(t.labels)}],
            }
            for t in targets
        ],
    }
    config_path = workdir / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config))
    port = free_port()
    cmd = [
        binary,
        f"--config.file={config_path}",
        f"--storage.tsdb.path={workdir / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    with running(cmd, workdir / "prometheus.log") as proc:
        url = f"http://127.0.0.1:{port}"

        def ready() -> str | None:
            if not proc.alive():
                return "exited"
            try:
                http_get(f"{url}/-/ready")
            except OSError:
                return None
            return "ready"

        state = wait_for(ready, timeout=30, message=lambda: f"Prometheus ready\n{proc.log()[-2000:]}")
        assert state == "ready", f"Prometheus exited:\n{proc.log()[-3000:]}"
        yield Prometheus(url, proc.log_path)
