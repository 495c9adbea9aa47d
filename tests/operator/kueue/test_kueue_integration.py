"""The carbon AdmissionCheck against real Kueue v0.17.0, JobSet v0.11.1, kube-apiserver and kwok.

Carbon traces on a 5-second grid put the low-carbon window seconds away; the operator holds quota
only `pendingWindow` (6 s) before a planned start
(until then the Workload is deactivated, so Kueue gives its quota to others). Every wait is on a condition.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from green_operator.api.manifests import ANN_INTENSITY, ANN_POWER_LIMIT, ANN_REGION
from green_operator.kueue.accounting import ANN_RESULT
from green_operator.kueue.inputs import ANN_DURATION, ANN_MAX_DELAY
from green_operator.kueue.workload import ANN_PLAN
from green_operator.planner.grid import slot_floor
from green_operator.times import parse_rfc3339
from harness.cluster import REPO, kubeconfig, kubectl
from harness.operator import OperatorProcess
from harness.processes import free_port
from harness.waiting import wait_for
from tests.support.kueue import (
    Queues,
    batch_job,
    check_state,
    condition,
    jobset,
    kueue_sh,
    workload_of,
)
from tests.support.operator_config import TraceGrid, make_config

pytestmark = pytest.mark.integration

SLOT = timedelta(seconds=5)
REGION = "europe-west2"
REGIONS = ("europe-west2", "europe-west3", "europe-west9", "us-west2")


def traces(now: datetime, clean_from: timedelta, clean_for: timedelta = timedelta(minutes=5)) -> TraceGrid:
    """Every region dirty except REGION from now+clean_from for clean_for."""
    tr = TraceGrid(start=slot_floor(now, SLOT) - timedelta(minutes=2), step=SLOT)
    n = int(timedelta(minutes=30) / SLOT)
    for i, region in enumerate(REGIONS):
        tr.values[region] = [400.0 + 10 * i] * n
    for k in range(tr.at(now + clean_from), tr.at(now + clean_from + clean_for)):
        tr.values[REGION][k] = 40.0
    return tr


def operator(tmp_path: Path, namespace: str, trace: TraceGrid, name: str = "operator", **kw: Any) -> OperatorProcess:
    extra = {"kueue": {"enabled": True, "pendingWindow": "6s", "maxHold": "1h"}}
    env = kw.pop("env", None)
    config = make_config(tmp_path, trace, slot=SLOT, horizon=timedelta(minutes=10), extra=extra, **kw)
    return OperatorProcess(config, namespace, tmp_path / f"{name}.log", env).start()


def annotations(duration: str = "20s", max_delay: str = "2m", **more: str) -> dict[str, str]:
    return {ANN_DURATION: duration, ANN_MAX_DELAY: max_delay, **more}


def create_job(namespace: str, body: dict[str, Any]) -> None:
    client.BatchV1Api().create_namespaced_job(namespace, body)


def create_jobset(namespace: str, body: dict[str, Any]) -> None:
    client.CustomObjectsApi().create_namespaced_custom_object("jobset.x-k8s.io", "v1alpha2", namespace, "jobsets", body)


def job_running(namespace: str, name: str) -> bool:
    job = client.BatchV1Api().read_namespaced_job(name, namespace)
    return not job.spec.suspend


def jobset_running(namespace: str, name: str) -> bool:
    js = client.CustomObjectsApi().get_namespaced_custom_object(
        "jobset.x-k8s.io", "v1alpha2", namespace, "jobsets", name
    )
    return not js["spec"].get("suspend", False)


def pods(namespace: str, selector: str) -> list[client.V1Pod]:
    return client.CoreV1Api().list_namespaced_pod(namespace, label_selector=selector).items


def plan_of(wl: dict[str, Any] | None) -> dict[str, Any] | None:
    text = ((wl or {}).get("metadata") or {}).get("annotations", {}).get(ANN_PLAN)
    return json.loads(text) if text else None


def planned(namespace: str, owner: str) -> dict[str, Any] | None:
    return plan_of(workload_of(namespace, owner))


def ready_queues(queues: Queues, gpus: int) -> None:
    queues.setup(REGION, gpus)
    wait_for(queues.cluster_queue_active, timeout=30, message="the ClusterQueue Active (our AdmissionCheck Active)")


def test_job_and_jobset_are_held_until_the_planned_start_then_admitted_with_the_power_limit(
    tmp_path: Path, queues: Queues
) -> None:
    ns = queues.namespace
    now = datetime.now(UTC)
    op = operator(tmp_path, ns, traces(now, clean_from=timedelta(seconds=25)))
    try:
        ready_queues(queues, gpus=8)
        create_job(ns, batch_job("train", queues.local_queue, annotations()))
        create_jobset(ns, jobset("train-set", queues.local_queue, annotations()))
        plans = {
            owner: wait_for(lambda o=owner: planned(ns, o), timeout=30, message=f"a plan for {owner}")
            for owner in ("train", "train-set")
        }
        for p in plans.values():
            assert parse_rfc3339(p["plannedStart"]) >= now + timedelta(seconds=15)
            assert parse_rfc3339(p["plannedStart"]) <= parse_rfc3339(p["latestStart"])
            assert p["region"] == REGION
        # Held: deactivated, so the quota went back to Kueue; the Job stays suspended.
        assert not job_running(ns, "train")
        assert not jobset_running(ns, "train-set")
        wait_for(lambda: job_running(ns, "train"), timeout=90, message="the Job admitted")
        admitted = datetime.now(UTC)
        assert admitted >= parse_rfc3339(plans["train"]["plannedStart"]) - timedelta(seconds=1)
        wait_for(lambda: jobset_running(ns, "train-set"), timeout=30, message="the JobSet admitted")
        for selector in ("job-name=train", "jobset.sigs.k8s.io/jobset-name=train-set"):
            got = wait_for(lambda s=selector: pods(ns, s), timeout=30, message=f"pods of {selector}")
            ann = got[0].metadata.annotations or {}
            assert float(ann[ANN_POWER_LIMIT]) > 0
            assert ann[ANN_REGION] == REGION
            assert ANN_INTENSITY in ann
        wl = workload_of(ns, "train")
        state = check_state(wl, queues.check)
        assert state is not None
        assert state["state"] == "Ready"
        assert "low-carbon window" in state["message"]
        events = client.CoreV1Api().list_namespaced_event(ns, field_selector="involvedObject.name=train").items
        assert any(e.reason == "CarbonDeferred" for e in events)
    finally:
        op.stop()


def test_job_without_annotations_is_admitted_at_once(tmp_path: Path, queues: Queues) -> None:
    ns = queues.namespace
    op = operator(tmp_path, ns, traces(datetime.now(UTC), clean_from=timedelta(minutes=5)))
    try:
        ready_queues(queues, gpus=8)
        create_job(ns, batch_job("plain", queues.local_queue, {}))
        wait_for(lambda: job_running(ns, "plain"), timeout=30, message="the unannotated Job admitted")
        state = check_state(workload_of(ns, "plain"), queues.check)
        assert state is not None
        assert state["state"] == "Ready"
        assert "not managed" in state["message"]
        assert planned(ns, "plain") is None
    finally:
        op.stop()


def test_urgent_job_is_not_blocked_by_a_deferred_ones_quota(tmp_path: Path, queues: Queues) -> None:
    ns = queues.namespace
    op = operator(tmp_path, ns, traces(datetime.now(UTC), clean_from=timedelta(minutes=2)))
    try:
        ready_queues(queues, gpus=1)  # room for one of the two
        create_job(ns, batch_job("patient", queues.local_queue, annotations(max_delay="5m")))
        plan = wait_for(lambda: planned(ns, "patient"), timeout=30, message="the deferred job's plan")
        wait_for(
            lambda: not condition(workload_of(ns, "patient"), "QuotaReserved"),
            timeout=30,
            message="the deferred job's quota given back",
        )
        create_job(ns, batch_job("urgent", queues.local_queue, annotations(max_delay="0s")))
        wait_for(lambda: job_running(ns, "urgent"), timeout=30, message="the urgent Job admitted")
        assert datetime.now(UTC) < parse_rfc3339(plan["plannedStart"])
        assert not job_running(ns, "patient")
    finally:
        op.stop()


def test_users_own_power_annotation_is_kept_and_the_workload_runs(tmp_path: Path, queues: Queues) -> None:
    ns = queues.namespace
    op = operator(tmp_path, ns, traces(datetime.now(UTC), clean_from=timedelta(0)))
    try:
        ready_queues(queues, gpus=8)
        create_job(ns, batch_job("mine", queues.local_queue, annotations(**{ANN_POWER_LIMIT: "250"})))
        wait_for(lambda: job_running(ns, "mine"), timeout=30, message="the Job admitted")
        got = wait_for(lambda: pods(ns, "job-name=mine"), timeout=30, message="its pod")
        ann = got[0].metadata.annotations or {}
        assert ann[ANN_POWER_LIMIT] == "250"
        assert ann[ANN_REGION] == REGION
        wl = workload_of(ns, "mine")
        assert condition(wl, "Admitted")
        assert not condition(wl, "Finished")
        state = check_state(wl, queues.check)
        assert state is not None
        assert all(ANN_POWER_LIMIT not in (u.get("annotations") or {}) for u in state.get("podSetUpdates") or [])
    finally:
        op.stop()


def test_operator_and_kueue_restarts_during_a_hold_keep_the_plan(tmp_path: Path, queues: Queues) -> None:
    ns = queues.namespace
    now = datetime.now(UTC)
    trace = traces(now, clean_from=timedelta(seconds=35))
    first = operator(tmp_path, ns, trace, "first")
    second: OperatorProcess | None = None
    try:
        ready_queues(queues, gpus=8)
        create_job(ns, batch_job("held", queues.local_queue, annotations()))
        plan = wait_for(lambda: planned(ns, "held"), timeout=30, message="a plan")
        first.kill()
        kueue_sh("restart", timeout=120)
        second = operator(tmp_path, ns, trace, "second")
        assert not job_running(ns, "held")
        wait_for(lambda: job_running(ns, "held"), timeout=90, message="the Job admitted after the restarts")
        assert datetime.now(UTC) >= parse_rfc3339(plan["plannedStart"]) - timedelta(seconds=1)
        kept = planned(ns, "held")
        assert kept is not None
        assert kept["plannedStart"] == plan["plannedStart"]
        assert kept["latestStart"] == plan["latestStart"]
    finally:
        first.stop()
        if second is not None:
            second.stop()


def test_provider_outage_never_holds_past_the_latest_start(tmp_path: Path, queues: Queues) -> None:
    ns = queues.namespace
    now = datetime.now(UTC)
    # The fallback trace's clean window opens only after the latest start.
    trace = traces(now, clean_from=timedelta(minutes=3))
    dead = f"http://127.0.0.1:{free_port()}/v3/"
    live = {
        REGION: {
            "provider": "emaps",
            "zone": "GB",
            "fallbackTrace": {"provider": "traces", "zone": REGION},
            "_providers": {"emaps": {"type": "electricitymaps", "baseUrl": dead, "tokenEnv": "EMAPS_TOKEN"}},
        }
    }
    op = operator(tmp_path, ns, trace, live_regions=live, env={"EMAPS_TOKEN": "t0ken"})
    try:
        ready_queues(queues, gpus=8)
        create_job(ns, batch_job("promise", queues.local_queue, annotations(max_delay="20s")))
        wl = wait_for(lambda: workload_of(ns, "promise"), timeout=30, message="its Workload")
        latest = parse_rfc3339(wl["metadata"]["creationTimestamp"]) + timedelta(seconds=20)
        wait_for(lambda: job_running(ns, "promise"), timeout=60, message="the Job admitted by its latest start")
        assert datetime.now(UTC) <= latest + timedelta(seconds=3)
    finally:
        op.stop()


def test_finished_workload_is_accounted_and_reported(tmp_path: Path, queues: Queues) -> None:
    ns = queues.namespace
    op = operator(tmp_path, ns, traces(datetime.now(UTC), clean_from=timedelta(0)))
    try:
        ready_queues(queues, gpus=8)
        fast = {"pod-complete.stage.kwok.x-k8s.io/delay": "2s"}
        create_job(ns, batch_job("done", queues.local_queue, annotations(**fast)))
        wl = wait_for(
            lambda: (w := workload_of(ns, "done")) and ANN_RESULT in w["metadata"].get("annotations", {}) and w,
            timeout=60,
            message="the finished workload's result",
        )
        result = json.loads(wl["metadata"]["annotations"][ANN_RESULT])
        assert result["phase"] == "Succeeded"
        assert result["energy"]["joules"] > 0
        assert result["energy"]["estimatedPods"] == 1  # no trainer report on a kwok pod: estimated, and said so
        assert result["emissions"]["grams"] > 0
        assert result["emissions"]["savedGrams"] == pytest.approx(
            result["emissions"]["baselineGrams"] - result["emissions"]["grams"], abs=0.01
        )
        cmd = [sys.executable, "-m", "green_operator.cli.main", "report", "--kubeconfig", str(kubeconfig())]
        done = subprocess.run([*cmd, "-n", ns, "--json"], capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        rows = {r["name"]: r for r in json.loads(done.stdout)["rows"]}
        assert rows["job/done"]["phase"] == "Succeeded"
        assert rows["job/done"]["emissionsGrams"] == pytest.approx(result["emissions"]["grams"], rel=1e-3)
        assert rows["job/done"]["inTotals"]
    finally:
        op.stop()


def test_the_examples_apply_and_the_check_decides_them(tmp_path: Path, kueue_ns: str) -> None:
    """examples/kueue: the ClusterQueue, the LocalQueue, a Job and a JobSet, as the README shows them."""
    ns = kueue_ns
    examples = REPO / "examples" / "kueue"
    cluster_objects = [d for d in yaml.safe_load_all((examples / "cluster-queue.yaml").read_text()) if d]
    op = operator(tmp_path, ns, traces(datetime.now(UTC), clean_from=timedelta(minutes=5)))
    try:
        for name in ("cluster-queue.yaml", "job.yaml", "jobset.yaml"):
            kubectl("apply", "--server-side", "-n", ns, "-f", str(examples / name))
        for owner in ("finetune", "pretrain"):
            wait_for(lambda o=owner: planned(ns, o), timeout=60, message=f"the carbon check's plan for {owner}")
        assert not job_running(ns, "finetune")  # 2h of work and 8h to wait: held for a cleaner window
    finally:
        op.stop()
        kubectl(
            "delete", "-n", ns, "-f", str(examples / "job.yaml"), "-f", str(examples / "jobset.yaml"), "--wait=false"
        )
        for doc in reversed(cluster_objects):
            if doc["kind"] != "LocalQueue":
                kubectl("delete", doc["kind"].lower(), doc["metadata"]["name"], "--ignore-not-found", "--wait=false")
