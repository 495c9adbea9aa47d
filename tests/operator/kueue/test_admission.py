"""The carbon check's decision, as a table of Workloads in and verdicts out (no cluster)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from green_operator.api.manifests import ANN_INTENSITY, ANN_POWER_LIMIT, ANN_REGION
from green_operator.kueue.admission import (
    DEFERRED,
    INVALID_ANNOTATION,
    KueueSettings,
    Situation,
    decide,
    decision_from_plan,
    reactivate_after,
)
from green_operator.kueue.inputs import (
    ANN_DEADLINE,
    ANN_DURATION,
    ANN_MAX_DELAY,
    ANN_POWER_POLICY,
    Malformed,
    Managed,
    Unmanaged,
    read_inputs,
)
from green_operator.kueue.workload import ANN_PLAN, flavor_region, workload_view
from green_operator.planner import PlannerSettings, RegionForecast, Reservation
from green_operator.regions import RegionConfig
from green_operator.times import rfc3339

T0 = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
CHECK = "green-carbon"
SLOT = timedelta(minutes=15)
PLANNER = PlannerSettings(slot=SLOT, horizon=timedelta(hours=12), reserve_fraction=0.0)


def forecast(dirty_until: timedelta, region: str = "north", gpus: int = 8) -> RegionForecast:
    """400 g/kWh until `dirty_until`, then 50: the clean window starts there."""
    n = int(PLANNER.horizon / SLOT)
    cut = int(dirty_until / SLOT)
    return RegionForecast(region, gpus, "H100", T0, [400.0] * cut + [50.0] * (n - cut))


def workload(
    annotations: dict[str, str] | None = None,
    *,
    state: str = "Pending",
    reserved: datetime | None = T0,
    plan: dict[str, Any] | None = None,
    pod_sets: tuple[str, ...] = ("main",),
    created: datetime = T0,
    extra_conditions: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    conds = [*(extra_conditions or [])]
    if reserved is not None:
        conds.append({"type": "QuotaReserved", "status": "True", "lastTransitionTime": rfc3339(reserved)})
    meta: dict[str, Any] = {
        "namespace": "ns",
        "name": "job-x",
        "uid": "u1",
        "creationTimestamp": rfc3339(created),
        "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "x", "uid": "o1", "controller": True}],
    }
    if plan is not None:
        meta["annotations"] = {ANN_PLAN: json.dumps(plan)}
    template = {
        "metadata": {"annotations": annotations or {}},
        "spec": {"containers": [{"name": "c", "resources": {"limits": {"nvidia.com/gpu": "2"}}}]},
    }
    return {
        "metadata": meta,
        "spec": {"podSets": [{"name": n, "count": 1, "template": template} for n in pod_sets]},
        "status": {
            "conditions": conds,
            "admissionChecks": [{"name": CHECK, "state": state, "message": ""}],
            "admission": {"podSetAssignments": [{"name": "main", "flavors": {"nvidia.com/gpu": "north-gpu"}}]},
        },
    }


def situation(body: dict[str, Any], now: datetime = T0, fc: RegionForecast | None = None, **kw: Any) -> Situation:
    return Situation(
        wl=workload_view(body),
        check=CHECK,
        now=now,
        region="north",
        forecast=fc,
        planner=PLANNER,
        settings=KueueSettings(pending_window=timedelta(minutes=5), max_hold=timedelta(hours=1)),
        **kw,
    )


MANAGED = {ANN_DURATION: "1h", ANN_MAX_DELAY: "6h"}


def test_unannotated_workload_is_ready_at_once_with_a_message() -> None:
    v = decide(situation(workload({}), fc=forecast(timedelta(hours=3))))
    assert v.update is not None
    assert v.update.state == "Ready"
    assert "not managed" in v.update.message
    assert ANN_DURATION in v.update.message
    assert v.update.pod_set_updates == ()
    assert v.events == ()


@pytest.mark.parametrize(
    ("annotations", "named"),
    [
        ({ANN_DURATION: "soon", ANN_MAX_DELAY: "6h"}, ANN_DURATION),
        ({ANN_DURATION: "1h", ANN_DEADLINE: "tomorrow"}, ANN_DEADLINE),
        ({ANN_DURATION: "1h", ANN_MAX_DELAY: "a while"}, ANN_MAX_DELAY),
        ({ANN_DURATION: "1h"}, ANN_DURATION),
        ({ANN_DURATION: "1h", ANN_MAX_DELAY: "6h", ANN_DEADLINE: "2026-12-02T00:00:00Z"}, ANN_DEADLINE),
        ({**MANAGED, ANN_POWER_POLICY: "Turbo"}, ANN_POWER_POLICY),
        ({**MANAGED, ANN_POWER_LIMIT: "lots"}, ANN_POWER_LIMIT),
    ],
)
def test_malformed_annotation_is_ready_with_a_warning_naming_it(annotations: dict[str, str], named: str) -> None:
    v = decide(situation(workload(annotations), fc=forecast(timedelta(hours=3))))
    assert v.update is not None
    assert v.update.state == "Ready"
    assert "carbon-blind" in v.update.message
    assert len(v.events) == 1
    assert v.events[0].warning
    assert v.events[0].reason == INVALID_ANNOTATION
    assert named in v.events[0].message
    assert ";" in v.events[0].message


def test_pod_sets_that_disagree_are_malformed() -> None:
    body = workload(MANAGED, pod_sets=("a", "b"))
    body["spec"]["podSets"][1]["template"] = {"metadata": {"annotations": {ANN_DURATION: "2h"}}}
    got = read_inputs(workload_view(body))
    assert isinstance(got, Malformed)
    assert got.annotation == ANN_DURATION
    assert "pod set a" in got.problem


def test_inputs_count_gpus_and_latest_start() -> None:
    got = read_inputs(workload_view(workload(MANAGED, pod_sets=("a", "b"))))
    assert isinstance(got, Managed)
    assert got.gpus == 4
    assert got.latest_start == T0 + timedelta(hours=6)
    assert isinstance(read_inputs(workload_view(workload({}))), Unmanaged)


def test_far_start_gives_the_quota_back_until_shortly_before_it_and_writes_the_plan() -> None:
    v = decide(situation(workload(MANAGED), fc=forecast(timedelta(hours=3))))
    assert v.update is not None
    assert v.update.state == "Pending"
    assert v.hold_until == T0 + timedelta(hours=1)  # 2h55m away: deactivated for maxHold (1h) at most
    assert v.plan is not None
    assert v.plan["plannedStart"] == rfc3339(T0 + timedelta(hours=3))
    assert v.plan["latestStart"] == rfc3339(T0 + timedelta(hours=6))
    assert v.plan["reservedAt"] == rfc3339(T0)
    assert v.booking is not None
    assert (v.booking.region, v.booking.start, v.booking.gpus) == (
        "north",
        T0 + timedelta(hours=3),
        2,
    )
    assert [e.reason for e in v.events] == [DEFERRED]
    assert "quota goes back to Kueue" in v.update.message


def test_hold_never_lasts_past_the_pending_window() -> None:
    v = decide(situation(workload(MANAGED), fc=forecast(timedelta(minutes=45))))
    assert v.update is not None
    assert v.update.state == "Pending"
    assert v.hold_until == T0 + timedelta(minutes=40)


def test_inside_the_pending_window_it_holds_the_quota_and_wakes_at_the_start() -> None:
    plan = decide(situation(workload(MANAGED), fc=forecast(timedelta(minutes=45)))).plan
    assert plan is not None
    now = T0 + timedelta(minutes=42)
    v = decide(situation(workload(MANAGED, plan=plan), now=now, fc=forecast(timedelta(minutes=45))))
    assert v.update is not None
    assert v.update.state == "Pending"
    assert v.hold_until is None  # quota kept in the last window
    assert v.wake_after == pytest.approx(180.0)
    assert v.plan is None  # same reservation: the plan is kept, not redone


def test_ready_at_the_planned_start_adds_only_absent_annotations() -> None:
    plan = decide(situation(workload(MANAGED), fc=forecast(timedelta(minutes=45)))).plan
    assert plan is not None
    v = decide(situation(workload(MANAGED, plan=plan), now=T0 + timedelta(minutes=45), fc=None))
    assert v.update is not None
    assert v.update.state == "Ready"
    (update,) = v.update.pod_set_updates
    assert update["name"] == "main"
    assert set(update["annotations"]) == {ANN_REGION, ANN_POWER_LIMIT, ANN_INTENSITY}
    assert float(update["annotations"][ANN_POWER_LIMIT]) > 0
    assert v.rebook
    assert v.booking is None


def test_users_own_power_limit_is_kept_and_planned_as_fixed() -> None:
    annotations = {**MANAGED, ANN_POWER_LIMIT: "250"}
    v = decide(situation(workload(annotations), fc=forecast(timedelta(0))))
    assert v.update is not None
    assert v.update.state == "Ready"
    (update,) = v.update.pod_set_updates
    assert ANN_POWER_LIMIT not in update["annotations"]
    assert v.plan is not None
    assert v.plan["powerLimitWatts"] == 250


def test_clean_now_is_ready_at_once() -> None:
    v = decide(situation(workload(MANAGED), fc=forecast(timedelta(0))))
    assert v.update is not None
    assert v.update.state == "Ready"
    assert v.update.pod_set_updates


def test_latest_start_admits_whatever_the_forecast_says() -> None:
    now = T0 + timedelta(hours=6)
    v = decide(situation(workload(MANAGED, reserved=now), now=now, fc=forecast(timedelta(hours=9))))
    assert v.update is not None
    assert v.update.state == "Ready"
    assert "latest start" in v.update.message


def test_provider_outage_keeps_the_plan_and_never_passes_the_latest_start() -> None:
    plan = decide(situation(workload(MANAGED), fc=forecast(timedelta(hours=3)))).plan
    assert plan is not None
    # A new reservation during the outage: the plan made with data stands.
    later = T0 + timedelta(hours=1)
    v = decide(situation(workload(MANAGED, plan=plan, reserved=later), now=later, fc=None))
    assert v.update is not None
    assert v.update.state == "Pending"
    assert v.hold_until is not None
    assert v.plan is None
    # No plan and no data: admitted now, carbon-blind, rather than held.
    v = decide(situation(workload(MANAGED), fc=None))
    assert v.update is not None
    assert v.update.state == "Ready"
    assert "carbon-blind" in v.update.message


def test_a_plan_with_a_start_past_the_latest_start_is_clamped() -> None:
    plan = decide(situation(workload(MANAGED), fc=forecast(timedelta(hours=3)))).plan
    assert plan is not None
    plan = {**plan, "plannedStart": rfc3339(T0 + timedelta(hours=9))}  # a tampered or stale plan
    now = T0 + timedelta(hours=6)
    v = decide(situation(workload(MANAGED, plan=plan), now=now, fc=None))
    assert v.update is not None
    assert v.update.state == "Ready"


def test_new_reservation_replans_with_hysteresis() -> None:
    first = decide(situation(workload(MANAGED), fc=forecast(timedelta(hours=3))))
    assert first.plan is not None
    later = T0 + timedelta(hours=1)
    v = decide(
        situation(workload(MANAGED, plan=first.plan, reserved=later), now=later, fc=forecast(timedelta(hours=3)))
    )
    assert v.plan is not None
    assert v.plan["plannedStart"] == first.plan["plannedStart"]
    assert v.plan["reservedAt"] == rfc3339(later)
    assert v.events == ()  # same start: no new Event


def test_other_bookings_are_planned_around() -> None:
    full = {"other": Reservation("north", T0 + timedelta(hours=3), T0 + timedelta(hours=12), 8)}
    v = decide(situation(workload(MANAGED), fc=forecast(timedelta(hours=3)), bookings=full))
    assert v.update is not None
    assert v.plan is not None
    assert v.plan["plannedStart"] != rfc3339(T0 + timedelta(hours=3))


@pytest.mark.parametrize(
    ("state", "reserved", "extra"),
    [
        ("Pending", None, []),
        ("Retry", T0, []),
        ("Pending", T0, [{"type": "Evicted", "status": "True", "lastTransitionTime": rfc3339(T0)}]),
    ],
)
def test_nothing_to_decide_without_quota_or_while_kueue_evicts(
    state: str, reserved: datetime | None, extra: list[dict[str, Any]]
) -> None:
    v = decide(situation(workload(MANAGED, state=state, reserved=reserved, extra_conditions=extra)))
    assert v.update is None
    assert not v.rebook


def test_held_workload_is_reactivated_at_its_time_and_not_decided_meanwhile() -> None:
    body = workload(MANAGED)
    body["spec"]["active"] = False
    body["metadata"]["annotations"] = {"greentraining.io/held-until": rfc3339(T0 + timedelta(minutes=3))}
    wl = workload_view(body)
    assert reactivate_after(wl, T0) == pytest.approx(180.0)
    assert reactivate_after(wl, T0 + timedelta(hours=1)) == 0.0
    assert decide(situation(body, fc=forecast(timedelta(hours=3)))).update is None
    assert reactivate_after(workload_view(workload(MANAGED)), T0) is None  # active: not ours to touch


def test_ready_or_finished_drops_the_booking() -> None:
    assert decide(situation(workload(MANAGED, state="Ready"))).rebook
    done = workload(MANAGED, extra_conditions=[{"type": "Finished", "status": "True", "lastTransitionTime": "x"}])
    v = decide(situation(done))
    assert v.rebook
    assert v.booking is None
    assert v.update is None


def test_unreadable_plan_annotation_plans_afresh() -> None:
    assert decision_from_plan("k", {"region": "north"}) is None
    body = workload(MANAGED)
    body["metadata"]["annotations"] = {ANN_PLAN: "{not json"}
    v = decide(situation(body, fc=forecast(timedelta(hours=3))))
    assert v.plan is not None


def test_flavor_region_matches_node_labels() -> None:
    regions = [RegionConfig("north", {"topology.kubernetes.io/region": "north"}), RegionConfig("south", {"r": "s"})]
    assert flavor_region({"topology.kubernetes.io/region": "north", "x": "y"}, regions) == "north"
    assert flavor_region({"r": "s"}, regions) == "south"
    assert flavor_region({}, regions) is None
