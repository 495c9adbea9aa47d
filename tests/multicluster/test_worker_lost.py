"""A worker whose kube-apiserver dies: the manager's MultiKueueCluster for it goes Active=False, and
back to True once the apiserver is restarted; the stack then runs Jobs in that worker again."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from kubernetes import client

from harness.cluster import REPO
from harness.multicluster import KUEUE_GROUP, KUEUE_VERSION, Stack, Worker, condition_status, dispatch
from harness.waiting import wait_for
from tests.support.kueue import batch_job
from tests.support.multicluster import stack_namespace

pytestmark = [pytest.mark.integration, pytest.mark.multicluster]


def active(stack: Stack, worker: Worker) -> str | None:
    mkc = client.CustomObjectsApi(stack.manager.api()).get_cluster_custom_object(
        KUEUE_GROUP, KUEUE_VERSION, "multikueueclusters", worker.name
    )
    return condition_status(mkc, "Active")


def in_worker(worker: Worker, script: str, *args: str) -> None:
    env = {**os.environ, "GREEN_STATE": str(worker.state), "GREEN_KUBECONFIG": str(worker.admin_kubeconfig)}
    done = subprocess.run(
        ["bash", str(REPO / "hack" / script), *args], env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr[-3000:]


def restore(worker: Worker) -> None:
    in_worker(worker, "cluster.sh", "restart", "kube-apiserver")
    # Kueue v0.17 in the worker kept a stale namespace cache after its apiserver came back (a new
    # namespace stayed "not found" for minutes, so its workloads never reserved quota): restart it too.
    in_worker(worker, "kueue.sh", "restart")


def test_a_killed_worker_apiserver_makes_its_multikueuecluster_inactive_until_it_is_back(
    multicluster_stack: Stack,
) -> None:
    stack = multicluster_stack
    worker = stack.workers[0]
    assert active(stack, worker) == "True"
    pid = int((worker.state / "pids" / "kube-apiserver.pid").read_text())
    t0 = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    try:
        wait_for(
            lambda: active(stack, worker) == "False",
            timeout=stack.worker_lost_seconds() + 60,
            message=f"MultiKueueCluster {worker.name} to go Active=False",
        )
        print(
            f"MultiKueueCluster {worker.name} Active=False {time.monotonic() - t0:.1f}s after its apiserver was killed"
        )
        # The other worker is unaffected.
        assert all(active(stack, w) == "True" for w in stack.workers if w is not worker)
    finally:
        restore(worker)
    wait_for(lambda: active(stack, worker) == "True", timeout=120, message=f"{worker.name} to be Active again")

    # Whole again: a Job in a namespace made after the restart runs in that worker and completes.
    namespaces = stack_namespace(stack)
    try:
        a_job_completes_in(stack, worker, next(namespaces))
    finally:
        namespaces.close()  # deletes the namespace everywhere


def a_job_completes_in(stack: Stack, worker: Worker, ns: str) -> None:
    batch = client.BatchV1Api(stack.manager.api())
    batch.create_namespaced_job(ns, batch_job("after", stack.local_queue, {}))
    wait_for(
        lambda: condition_status(dispatch(stack.manager, ns, "after", worker.name), "QuotaReserved") == "True",
        timeout=90,
        message=f"the Job to be taken by the restored {worker.name}",
    )

    def complete() -> bool:
        conds = batch.read_namespaced_job_status("after", ns).status.conditions or []
        return any(c.type == "Complete" and c.status == "True" for c in conds)

    wait_for(complete, timeout=90, message=f"the Job to complete in the restored {worker.name}")
