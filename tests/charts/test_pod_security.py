"""With the node agent setting power limits, training pods hold no privilege: in a namespace that
enforces Pod Security `restricted`, the real kube-apiserver admits the example job's training pod as
the operator builds it. The capability fallback and the agent's own pod are refused there."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from green_operator.api.manifests import build_job
from harness.cluster import REPO, kubectl
from tests.charts.chart import render

pytestmark = pytest.mark.integration

EXAMPLE = REPO / "examples" / "jobs" / "finetune-resnet.yaml"


def _training_pod(namespace: str, grant_power_capability: bool) -> dict[str, Any]:
    gtj = yaml.safe_load(EXAMPLE.read_text())
    job = build_job(
        gtj_name=gtj["metadata"]["name"],
        gtj_uid="00000000-0000-0000-0000-000000000000",
        namespace=namespace,
        template=gtj["spec"]["template"],
        parallelism=1,
        backoff_limit=0,
        region="europe-west3",
        node_selector={"topology.kubernetes.io/region": "europe-west3"},
        tolerations=[],
        power_limit_watts=250,
        intensity=300.0,
        suspend=False,
        metrics_port=9402,
        grant_power_capability=grant_power_capability,
    )
    template = job["spec"]["template"]
    name = "capable-0" if grant_power_capability else "train-0"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {**template["metadata"], "name": name, "namespace": namespace},
        "spec": template["spec"],
    }


def _create(obj: dict[str, Any]) -> tuple[bool, str]:
    result = kubectl("create", "-f", "-", input=yaml.safe_dump(obj), check=False)
    return result.returncode == 0, result.stderr


@pytest.fixture
def restricted(namespace: str) -> str:
    kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted", "--overwrite")
    return namespace


def test_the_example_training_pod_is_admitted_under_restricted(restricted: str) -> None:
    admitted, error = _create(_training_pod(restricted, grant_power_capability=False))
    assert admitted, error
    annotations = yaml.safe_load(kubectl("-n", restricted, "get", "pod", "train-0", "-o", "yaml").stdout)["metadata"]
    assert annotations["annotations"]["greentraining.io/gpu-power-limit-watts"] == "250"


def test_the_capability_fallback_and_the_node_agent_are_refused_under_restricted(restricted: str) -> None:
    admitted, error = _create(_training_pod(restricted, grant_power_capability=True))
    assert not admitted
    assert 'violates PodSecurity "restricted:latest"' in error
    assert "SYS_ADMIN" in error
    daemonset = next(o for o in render(namespace=restricted) if o["kind"] == "DaemonSet")
    agent_pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "node-agent-0", "namespace": restricted},
        # The namespace's default ServiceAccount: the agent's is not installed here.
        "spec": {k: v for k, v in daemonset["spec"]["template"]["spec"].items() if k != "serviceAccountName"},
    }
    admitted, error = _create(agent_pod)
    assert not admitted
    assert "privileged" in error
