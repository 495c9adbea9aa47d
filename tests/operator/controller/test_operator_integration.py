"""The operator against the real control plane: placement, deferral, deadlines, restarts, phases.

Each test runs its own `green-operator run` process watching only the test's namespace, with carbon
traces written for the test on a 5-second grid, so low-carbon windows open seconds away.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from green_operator.planner.grid import slot_floor
from green_operator.times import parse_duration
from harness.cluster import kubectl
from harness.operator import OperatorProcess
from harness.processes import free_port
from harness.waiting import wait_for
from tests.support.gtjs import (
    GROUP,
    PLURAL,
    SLOT,
    VERSION,
    children_once_created,
    condition,
    create,
    gtj,
    phase_is,
    pods_of,
    status,
    traces_with_window,
    ts,
)
from tests.support.operator_config import make_config

pytestmark = pytest.mark.integration


def test_invalid_resources_are_refused_at_apply_time_with_the_cel_message(crd: None, namespace: str) -> None:
    cases = [
        (gtj("both", max_delay="1h", deadline="2030-01-01T00:00:00Z"), "exactly one of deadline"),
        (gtj("negative", duration="-5m"), "spec.estimatedDuration must be a positive duration"),
        (gtj("zero-par", parallelism=0), "spec.parallelism must be at least 1"),
        (gtj("fixed-no-watts", power={"policy": "Fixed"}), "gpuPowerLimitWatts is required when"),
    ]
    no_containers = gtj("empty")
    no_containers["spec"]["template"]["spec"]["containers"] = []
    cases.append((no_containers, "must list at least one container"))
    for body, message in cases:
        body["metadata"]["namespace"] = namespace
        out = kubectl("apply", "-f", "-", input=yaml.safe_dump(body), check=False)
        assert out.returncode != 0, f"{body['metadata']['name']} was accepted"
        assert message in out.stderr, out.stderr
    names = [
        o["metadata"]["name"]
        for o in client.CustomObjectsApi().list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"]
    ]
    assert names == []


def test_job_runs_now_in_the_cleanest_region_and_follows_pods_to_succeeded(
    tmp_path: Path, namespace: str, operator_factory: Any
) -> None:
    now = datetime.now(UTC)
    traces = traces_with_window(
        now, low_from=-timedelta(minutes=2), low_for=timedelta(minutes=20), clean_region="europe-west9"
    )
    operator_factory(make_config(tmp_path, traces, slot=SLOT, horizon=timedelta(minutes=10)))
    create(
        namespace,
        gtj("train", duration="20s", max_delay="0s", annotations={"pod-complete.stage.kwok.x-k8s.io/delay": "4s"}),
    )

    st = wait_for(
        lambda: phase_is(namespace, "train", "Starting", "Running", "Succeeded"),
        timeout=30,
        message="the job to be released",
    )
    assert st["region"] == "europe-west9"
    assert condition(st, "Planned")["status"] == "True"
    assert condition(st, "Deferred")["status"] == "False"
    assert condition(st, "CarbonDataAvailable")["status"] == "True"

    def running_condition() -> bool:
        c = condition(status(namespace, "train"), "Running")
        return bool(c and (c["status"] == "True" or status(namespace, "train").get("phase") == "Succeeded"))

    wait_for(running_condition, timeout=30, message="the Running condition")
    pods = pods_of(namespace, st["jobName"])
    assert pods
    node = client.CoreV1Api().read_node(pods[0].spec.node_name)
    assert node.metadata.labels["topology.kubernetes.io/region"] == "europe-west9"

    st = wait_for(lambda: phase_is(namespace, "train", "Succeeded"), timeout=40, message="Succeeded")
    assert condition(st, "Succeeded")["status"] == "True"
    assert condition(st, "Failed")["status"] == "False"
    assert condition(st, "Running")["status"] == "False"
    assert st["completionTime"] >= st["startTime"]
    assert float(st["energy"]["joules"]) > 0
    assert st["energy"]["source"] == "estimate"  # kwok pods carry no trainer report here


def test_failed_pods_make_the_job_failed(tmp_path: Path, namespace: str, operator_factory: Any) -> None:
    now = datetime.now(UTC)
    traces = traces_with_window(
        now, low_from=-timedelta(minutes=2), low_for=timedelta(minutes=20), clean_region="europe-west3"
    )
    operator_factory(make_config(tmp_path, traces, slot=SLOT, horizon=timedelta(minutes=10)))
    create(namespace, gtj("broken", max_delay="0s", annotations={"kwok.greentraining.io/exit-code": "2"}))
    st = wait_for(lambda: phase_is(namespace, "broken", "Failed"), timeout=60, message="Failed")
    assert condition(st, "Failed")["status"] == "True"
    assert condition(st, "Failed")["reason"] == "JobFailed"
    assert condition(st, "Succeeded")["status"] == "False"
    events = client.CoreV1Api().list_namespaced_event(namespace, field_selector="involvedObject.name=broken").items
    assert any(e.reason == "JobFailed" and e.type == "Warning" for e in events)


def test_deferred_job_waits_for_its_window_then_runs(tmp_path: Path, namespace: str, operator_factory: Any) -> None:
    now = datetime.now(UTC)
    traces = traces_with_window(
        now, low_from=timedelta(seconds=40), low_for=timedelta(seconds=60), clean_region="europe-west2"
    )
    operator_factory(make_config(tmp_path, traces, slot=SLOT, horizon=timedelta(minutes=10)))
    create(namespace, gtj("patient", duration="30s", max_delay="3m"))

    st = wait_for(lambda: phase_is(namespace, "patient", "Deferred"), timeout=30, message="Deferred")
    planned = ts(st["plannedStart"])
    assert st["region"] == "europe-west2"
    assert planned >= now + timedelta(seconds=30)
    assert planned <= ts(st["latestStart"])
    assert condition(st, "Deferred")["status"] == "True"
    assert st["plan"]["intensityForecast"] < st["plan"]["baselineIntensity"]
    job = client.BatchV1Api().read_namespaced_job(st["jobName"], namespace)
    assert job.spec.suspend is True
    assert job.spec.template.spec.node_selector["topology.kubernetes.io/region"] == "europe-west2"
    assert not pods_of(namespace, st["jobName"])
    events = client.CoreV1Api().list_namespaced_event(namespace, field_selector="involvedObject.name=patient").items
    assert any(e.reason == "WaitingForLowCarbonWindow" and "Deferred" in e.message for e in events)

    st = wait_for(
        lambda: phase_is(namespace, "patient", "Starting", "Running", "Succeeded"),
        timeout=90,
        message="the window to open",
    )
    started = ts(st["startTime"])
    assert started >= planned - timedelta(seconds=2)
    assert started <= planned + timedelta(seconds=10)
    assert condition(st, "Deferred")["reason"] == "LowCarbonWindowReached"
    wait_for(lambda: phase_is(namespace, "patient", "Succeeded"), timeout=60, message="Succeeded")


def test_deadline_holds_with_the_provider_unreachable(tmp_path: Path, namespace: str, operator_factory: Any) -> None:
    now = datetime.now(UTC)
    # The fallback trace shows a clean window only after the latest start: a planner that chased it
    # would break the deadline.
    traces = traces_with_window(
        now, low_from=timedelta(minutes=3), low_for=timedelta(minutes=5), clean_region="europe-west3"
    )
    dead = f"http://127.0.0.1:{free_port()}/v3/"
    live = {
        "europe-west3": {
            "provider": "emaps",
            "zone": "DE",
            "fallbackTrace": {"provider": "traces", "zone": "europe-west3"},
            "_providers": {"emaps": {"type": "electricitymaps", "baseUrl": dead, "tokenEnv": "EMAPS_TOKEN"}},
        }
    }
    config = make_config(tmp_path, traces, slot=SLOT, horizon=timedelta(minutes=10), live_regions=live)
    op = OperatorProcess(config, namespace, tmp_path / "operator.log", {"EMAPS_TOKEN": "t0ken-secret"}).start()
    try:
        create(namespace, gtj("promise", duration="20s", max_delay="30s", regions=["europe-west3"]))
        st = wait_for(
            lambda: phase_is(namespace, "promise", "Deferred", "Starting", "Running", "Succeeded"),
            timeout=30,
            message="a decision",
        )
        latest = ts(st["latestStart"])
        carbon = condition(st, "CarbonDataAvailable")
        assert carbon["status"] == "False"
        assert carbon["reason"] == "FallbackData"
        assert "trace" in carbon["message"]
        assert "t0ken-secret" not in yaml.safe_dump(st)
        assert ts(st["plannedStart"]) <= latest
        st = wait_for(
            lambda: phase_is(namespace, "promise", "Starting", "Running", "Succeeded"),
            timeout=60,
            message="the start by the latest start",
        )
        assert ts(st["startTime"]) <= latest + timedelta(seconds=3)
        assert "t0ken-secret" not in op.tail(400)
    finally:
        op.stop()


def test_restart_keeps_the_plan_and_never_duplicates_jobs(
    tmp_path: Path, namespace: str, operator_factory: Any
) -> None:
    now = datetime.now(UTC)
    traces = traces_with_window(
        now, low_from=timedelta(seconds=45), low_for=timedelta(seconds=60), clean_region="us-west2"
    )
    config = make_config(tmp_path, traces, slot=SLOT, horizon=timedelta(minutes=10))
    first = operator_factory(config, "first")
    names = [f"burst-{i:03d}" for i in range(40)]
    docs = [dict(gtj(n, duration="20s", max_delay="3m"), metadata={"name": n, "namespace": namespace}) for n in names]
    kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs))

    def some_decided() -> bool:
        decided = [n for n in names if status(namespace, n).get("phase")]
        return len(decided) >= 5

    wait_for(some_decided, timeout=60, message="the first decisions")
    first.kill()  # mid-burst, no graceful shutdown
    operator_factory(config, "second")

    def all_decided() -> bool:
        return all(status(namespace, n).get("phase") in ("Deferred", "Starting", "Running", "Succeeded") for n in names)

    wait_for(all_decided, timeout=120, message="every job to have a decision after the restart")
    children = children_once_created(namespace, names)
    assert {n: c for n, c in children.items() if len(c) != 1} == {}  # exactly one Job per resource
    assert sorted(children) == sorted(names)
    # The capacity (8 GPUs in us-west2) limits how many fit the clean window; the rest go elsewhere.
    by_region: dict[str, int] = {}
    for n in names:
        st = status(namespace, n)
        by_region[st["region"]] = by_region.get(st["region"], 0) + 1
    assert by_region.get("us-west2", 0) >= 1


def test_operator_restart_while_deferred_still_starts_at_the_planned_time(
    tmp_path: Path, namespace: str, operator_factory: Any
) -> None:
    now = datetime.now(UTC)
    traces = traces_with_window(
        now, low_from=timedelta(seconds=35), low_for=timedelta(seconds=60), clean_region="europe-west9"
    )
    config = make_config(tmp_path, traces, slot=SLOT, horizon=timedelta(minutes=10))
    first = operator_factory(config, "first")
    create(namespace, gtj("survivor", duration="20s", max_delay="3m"))
    st = wait_for(lambda: phase_is(namespace, "survivor", "Deferred"), timeout=30, message="Deferred")
    planned = ts(st["plannedStart"])
    first.stop()
    operator_factory(config, "second")
    st = wait_for(
        lambda: phase_is(namespace, "survivor", "Starting", "Running", "Succeeded"),
        timeout=90,
        message="the start after the restart",
    )
    assert ts(st["startTime"]) <= planned + timedelta(seconds=10)
    assert len(client.BatchV1Api().list_namespaced_job(namespace).items) == 1


def test_spec_edit_while_deferred_replans_and_deletion_cleans_up(
    tmp_path: Path, namespace: str, operator_factory: Any
) -> None:
    now = datetime.now(UTC)
    traces = traces_with_window(
        now, low_from=timedelta(minutes=2), low_for=timedelta(minutes=2), clean_region="europe-west2"
    )
    # Make us-west2 clean later too, so restricting to it gives a different plan.
    k0 = traces.at(now + timedelta(minutes=3))
    for k in range(k0, k0 + 12):
        traces.values["us-west2"][k] = 20.0
    operator_factory(make_config(tmp_path, traces, slot=SLOT, horizon=timedelta(minutes=10)))
    create(namespace, gtj("editable", duration="20s", max_delay="5m"))
    st = wait_for(lambda: phase_is(namespace, "editable", "Deferred"), timeout=30, message="Deferred")
    assert st["region"] in ("europe-west2", "us-west2")
    target = "europe-west3"
    client.CustomObjectsApi().patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "editable", {"spec": {"placement": {"regions": [target]}}}
    )

    def moved() -> dict[str, Any] | None:
        s = status(namespace, "editable")
        return s if s.get("region") == target and s.get("observedGeneration") == 2 else None

    st = wait_for(moved, timeout=30, message="a re-plan into the edited region")
    job = client.BatchV1Api().read_namespaced_job(st["jobName"], namespace)
    assert job.spec.template.spec.node_selector == {"topology.kubernetes.io/region": target}
    assert job.spec.template.metadata.annotations["greentraining.io/region"] == target

    def consistent() -> bool:
        # A Deferred job's child is suspended; a released one's is not. Read both again until one
        # snapshot agrees: the executor unsuspends the child and then writes the status, and a
        # release may fall between two reads.
        suspended = client.BatchV1Api().read_namespaced_job(st["jobName"], namespace).spec.suspend is True
        return suspended == (status(namespace, "editable").get("phase") == "Deferred")

    wait_for(consistent, timeout=30, message="the child's suspend to match the phase")

    client.CustomObjectsApi().delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "editable")
    wait_for(
        lambda: not client.BatchV1Api().list_namespaced_job(namespace).items,
        timeout=30,
        message="the garbage collector to delete the Job",
    )


def test_an_urgent_job_moves_a_deferred_one_aside(tmp_path: Path, namespace: str, operator_factory: Any) -> None:
    now = datetime.now(UTC)
    # us-west2 has 8 GPUs. "patient" takes all of them in a clean window 30 s from now; "urgent" needs
    # them now for 40 s. Without moving "patient" (which has minutes of slack) "urgent" would miss.
    traces = traces_with_window(
        now, low_from=timedelta(seconds=30), low_for=timedelta(seconds=60), clean_region="us-west2"
    )
    operator_factory(make_config(tmp_path, traces, slot=SLOT, horizon=timedelta(minutes=10)))
    create(namespace, gtj("patient", duration="60s", max_delay="4m", regions=["us-west2"], gpus=4, parallelism=2))
    st = wait_for(lambda: phase_is(namespace, "patient", "Deferred"), timeout=30, message="Deferred")
    first_start = ts(st["plannedStart"])
    assert first_start <= now + timedelta(seconds=45)

    create(
        namespace,
        gtj(
            "urgent",
            duration="40s",
            max_delay="0s",
            regions=["us-west2"],
            gpus=4,
            parallelism=2,
            annotations={"pod-complete.stage.kwok.x-k8s.io/delay": "5s"},
        ),
    )
    urgent = wait_for(
        lambda: phase_is(namespace, "urgent", "Starting", "Running", "Succeeded"),
        timeout=30,
        message="the urgent job to start",
    )
    assert condition(urgent, "DeadlineAtRisk")["status"] == "False"
    urgent_end = ts(urgent["startTime"]) + timedelta(seconds=40)

    def moved() -> dict[str, Any] | None:
        s = status(namespace, "patient")
        planned = condition(s, "Planned")
        return s if planned and "moved aside for" in planned["message"] else None

    st = wait_for(moved, timeout=30, message="the deferred job to be moved aside")
    assert ts(st["plannedStart"]) >= urgent_end - SLOT  # after the urgent job (slot-aligned)
    assert ts(st["plannedStart"]) <= ts(st["latestStart"])
    assert condition(st, "Planned")["reason"] == "Replanned"
    events = client.CoreV1Api().list_namespaced_event(namespace, field_selector="involvedObject.name=patient").items
    assert any(e.reason == "Replanned" and "moved aside for" in e.message for e in events)
    for name in ("urgent", "patient"):
        wait_for(lambda n=name: phase_is(namespace, n, "Succeeded"), timeout=240, message=f"{name} to succeed")


def overbooked(items: list[dict[str, Any]], capacity: dict[str, int]) -> list[tuple[str, datetime, int]]:
    """Slots where the Deferred jobs' plans book more GPUs than the region has."""
    booked: dict[tuple[str, datetime], int] = {}
    for o in items:
        st = o.get("status") or {}
        if st.get("phase") != "Deferred":
            continue
        start = ts(st["plannedStart"])
        end = start + parse_duration(st["plan"]["expectedDuration"])
        t = slot_floor(start, SLOT)
        while t < end:
            booked[(st["region"], t)] = booked.get((st["region"], t), 0) + 1
            t += SLOT
    return [(r, t, n) for (r, t), n in sorted(booked.items()) if n > capacity[r]]


