"""Pause and resume on the real control plane (kwok nodes): an interruptible job runs along its
planned segments, its Job suspended and unsuspended; the paused pod's report is read before the pod
goes (the operator's finalizer holds it; kwok's pod-pause-report stage writes the report), and the
job's energy sums both segments. The checkpoint volume is a pre-created static PersistentVolume."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from green_operator.api.interruption import CHECKPOINT_DIR_ENV, REPORT_FINALIZER
from green_operator.planner.grid import slot_floor
from harness.cluster import kubectl
from harness.waiting import wait_for
from tests.support.gtjs import SLOT, create, gtj, phase_is, pods_of, status, ts
from tests.support.operator_config import TraceGrid, make_config

pytestmark = pytest.mark.integration

CLAIM = "checkpoints"


def two_windows(now: datetime, first: tuple[int, int], second: tuple[int, int]) -> TraceGrid:
    """europe-west2 clean over [now+a s, now+b s) for both windows, every region dirty otherwise."""
    start = slot_floor(now, SLOT) - timedelta(minutes=2)
    n = int(timedelta(minutes=30) / SLOT)
    tr = TraceGrid(start=start, step=SLOT)
    for i, region in enumerate(("europe-west2", "europe-west3", "europe-west9", "us-west2")):
        tr.values[region] = [400.0 + 10 * i] * n
    for a, b in (first, second):
        for k in range(tr.at(now + timedelta(seconds=a)), tr.at(now + timedelta(seconds=b))):
            tr.values["europe-west2"][k] = 40.0
    return tr


def static_volume(namespace: str) -> None:
    """The local cluster has no provisioner: a static PersistentVolume, bound to the job's claim."""
    pv = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": f"{namespace}-ckpt"},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Delete",
            "storageClassName": "",
            "hostPath": {"path": f"/tmp/{namespace}-ckpt"},
            "claimRef": {"namespace": namespace, "name": CLAIM},
        },
    }
    pvc = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": CLAIM, "namespace": namespace},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "",
            "volumeName": f"{namespace}-ckpt",
            "resources": {"requests": {"storage": "1Gi"}},
        },
    }
    kubectl("apply", "-f", "-", input=yaml.safe_dump_all([pv, pvc]))


def events(namespace: str, name: str) -> list[Any]:
    return list(client.CoreV1Api().list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}").items)


def test_bad_interruption_blocks_are_refused_at_apply_time(crd: None, namespace: str) -> None:
    cases = [
        ({"policy": "Checkpointed", "minSegment": "5m", "resumeOverhead": "10m"}, "must be longer than"),
        ({"policy": "Sometimes"}, "Unsupported value"),
        ({"policy": "Checkpointed", "checkpointVolume": {"claimName": "c", "mountPath": "rel"}}, "absolute path"),
    ]
    for i, (block, message) in enumerate(cases):
        body = gtj(f"bad-{i}")
        body["spec"]["interruption"] = block
        body["metadata"]["namespace"] = namespace
        out = kubectl("apply", "-f", "-", input=yaml.safe_dump(body), check=False)
        assert out.returncode != 0, block
        assert message in out.stderr, out.stderr


def test_a_job_is_paused_and_resumed_along_its_segments(tmp_path: Path, namespace: str, operator_factory: Any) -> None:
    static_volume(namespace)
    now = datetime.now(UTC)
    traces = two_windows(now, (15, 35), (65, 85))
    operator_factory(make_config(tmp_path, traces, slot=SLOT, horizon=timedelta(minutes=10)))
    paused = {"v": 1, "meter": "nvml", "energyJoules": 1000.0, "outcome": "paused", "progress": {"fraction": 0.5}}
    final = {"v": 1, "meter": "nvml", "energyJoules": 2000.0, "outcome": "completed"}
    body = gtj(
        "segmented",
        duration="35s",
        max_delay=None,
        deadline=(now + timedelta(seconds=170)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        regions=["europe-west2"],
        annotations={
            "pod-complete.stage.kwok.x-k8s.io/delay": "25s",
            "kwok.greentraining.io/pause-message": json.dumps(paused),
            "kwok.greentraining.io/termination-message": json.dumps(final),
        },
    )
    body["spec"]["interruption"] = {
        "policy": "Checkpointed",
        "checkpointGracePeriod": "5s",
        "minSegment": "15s",
        "resumeOverhead": "0s",
        "checkpointVolume": {"claimName": CLAIM},
    }
    create(namespace, body)

    st = wait_for(lambda: phase_is(namespace, "segmented", "Deferred"), timeout=30, message="Deferred")
    segments = st["segments"]
    assert [s["state"] for s in segments] == ["Planned", "Planned"]
    assert [s["resume"] for s in segments] == [False, True]
    assert ts(segments[0]["end"]) < ts(segments[1]["start"])
    batch = client.BatchV1Api()
    job = batch.read_namespaced_job(st["jobName"], namespace)
    assert job.spec.suspend is True
    pod = job.spec.template
    assert pod.spec.termination_grace_period_seconds == 5
    assert REPORT_FINALIZER in pod.metadata.finalizers
    assert {e.name: e.value for e in pod.spec.containers[0].env}[CHECKPOINT_DIR_ENV] == "/checkpoints"
    assert pod.spec.volumes[-1].persistent_volume_claim.claim_name == CLAIM

    wait_for(lambda: phase_is(namespace, "segmented", "Running"), timeout=60, message="the first segment")
    st = wait_for(lambda: phase_is(namespace, "segmented", "Paused"), timeout=60, message="the pause")
    assert batch.read_namespaced_job(st["jobName"], namespace).spec.suspend is True

    def report_read() -> dict[str, Any] | None:
        s = status(namespace, "segmented")
        return s if (s.get("progress") or {}).get("segmentReports") else None

    def why() -> str:
        pods = [(p.metadata.name, p.metadata.finalizers, p.status.phase) for p in pods_of(namespace, st["jobName"])]
        return f"the paused pod's report (status {status(namespace, 'segmented')}, pods {pods})"

    st = wait_for(report_read, timeout=30, message=why)
    assert st["progress"]["fraction"] == 0.5
    assert st["progress"]["energyJoules"] == 1000.0
    # The report read, the finalizer is removed and kwok lets the paused pod go.
    wait_for(lambda: not pods_of(namespace, st["jobName"]) or None, timeout=30, message="the paused pod to go")

    st = wait_for(
        lambda: ((s := status(namespace, "segmented")).get("phase") in ("Starting", "Running") and s) or None,
        timeout=60,
        message="the resume",
    )
    assert batch.read_namespaced_job(st["jobName"], namespace).spec.suspend is False
    assert [s["state"] for s in st["segments"]] == ["Done", "Running"]

    st = wait_for(lambda: phase_is(namespace, "segmented", "Succeeded"), timeout=90, message="Succeeded")
    assert [s["state"] for s in st["segments"]] == ["Done", "Done"]
    assert st["energy"]["joules"] == 3000.0  # both segments' reports
    assert st["progress"]["fraction"] == 1.0
    reasons = [e.reason for e in events(namespace, "segmented")]
    assert "Paused" in reasons
    assert "Resumed" in reasons
    paused_event = next(e for e in events(namespace, "segmented") if e.reason == "Paused")
    assert "gCO2/kWh until" in paused_event.message
