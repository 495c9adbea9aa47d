"""GreenTrainingJobs in integration tests: bodies, create/get, status and phase waits, and traces
with one clean window on a 5-second grid, so low-carbon windows open seconds away."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from kubernetes import client

from green_operator.planner.grid import slot_floor
from harness.waiting import wait_for
from tests.support.operator_config import TraceGrid

GROUP, VERSION, PLURAL = "greentraining.io", "v1alpha1", "greentrainingjobs"
SLOT = timedelta(seconds=5)
DECIDED = ("Deferred", "Starting", "Running", "Succeeded", "Failed")
"""Phases a job has once the operator has decided it."""


def gtj(
    name: str,
    *,
    duration: str = "20s",
    max_delay: str | None = "2m",
    deadline: str | None = None,
    regions: list[str] | None = None,
    gpus: int = 1,
    power: dict[str, Any] | None = None,
    annotations: dict[str, str] | None = None,
    parallelism: int = 1,
) -> dict[str, Any]:
    schedule: dict[str, Any] = {}
    if deadline:
        schedule["deadline"] = deadline
    if max_delay and (not deadline or max_delay != "2m"):
        schedule["maxDelay"] = max_delay
    spec: dict[str, Any] = {
        "estimatedDuration": duration,
        "schedule": schedule,
        "parallelism": parallelism,
        "template": {
            "metadata": {"annotations": annotations or {}},
            "spec": {
                "containers": [
                    {
                        "name": "train",
                        "image": "example.invalid/train:1",
                        "resources": {"limits": {"nvidia.com/gpu": gpus}},
                    }
                ]
            },
        },
    }
    if regions:
        spec["placement"] = {"regions": regions}
    if power:
        spec["power"] = power
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "GreenTrainingJob", "metadata": {"name": name}, "spec": spec}


def create(namespace: str, body: dict[str, Any]) -> None:
    client.CustomObjectsApi().create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)


def get(namespace: str, name: str) -> dict[str, Any]:
    obj: dict[str, Any] = client.CustomObjectsApi().get_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, name
    )
    return obj


def status(namespace: str, name: str) -> dict[str, Any]:
    return dict(get(namespace, name).get("status") or {})


def condition(st: dict[str, Any], ctype: str) -> dict[str, Any] | None:
    return next((c for c in st.get("conditions") or [] if c["type"] == ctype), None)


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def phase_is(namespace: str, name: str, *phases: str) -> dict[str, Any] | None:
    st = status(namespace, name)
    return st if st.get("phase") in phases else None


def traces_with_window(
    now: datetime, *, low_from: timedelta, low_for: timedelta, clean_region: str, high: float = 400.0, low: float = 40.0
) -> TraceGrid:
    """Every region dirty (`high`, a bit different per region) except `clean_region`, which is clean
    for [now+low_from, now+low_from+low_for) and dirty otherwise."""
    start = slot_floor(now, SLOT) - timedelta(minutes=2)
    n = int(timedelta(minutes=30) / SLOT)
    tr = TraceGrid(start=start, step=SLOT)
    for i, region in enumerate(("europe-west2", "europe-west3", "europe-west9", "us-west2")):
        tr.values[region] = [high + 10 * i] * n
    a, b = tr.at(now + low_from), tr.at(now + low_from + low_for)
    for k in range(a, b):
        tr.values[clean_region][k] = low
    return tr


def pods_of(namespace: str, job_name: str) -> list[client.V1Pod]:
    return client.CoreV1Api().list_namespaced_pod(namespace, label_selector=f"job-name={job_name}").items


def statuses(namespace: str) -> dict[str, dict[str, Any]]:
    """Every GreenTrainingJob's status in the namespace, by name, from one list call."""
    items = client.CustomObjectsApi().list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"]
    return {o["metadata"]["name"]: o.get("status") or {} for o in items}


def children_by_owner(namespace: str) -> dict[str, list[str]]:
    """The namespace's Jobs, by the name of the object that owns them."""
    out: dict[str, list[str]] = {}
    for job in client.BatchV1Api().list_namespaced_job(namespace).items:
        for ref in job.metadata.owner_references or []:
            out.setdefault(ref.name, []).append(job.metadata.name)
    return out


def children_once_created(namespace: str, names: list[str], timeout: float = 60) -> dict[str, list[str]]:
    """`children_by_owner`, once each of `names` has a child: in a burst, deferred jobs' suspended
    children are created after the burst's first decisions."""
    wait_for(
        lambda: set(names) <= children_by_owner(namespace).keys(),
        timeout=timeout,
        message=lambda: f"a child for each job; none for {sorted(set(names) - children_by_owner(namespace).keys())}",
    )
    return children_by_owner(namespace)
