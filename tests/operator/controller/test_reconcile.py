"""`reconcile()` and `needs()` on hand-built observations, one phase and event at a time.

Each test builds an `Observed` directly (tests/operator/controller/builders.py), calls the pure
core once, and checks the kinds of actions and the status fields that matter. Chained steps carry
the status forward by merge-patching it with the `WriteStatus` the previous step returned, as the
API would.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any, TypeVar

import pytest

from green_operator.accounting.live_energy import LiveEnergy
from green_operator.api import conditions as cond
from green_operator.api.conditions import Reason
from green_operator.api.manifests import ANN_TEMPLATE_HASH
from green_operator.api.phase import Phase
from green_operator.api.status import decision_from_status
from green_operator.carbon.provider import DataSource
from green_operator.controller.actions import (
    Action,
    Book,
    CreateChild,
    Done,
    Emit,
    MoveAside,
    PatchChild,
    PlanRecorded,
    RecordDecision,
    RecordFinish,
    RecordRelease,
    RecreateChild,
    Requeue,
    SetSuspended,
    SettleMove,
    WriteStatus,
)
from green_operator.controller.ledger import BURST_JOBS, CapacityLedger
from green_operator.controller.observed import ChildState, PodsSummary, template_hash
from green_operator.controller.reconcile import (
    CHILD_GONE_POLL,
    CONFLICT_POLL,
    REFUSED_POLL,
    Needs,
    needs,
    reconcile,
)
from green_operator.controller.released import RUNNING_POLL
from green_operator.controller.replans import next_replan
from green_operator.planner import Reservation
from green_operator.times import parse_rfc3339, rfc3339
from tests.operator.controller import builders as b

A = TypeVar("A", bound=Action)
KEY = f"{b.NS}/job"


# -- helpers ---------------------------------------------------------------------------------------


def kinds(actions: Sequence[Action]) -> list[str]:
    return [type(a).__name__ for a in actions]


def only(actions: Sequence[Action], kind: type[A]) -> A:
    found = [a for a in actions if isinstance(a, kind)]
    assert len(found) == 1, kinds(actions)
    return found[0]


def none_of(actions: Sequence[Action], *kind: type[Action]) -> bool:
    return not any(isinstance(a, kind) for a in actions)


def after(status: Mapping[str, Any], actions: Sequence[Action]) -> dict[str, Any]:
    """The status once the API applied the actions' merge patches."""
    out = dict(status)
    for a in actions:
        if isinstance(a, WriteStatus):
            out = b.merge(out, a.patch)
    return out


def condition(status: Mapping[str, Any], ctype: str) -> Mapping[str, Any]:
    c = cond.find(status.get("conditions"), ctype)
    assert c is not None, f"no {ctype} condition in {status.get('conditions')}"
    return c


def requeue(actions: Sequence[Action]) -> float:
    last = actions[-1]
    assert isinstance(last, Requeue), kinds(actions)
    return last.after


