"""The operator as MultiKueue's external dispatcher, against the local stack (a manager and two
workers, each a real control plane with Kueue v0.17.0): regions with different carbon traces on a
5-second grid, so windows open seconds away. Every wait is on a condition.

- A Job and a JobSet run in the cleaner region's worker, in the planned window, with the power limit
  on their pods there; nothing is copied to a worker before the nomination, never to two workers.
- A worker's apiserver killed while a job waits for its window there: the job runs in the other worker
  before its latest start.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from green_operator.api.manifests import ANN_INTENSITY, ANN_POWER_LIMIT, ANN_REGION
from green_operator.kueue.accounting import ANN_RESULT
from green_operator.kueue.inputs import ANN_DURATION, ANN_MAX_DELAY
from green_operator.kueue.workload import ANN_PLAN
from green_operator.planner.grid import slot_floor
from green_operator.times import parse_rfc3339
from harness.cluster import REPO
from harness.multicluster import Stack, Worker, condition_status, workload_of
from harness.operator import OperatorProcess
from harness.waiting import wait_for
from tests.support.kueue import batch_job, jobset
from tests.support.operator_config import TraceGrid, make_config

pytestmark = [pytest.mark.integration, pytest.mark.multicluster]

SLOT = timedelta(seconds=5)
COMPLETE_DELAY = {"pod-complete.stage.kwok.x-k8s.io/delay": "4s"}
"""kwok ends a Job's pod this long after it runs: long enough to see it in the worker."""
JOBSETS = ("jobset.x-k8s.io", "v1alpha2", "jobsets")
REPORT = {"v": 1, "meter": "nvml", "energyJoules": 800.0, "exitCode": 0}
"""A trainer's report: 800 J over the pod's 4 s, 200 W on its one GPU."""


@pytest.fixture(scope="module", autouse=True)
def crd_in_the_manager(multicluster_stack: Stack) -> None:
    """The operator runs in the manager: its GreenTrainingJob CRD is there."""
    stack = multicluster_stack
    stack.manager.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    wait_for(
        lambda: stack.manager.kubectl(
            "get", "crd", "greentrainingjobs.greentraining.io", "-o",
            "jsonpath={.status.conditions[?(@.type=='Established')].status}", check=False,
        ).stdout == "True",
        timeout=60,
        message="the GreenTrainingJob CRD established in the manager",
    )  # fmt: skip


def traces(stack: Stack, now: datetime, clean: Worker, clean_from: timedelta) -> TraceGrid:
    """Every worker's region dirty (400, 410, ...) except `clean`'s from now+clean_from, for 5 min."""
    tr = TraceGrid(start=slot_floor(now, SLOT) - timedelta(minutes=2), step=SLOT)
    n = int(timedelta(minutes=30) / SLOT)
    for i, w in enumerate(stack.workers):
        tr.values[w.region] = [400.0 + 10 * i] * n
    for k in range(tr.at(now + clean_from), tr.at(now + clean_from + timedelta(minutes=5))):
        tr.values[clean.region][k] = 30.0
    return tr


def start_operator(tmp_path: Path, stack: Stack, namespace: str, trace: TraceGrid) -> OperatorProcess:
    extra = {
        "kueue": {"pendingWindow": "6s", "maxHold": "1h"},
        "multiKueue": {
            "enabled": True,
            "workerLostTimeout": stack.worker_lost_timeout,
            "probeInterval": "1s",
            "workers": [
                {"cluster": w.name, "region": w.region, "kubeconfig": str(w.kubeconfig)} for w in stack.workers
            ],
        },
    }
    config = make_config(tmp_path, trace, slot=SLOT, horizon=timedelta(minutes=10), extra=extra)
    op = OperatorProcess(config, namespace, tmp_path / "operator.log", kubeconfig_path=stack.manager.admin_kubeconfig)
    return op.start()


@contextlib.contextmanager
def operator(tmp_path: Path, stack: Stack, namespace: str, trace: TraceGrid) -> Iterator[OperatorProcess]:
    op = start_operator(tmp_path, stack, namespace, trace)
    try:
        yield op
    finally:
        op.stop()


def annotations(duration: str = "20s", max_delay: str = "2m") -> dict[str, str]:
    return {ANN_DURATION: duration, ANN_MAX_DELAY: max_delay, **COMPLETE_DELAY}


def plan_of(stack: Stack, namespace: str, owner: str) -> dict[str, Any] | None:
    wl = workload_of(stack.manager, namespace, owner)
    text = ((wl or {}).get("metadata") or {}).get("annotations", {}).get(ANN_PLAN)
    return json.loads(text) if text else None


