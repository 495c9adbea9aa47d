"""The chart against the local control plane: every rendered object passes a server-side dry-run (real
schemas, Prometheus Operator CRDs included), and `helm install` brings the operator's pod up (kwok)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import yaml

from harness.cluster import kubectl
from harness.waiting import wait_for
from tests.charts.chart import CHART, chart_args, helm, render_text

pytestmark = pytest.mark.integration

MONITORING = {"serviceMonitor": {"enabled": True}, "podMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}}


def _variants(namespace: str) -> dict[str, dict[str, Any]]:
    return {
        "default": {},
        "monitoring-cluster-scope": MONITORING,
        "monitoring-namespaced": {**MONITORING, "rbac": {"scope": "namespaced", "watchNamespaces": [namespace]}},
        "secrets": {
            "providerSecrets": {
                "env": [{"name": "ELECTRICITYMAPS_TOKEN", "secretName": "carbon", "key": "emaps"}],
                "files": [{"secretName": "watttime", "mountPath": "/var/run/secrets/watttime"}],
            }
        },
    }


def _release() -> str:
    # Cluster-scoped objects (ClusterRoles) carry the release name: unique per test run.
    return f"gto-{uuid.uuid4().hex[:6]}"


@pytest.mark.parametrize("variant", ["default", "monitoring-cluster-scope", "monitoring-namespaced", "secrets"])
def test_rendered_objects_pass_a_server_side_dry_run(
    variant: str, namespace: str, greentraining_crd: None, monitoring_crds: None
) -> None:
    text = render_text(_variants(namespace)[variant], release=_release(), namespace=namespace)
    kinds = {d["kind"] for d in yaml.safe_load_all(text) if d}
    if variant.startswith("monitoring"):
        assert {"ServiceMonitor", "PodMonitor", "PrometheusRule"} <= kinds
    result = kubectl("apply", "--server-side", "--dry-run=server", "-f", "-", input=text, check=False)
    assert result.returncode == 0, result.stderr
    dry = [line for line in result.stdout.splitlines() if line.endswith("(server dry run)")]
    assert len(dry) == sum(1 for d in yaml.safe_load_all(text) if d)
    # Nothing was created.
    assert kubectl("-n", namespace, "get", "deployments", "-o", "name").stdout == ""


def test_a_typo_in_a_monitoring_object_is_refused_by_its_schema(namespace: str, monitoring_crds: None) -> None:
    """The dry-run above would catch a wrong field: the CRDs' schemas are strict."""
    text = render_text({"serviceMonitor": {"enabled": True}}, release=_release(), namespace=namespace)
    monitor = next(d for d in yaml.safe_load_all(text) if d and d["kind"] == "ServiceMonitor")
    monitor["spec"]["endpoints"][0]["honourLabels"] = True
    doc = yaml.safe_dump(monitor)
    result = kubectl("apply", "--server-side", "--dry-run=server", "-f", "-", input=doc, check=False)
    assert result.returncode != 0
    assert "honourLabels" in result.stderr


def test_helm_install_brings_the_operator_up(namespace: str, greentraining_crd: None, monitoring_crds: None) -> None:
    release = _release()
    values = {**MONITORING, "rbac": {"scope": "namespaced", "watchNamespaces": [namespace]}}
    args, stdin = chart_args(values)
    try:
        result = helm(
            "install", release, str(CHART), "--namespace", namespace, *args, "--wait", "--timeout", "90s",
            input=stdin, check=False, timeout=150,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        # NOTES.txt rendered with this install's names.
        assert f"installed as {release}-green-training-operator in namespace {namespace}" in result.stdout
        assert f"It watches GreenTrainingJobs in: {namespace}." in result.stdout

        def ready_pod() -> dict[str, Any] | None:
            selector = f"app.kubernetes.io/instance={release}"
            pods = yaml.safe_load(kubectl("-n", namespace, "get", "pods", "-l", selector, "-o", "yaml").stdout)["items"]
            for pod in pods:
                conditions = {c["type"]: c["status"] for c in pod["status"].get("conditions", [])}
                if pod["status"].get("phase") == "Running" and conditions.get("Ready") == "True":
                    result: dict[str, Any] = pod
                    return result
            return None

        pod = wait_for(ready_pod, timeout=60, message="the operator pod Running and Ready")
        spec = pod["spec"]
        assert spec["serviceAccountName"] == f"{release}-green-training-operator"
        assert spec["nodeName"]  # scheduled on one of the (kwok) nodes
        container = spec["containers"][0]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        # Every object of the release exists, monitoring ones included.
        listed = helm("get", "manifest", release, "--namespace", namespace).stdout
        for kind in ("ServiceMonitor", "PodMonitor", "PrometheusRule"):
            assert f"kind: {kind}" in listed
            name = f"{release}-green-training-operator" + ("-trainers" if kind == "PodMonitor" else "")
            assert kubectl("-n", namespace, "get", kind.lower(), name, "-o", "name").stdout.strip()
        deployment = yaml.safe_load(
            kubectl("-n", namespace, "get", "deployment", f"{release}-green-training-operator", "-o", "yaml").stdout
        )
        # Two replicas by default (one leads, one stands by), kept through drains by a budget.
        assert deployment["status"]["availableReplicas"] == 2
        pdb = kubectl("-n", namespace, "get", "pdb", f"{release}-green-training-operator", "-o", "yaml").stdout
        assert yaml.safe_load(pdb)["spec"]["minAvailable"] == 1
    finally:
        helm("uninstall", release, "--namespace", namespace, "--wait", "--timeout", "60s", check=False)
    # Uninstall removes the cluster-scoped objects too.
    left = kubectl("get", "clusterroles", "-o", "name").stdout
    assert release not in left
