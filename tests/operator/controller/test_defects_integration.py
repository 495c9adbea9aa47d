"""Regressions found by trying the operator as a new user would, against the real control plane."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from green_operator.planner.grid import slot_floor
from green_operator.times import parse_duration, parse_rfc3339
from harness.operator import OperatorProcess
from harness.waiting import wait_for
from tests.support.gtjs import (
    GROUP,
    PLURAL,
    SLOT,
    VERSION,
    condition,
    create,
    gtj,
    phase_is,
    status,
    traces_with_window,
)
from tests.support.operator_config import make_config

pytestmark = pytest.mark.integration
CAPACITY = {"europe-west2": 16, "europe-west3": 16, "europe-west9": 16, "us-west2": 8}


def gpus_over_capacity(items: list[dict[str, Any]], gpus: int) -> list[tuple[str, datetime, int]]:
    """Slots where the jobs' plans (or runs) book more GPUs than the region has."""
    booked: dict[tuple[str, datetime], int] = {}
    for o in items:
        st = o.get("status") or {}
        if st.get("phase") not in ("Deferred", "Starting", "Running"):
            continue
        start = parse_rfc3339(st.get("startTime") or st["plannedStart"])
        end = start + parse_duration(st["plan"]["expectedDuration"])
        t = slot_floor(start, SLOT)
        while t < end:
            booked[(st["region"], t)] = booked.get((st["region"], t), 0) + gpus
            t += SLOT
    return [(r, t, n) for (r, t), n in sorted(booked.items()) if n > CAPACITY[r]]


def patch_spec(namespace: str, name: str, spec: dict[str, Any]) -> None:
    client.CustomObjectsApi().patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name, {"spec": spec})


def test_a_refused_spec_is_planned_as_soon_as_the_user_fixes_it(
    tmp_path: Path, namespace: str, operator_factory: Any
) -> None:
    now = datetime.now(UTC)
    traces = traces_with_window(now, low_from=timedelta(0), low_for=timedelta(minutes=5), clean_region="europe-west3")
    operator_factory(make_config(tmp_path, traces, slot=SLOT, horizon=timedelta(minutes=10)))
    create(namespace, gtj("typo", regions=["europe-wset3"]))

    def refused() -> dict[str, Any] | None:
        st = status(namespace, "typo")
        c = condition(st, "Planned")
        return st if c and c["reason"] == "InvalidSpec" else None

    st = wait_for(refused, timeout=30, message="the refusal")
    assert st["phase"] == "Pending"
    assert "europe-wset3" in condition(st, "Planned")["message"]
    patch_spec(namespace, "typo", {"placement": {"regions": ["europe-west3"]}})
    st = wait_for(
        lambda: phase_is(namespace, "typo", "Deferred", "Starting", "Running", "Succeeded"),
        timeout=20,
        message="a plan for the fixed spec",
    )
    assert st["observedGeneration"] == 2
    assert st["region"] == "europe-west3"
    assert condition(st, "Planned")["status"] == "True"


def test_a_template_edit_while_deferred_rebuilds_the_child(
    tmp_path: Path, namespace: str, operator_factory: Any
) -> None:
    now = datetime.now(UTC)
    traces = traces_with_window(
        now, low_from=timedelta(minutes=3), low_for=timedelta(minutes=2), clean_region="europe-west9"
    )
    operator_factory(make_config(tmp_path, traces, slot=SLOT, horizon=timedelta(minutes=10)))
    create(namespace, gtj("edited", max_delay="5m"))
    st = wait_for(lambda: phase_is(namespace, "edited", "Deferred"), timeout=30, message="Deferred")
    batch = client.BatchV1Api()
    before = batch.read_namespaced_job(st["jobName"], namespace)
    template = gtj("edited")["spec"]["template"]
    template["spec"]["containers"][0]["image"] = "example.invalid/train:2"
    patch_spec(namespace, "edited", {"template": template})

    def rebuilt() -> Any:
        try:
            job = batch.read_namespaced_job(st["jobName"], namespace)
        except client.ApiException:
            return None
        image = job.spec.template.spec.containers[0].image
        return job if job.metadata.uid != before.metadata.uid and image == "example.invalid/train:2" else None

    job = wait_for(rebuilt, timeout=30, message="the child rebuilt from the new template")
    assert job.spec.suspend is True  # still waiting for its window
    st = wait_for(lambda: phase_is(namespace, "edited", "Deferred"), timeout=10, message="still Deferred")
    assert st["observedGeneration"] == 2