def test_a_burst_beyond_capacity_never_books_a_gpu_twice(tmp_path: Path, namespace: str, operator_factory: Any) -> None:
    # 60 one-GPU jobs for the 8 GPUs of us-west2, more than fit before their deadlines: the first
    # decisions come fast (no search for room per job while the queue is long), the late jobs then
    # try moving deferred ones aside, and every plan in status fits the region's GPUs once the
    # moves have landed.
    now = datetime.now(UTC)
    traces = traces_with_window(
        now, low_from=timedelta(seconds=40), low_for=timedelta(seconds=60), clean_region="us-west2"
    )
    operator_factory(make_config(tmp_path, traces, slot=SLOT, horizon=timedelta(minutes=10)))
    names = [f"many-{i:03d}" for i in range(60)]
    docs = [
        dict(
            gtj(n, duration=f"{20 + 10 * (i % 3)}s", max_delay=f"{60 + 30 * (i % 4)}s", regions=["us-west2"]),
            metadata={"name": n, "namespace": namespace},
        )
        for i, n in enumerate(names)
    ]
    api = client.CustomObjectsApi()
    with ThreadPoolExecutor(16) as pool:  # all at once: a queue of first decisions, a burst
        list(pool.map(lambda d: api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, d), docs))

    def items() -> list[dict[str, Any]]:
        return list(api.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"])

    wait_for(
        lambda: all((o.get("status") or {}).get("phase") for o in items()) and len(items()) == len(names),
        timeout=60,
        message="a decision for every job",
    )
    late = [o for o in items() if (condition(o.get("status") or {}, "DeadlineAtRisk") or {}).get("status") == "True"]
    assert late, "the burst should not fit: 60 jobs, 8 GPUs, minutes of slack"
    # A move is written by the job that needed the room first, then by the job moved: allow for
    # that moment, but not for a double booking that stays.
    wait_for(
        lambda: not overbooked(items(), {"us-west2": 8}),
        timeout=30,
        message=lambda: f"plans within 8 GPUs (over: {overbooked(items(), {'us-west2': 8})[:3]})",
    )
    children = children_once_created(namespace, names)
    assert {n: c for n, c in children.items() if len(c) != 1} == {}
    # The suspended children created after the burst follow each deferred job's current plan.
    by_name = {o["metadata"]["name"]: o.get("status") or {} for o in items()}
    for job in client.BatchV1Api().list_namespaced_job(namespace).items:
        st = by_name[job.metadata.owner_references[0].name]
        if st.get("phase") == "Deferred" and job.spec.suspend:
            assert job.spec.template.spec.node_selector["topology.kubernetes.io/region"] == st["region"]
            assert (job.spec.template.metadata.annotations or {})["greentraining.io/region"] == st["region"]
    # The first decisions' Events, held during the burst, all went out after it.

    def first_events() -> set[str]:
        events = client.CoreV1Api().list_namespaced_event(namespace).items
        first = ("WaitingForLowCarbonWindow", "StartedImmediately")
        return {e.involved_object.name for e in events if e.reason in first}

    wait_for(
        lambda: first_events() >= set(names),
        timeout=60,
        message=lambda: f"a first decision's Event for every job; none for {sorted(set(names) - first_events())[:5]}",
    )
