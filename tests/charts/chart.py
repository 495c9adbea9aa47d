"""Render the Helm chart with the project's pinned helm binary and pick objects out of the result."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from harness.cluster import REPO, bin_dir, kubeconfig, kubectl

CHART = REPO / "charts" / "green-training-operator"
CRDS = REPO / "crds"
Manifest = dict[str, Any]


@cache
def _helm_home() -> Path:
    # helm's cache/config/data go to a private directory: tests never touch the user's helm setup.
    return Path(tempfile.mkdtemp(prefix="gto-helm-"))


def helm(
    *args: str, input: str | None = None, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    home = _helm_home()
    env = {
        **os.environ,
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
        "KUBECONFIG": str(kubeconfig()),
    }
    binary = bin_dir() / "helm"
    assert binary.is_file(), f"helm not found at {binary}: run `make controlplane` (it builds the pinned helm)"
    return subprocess.run(
        [str(binary), *args],
        input=input,
        check=check,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def chart_args(values: Mapping[str, Any] | None) -> tuple[list[str], str | None]:
    """helm arguments and stdin that pass ``values`` (as a values file read from stdin)."""
    if not values:
        return [], None
    return ["--values", "-"], yaml.safe_dump(dict(values))


def render_text(
    values: Mapping[str, Any] | None = None,
    *,
    release: str = "gto",
    namespace: str = "green-system",
    extra: Sequence[str] = (),
) -> str:
    """The chart rendered by `helm template` (fails the test with helm's message if it cannot)."""
    args, stdin = chart_args(values)
    result = helm("template", release, str(CHART), "--namespace", namespace, *args, *extra, input=stdin, check=False)
    assert result.returncode == 0, f"helm template failed:\n{result.stderr}"
    return result.stdout


def render(
    values: Mapping[str, Any] | None = None,
    *,
    release: str = "gto",
    namespace: str = "green-system",
    extra: Sequence[str] = (),
) -> list[Manifest]:
    text = render_text(values, release=release, namespace=namespace, extra=extra)
    return [d for d in yaml.safe_load_all(text) if d]


def find(manifests: Iterable[Manifest], kind: str, name: str | None = None) -> list[Manifest]:
    return [m for m in manifests if m["kind"] == kind and (name is None or m["metadata"]["name"] == name)]


def one(manifests: Iterable[Manifest], kind: str, name: str | None = None) -> Manifest:
    found = find(manifests, kind, name)
    assert len(found) == 1, f"expected one {kind} {name or ''}, got {[m['metadata']['name'] for m in found]}"
    return found[0]


def operator_config(manifests: Iterable[Manifest]) -> dict[str, Any]:
    """The operator configuration the chart's ConfigMap carries."""
    cm = next(m for m in find(manifests, "ConfigMap") if "config.yaml" in m.get("data", {}))
    doc: dict[str, Any] = yaml.safe_load(cm["data"]["config.yaml"])
    return doc


def dashboard(manifests: Iterable[Manifest]) -> dict[str, Any]:
    cm = next(m for m in find(manifests, "ConfigMap") if "green-training.json" in m.get("data", {}))
    doc: dict[str, Any] = json.loads(cm["data"]["green-training.json"])
    return doc


def alert_rules(manifests: Iterable[Manifest]) -> list[dict[str, Any]]:
    rule = one(manifests, "PrometheusRule")
    return [r for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r]


def dashboard_targets(dash: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(panel title / refId, PromQL) for every query on the dashboard, rows' nested panels included."""
    out: list[tuple[str, str]] = []
    for panel in dash["panels"]:
        for p in [panel, *panel.get("panels", [])]:
            for t in p.get("targets", []):
                out.append((f"{p['title']} / {t['refId']}", t["expr"]))
    return out


def dashboard_variable_queries(dash: Mapping[str, Any]) -> dict[str, str]:
    """Template variable name -> its label_values(...) query (query variables only)."""
    out: dict[str, str] = {}
    for v in dash["templating"]["list"]:
        if v["type"] == "query":
            q = v["query"]
            out[v["name"]] = q["query"] if isinstance(q, Mapping) else q
    return out


def grafana_to_promql(
    expr: str, values: dict[str, str] | None = None, rate_interval: str = "1m", time_range: str = "1h"
) -> str:
    """Fill in Grafana's variables: the dashboard's own and the built-in interval and range ones
    (``$__range``: the dashboard's time range, over which its totals are counted)."""
    values = {"namespace": ".*", "job": ".*", "region": ".*", **(values or {})}
    out = expr.replace("$__rate_interval", rate_interval).replace("$__interval", rate_interval)
    out = out.replace("$__range", time_range)
    for name, value in values.items():
        out = out.replace("${" + name + "}", value).replace("$" + name, value)
    assert "$" not in out, f"unsubstituted variable in {out}"
    return out


def parse_label_values(query: str) -> tuple[str, str]:
    """(series selector, label) of a Grafana `label_values(<selector>, <label>)` variable query."""
    m = re.fullmatch(r"label_values\((.*),\s*([a-zA-Z_]+)\)", query.strip())
    assert m, f"unexpected variable query {query!r}"
    return m.group(1), m.group(2)


IMAGE_TRACES = "/opt/green/data/carbon"
"""Where operator/Dockerfile puts the traces the chart's default configuration names."""


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