def deferred(body: Mapping[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """A job planned at T0 for north's clean window at 14:00: its status and its child's manifest."""
    acts = reconcile(b.observed(body or b.body()))
    status = after({}, acts)
    assert status["phase"] == Phase.DEFERRED
    return status, dict(only(acts, CreateChild).manifest)


def released(body: Mapping[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The same job let go at its window (14:00): Starting, its child unsuspended."""
    status, manifest = deferred(body)
    acts = reconcile(b.observed(body or b.body(), status=status, child=b.child(manifest), now=b.at(4)))
    return after(status, acts), manifest


def running_child(manifest: Mapping[str, Any], **kw: Any) -> ChildState:
    return b.child(manifest, suspended=False, started=b.at(4), **kw)


# -- a new job -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("north", "south", "suspend", "phase", "region", "planned", "reason", "sleep"),
    [
        pytest.param(
            b.flat(b.CLEAN),
            b.flat(b.DIRTY),
            False,
            Phase.STARTING,
            b.NORTH,
            b.T0,
            Reason.STARTED_NOW,
            0.0,
            id="clean-now",
        ),
        pytest.param(
            b.flat(b.DIRTY),
            b.flat(b.CLEAN),
            False,
            Phase.STARTING,
            b.SOUTH,
            b.T0,
            Reason.STARTED_NOW,
            0.0,
            id="clean-now-elsewhere",
        ),
        pytest.param(
            b.shaped(4, 8),
            b.flat(b.DIRTY),
            True,
            Phase.DEFERRED,
            b.NORTH,
            b.at(4),
            Reason.WAITING_FOR_WINDOW,
            None,  # until its next re-plan, 8 to 10 minutes on
            id="clean-later",
        ),
    ],
)
def test_a_new_job_is_created_released_or_deferred(
    north: b.Intensity,
    south: b.Intensity,
    suspend: bool,
    phase: Phase,
    region: str,
    planned: Any,
    reason: str,
    sleep: float | None,
) -> None:
    acts = reconcile(b.observed(b.body(), data=b.forecasts(b.T0, north=north, south=south)))
    assert kinds(acts)[:2] == ["Book", "PlanRecorded"]
    # A job released at once is created before its status says so; a deferred job's status (its
    # decision) is written first, its suspended child right after.
    first, then = ("CreateChild", "WriteStatus") if not suspend else ("WriteStatus", "CreateChild")
    assert kinds(acts).index(first) < kinds(acts).index(then)
    manifest = only(acts, CreateChild).manifest
    assert manifest["spec"]["suspend"] is suspend
    assert manifest["metadata"]["annotations"][ANN_TEMPLATE_HASH] == template_hash(b.template())
    status = after({}, acts)
    assert status["phase"] == phase
    assert status["region"] == region
    assert status["observedGeneration"] == 1
    assert parse_rfc3339(status["plannedStart"]) == planned
    assert status["latestStart"] == rfc3339(b.at(12))
    assert condition(status, cond.PLANNED)["status"] == "True"
    assert condition(status, cond.DEFERRED)["status"] == ("True" if suspend else "False")
    assert condition(status, cond.CARBON_DATA_AVAILABLE)["status"] == "True"
    assert ("startTime" in status) is not suspend
    assert only(acts, Emit).reason == reason
    assert only(acts, RecordDecision).first
    assert only(acts, RecordDecision).outcome == ("deferred" if suspend else "started")
    assert none_of(acts, RecordRelease) is suspend
    booked = acts[0]
    assert isinstance(booked, Book)
    assert booked.reservation is not None
    assert booked.reservation.start == planned
    assert (booked.movable is not None) is suspend  # a waiting job may be moved aside
    if sleep is None:
        replan = next_replan(status, b.SETTINGS.replan_interval)
        assert 480.0 <= (replan - b.T0).total_seconds() <= 600.0
        sleep = (replan - b.T0).total_seconds()
    assert requeue(acts) == sleep


def test_a_deferred_job_sleeps_until_its_window_or_the_next_replan() -> None:
    status, manifest = deferred()
    acts = reconcile(b.observed(b.body(), status=status, child=b.child(manifest), now=b.at(0.05)))
    assert kinds(acts) == ["Book", "Requeue"]
    replan = next_replan(status, b.SETTINGS.replan_interval)  # between 10:08 and 10:10
    assert b.at(0.05) < replan <= b.at(1 / 6)
    assert requeue(acts) == pytest.approx((replan - b.at(0.05)).total_seconds())
    long = replace(b.SETTINGS, replan_interval=timedelta(hours=8))
    acts = reconcile(b.observed(b.body(), status=status, child=b.child(manifest), now=b.at(3), settings=long))
    assert requeue(acts) == pytest.approx(3600.0)  # its window at 14:00


def test_a_job_whose_status_names_no_child_yet_adopts_the_suspended_child() -> None:
    # A process created the child, then died before writing status: the next decision keeps it.
    _, manifest = deferred()
    acts = reconcile(b.observed(b.body(), child=b.child(manifest)))
    assert none_of(acts, CreateChild, RecreateChild)
    assert isinstance(only(acts, PatchChild), PatchChild)
    assert after({}, acts)["phase"] == Phase.DEFERRED


def test_a_job_whose_child_was_released_before_status_was_written_is_starting() -> None:
    _, manifest = deferred()
    child = b.child(manifest, suspended=False, started=b.T0)
    acts = reconcile(b.observed(b.body(), child=child))
    assert none_of(acts, CreateChild, RecreateChild, PatchChild, SetSuspended)
    assert after({}, acts)["phase"] == Phase.STARTING


# -- re-plans ----------------------------------------------------------------------------------------


def test_a_due_replan_moves_the_job_when_the_forecast_changed() -> None:
    status, manifest = deferred()
    now = b.at(0.25)  # past the 10-minute re-plan interval
    data = b.forecasts(now, north=b.flat(b.DIRTY), south=b.shaped(1, 3))
    assert needs(status, True, b.child(manifest), now, b.SETTINGS.replan_interval, None).fresh_forecasts
    acts = reconcile(b.observed(b.body(), status=status, child=b.child(manifest), now=now, data=data))
    patch = only(acts, PatchChild).patch["spec"]["template"]
    assert patch["spec"]["nodeSelector"] == {b.REGION_LABEL: b.SOUTH}
    assert patch["spec"]["tolerations"] == [{"key": "south", "operator": "Exists"}]
    assert patch["metadata"]["annotations"]["greentraining.io/region"] == b.SOUTH
    new = after(status, acts)
    assert new["phase"] == Phase.DEFERRED
    assert new["region"] == b.SOUTH
    assert parse_rfc3339(new["plannedStart"]) == b.at(1)
    assert new["plan"]["decidedAt"] == rfc3339(now)
    assert condition(new, cond.PLANNED)["reason"] == Reason.REPLANNED
    decision = only(acts, RecordDecision)
    assert decision.outcome == "replanned"
    assert not decision.first
    assert requeue(acts) == 0.0
    # Decided again at once: nothing is due any more.
    acts = reconcile(b.observed(b.body(), status=new, child=b.child(manifest), now=now, data=data))
    assert kinds(acts) == ["Book", "Requeue"]


def test_a_due_replan_that_keeps_the_plan_only_records_the_check() -> None:
    status, manifest = deferred()
    now = b.at(0.25)
    acts = reconcile(b.observed(b.body(), status=status, child=b.child(manifest), now=now))
    assert kinds(acts) == ["Book", "WriteStatus", "Requeue"]
    patch = only(acts, WriteStatus).patch
    assert set(patch) == {"plan", "conditions", "latestStart"}
    assert patch["plan"]["decidedAt"] == rfc3339(now)
    assert patch["plan"]["reason"] == status["plan"]["reason"]
    new = after(status, acts)
    assert new["plannedStart"] == status["plannedStart"]
    assert not needs(new, True, b.child(manifest), now, b.SETTINGS.replan_interval, None).fresh_forecasts


@pytest.mark.parametrize(("cleaner", "region"), [(0.97, b.NORTH), (0.5, b.SOUTH)], ids=["3%", "50%"])
def test_a_replan_moves_only_for_more_than_the_hysteresis(cleaner: float, region: str) -> None:
    # South's window turns cleaner than north's: 3% is under the 5% hysteresis, half is not.
    status, manifest = deferred()
    now = b.at(0.25)
    data = b.forecasts(now, south=b.shaped(4, 8, clean=b.CLEAN * cleaner))
    acts = reconcile(b.observed(b.body(), status=status, child=b.child(manifest), now=now, data=data))
    assert none_of(acts, PatchChild, RecordDecision) is (region == b.NORTH)
    assert after(status, acts)["region"] == region


def test_a_spec_edit_while_deferred_replans_and_patches_the_same_template() -> None:
    status, manifest = deferred()
    edited = b.body(generation=2, max_delay="3h")  # must start by 13:00 now: the window at 14:00 is out
    acts = reconcile(b.observed(edited, status=status, child=b.child(manifest), now=b.at(0.05)))
    assert none_of(acts, RecreateChild, CreateChild)
    assert isinstance(only(acts, PatchChild), PatchChild)
    new = after(status, acts)
    assert new["observedGeneration"] == 2
    assert new["latestStart"] == rfc3339(b.at(3))
    assert parse_rfc3339(new["plannedStart"]) <= b.at(3)
    assert condition(new, cond.PLANNED)["reason"] == Reason.REPLANNED
    assert condition(new, cond.PLANNED)["observedGeneration"] == 2
    assert only(acts, RecordDecision).outcome == "replanned"


@pytest.mark.parametrize("hashed", [True, False], ids=["hash-differs", "older-operator-no-hash"])
def test_a_template_edit_while_deferred_recreates_the_child(hashed: bool) -> None:
    status, manifest = deferred()
    child = b.child(manifest)
    if not hashed:
        child = replace(child, template_hash=None)
    edited = b.body(generation=2, image="trainer:2")
    acts = reconcile(b.observed(edited, status=status, child=child, now=b.at(0.05)))
    rebuilt = only(acts, RecreateChild).manifest
    assert none_of(acts, PatchChild, CreateChild)
    assert rebuilt["spec"]["suspend"] is True
    assert rebuilt["spec"]["template"]["spec"]["containers"][0]["image"] == "trainer:2"
    assert rebuilt["metadata"]["annotations"][ANN_TEMPLATE_HASH] == template_hash(b.template("trainer:2"))
    assert after(status, acts)["observedGeneration"] == 2


def test_an_edit_that_leaves_the_template_alone_never_rebuilds_the_child() -> None:
    # The same template under a new generation: a hashed child is patched, never rebuilt.
    status, manifest = deferred()
    acts = reconcile(b.observed(b.body(generation=2), status=status, child=b.child(manifest), now=b.at(0.05)))
    assert none_of(acts, RecreateChild)


def test_a_deferred_job_whose_child_was_let_go_is_released_not_replanned() -> None:
    # The child was unsuspended (a process died between SetSuspended and WriteStatus, or someone
    # did it by hand) and the spec was edited meanwhile: its started template cannot be patched.
    status, manifest = deferred()
    child = b.child(manifest, suspended=False, started=b.at(1))
    acts = reconcile(b.observed(b.body(generation=2), status=status, child=child, now=b.at(1)))
    assert none_of(acts, PatchChild, RecreateChild, SetSuspended, CreateChild)
    assert after(status, acts)["phase"] == Phase.STARTING


# -- refusals ----------------------------------------------------------------------------------------


def test_a_refused_spec_is_said_once_per_generation_and_a_fix_is_planned() -> None:
    bad = b.body(regions=["mars"])
    assert needs({}, False, None, b.T0, b.SETTINGS.replan_interval, None) == Needs()
    acts = reconcile(b.observed(bad, data={}))
    assert none_of(acts, CreateChild)
    assert only(acts, Book).reservation is None
    status = after({}, acts)
    assert status["phase"] == Phase.PENDING
    assert status["observedGeneration"] == 1
    planned = condition(status, cond.PLANNED)
    assert (planned["status"], planned["reason"]) == ("False", Reason.INVALID_SPEC)
    assert "mars" in planned["message"]
    assert only(acts, Emit).warning
    assert requeue(acts) == REFUSED_POLL
    # Looked at again (a safety-net requeue, any watch event): nothing new to say.
    again = reconcile(b.observed(bad, status=status, now=b.at(1), data={}))
    assert none_of(again, WriteStatus, Emit, CreateChild)
    # The user fixes it: a new generation is planned (the fixed spec must not stay stuck).
    fixed = b.body(regions=[b.NORTH], generation=2)
    assert needs(status, True, None, b.at(1), b.SETTINGS.replan_interval, None).forecasts
    acts = reconcile(b.observed(fixed, status=status, now=b.at(1)))
    assert only(acts, CreateChild).manifest["spec"]["suspend"] is True
    new = after(status, acts)
    assert new["phase"] == Phase.DEFERRED
    assert new["observedGeneration"] == 2
    assert condition(new, cond.PLANNED)["status"] == "True"


def test_a_spec_refused_on_an_edit_is_said_again_for_that_generation() -> None:
    status, _ = deferred()
    acts = reconcile(b.observed(b.body(regions=["mars"], generation=2), status=status, data={}))
    new = after(status, acts)
    assert condition(new, cond.PLANNED)["reason"] == Reason.INVALID_SPEC
    assert condition(new, cond.PLANNED)["observedGeneration"] == 2
    assert new["observedGeneration"] == 2


def test_a_child_owned_by_someone_else_is_a_conflict_said_once() -> None:
    _, manifest = deferred()
    foreign = b.child(manifest, owner_uid="someone-else")
    acts = reconcile(b.observed(b.body(), child=foreign))
    assert none_of(acts, CreateChild, RecreateChild, PatchChild, SetSuspended)
    assert only(acts, Book).reservation is None
    status = after({}, acts)
    assert status["phase"] == Phase.PENDING
    assert condition(status, cond.PLANNED)["reason"] == Reason.CHILD_CONFLICT
    assert only(acts, Emit).warning
    assert requeue(acts) == CONFLICT_POLL
    again = reconcile(b.observed(b.body(), status=status, child=foreign, now=b.at(1)))
    assert none_of(again, WriteStatus, Emit)


def test_a_child_being_deleted_is_waited_for() -> None:
    _, manifest = deferred()
    acts = reconcile(b.observed(b.body(), child=b.child(manifest, deleting=True)))
    assert acts == [Requeue(CHILD_GONE_POLL)]


# -- release ------------------------------------------------------------------------------------------


def test_the_planned_start_releases_the_suspended_child() -> None:
    status, manifest = deferred()
    now = b.at(4)
    assert needs(status, True, b.child(manifest), now, b.SETTINGS.replan_interval, None).forecasts
    acts = reconcile(b.observed(b.body(), status=status, child=b.child(manifest), now=now))
    assert kinds(acts) == ["Book", "SetSuspended", "WriteStatus", "Emit", "RecordRelease", "Requeue"]
    assert only(acts, SetSuspended).suspended is False
    booking = only(acts, Book)
    assert booking.reservation is not None
    assert booking.reservation.start == now
    assert booking.movable is None  # no longer moved aside
    new = after(status, acts)
    assert new["phase"] == Phase.STARTING
    assert new["startTime"] == rfc3339(now)
    deferred_c = condition(new, cond.DEFERRED)
    assert (deferred_c["status"], deferred_c["reason"]) == ("False", Reason.WINDOW_REACHED)
    assert condition(new, cond.RUNNING)["reason"] == Reason.PODS_PENDING
    assert only(acts, Emit).reason == Reason.WINDOW_REACHED
    assert only(acts, RecordRelease).waited_seconds == 4 * 3600
    # Released: it follows its child now, and reads no forecasts.
    assert needs(new, True, running_child(manifest), now, b.SETTINGS.replan_interval, None) == Needs()


def test_the_latest_start_releases_a_job_planned_after_it() -> None:
    status, manifest = deferred()  # planned for 14:00
    edited = b.body(max_delay="3h")  # same generation as the status: no re-plan, only the deadline
    acts = reconcile(b.observed(edited, status=status, child=b.child(manifest), now=b.at(3)))
    assert only(acts, SetSuspended).suspended is False
    new = after(status, acts)
    assert condition(new, cond.DEFERRED)["reason"] == Reason.LATEST_START_REACHED
    assert only(acts, Emit).reason == Reason.LATEST_START_REACHED


def test_a_release_long_after_the_latest_start_says_it_started_late() -> None:
    # The operator was down from 11:00 to 23:00; the job's latest start was 22:00.
    status, manifest = deferred()
    acts = reconcile(b.observed(b.body(), status=status, child=b.child(manifest), now=b.at(13)))
    new = after(status, acts)
    assert new["phase"] == Phase.STARTING
    risk = condition(new, cond.DEADLINE_AT_RISK)
    assert (risk["status"], risk["reason"]) == ("True", Reason.STARTED_LATE)


def test_a_deferred_job_whose_child_was_deleted_gets_it_back_suspended() -> None:
    status, _ = deferred()
    acts = reconcile(b.observed(b.body(), status=status, child=None, now=b.at(0.05)))
    assert only(acts, CreateChild).manifest["spec"]["suspend"] is True
    assert none_of(acts, WriteStatus)


def in_burst(key: str = KEY) -> CapacityLedger:
    """A ledger with more first decisions queued than a burst needs, `key` among them."""
    led = b.new_ledger()
    for i in range(BURST_JOBS + 1):
        led.first_seen(f"{b.NS}/other-{i}", {})
    led.first_seen(key, {})
    return led


def test_in_a_burst_a_deferred_job_writes_its_decision_and_leaves_its_child_for_later() -> None:
    led = in_burst()
    acts = reconcile(b.observed(b.body(), ledger=led.view(KEY, b.T0)))
    assert after({}, acts)["phase"] == Phase.DEFERRED
    assert none_of(acts, CreateChild)
    assert only(acts, PlanRecorded).child_later
    status = after({}, acts)
    for a in acts:
        if isinstance(a, PlanRecorded):
            led.apply(KEY, a)
    # While the burst lasts it waits for its turn; its turn come, the child is created suspended.
    waiting = reconcile(b.observed(b.body(), status=status, now=b.at(0.05), ledger=led.view(KEY, b.at(0.05))))
    assert none_of(waiting, CreateChild)
    led.burst.unplanned.clear()
    led.apply(f"{b.NS}/other-0", PlanRecorded())  # the last first decision: the turns begin
    turn = reconcile(b.observed(b.body(), status=status, now=b.at(0.05), ledger=led.view(KEY, b.at(0.05))))
    assert only(turn, CreateChild).manifest["spec"]["suspend"] is True
    assert none_of(turn, WriteStatus)


def test_in_a_burst_a_job_that_starts_now_gets_its_child_at_once() -> None:
    led = in_burst()
    clean_now = b.forecasts(b.T0, north=b.flat(b.CLEAN), south=b.flat(b.DIRTY))
    acts = reconcile(b.observed(b.body(), data=clean_now, ledger=led.view(KEY, b.T0)))
    assert only(acts, CreateChild).manifest["spec"]["suspend"] is False
    assert not only(acts, PlanRecorded).child_later


def test_a_released_job_whose_child_is_gone_before_its_window_recreates_it_released() -> None:
    status, _ = deferred()
    acts = reconcile(b.observed(b.body(), status=status, child=None, now=b.at(4)))
    assert only(acts, CreateChild).manifest["spec"]["suspend"] is False
    assert after(status, acts)["phase"] == Phase.STARTING


# -- following the child ---------------------------------------------------------------------------------


def test_ready_pods_make_it_running_once() -> None:
    status, manifest = released()
    child = running_child(manifest, ready=1, active=1)
    acts = reconcile(b.observed(b.body(), status=status, child=child, now=b.at(4.1), data={}))
    new = after(status, acts)
    assert new["phase"] == Phase.RUNNING
    run = condition(new, cond.RUNNING)
    assert (run["status"], run["reason"]) == ("True", Reason.PODS_RUNNING)
    assert only(acts, Book).reservation is not None
    assert requeue(acts) == RUNNING_POLL
    again = reconcile(b.observed(b.body(), status=new, child=child, now=b.at(4.2), data={}))
    assert kinds(again) == ["Book", "Requeue"]


def test_unschedulable_pods_warn_once() -> None:
    status, manifest = released()
    child = running_child(manifest, active=1)
    pods = PodsSummary(1, "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.")
    acts = reconcile(b.observed(b.body(), status=status, child=child, now=b.at(4.1), pods=pods, data={}))
    new = after(status, acts)
    assert new["phase"] == Phase.STARTING
    run = condition(new, cond.RUNNING)
    assert (run["status"], run["reason"]) == ("False", Reason.UNSCHEDULABLE)
    assert "Insufficient nvidia.com/gpu" in run["message"]
    warning = only(acts, Emit)
    assert warning.warning
    assert warning.reason == Reason.UNSCHEDULABLE
    again = reconcile(b.observed(b.body(), status=new, child=child, now=b.at(4.2), pods=pods, data={}))
    assert none_of(again, Emit, WriteStatus)
    # Scheduled at last: running, and no warning.
    ready = running_child(manifest, active=1, ready=1)
    acts = reconcile(b.observed(b.body(), status=new, child=ready, now=b.at(4.3), data={}))
    assert after(new, acts)["phase"] == Phase.RUNNING
    assert none_of(acts, Emit)


def test_live_energy_is_written_when_it_changed() -> None:
    status, manifest = released()
    live = replace(b.SETTINGS, live_energy_interval=timedelta(minutes=1))
    child = running_child(manifest, ready=1, active=1)
    n = needs(status, True, child, b.at(4.1), live.replan_interval, live.live_energy_interval)
    assert n == Needs(live_energy=True)
    o = replace(
        b.observed(b.body(), status=status, child=child, now=b.at(4.1), data={}, settings=live),
        live_energy=LiveEnergy(7.2e6, "nvml"),
    )
    acts = reconcile(o)
    energy = after(status, acts)["energy"]
    assert energy == {
        "joules": 7.2e6,
        "kilowattHours": "2.000",
        "source": "nvml",
        "live": True,
        "updatedAt": rfc3339(b.at(4.1)),
    }
    assert requeue(acts) == 60.0
    written = after(status, acts)
    assert not needs(
        written, True, child, b.at(4.1) + timedelta(seconds=30), live.replan_interval, timedelta(minutes=1)
    ).live_energy


def test_prometheus_down_is_a_condition_and_the_job_runs_on() -> None:
    status, manifest = released()
    live = replace(b.SETTINGS, live_energy_interval=timedelta(minutes=1))
    child = running_child(manifest, ready=1, active=1)
    base = b.observed(b.body(), status=status, child=child, now=b.at(4.1), data={}, settings=live)
    down = reconcile(replace(base, live_energy_error="no answer from http://prometheus:9090 within 5s"))
    written = after(status, down)
    c = cond.find(written["conditions"], cond.LIVE_ENERGY_AVAILABLE)
    assert c is not None
    assert (c["status"], c["reason"]) == ("False", Reason.PROMETHEUS_UNAVAILABLE)
    assert "http://prometheus:9090" in c["message"]
    assert "trainer's report" in c["message"]
    assert written["phase"] == Phase.RUNNING
    assert "energy" not in written  # nothing invented
    assert requeue(down) == 60.0  # polled again, nothing blocks
    # Prometheus answers again: the condition turns True, with a new transition time.
    later = replace(base, status=written, now=b.at(4.2), live_energy=LiveEnergy(1.0e6, "nvml"))
    back = cond.find(after(written, reconcile(later))["conditions"], cond.LIVE_ENERGY_AVAILABLE)
    assert back is not None
    assert (back["status"], back["reason"]) == ("True", Reason.LIVE_ENERGY_MEASURED)
    assert back["lastTransitionTime"] == rfc3339(b.at(4.2))


def test_without_prometheus_there_is_no_live_energy_condition() -> None:
    status, manifest = released()
    child = running_child(manifest, ready=1, active=1)
    o = b.observed(b.body(), status=status, child=child, now=b.at(4.1), data={})
    written = after(status, reconcile(replace(o, live_energy_error="ignored")))
    assert cond.find(written.get("conditions"), cond.LIVE_ENERGY_AVAILABLE) is None


@pytest.mark.parametrize(
    ("done", "phase", "reason", "warning"),
    [
        ({"complete_at": b.at(6.5)}, Phase.SUCCEEDED, Reason.JOB_COMPLETE, False),
        ({"failed_at": b.at(5)}, Phase.FAILED, Reason.JOB_FAILED, True),
    ],
    ids=["succeeded", "failed"],
)
def test_a_finished_child_settles_the_job(done: dict[str, Any], phase: Phase, reason: str, warning: bool) -> None:
    status, manifest = released()
    child = running_child(manifest, **done)
    now = b.at(7)
    assert needs(status, True, child, now, b.SETTINGS.replan_interval, None) == Needs(accounting=True)
    # Without its accounting inputs the core only asks to be called again.
    assert reconcile(b.observed(b.body(), status=status, child=child, now=now, data={})) == [Requeue(0.0)]
    inputs = b.accounting(status, child, now)
    acts = reconcile(b.observed(b.body(), status=status, child=child, now=now, data={}, accounting=inputs))
    assert kinds(acts) == ["WriteStatus", "Book", "RecordFinish", "Emit", "Done"]
    assert only(acts, Book).reservation is None
    new = after(status, acts)
    assert new["phase"] == phase
    assert new["completionTime"] == rfc3339(next(iter(done.values())))
    assert condition(new, cond.SUCCEEDED if phase is Phase.SUCCEEDED else cond.FAILED)["status"] == "True"
    assert condition(new, cond.RUNNING)["reason"] == reason
    assert new["energy"]["kilowattHours"] == "1.000"
    assert new["emissions"]["grams"] == pytest.approx(b.CLEAN)
    assert new["emissions"]["baselineGrams"] == pytest.approx(b.DIRTY)
    finish = only(acts, RecordFinish)
    assert (finish.phase, finish.region) == (str(phase), b.NORTH)
    assert only(acts, Emit).warning is warning
    # Finished: nothing more to gather or do.
    assert needs(new, True, child, now, b.SETTINGS.replan_interval, None) == Needs()
    assert reconcile(b.observed(b.body(), status=new, child=child, now=b.at(8), data={})) == [Book(None), Done()]


def test_a_child_deleted_while_running_fails_the_job() -> None:
    status, _ = released()
    status["phase"] = str(Phase.RUNNING)
    now = b.at(5)
    assert needs(status, True, None, now, b.SETTINGS.replan_interval, None).accounting
    inputs = b.accounting(status, None, now)
    acts = reconcile(b.observed(b.body(), status=status, child=None, now=now, data={}, accounting=inputs))
    assert none_of(acts, CreateChild)
    new = after(status, acts)
    assert new["phase"] == Phase.FAILED
    failed = condition(new, cond.FAILED)
    assert (failed["status"], failed["reason"]) == ("True", Reason.JOB_MISSING)
    assert isinstance(acts[-1], Done)


# -- a restarted operator, with only the status to go on -----------------------------------------------------


def test_an_older_operators_running_status_with_pending_pods_becomes_starting() -> None:
    # The previous version had no Starting phase: it wrote Running with Running=False/PodsPending.
    status, manifest = released()
    old = {
        **{k: v for k, v in status.items() if k != "conditions"},
        "phase": "Running",
        "conditions": [
            {
                "type": cond.RUNNING,
                "status": "False",
                "reason": Reason.PODS_PENDING,
                "message": "waiting for the Job's pods",
                "observedGeneration": 1,
                "lastTransitionTime": rfc3339(b.at(4)),
            }
        ],
    }
    child = running_child(manifest, active=1)
    fresh = b.view(KEY, b.at(4.5))
    acts = reconcile(b.observed(b.body(), status=old, child=child, now=b.at(4.5), ledger=fresh, data={}))
    assert none_of(acts, CreateChild, RecreateChild, SetSuspended)
    new = after(old, acts)
    assert new["phase"] == Phase.STARTING
    assert condition(new, cond.RUNNING)["reason"] == Reason.PODS_PENDING
    booking = only(acts, Book).reservation
    assert booking is not None
    assert booking.start == b.at(4)


def test_a_deferred_status_carries_on_after_a_restart() -> None:
    status, manifest = deferred()
    fresh = b.new_ledger()
    fresh.first_seen(KEY, status)
    fresh.observe_job(KEY, b.body(status=status))
    acts = reconcile(
        b.observed(b.body(), status=status, child=b.child(manifest), now=b.at(0.1), ledger=fresh.view(KEY, b.at(0.1)))
    )
    assert none_of(acts, CreateChild, RecreateChild, PatchChild, WriteStatus, PlanRecorded)
    booking = only(acts, Book).reservation
    assert booking is not None
    assert (booking.region, booking.start) == (b.NORTH, b.at(4))
    assert not fresh.burst.unplanned  # a planned job is not counted as a first decision


def test_an_unreadable_plan_is_planned_afresh_keeping_the_child() -> None:
    status, manifest = deferred()
    broken = {**status, "plan": {"reason": "written by a future version"}}
    acts = reconcile(b.observed(b.body(), status=broken, child=b.child(manifest), now=b.at(0.05)))
    assert none_of(acts, CreateChild, RecreateChild)
    assert after(broken, acts)["phase"] == Phase.DEFERRED
    assert only(acts, RecordDecision).first


# -- carbon data -------------------------------------------------------------------------------------------


def test_a_provider_outage_still_plans_on_fallback_data() -> None:
    data = b.forecasts(b.T0, source=DataSource.STATIC, error="emaps: HTTP 503")
    acts = reconcile(b.observed(b.body(), data=data))
    assert isinstance(only(acts, CreateChild), CreateChild)
    status = after({}, acts)
    carbon = condition(status, cond.CARBON_DATA_AVAILABLE)
    assert (carbon["status"], carbon["reason"]) == ("False", Reason.FALLBACK_DATA)
    assert "HTTP 503" in carbon["message"]
    assert status["plan"]["dataSource"] == "static"
    assert condition(status, cond.PLANNED)["status"] == "True"


# -- other jobs: moves aside -----------------------------------------------------------------------------------


def _moved(status: Mapping[str, Any], *, previous_start: Any = None) -> tuple[Any, Any]:
    """A ledger in which another job moved this one to south at 11:00; the view this job reads."""
    current = decision_from_status(KEY, status)
    assert current is not None
    ledger = b.new_ledger()
    ledger.observe_job(KEY, b.body(status=status))
    previous = current if previous_start is None else replace(current, start=previous_start)
    moved = replace(current, region=b.SOUTH, start=b.at(1))
    ledger.apply(f"{b.NS}/urgent", MoveAside(moved, previous, gpus=1))
    return ledger, ledger.view(KEY, b.at(0.05))


def test_a_move_aside_by_another_job_is_applied() -> None:
    status, manifest = deferred()
    ledger, view = _moved(status)
    assert view.pending_move is not None
    acts = reconcile(b.observed(b.body(), status=status, child=b.child(manifest), now=b.at(0.05), ledger=view))
    assert isinstance(acts[0], SettleMove)
    patch = only(acts, PatchChild).patch
    assert patch["spec"]["template"]["spec"]["nodeSelector"] == {b.REGION_LABEL: b.SOUTH}
    new = after(status, acts)
    assert (new["region"], new["plannedStart"]) == (b.SOUTH, rfc3339(b.at(1)))
    assert "moved aside for ml/urgent" in new["plan"]["reason"]
    assert condition(new, cond.PLANNED)["reason"] == Reason.REPLANNED
    ledger.apply(KEY, acts[0])  # settled: it may be moved again
    assert ledger.view(KEY, b.at(0.05)).pending_move is None


def test_a_move_computed_against_an_older_plan_is_void() -> None:
    status, manifest = deferred()
    _, view = _moved(status, previous_start=b.at(6))  # the job re-planned since
    acts = reconcile(b.observed(b.body(), status=status, child=b.child(manifest), now=b.at(0.05), ledger=view))
    assert kinds(acts) == ["SettleMove", "Book", "Requeue"]
    booking = only(acts, Book).reservation
    assert booking is not None
    assert (booking.region, booking.start) == (b.NORTH, b.at(4))


def test_a_move_is_void_after_a_spec_edit() -> None:
    status, manifest = deferred()
    _, view = _moved(status)
    acts = reconcile(
        b.observed(b.body(generation=2), status=status, child=b.child(manifest), now=b.at(0.05), ledger=view)
    )
    assert isinstance(acts[0], SettleMove)
    assert none_of(acts, PatchChild, WriteStatus)


# -- the one GPU rule ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("gpus", "parallelism", "held"),
    [(1, None, 1), (0, None, 1), (0, 3, 3), (2, 3, 6)],
    ids=["one-gpu", "cpu-only", "cpu-only-x3", "two-gpus-x3"],
)
def test_a_job_books_its_pods_gpus_and_a_cpu_pod_counts_as_one(gpus: int, parallelism: int | None, held: int) -> None:
    body = b.body(gpus=gpus, parallelism=parallelism)
    assert b.parsed(body).gpus == held
    acts = reconcile(b.observed(body))
    booking = only(acts, Book).reservation
    assert booking is not None
    assert booking.gpus == held
    # The other jobs' ledger counts the same from the raw object.
    status = after({}, acts)
    ledger = b.new_ledger()
    ledger.observe_job(KEY, b.body(gpus=gpus, parallelism=parallelism, status=status))
    assert ledger.view("ml/other", b.T0).bookings[KEY].gpus == held


def test_a_job_goes_where_the_other_bookings_leave_room() -> None:
    # Someone's pods hold 15 of north's 16 GPUs over the horizon: a 2-GPU job goes south.
    ledger = b.new_ledger()
    ledger.apply(f"{b.NS}/big", Book(Reservation(b.NORTH, b.T0, b.at(24), 15)))
    acts = reconcile(b.observed(b.body(gpus=2, regions=[b.NORTH, b.SOUTH]), ledger=ledger.view(KEY, b.T0)))
    assert after({}, acts)["region"] == b.SOUTH


def test_a_terminal_status_needs_nothing_and_is_done() -> None:
    for phase in (Phase.SUCCEEDED, Phase.FAILED):
        status = {"phase": str(phase)}
        assert needs(status, True, None, b.T0, b.SETTINGS.replan_interval, None) == Needs()
        assert reconcile(b.observed(b.body(), status=status)) == [Book(None), Done()]


def test_a_running_job_whose_region_left_the_config_still_settles() -> None:
    status, manifest = released()
    child = running_child(manifest, complete_at=b.at(6))
    orphaned = b.body(regions=["gone"], generation=2)
    assert needs(status, False, child, b.at(7), b.SETTINGS.replan_interval, None).accounting
    inputs = b.accounting(status, child, b.at(7))
    acts = reconcile(b.observed(orphaned, status=status, child=child, now=b.at(7), data={}, accounting=inputs))
    assert after(status, acts)["phase"] == Phase.SUCCEEDED
