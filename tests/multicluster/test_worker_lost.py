"""A worker whose kube-apiserver dies: the manager's MultiKueueCluster for it goes Active=False, and
back to True once the apiserver is restarted (the stack stays usable for the tests after this one)."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from kubernetes import client

from harness.cluster import REPO
from harness.multicluster import KUEUE_GROUP, KUEUE_VERSION, Stack, Worker, condition_status
from harness.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.multicluster]


def active(stack: Stack, worker: Worker) -> str | None:
    mkc = client.CustomObjectsApi(stack.manager.api()).get_cluster_custom_object(
        KUEUE_GROUP, KUEUE_VERSION, "multikueueclusters", worker.name
    )
    return condition_status(mkc, "Active")


def restart_apiserver(worker: Worker) -> None:
    env = {**os.environ, "GREEN_STATE": str(worker.state), "GREEN_KUBECONFIG": str(worker.admin_kubeconfig)}
    done = subprocess.run(
        ["bash", str(REPO / "hack" / "cluster.sh"), "restart", "kube-apiserver"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]


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
        took = time.monotonic() - t0
        print(f"MultiKueueCluster {worker.name} Active=False {took:.1f}s after its apiserver was killed")
        # The other worker is unaffected.
        assert all(active(stack, w) == "True" for w in stack.workers if w is not worker)
    finally:
        restart_apiserver(worker)
    wait_for(lambda: active(stack, worker) == "True", timeout=120, message=f"{worker.name} to be Active again")
