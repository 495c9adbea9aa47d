"""The child Job: placement, trainer contract, ownership; and the patch that moves a deferred Job."""

from __future__ import annotations

from typing import Any

from green_operator.api.manifests import (
    ANN_INTENSITY,
    ANN_POWER_LIMIT,
    ANN_REGION,
    build_job,
    job_name,
    placement_patch,
)

TEMPLATE: dict[str, Any] = {
    "metadata": {"labels": {"team": "vision"}},
    "spec": {
        "nodeSelector": {"disk": "ssd", "topology.kubernetes.io/region": "user-choice"},
        "containers": [
            {"name": "train", "image": "img", "env": [{"name": "GREEN_REGION", "value": "mine"}]},
            {"name": "sidecar", "image": "side"},
        ],
    },
}


def job(**kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "gtj_name": "resnet",
        "gtj_uid": "uid-1",
        "namespace": "ml",
        "template": TEMPLATE,
        "parallelism": 1,
        "backoff_limit": 0,
        "region": "europe-west9",
        "node_selector": {"topology.kubernetes.io/region": "europe-west9"},
        "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "power_limit_watts": 286.4,
        "intensity": 36.24,
        "suspend": True,
        "metrics_port": 9402,
    }
    args.update(kw)
    return build_job(**args)


def test_job_is_owned_suspended_and_pinned_to_its_region() -> None:
    j = job()
    assert j["metadata"]["name"] == "resnet"
    assert j["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "greentraining.io/v1alpha1",
            "kind": "GreenTrainingJob",
            "name": "resnet",
            "uid": "uid-1",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    spec = j["spec"]
    assert spec["suspend"] is True
    assert "completionMode" not in spec
    pod = spec["template"]
    assert pod["spec"]["nodeSelector"] == {"disk": "ssd", "topology.kubernetes.io/region": "europe-west9"}
    assert pod["spec"]["tolerations"] == [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["metadata"]["labels"]["team"] == "vision"
    assert pod["metadata"]["annotations"] == {ANN_REGION: "europe-west9", ANN_POWER_LIMIT: "286", ANN_INTENSITY: "36.2"}


def test_trainer_env_comes_from_annotations_and_never_overrides_the_users() -> None:
    pod = job()["spec"]["template"]["spec"]
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env["GREEN_REGION"] == {"name": "GREEN_REGION", "value": "mine"}
    # The node agent applies the annotation; the wrapper is not asked to (it holds no privilege).
    assert "GREEN_GPU_POWER_LIMIT_WATTS" not in env
    assert env["GREEN_JOB_NAME"] == {"name": "GREEN_JOB_NAME", "value": "resnet"}
    # The trainer's metric labels: container_name, and Hostname (the node) to join dcgm-exporter's.
    assert env["GREEN_CONTAINER_NAME"] == {"name": "GREEN_CONTAINER_NAME", "value": pod["containers"][0]["name"]}
    assert env["GREEN_NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    assert pod["containers"][0]["ports"] == [{"name": "green-metrics", "containerPort": 9402, "protocol": "TCP"}]
    assert "ports" not in pod["containers"][1]
    assert TEMPLATE["spec"]["containers"][0]["env"] == [{"name": "GREEN_REGION", "value": "mine"}]  # input untouched


def test_multi_pod_jobs_are_indexed_and_no_limit_is_an_empty_annotation() -> None:
    j = job(parallelism=4, power_limit_watts=None, suspend=False)
    assert j["spec"]["parallelism"] == 4
    assert j["spec"]["completions"] == 4
    assert j["spec"]["completionMode"] == "Indexed"
    assert j["spec"]["suspend"] is False
    assert j["spec"]["template"]["metadata"]["annotations"][ANN_POWER_LIMIT] == ""


def test_long_names_are_shortened_deterministically() -> None:
    long = "a" * 100
    assert len(job_name(long)) <= 63
    assert job_name(long) == job_name(long)
    assert job_name(long) != job_name("a" * 99 + "b")
    assert job_name("short") == "short"


def test_placement_patch_moves_region_and_drops_stale_selector_keys() -> None:
    patch = placement_patch(
        node_selector={"cloud.example/zone-group": "us"},
        previous_node_selector={"topology.kubernetes.io/region": "europe-west9", "disk": "ssd"},
        tolerations=[],
        user_template=TEMPLATE,
        region="us-west2",
        power_limit_watts=None,
        intensity=120.0,
    )
    tpl = patch["spec"]["template"]
    assert tpl["metadata"]["annotations"] == {ANN_REGION: "us-west2", ANN_POWER_LIMIT: "", ANN_INTENSITY: "120.0"}
    assert tpl["spec"]["nodeSelector"] == {
        "disk": "ssd",
        "topology.kubernetes.io/region": "user-choice",
        "cloud.example/zone-group": "us",
    }
    assert tpl["spec"]["tolerations"] is None


def test_power_capability_is_granted_only_when_asked_and_only_to_the_trainer() -> None:
    plain = job()["spec"]["template"]["spec"]["containers"][0]
    assert "securityContext" not in plain
    granted = job(grant_power_capability=True)["spec"]["template"]["spec"]
    sc = granted["containers"][0]["securityContext"]
    assert sc["runAsUser"] == 0
    assert sc["runAsNonRoot"] is False
    assert sc["capabilities"]["add"] == ["SETGID", "SETUID", "SYS_ADMIN"]
    assert "securityContext" not in granted["containers"][1]  # only the trainer's container


def test_only_the_capability_fallback_asks_the_wrapper_to_set_the_limit() -> None:
    pod = job(grant_power_capability=True)["spec"]["template"]["spec"]
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env["GREEN_GPU_POWER_LIMIT_WATTS"]["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.annotations['greentraining.io/gpu-power-limit-watts']"
    )
    assert "SYS_ADMIN" in pod["containers"][0]["securityContext"]["capabilities"]["add"]
