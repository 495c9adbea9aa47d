"""The nomination write, a worker's free GPUs and the manager Job's template patch (no cluster)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from green_operator.api.manifests import ANN_POWER_LIMIT
from green_operator.kueue.multikueue import (
    ADMISSION_CONDITIONS,
    NotNominableError,
    nomination_apply,
    owner_template_patch,
    worker_capacity,
)
from green_operator.regions import NodeInfo, RegionConfig

ADMISSION = {"clusterQueue": "cq", "podSetAssignments": [{"name": "main", "count": 1}]}


def reserved_workload() -> dict[str, Any]:
    return {
        "apiVersion": "kueue.x-k8s.io/v1beta2",
        "kind": "Workload",
        "metadata": {
            "name": "job-x",
            "namespace": "ns",
            "uid": "u1",
            "generation": 1,
            "resourceVersion": "42",
            "annotations": {"greentraining.io/plan": "{}"},
            "managedFields": [{"manager": "kueue-admission"}],
        },
        "spec": {"podSets": []},
        "status": {
            "admission": ADMISSION,
            "conditions": [
                {
                    "type": "QuotaReserved",
                    "status": "True",
                    "reason": "QuotaReserved",
                    "message": "m",
                    "lastTransitionTime": "t",
                },
                {"type": "PodsReady", "status": "False", "reason": "x", "message": "m", "lastTransitionTime": "t"},
            ],
            "admissionChecks": [{"name": "mk", "state": "Pending", "message": "", "lastTransitionTime": "t"}],
            "resourceRequests": [{"name": "main"}],
        },
    }


def test_the_nomination_carries_the_whole_admission_status_and_the_resource_version() -> None:
    body = reserved_workload()
    before = copy.deepcopy(body)
    out = nomination_apply(body, ["worker-b"])
    assert body == before  # not mutated
    st = out["status"]
    assert st["nominatedClusterNames"] == ["worker-b"]
    assert st["admission"] == ADMISSION  # quota reservation survives the apply
    assert [c["type"] for c in st["conditions"]] == ["QuotaReserved"]  # only those Kueue's apply owns
    assert st["admissionChecks"] == before["status"]["admissionChecks"]
    assert st["resourceRequests"] == []  # Kueue's own patch clears it once admission is set
    assert out["metadata"]["resourceVersion"] == "42"
    assert out["metadata"]["uid"] == "u1"
    assert "annotations" not in out["metadata"]  # our plan annotation must not change owners
    assert "clusterName" not in st


def test_every_admission_condition_kueue_owns_is_copied() -> None:
    body = reserved_workload()
    body["status"]["conditions"] = [{"type": t, "status": "True"} for t in (*ADMISSION_CONDITIONS, "Other")]
    got = [c["type"] for c in nomination_apply(body, ["w"])["status"]["conditions"]]
    assert got == list(ADMISSION_CONDITIONS)


def test_a_reserved_worker_cannot_be_renominated() -> None:
    body = reserved_workload()
    body["status"]["clusterName"] = "worker-a"
    with pytest.raises(NotNominableError, match="worker-a"):
        nomination_apply(body, ["worker-b"])


def test_a_workload_without_quota_cannot_be_nominated() -> None:
    body = reserved_workload()
    del body["status"]["admission"]
    with pytest.raises(NotNominableError, match="quota"):
        nomination_apply(body, ["worker-b"])


def test_requeue_state_and_evictions_are_kept() -> None:
    body = reserved_workload()
    body["status"]["requeueState"] = {"count": 2}
    body["status"]["schedulingStats"] = {"evictions": [{"reason": "x", "count": 1}]}
    st = nomination_apply(body, ["w"])["status"]
    assert st["requeueState"] == {"count": 2}
    assert st["schedulingStats"] == {"evictions": [{"reason": "x", "count": 1}]}


def pod(gpus: int, phase: str = "Running") -> dict[str, Any]:
    return {
        "spec": {"containers": [{"name": "c", "resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}]},
        "status": {"phase": phase},
    }


def test_free_gpus_are_the_workers_allocatable_less_what_unfinished_pods_request() -> None:
    nodes = [
        NodeInfo("a", {"nvidia.com/gpu.product": "H100"}, 8),
        NodeInfo("b", {}, 8, schedulable=False),
        NodeInfo("c", {"other": "label"}, 4),
    ]
    cap = worker_capacity(
        RegionConfig("north", {"topology.kubernetes.io/region": "north"}),
        nodes,
        [pod(2), pod(1, "Pending"), pod(4, "Succeeded")],
    )
    assert (cap.gpus, cap.used, cap.free, cap.gpu_model) == (12, 3, 9, "H100")


def test_free_gpus_never_go_negative() -> None:
    assert worker_capacity(RegionConfig("n", {}), [NodeInfo("a", {}, 1)], [pod(4)]).free == 0


UPDATES = [{"name": "main", "annotations": {ANN_POWER_LIMIT: "250", "greentraining.io/region": "south"}}]


def test_a_jobs_template_gets_what_differs_of_ours() -> None:
    # The updates never carry the user's own keys (pod_set_updates leaves out what the Workload's
    # template has); a value of ours from an earlier nomination of a lost worker is replaced.
    job = {
        "spec": {
            "template": {"metadata": {"annotations": {ANN_POWER_LIMIT: "250", "greentraining.io/region": "north"}}}
        }
    }
    assert owner_template_patch("Job", job, UPDATES) == {
        "spec": {"template": {"metadata": {"annotations": {"greentraining.io/region": "south"}}}}
    }


def test_a_job_that_carries_them_all_needs_no_patch() -> None:
    job = {"spec": {"template": {"metadata": {"annotations": dict(UPDATES[0]["annotations"])}}}}  # type: ignore[call-overload]
    assert owner_template_patch("Job", job, UPDATES) is None


def test_a_jobsets_replicated_jobs_are_sent_back_whole_with_the_annotations() -> None:
    js = {
        "spec": {
            "replicatedJobs": [
                {"name": "trainer", "replicas": 1, "template": {"spec": {"template": {"spec": {"containers": []}}}}},
                {"name": "other", "replicas": 1, "template": {"spec": {"template": {"spec": {"containers": []}}}}},
            ]
        }
    }
    updates = [{"name": "trainer", "annotations": {ANN_POWER_LIMIT: "250"}}]
    patch = owner_template_patch("JobSet", js, updates)
    assert patch is not None
    jobs = patch["spec"]["replicatedJobs"]
    assert [j["name"] for j in jobs] == ["trainer", "other"]
    assert jobs[0]["template"]["spec"]["template"]["metadata"]["annotations"] == {ANN_POWER_LIMIT: "250"}
    assert jobs[1]["template"]["spec"]["template"]["metadata"]["annotations"] == {}
    assert "metadata" not in js["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]  # input untouched


def test_other_kinds_are_not_patched() -> None:
    assert owner_template_patch("RayJob", {"spec": {}}, UPDATES) is None
