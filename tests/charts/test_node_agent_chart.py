"""The node agent in the chart: a DaemonSet on GPU nodes, the chart's only privileged pod, reading the
kubelet's socket and keeping its state on the node; a switch to turn it off, a read-only mode, its own
PodMonitor and a ClusterRole that can only list and watch pods."""

from __future__ import annotations

from typing import Any

import pytest

from tests.charts.chart import CHART, find, helm, one, render

COMPONENT = "app.kubernetes.io/component"


def _agent_objs(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    return [o for o in render(values) if o["metadata"]["labels"].get(COMPONENT) == "node-agent"]


def _containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = obj["spec"]["template"]["spec"] if "template" in obj.get("spec", {}) else {}
    return list(spec.get("containers") or [])


def test_the_daemonset_runs_the_agent_on_gpu_nodes_with_the_socket_and_a_state_dir() -> None:
    ds = one(render(), "DaemonSet")
    pod = ds["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    (c,) = pod["containers"]
    assert c["command"] == ["/usr/bin/tini", "--", "green-trainer", "node-agent"]
    assert c["image"] == "ghcr.io/green-training/trainer:0.1.0"
    assert "--state-file=/var/lib/green-training/node-agent/state.json" in c["args"]
    assert "--read-only" not in c["args"]
    env = {e["name"]: e for e in c["env"]}
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    assert env["NVIDIA_VISIBLE_DEVICES"]["value"] == "all"
    assert c["securityContext"]["privileged"] is True
    volumes = {v["name"]: v["hostPath"] for v in pod["volumes"]}
    assert volumes["pod-resources"] == {"path": "/var/lib/kubelet/pod-resources", "type": "Directory"}
    assert volumes["state"] == {"path": "/var/lib/green-training/node-agent", "type": "DirectoryOrCreate"}
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    assert mounts["pod-resources"]["readOnly"] is True
    assert pod["serviceAccountName"] == one(_agent_objs(), "ServiceAccount")["metadata"]["name"]


@pytest.mark.parametrize("values", [None, {"podMonitor": {"enabled": True}, "serviceMonitor": {"enabled": True}}])
def test_only_the_node_agent_is_privileged(values: dict[str, Any] | None) -> None:
    privileged = []
    for obj in render(values):
        for c in _containers(obj):
            sc = c.get("securityContext") or {}
            if sc.get("privileged") or "SYS_ADMIN" in (sc.get("capabilities") or {}).get("add", []):
                privileged.append((obj["kind"], obj["metadata"]["labels"].get(COMPONENT)))
    assert privileged == [("DaemonSet", "node-agent")]


def test_read_only_makes_no_limit_calls_and_drops_privilege() -> None:
    (c,) = _containers(one(render({"nodeAgent": {"readOnly": True}}), "DaemonSet"))
    assert "--read-only" in c["args"]
    assert c["securityContext"]["privileged"] is False


def test_the_agent_can_be_switched_off() -> None:
    assert _agent_objs({"nodeAgent": {"enabled": False}}) == []
    assert not find(render({"nodeAgent": {"enabled": False}}), "DaemonSet")


def test_its_cluster_role_lists_and_watches_pods_and_nothing_else() -> None:
    objs = _agent_objs()
    role = one(objs, "ClusterRole")
    assert role["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "watch"]}]
    binding = one(objs, "ClusterRoleBinding")
    sa = one(objs, "ServiceAccount")["metadata"]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa["name"], "namespace": sa["namespace"]}]
    assert not find(_agent_objs({"rbac": {"create": False}}), "ClusterRole")


def test_its_pod_monitor_scrapes_the_agents_without_honoring_labels() -> None:
    assert not find(_agent_objs(), "PodMonitor")
    objs = _agent_objs({"nodeAgent": {"podMonitor": {"enabled": True, "labels": {"release": "kps"}}}})
    monitor = one(objs, "PodMonitor")
    pod_labels = one(objs, "DaemonSet")["spec"]["template"]["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert monitor["metadata"]["labels"]["release"] == "kps"
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] == "node-metrics"
    assert "honorLabels" not in endpoint


def test_unknown_node_agent_values_are_refused_naming_the_field() -> None:
    result = helm("template", "gto", str(CHART), "--set", "nodeAgent.intervalSecond=5", check=False)
    assert result.returncode != 0
    assert "intervalSecond" in result.stderr
