"""The local MultiKueue stack with Kueue's own behaviour and no operator: a Job (and a JobSet) waits in
the manager until a nomination written as an external dispatcher writes it, then runs in the nominated
worker only, with the pod-template annotations added to the suspended manager copy, and its status
comes back to the manager."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client

from harness.multicluster import Stack, Worker, condition_status, dispatch, workload_of
from harness.waiting import wait_for
from tests.support.kueue import batch_job, jobset

pytestmark = [pytest.mark.integration, pytest.mark.multicluster]

POWER = "greentraining.io/power-limit-watts"
# kwok ends a Job's pod this long after it runs: long enough to read the pod in the worker (MultiKueue
# deletes the remote Job about a second after it finishes).
COMPLETE_DELAY = {"pod-complete.stage.kwok.x-k8s.io/delay": "4s"}


def remote_copies(stack: Stack, namespace: str, kind: str) -> dict[str, list[str]]:
    """Per worker, the names of the Jobs or JobSets in the namespace (MultiKueue's remote copies)."""
    out: dict[str, list[str]] = {}
    for w in stack.workers:
        if kind == "Job":
            items = client.BatchV1Api(w.api()).list_namespaced_job(namespace).items
            out[w.name] = [j.metadata.name for j in items]
        else:
            sets = client.CustomObjectsApi(w.api()).list_namespaced_custom_object(
                "jobset.x-k8s.io", "v1alpha2", namespace, "jobsets"
            )["items"]
            out[w.name] = [s["metadata"]["name"] for s in sets]
    return out


def annotated_pod(worker: Worker, namespace: str) -> client.V1Pod | None:
    pods = client.CoreV1Api(worker.api()).list_namespaced_pod(namespace).items
    return next((p for p in pods if (p.metadata.annotations or {}).get(POWER) == "300" and p.spec.node_name), None)


def reserved(stack: Stack, namespace: str, owner: str) -> dict[str, Any]:
    """The manager's Workload once it holds quota, with MultiKueue's check Pending (there is no worker yet)."""

    def pending() -> dict[str, Any] | None:
        wl = workload_of(stack.manager, namespace, owner)
        if wl is None or condition_status(wl, "QuotaReserved") != "True":
            return None
        checks = {c["name"]: c["state"] for c in wl["status"].get("admissionChecks") or []}
        return wl if checks.get(stack.admission_check) == "Pending" else None

    return wait_for(pending, timeout=60, message=f"the manager's Workload of {owner} to reserve quota, check Pending")


def nominate_and_follow(
    stack: Stack, namespace: str, owner: str, kind: str, target: Worker, finished: Callable[[], bool]
) -> list[dict[str, list[str]]]:
    """Nominate `target`, then wait for the annotated pod there and for the manager's copy to finish,
    sampling the workers' copies all along (returned)."""
    samples = [remote_copies(stack, namespace, kind)]

    wl = dispatch(stack.manager, namespace, owner, target.name)
    assert wl["status"]["clusterName"] == target.name
    # The quota reservation survives the nomination.
    assert condition_status(wl, "QuotaReserved") == "True", wl["status"]
    assert wl["status"].get("admission"), wl["status"]

    def pod_seen() -> client.V1Pod | None:
        samples.append(remote_copies(stack, namespace, kind))
        return annotated_pod(target, namespace)

    pod = wait_for(
        pod_seen, timeout=60, interval=0.1, message=f"a scheduled pod with the power annotation in {target.name}"
    )
    assert target.region in pod.spec.node_name  # kwok's nodes are gpu-<region>-<i>

    def done() -> bool:
        samples.append(remote_copies(stack, namespace, kind))
        return finished()

    wait_for(done, timeout=90, message=f"the manager's {kind} {owner} to complete (status synced back)")
    return samples


def assert_one_copy_in(samples: list[dict[str, list[str]]], owner: str, target: Worker) -> None:
    for s in samples:
        elsewhere = {w: names for w, names in s.items() if w != target.name and names}
        assert elsewhere == {}, f"a copy outside {target.name}: {s}"
        assert s[target.name] in ([], [owner]), s
    assert any(s[target.name] == [owner] for s in samples), "the remote copy was never seen"


def test_a_job_waits_for_its_nomination_then_runs_in_that_worker_only(
    multicluster_stack: Stack, mc_namespace: str
) -> None:
    stack = multicluster_stack
    ns, target = mc_namespace, stack.workers[-1]
    batch = client.BatchV1Api(stack.manager.api())
    batch.create_namespaced_job(ns, batch_job("train", stack.local_queue, dict(COMPLETE_DELAY)))

    reserved(stack, ns, "train")
    job = batch.read_namespaced_job("train", ns)
    assert job.spec.managed_by == "kueue.x-k8s.io/multikueue"
    assert job.spec.suspend
    # The power limit goes into the suspended manager copy before the nomination: the worker's copy is
    # made once, from it.
    batch.patch_namespaced_job("train", ns, {"spec": {"template": {"metadata": {"annotations": {POWER: "300"}}}}})
    assert remote_copies(stack, ns, "Job") == {w.name: [] for w in stack.workers}, "a copy before the nomination"

    def complete() -> bool:
        conds = batch.read_namespaced_job_status("train", ns).status.conditions or []
        return any(c.type == "Complete" and c.status == "True" for c in conds)

    samples = nominate_and_follow(stack, ns, "train", "Job", target, complete)
    assert_one_copy_in(samples, "train", target)
    assert batch.read_namespaced_job_status("train", ns).status.succeeded == 1


def test_a_jobset_runs_in_the_nominated_worker_without_a_jobset_controller_in_the_manager(
    multicluster_stack: Stack, mc_namespace: str
) -> None:
    stack = multicluster_stack
    ns, target = mc_namespace, stack.workers[0]
    api = client.CustomObjectsApi(stack.manager.api())
    group, version = "jobset.x-k8s.io", "v1alpha2"
    api.create_namespaced_custom_object(
        group, version, ns, "jobsets", jobset("train-set", stack.local_queue, dict(COMPLETE_DELAY))
    )
    reserved(stack, ns, "train-set")
    body = api.get_namespaced_custom_object(group, version, ns, "jobsets", "train-set")
    assert body["spec"]["managedBy"] == "kueue.x-k8s.io/multikueue"
    assert body["spec"]["suspend"]
    api.patch_namespaced_custom_object(
        group,
        version,
        ns,
        "jobsets",
        "train-set",
        [
            {
                "op": "add",
                "path": "/spec/replicatedJobs/0/template/spec/template/metadata/annotations/"
                + POWER.replace("/", "~1"),
                "value": "300",
            }
        ],
        _content_type="application/json-patch+json",
    )
    assert remote_copies(stack, ns, "JobSet") == {w.name: [] for w in stack.workers}

    def completed() -> bool:
        js = api.get_namespaced_custom_object(group, version, ns, "jobsets", "train-set")
        return condition_status(js, "Completed") == "True"

    samples = nominate_and_follow(stack, ns, "train-set", "JobSet", target, completed)
    assert_one_copy_in(samples, "train-set", target)