def copies(stack: Stack, namespace: str) -> dict[str, list[str]]:
    """Per worker, the Jobs and JobSets in the namespace (MultiKueue's remote copies)."""
    out: dict[str, list[str]] = {}
    for w in stack.workers:
        try:
            jobs = client.BatchV1Api(w.api()).list_namespaced_job(namespace, _request_timeout=5).items
            sets = client.CustomObjectsApi(w.api()).list_namespaced_custom_object(
                *JOBSETS[:2], namespace, JOBSETS[2], _request_timeout=5
            )["items"]
        except Exception:  # a worker whose apiserver the test killed
            out[w.name] = []
            continue
        owned = {s["metadata"]["name"] for s in sets}
        # A JobSet's child Jobs are part of its one copy.
        out[w.name] = sorted(
            [j.metadata.name for j in jobs if not any(o.kind == "JobSet" for o in j.metadata.owner_references or [])]
            + list(owned)
        )
    return out


def pods_in(worker: Worker, namespace: str) -> list[client.V1Pod]:
    return [p for p in client.CoreV1Api(worker.api()).list_namespaced_pod(namespace).items if p.spec.node_name]


def job_complete(stack: Stack, namespace: str, name: str) -> bool:
    conds = client.BatchV1Api(stack.manager.api()).read_namespaced_job_status(name, namespace).status.conditions
    return any(c.type == "Complete" and c.status == "True" for c in conds or [])


def jobset_completed(stack: Stack, namespace: str, name: str) -> bool:
    api = client.CustomObjectsApi(stack.manager.api())
    return (
        condition_status(api.get_namespaced_custom_object(*JOBSETS[:2], namespace, JOBSETS[2], name), "Completed")
        == "True"
    )


def test_job_and_jobset_run_in_the_cleaner_workers_window_with_the_power_limit(
    tmp_path: Path, multicluster_stack: Stack, mc_namespace: str
) -> None:
    stack, ns = multicluster_stack, mc_namespace
    clean, dirty = stack.workers[-1], stack.workers[0]
    now = datetime.now(UTC)
    with operator(tmp_path, stack, ns, traces(stack, now, clean, clean_from=timedelta(seconds=25))):
        # The trainer's report at exit (kwok writes it as the container's termination message): the
        # dispatcher reads it from the worker's pod, which the worker deletes a second after it ends.
        report = {"kwok.greentraining.io/termination-message": json.dumps(REPORT)}
        client.BatchV1Api(stack.manager.api()).create_namespaced_job(
            ns, batch_job("train", stack.local_queue, {**annotations(), **report})
        )
        client.CustomObjectsApi(stack.manager.api()).create_namespaced_custom_object(
            *JOBSETS[:2], ns, JOBSETS[2], jobset("train-set", stack.local_queue, annotations())
        )
        plans = {
            o: wait_for(lambda o=o: plan_of(stack, ns, o), timeout=30, message=f"the dispatcher's plan for {o}")
            for o in ("train", "train-set")
        }
        for p in plans.values():
            assert p["cluster"] == clean.name
            assert p["region"] == clean.region
            assert parse_rfc3339(p["plannedStart"]) >= now + timedelta(seconds=15)
            assert parse_rfc3339(p["plannedStart"]) <= parse_rfc3339(p["latestStart"])
        samples: list[dict[str, list[str]]] = []

        def running_in_clean() -> list[client.V1Pod] | None:
            samples.append(copies(stack, ns))
            got = pods_in(clean, ns)
            return got if len(got) >= 2 else None

        pods = wait_for(running_in_clean, timeout=120, interval=0.2, message=f"both workloads' pods in {clean.name}")
        seen = datetime.now(UTC)
        start = min(parse_rfc3339(p["plannedStart"]) for p in plans.values())
        assert seen >= start - timedelta(seconds=1), "ran before the planned window"
        for pod in pods:
            ann = pod.metadata.annotations or {}
            assert float(ann[ANN_POWER_LIMIT]) > 0, ann
            assert ann[ANN_REGION] == clean.region
            assert float(ann[ANN_INTENSITY]) == pytest.approx(30.0, abs=0.5)
            assert clean.region in pod.spec.node_name  # kwok's nodes are gpu-<region>-<i>
        wl = workload_of(stack.manager, ns, "train")
        assert wl is not None
        assert wl["status"].get("clusterName") == clean.name
        assert condition_status(wl, "QuotaReserved") == "True"  # the nomination kept the admission

        def finished() -> bool:
            samples.append(copies(stack, ns))
            return job_complete(stack, ns, "train") and jobset_completed(stack, ns, "train-set")

        wait_for(finished, timeout=120, interval=0.2, message="both complete in the manager (status synced back)")
        for s in samples:
            assert s[dirty.name] == [], f"a copy in {dirty.name}: {s}"
            assert set(s[clean.name]) <= {"train", "train-set"}, s
        assert any(s[clean.name] == ["train", "train-set"] for s in samples), "the remote copies were never seen"
        events = client.CoreV1Api(stack.manager.api()).list_namespaced_event(ns).items
        assert any(e.reason == "CarbonDispatched" and clean.name in e.message for e in events)

        result = wait_for(
            lambda: (
                ((workload_of(stack.manager, ns, "train") or {}).get("metadata") or {})
                .get("annotations", {})
                .get(ANN_RESULT)
            ),
            timeout=60,
            message="the finished workload's result",
        )
        acc = json.loads(result)
        assert acc["region"] == clean.region
        assert acc["energy"]["joules"] == pytest.approx(REPORT["energyJoules"])  # the worker pod's report
        assert acc["energy"]["source"] == "nvml"
        assert acc["energy"]["estimatedPods"] == 0
        # At the clean region's intensity (30 g/kWh) against the dirty baseline's.
        assert acc["emissions"]["grams"] == pytest.approx(REPORT["energyJoules"] / 3.6e6 * 30.0, rel=0.1)
        assert acc["emissions"]["grams"] < acc["emissions"]["baselineGrams"]