@pytest.fixture
def gpu_hogs(namespace: str) -> list[str]:
    """Ordinary pods (not ours) holding every GPU of us-west2 (2 nodes x 4)."""
    core = client.CoreV1Api()
    names = []
    for i in range(2):
        name = f"hog-{i}"
        core.create_namespaced_pod(
            namespace,
            {
                "metadata": {"name": name},
                "spec": {
                    "nodeSelector": {"topology.kubernetes.io/region": "us-west2"},
                    "containers": [
                        {
                            "name": "c",
                            "image": "example.invalid/hog:1",
                            "resources": {"limits": {"nvidia.com/gpu": "4"}},
                        }
                    ],
                },
            },
        )
        names.append(name)

    def bound() -> bool:
        return all(core.read_namespaced_pod(n, namespace).spec.node_name for n in names)

    wait_for(bound, timeout=30, message="the GPU hogs to be scheduled")
    return names


def test_capacity_counts_other_pods_and_unschedulable_pods_are_reported(
    tmp_path: Path, namespace: str, operator_factory: Any, gpu_hogs: list[str]
) -> None:
    now = datetime.now(UTC)
    # us-west2 is the cleanest region now: without counting the hogs the job would start there.
    traces = traces_with_window(now, low_from=timedelta(0), low_for=timedelta(minutes=10), clean_region="us-west2")
    operator_factory(make_config(tmp_path, traces, slot=SLOT, horizon=timedelta(minutes=10)))
    create(namespace, gtj("elsewhere", gpus=4, max_delay="0s", regions=["us-west2", "europe-west3"]))
    st = wait_for(
        lambda: phase_is(namespace, "elsewhere", "Starting", "Running", "Succeeded"), timeout=30, message="a start"
    )
    assert st["region"] == "europe-west3"

    # A job that may only run in the full region starts at its latest start (the promise), and its
    # pod cannot be scheduled: the status says so, and Running is not claimed.
    create(namespace, gtj("stuck", gpus=4, max_delay="0s", regions=["us-west2"]))

    def unschedulable() -> dict[str, Any] | None:
        s = status(namespace, "stuck")
        c = condition(s, "Running")
        return s if c and c["reason"] == "Unschedulable" else None

    st = wait_for(unschedulable, timeout=60, message="the Unschedulable condition")
    assert st["phase"] == "Starting"
    assert condition(st, "Running")["status"] == "False"
    events = client.CoreV1Api().list_namespaced_event(namespace, field_selector="involvedObject.name=stuck").items
    assert any(e.reason == "Unschedulable" and e.type == "Warning" for e in events)


@pytest.fixture
def second_namespace() -> Iterator[str]:
    core = client.CoreV1Api()
    name = f"t-{uuid.uuid4().hex[:10]}"
    core.create_namespace({"metadata": {"name": name, "labels": {"test": "true"}}})
    yield name
    core.delete_namespace(name, propagation_policy="Background")


def test_two_namespaced_operators_on_the_same_nodes_never_over_book(
    tmp_path: Path, namespace: str, second_namespace: str, crd: None
) -> None:
    now = datetime.now(UTC)
    traces = traces_with_window(
        now, low_from=timedelta(minutes=2), low_for=timedelta(minutes=1), clean_region="us-west2"
    )
    config = make_config(tmp_path, traces, slot=SLOT, horizon=timedelta(minutes=10))
    ops = [
        OperatorProcess(config, ns, tmp_path / f"operator-{i}.log").start()
        for i, ns in enumerate((namespace, second_namespace))
    ]
    try:
        # Each namespace wants all 8 GPUs of us-west2 in its clean minute; the first plans first.
        for ns in (namespace, second_namespace):
            for i in range(2):
                create(ns, gtj(f"j{i}", gpus=4, duration="40s", max_delay="6m", regions=["us-west2"]))
            for i in range(2):
                wait_for(
                    lambda n=ns, j=f"j{i}": phase_is(n, j, "Deferred", "Starting", "Running", "Succeeded"),
                    timeout=30,
                    message=f"a plan for {ns}/j{i}",
                )
        items = [
            *client.CustomObjectsApi().list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"],
            *client.CustomObjectsApi().list_namespaced_custom_object(GROUP, VERSION, second_namespace, PLURAL)["items"],
        ]
        assert len(items) == 4
        assert gpus_over_capacity(items, gpus=4) == []
    finally:
        for op in ops:
            op.stop()
