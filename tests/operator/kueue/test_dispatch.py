"""The MultiKueue dispatcher's decision, as a table of Workloads and workers in, dispatches out."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from green_operator.api.manifests import ANN_INTENSITY, ANN_POWER_LIMIT, ANN_REGION
from green_operator.kueue.admission import DEFERRED, INVALID_ANNOTATION, KueueSettings
from green_operator.kueue.dispatch import (
    DISPATCHED,
    NO_WORKER,
    REDISPATCHED,
    Dispatch,
    DispatchSituation,
    MultiKueueSettings,
    Worker,
    decide_dispatch,
)
from green_operator.kueue.inputs import ANN_DEADLINE, ANN_DURATION, ANN_MAX_DELAY
from green_operator.kueue.workload import ANN_PLAN, workload_view
from green_operator.planner import PlannerSettings, RegionForecast
from green_operator.times import rfc3339

T0 = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
CHECK = "multikueue"
SLOT = timedelta(minutes=15)
PLANNER = PlannerSettings(slot=SLOT, horizon=timedelta(hours=12), reserve_fraction=0.0, hysteresis_fraction=0.0)
LOST = timedelta(minutes=15)
MANAGED = {ANN_DURATION: "1h", ANN_MAX_DELAY: "6h"}


def trace(values: list[tuple[timedelta, float]], region: str, gpus: int = 8) -> RegionForecast:
    """Piecewise-constant intensity: each (until, value) holds up to `until`; the last to the horizon."""
    n = int(PLANNER.horizon / SLOT)
    out: list[float] = []
    for i in range(n):
        t = i * SLOT
        out.append(next((v for until, v in values if t < until), values[-1][1]))
    return RegionForecast(region, gpus, "H100", T0, out)


def flat(value: float, region: str, gpus: int = 8) -> RegionForecast:
    return trace([(timedelta(hours=99), value)], region, gpus)


def workload(
    annotations: dict[str, str] | None = None,
    *,
    state: str = "Pending",
    reserved: datetime | None = T0,
    plan: dict[str, Any] | None = None,
    nominated: list[str] | None = None,
    cluster: str | None = None,
    active: bool = True,
) -> dict[str, Any]:
    conds: list[dict[str, Any]] = []
    if reserved is not None:
        conds.append({"type": "QuotaReserved", "status": "True", "lastTransitionTime": rfc3339(reserved)})
    meta: dict[str, Any] = {
        "namespace": "ns",
        "name": "job-x",
        "uid": "u1",
        "creationTimestamp": rfc3339(T0),
        "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "x", "uid": "o1", "controller": True}],
    }
    if plan is not None:
        meta["annotations"] = {ANN_PLAN: json.dumps(plan)}
    template = {
        "metadata": {"annotations": annotations or {}},
        "spec": {"containers": [{"name": "c", "resources": {"limits": {"nvidia.com/gpu": "2"}}}]},
    }
    status: dict[str, Any] = {
        "conditions": conds,
        "admissionChecks": [{"name": CHECK, "state": state, "message": ""}],
    }
    if nominated is not None:
        status["nominatedClusterNames"] = nominated
    if cluster is not None:
        status["clusterName"] = cluster
    return {
        "metadata": meta,
        "spec": {"active": active, "podSets": [{"name": "main", "count": 1, "template": template}]},
        "status": status,
    }


def workers(*down: str, free: dict[str, int] | None = None) -> dict[str, Worker]:
    free = free or {}
    return {
        c: Worker(
            c,
            r,
            active=c not in down,
            reachable=True,
            free_gpus=free.get(c, 8),
            why="Active=False" if c in down else "",
        )
        for c, r in (("worker-a", "north"), ("worker-b", "south"))
    }


def situation(
    body: dict[str, Any], now: datetime = T0, *, ws: dict[str, Worker] | None = None, **kw: Any
) -> DispatchSituation:
    fcs = kw.pop("forecasts", {"north": flat(300, "north"), "south": flat(300, "south")})
    return DispatchSituation(
        wl=workload_view(body),
        check=CHECK,
        now=now,
        clusters=("worker-a", "worker-b"),
        workers=ws if ws is not None else workers(),
        forecasts=fcs,
        planner=PLANNER,
        settings=KueueSettings(pending_window=timedelta(minutes=5), max_hold=timedelta(hours=1)),
        multikueue=MultiKueueSettings(worker_lost_timeout=LOST),
        **kw,
    )


def clean_south_later(hours: float) -> dict[str, RegionForecast]:
    """North 300 flat; south 400 until `hours`, then 20: the cleanest place is south, later."""
    return {
        "north": flat(300, "north"),
        "south": trace([(timedelta(hours=hours), 400), (timedelta(hours=99), 20)], "south"),
    }


def test_nothing_is_nominated_before_the_manager_reserved_quota() -> None:
    assert decide_dispatch(situation(workload(MANAGED, reserved=None))) == Dispatch()


def test_nothing_is_nominated_while_the_workload_is_held_inactive() -> None:
    assert decide_dispatch(situation(workload(MANAGED, active=False))) == Dispatch()


def test_a_workload_a_worker_reserved_is_kueues_and_leaves_the_ledger() -> None:
    d = decide_dispatch(situation(workload(MANAGED, cluster="worker-a")))
    assert d.nominate is None
    assert d.rebook
    assert d.booking is None


def test_an_unannotated_workload_goes_at_once_to_the_worker_with_most_free_gpus() -> None:
    d = decide_dispatch(situation(workload({}), ws=workers(free={"worker-a": 1, "worker-b": 6})))
    assert d.nominate == ("worker-b",)
    assert d.events[0].reason == DISPATCHED
    assert "not managed" in d.events[0].message


def test_a_malformed_annotation_goes_at_once_with_a_warning_naming_it() -> None:
    d = decide_dispatch(situation(workload({ANN_DURATION: "1h", ANN_DEADLINE: "tomorrow"})))
    assert d.nominate == ("worker-a",)
    assert d.events[0].warning
    assert d.events[0].reason == INVALID_ANNOTATION
    assert ANN_DEADLINE in d.events[0].message


def test_the_cleaner_region_now_is_nominated_now_with_its_power_limit_and_intensity() -> None:
    fcs = {"north": flat(300, "north"), "south": flat(30, "south")}
    d = decide_dispatch(situation(workload(MANAGED), forecasts=fcs))
    assert d.nominate == ("worker-b",)
    (update,) = d.pod_set_updates
    assert update["name"] == "main"
    assert update["annotations"][ANN_REGION] == "south"
    assert update["annotations"][ANN_INTENSITY] == "30.0"
    assert ANN_POWER_LIMIT in update["annotations"]
    assert d.plan is not None
    assert d.plan["cluster"] == "worker-b"
    assert d.plan["region"] == "south"
    assert d.events[0].reason == DISPATCHED
    assert "worker-b" in d.events[0].message
    assert "against" in d.events[0].message  # what it saves: expected grams against running at once


def test_a_later_clean_window_elsewhere_holds_the_workload_and_gives_the_quota_back() -> None:
    d = decide_dispatch(situation(workload(MANAGED), forecasts=clean_south_later(3)))
    assert d.nominate is None
    assert d.hold_until == T0 + timedelta(hours=1)  # maxHold: re-planned at least hourly
    assert d.booking is not None
    assert (d.booking.region, d.booking.start, d.booking.gpus) == ("south", T0 + timedelta(hours=3), 2)
    assert d.plan is not None
    assert d.plan["plannedStart"] == rfc3339(T0 + timedelta(hours=3))
    assert d.events[0].reason == DEFERRED
    assert "worker-b" in d.events[0].message


def test_inside_the_pending_window_it_waits_for_the_start_and_then_nominates() -> None:
    now = T0 + timedelta(hours=2, minutes=57)
    body = workload(MANAGED, reserved=now)
    d = decide_dispatch(situation(body, now, forecasts=clean_south_later(3)))
    assert d.nominate is None
    assert d.hold_until is None
    assert d.wake_after == 180.0
    assert d.plan is not None
    later = decide_dispatch(situation(workload(MANAGED, reserved=now, plan=dict(d.plan)), T0 + timedelta(hours=3)))
    assert later.nominate == ("worker-b",)  # the kept plan for this reservation, without a forecast call


def test_the_plan_starts_a_worker_lost_timeout_before_the_latest_start() -> None:
    # Clean only from 5h50m; latest start is 6h; the worker-lost budget (15m) makes 5h45m the last
    # start the dispatcher plans: north (flat 300) now beats nothing, south's window is too late.
    fcs = {
        "north": flat(300, "north"),
        "south": trace([(timedelta(hours=5, minutes=50), 400), (timedelta(hours=99), 5)], "south"),
    }
    d = decide_dispatch(situation(workload(MANAGED), forecasts=fcs))
    start = datetime.fromisoformat(str((d.plan or {})["plannedStart"]).replace("Z", "+00:00"))
    assert start <= T0 + timedelta(hours=6) - LOST


def test_past_the_budgeted_latest_start_it_nominates_at_once() -> None:
    now = T0 + timedelta(hours=5, minutes=50)
    d = decide_dispatch(situation(workload(MANAGED, reserved=now), now, forecasts=clean_south_later(7)))
    assert d.nominate is not None
    assert len(d.nominate) == 1


def test_a_nominated_worker_that_answers_is_left_to_multikueue() -> None:
    d = decide_dispatch(situation(workload(MANAGED, nominated=["worker-a"])))
    assert d.nominate is None
    assert d.plan is None
    assert d.events == ()


def test_a_nominated_worker_lost_before_reserving_is_replaced_by_the_next_best() -> None:
    fcs = {"north": flat(30, "north"), "south": flat(300, "south")}
    body = workload(MANAGED, nominated=["worker-a"])
    d = decide_dispatch(situation(body, ws=workers("worker-a"), forecasts=fcs))
    assert d.nominate == ("worker-b",)
    assert d.events[0].reason == REDISPATCHED
    assert "worker-a" in d.events[0].message
    assert "Active=False" in d.events[0].message


def test_a_lost_planned_region_is_replanned_over_the_others() -> None:
    plan = {
        "region": "north",
        "cluster": "worker-a",
        "plannedStart": rfc3339(T0 + timedelta(hours=2)),
        "latestStart": rfc3339(T0 + timedelta(hours=6)),
        "powerLimitWatts": None,
        "expectedSeconds": 3600,
        "expectedGrams": 1,
        "intensity": 10,
        "baselineRegion": "north",
        "baselineStart": rfc3339(T0),
        "baselineGrams": 10,
        "baselineIntensity": 300,
        "reservedAt": rfc3339(T0),
    }
    d = decide_dispatch(situation(workload(MANAGED, plan=plan), ws=workers("worker-a")))
    assert d.plan is not None
    assert d.plan["region"] == "south"


def test_with_no_worker_available_it_waits_and_says_so() -> None:
    d = decide_dispatch(situation(workload(MANAGED), ws=workers("worker-a", "worker-b")))
    assert d.nominate is None
    assert d.events[0].reason == NO_WORKER
    assert d.events[0].warning
    assert d.wake_after == MultiKueueSettings().probe_interval.total_seconds()


def test_a_lost_nomination_is_cleared_when_no_worker_can_take_it() -> None:
    d = decide_dispatch(situation(workload(MANAGED, nominated=["worker-a"]), ws=workers("worker-a", "worker-b")))
    assert d.nominate == ()


def test_without_any_forecast_it_goes_at_once_carbon_blind() -> None:
    d = decide_dispatch(situation(workload(MANAGED), forecasts={}))
    assert d.nominate == ("worker-a",)
    assert "no carbon forecast" in d.events[0].message


def test_a_worker_outside_the_checks_config_is_never_nominated() -> None:
    ws = {**workers(), "worker-c": Worker("worker-c", "west", True, True, 64)}
    fcs = {"north": flat(300, "north"), "south": flat(300, "south"), "west": flat(1, "west")}
    d = decide_dispatch(situation(workload(MANAGED), ws=ws, forecasts=fcs))
    assert d.nominate in (("worker-a",), ("worker-b",))


def test_a_full_worker_is_not_planned_into() -> None:
    fcs = {"north": flat(300, "north", gpus=8), "south": flat(30, "south", gpus=1)}  # 1 free GPU, job needs 2
    d = decide_dispatch(situation(workload(MANAGED), forecasts=fcs))
    assert d.nominate == ("worker-a",)


def test_finished_workloads_leave_the_ledger() -> None:
    body = workload(MANAGED)
    body["status"]["conditions"].append({"type": "Finished", "status": "True", "lastTransitionTime": rfc3339(T0)})
    assert decide_dispatch(situation(body)) == Dispatch(rebook=True)


def test_a_nominated_worker_that_answers_is_given_until_the_latest_start() -> None:
    d = decide_dispatch(situation(workload(MANAGED, nominated=["worker-a"]), T0 + timedelta(hours=5)))
    assert d.nominate is None
    assert d.wake_after == timedelta(hours=1).total_seconds()


def test_at_the_latest_start_a_nominated_worker_that_did_not_take_it_is_replaced_by_one_with_room() -> None:
    now = T0 + timedelta(hours=6)
    d = decide_dispatch(situation(workload(MANAGED, nominated=["worker-a"]), now))
    assert d.nominate == ("worker-b",)
    assert d.events[0].reason == REDISPATCHED
    assert "latest start" in d.events[0].message
    (update,) = d.pod_set_updates
    assert update["annotations"][ANN_REGION] == "south"


def test_at_the_latest_start_with_no_other_room_it_stays_nominated() -> None:
    now = T0 + timedelta(hours=6)
    full = workers(free={"worker-b": 1})  # the job needs 2 GPUs
    assert decide_dispatch(situation(workload(MANAGED, nominated=["worker-a"]), now, ws=full)) == Dispatch()