def pid_of(worker: Worker, component: str) -> int:
    return int((worker.state / "pids" / f"{component}.pid").read_text().split()[0])


def test_a_worker_lost_while_a_job_waits_sends_it_to_the_other_before_its_latest_start(
    tmp_path: Path, multicluster_stack: Stack, mc_namespace: str
) -> None:
    stack, ns = multicluster_stack, mc_namespace
    planned_in, other = stack.workers[0], stack.workers[-1]
    now = datetime.now(UTC)
    killed = False
    with operator(tmp_path, stack, ns, traces(stack, now, planned_in, clean_from=timedelta(seconds=40))):
        try:
            client.BatchV1Api(stack.manager.api()).create_namespaced_job(
                ns, batch_job("patient", stack.local_queue, annotations(max_delay="2m"))
            )
            plan = wait_for(lambda: plan_of(stack, ns, "patient"), timeout=30, message="a plan")
            assert plan["cluster"] == planned_in.name
            latest = parse_rfc3339(plan["latestStart"])
            os.kill(pid_of(planned_in, "kube-apiserver"), signal.SIGKILL)
            killed = True
            pods = wait_for(
                lambda: pods_in(other, ns), timeout=90, interval=0.2, message=f"the job's pod in {other.name}"
            )
            assert datetime.now(UTC) <= latest
            assert datetime.now(UTC) < parse_rfc3339(plan["plannedStart"]), "it waited for the lost worker"
            assert (pods[0].metadata.annotations or {})[ANN_REGION] == other.region
            replanned = plan_of(stack, ns, "patient")
            assert replanned is not None
            assert replanned["cluster"] == other.name
            wl = workload_of(stack.manager, ns, "patient")
            assert wl is not None
            assert wl["status"].get("clusterName") == other.name
        finally:
            if killed:
                restart_apiserver(planned_in)
                # Leave the stack as found: MultiKueue reconnects with a backoff.
                wait_for(
                    lambda: cluster_active(stack, planned_in),
                    timeout=120,
                    message=f"MultiKueueCluster {planned_in.name} Active again",
                )
        assert copies(stack, ns)[planned_in.name] == [], "a copy in the lost worker after it came back"


def cluster_active(stack: Stack, worker: Worker) -> bool:
    mkc = client.CustomObjectsApi(stack.manager.api()).get_cluster_custom_object(
        "kueue.x-k8s.io", "v1beta2", "multikueueclusters", worker.name
    )
    return condition_status(mkc, "Active") == "True"


def restart_apiserver(worker: Worker) -> None:
    env = {**os.environ, "GREEN_STATE": str(worker.state), "GREEN_KUBECONFIG": str(worker.admin_kubeconfig)}
    subprocess.run(
        ["bash", str(REPO / "hack" / "cluster.sh"), "restart", "kube-apiserver"],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
