"""The capacity ledger: bookings from status overlaid by this process' own decisions, other pods'
GPUs per region, moves aside, the burst of first decisions, and the child's unschedulable pods."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import timedelta
from typing import Any

from green_operator.api.manifests import LABEL_MANAGED_BY, MANAGED_BY
from green_operator.controller.actions import Book, MoveAside, PlanRecorded, RescueTried, SettleMove
from green_operator.controller.ledger import BURST_JOBS, CHILD_SLOTS, FOREIGN, Burst, CapacityLedger
from green_operator.controller.observed import MovableJob, PodsSummary
from green_operator.planner import Decision, Reservation
from green_operator.times import rfc3339
from tests.operator.controller import builders as b

A, B, C = f"{b.NS}/a", f"{b.NS}/b", f"{b.NS}/c"


def status(region: str = b.NORTH, start_h: float = 4.0, phase: str = "Deferred") -> dict[str, Any]:
    return {
        "phase": phase,
        "region": region,
        "plannedStart": rfc3339(b.at(start_h)),
        "plan": {"expectedDuration": "2h"},
    }


def job(name: str, st: Mapping[str, Any] | None = None, gpus: int = 1) -> dict[str, Any]:
    return b.body(name, gpus=gpus, status=st)


def ledger(wakes: list[str] | None = None) -> CapacityLedger:
    return CapacityLedger(b.REGIONS, b.PLANNER.horizon, wake=(wakes.append if wakes is not None else lambda k: None))


def node(name: str, region: str | None, gpus: int = 16) -> dict[str, Any]:
    labels = {b.REGION_LABEL: region} if region else {}
    return {"metadata": {"name": name, "labels": labels}, "status": {"allocatable": {"nvidia.com/gpu": str(gpus)}}}


def pod(
    uid: str,
    *,
    node_name: str | None = "n1",
    gpus: int = 4,
    managed_job: str | None = None,
    phase: str = "Running",
    unschedulable: str | None = None,
) -> dict[str, Any]:
    labels = {LABEL_MANAGED_BY: MANAGED_BY, "job-name": managed_job} if managed_job else {"app": "other"}
    spec: dict[str, Any] = {"containers": [{"name": "c", "resources": {"limits": {"nvidia.com/gpu": gpus}}}]}
    if node_name:
        spec["nodeName"] = node_name
    st: dict[str, Any] = {"phase": phase}
    if unschedulable is not None:
        st["conditions"] = [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": unschedulable}
        ]
    return {"metadata": {"uid": uid, "name": uid, "namespace": b.NS, "labels": labels}, "spec": spec, "status": st}


def decision(key: str, region: str, start_h: float) -> Decision:
    return Decision(
        key=key,
        region=region,
        start=b.at(start_h),
        power_limit_watts=None,
        expected_duration=timedelta(hours=2),
        expected_grams=10.0,
        forecast_intensity=50.0,
        baseline_region=region,
        baseline_start=b.T0,
        baseline_grams=80.0,
        baseline_intensity=400.0,
        deadline_at_risk=False,
        reason="test",
    )


# -- bookings --------------------------------------------------------------------------------------


def test_status_books_a_jobs_gpus_and_a_job_never_sees_its_own() -> None:
    led = ledger()
    led.observe_job(A, job("a", status(), gpus=2))
    assert led.booking(A) == Reservation(b.NORTH, b.at(4), b.at(6), 2)
    assert dict(led.view(B, b.T0).bookings) == {A: Reservation(b.NORTH, b.at(4), b.at(6), 2)}
    assert A not in led.view(A, b.T0).bookings
    assert len(led.view(A, b.T0).bookings) == 0
    # An unplanned job books nothing; a finished one no longer does.
    led.observe_job(B, job("b", {}))
    assert led.booking(B) is None
    led.observe_job(A, job("a", status(phase="Succeeded")))
    assert led.booking(A) is None


def test_own_decisions_override_status_until_the_job_finishes() -> None:
    led = ledger()
    led.observe_job(A, job("a", status(b.NORTH, 4)))
    moved = Reservation(b.SOUTH, b.at(1), b.at(3), 1)
    led.apply(A, Book(moved))
    assert led.booking(A) == moved
    # The watch delivers an older status (its write has not landed yet): the decision still wins.
    led.observe_job(A, job("a", status(b.NORTH, 4)))
    assert led.booking(A) == moved
    assert led.view(B, b.T0).bookings[A] == moved
    # Book(None): it holds nothing, whatever the status says.
    led.apply(A, Book(None))
    assert led.booking(A) is None
    assert A not in led.view(B, b.T0).bookings
    # Finished: the status is the truth again (and books nothing).
    led.apply(A, Book(moved))
    led.observe_job(A, job("a", status(b.SOUTH, 1, phase="Failed")))
    assert led.booking(A) is None


def test_forget_drops_everything_about_a_job() -> None:
    led = ledger()
    led.observe_job(A, job("a", status()))
    led.apply(
        A,
        Book(
            Reservation(b.NORTH, b.at(4), b.at(6), 1),
            MovableJob(b.parsed(job("a")).request(b.T0), decision(A, b.NORTH, 4)),
        ),
    )
    led.forget(A)
    assert led.booking(A) is None
    assert A not in led.view(B, b.T0).movable


def test_the_views_columns_hold_the_same_bookings_as_its_mapping() -> None:
    led = ledger()
    led.observe_node(node("n1", b.NORTH))
    led.observe_pod(pod("p1", gpus=3))  # another's pod: a foreign booking
    led.observe_job(A, job("a", status(b.NORTH, 4), gpus=2))
    first = Reservation(b.SOUTH, b.at(1), b.at(2), 1)
    later = (Reservation(b.SOUTH, b.at(5), b.at(6), 1), Reservation(b.SOUTH, b.at(8), b.at(9), 1))
    led.apply(B, Book(first, None, later))
    led.apply(C, Book(Reservation(b.NORTH, b.at(2), b.at(3), 4)))
    led.apply(B, Book(first, None, later[:1]))  # one later segment fewer
    led.forget(C)
    for key in (A, B, C):
        view = led.view(key, b.T0)
        assert view.columns is not None
        assert sorted(view.columns.reservations(), key=repr) == sorted(view.bookings.values(), key=repr)
    assert len(led.view(A, b.T0).bookings) == 3  # B's two bookings and the foreign pod's


def test_a_booking_movable_while_waiting_is_offered_to_others() -> None:
    led = ledger()
    mover = MovableJob(b.parsed(job("a")).request(b.T0), decision(A, b.NORTH, 4))
    led.apply(A, Book(Reservation(b.NORTH, b.at(4), b.at(6), 1), mover))
    assert dict(led.view(B, b.T0).movable) == {A: mover}
    assert A not in led.view(A, b.T0).movable
    led.apply(A, Book(Reservation(b.NORTH, b.T0, b.at(2), 1)))  # released: no longer movable
    assert len(led.view(B, b.T0).movable) == 0


def test_the_deadline_at_risk_condition_marks_a_job_at_risk() -> None:
    led = ledger()
    risky = {**status(), "conditions": [{"type": "DeadlineAtRisk", "status": "True"}]}
    led.observe_job(A, job("a", risky))
    assert led.view(A, b.T0).at_risk
    led.observe_job(A, job("a", {**risky, "phase": "Succeeded"}))
    assert not led.view(A, b.T0).at_risk


# -- other pods ------------------------------------------------------------------------------------


def test_another_pods_gpus_count_in_its_nodes_region() -> None:
    led = ledger()
    led.observe_node(node("n1", b.NORTH))
    led.observe_node(node("n2", b.SOUTH))
    led.observe_node(node("n3", None))  # in no region
    assert led.observe_pod(pod("p1", gpus=4)) is None
    assert led.observe_pod(pod("p2", gpus=2)) is None
    led.observe_pod(pod("p3", node_name="n2", gpus=1))
    led.observe_pod(pod("p4", node_name="n3", gpus=8))
    led.observe_pod(pod("p5", node_name=None, gpus=8))  # not bound yet: holds nothing
    now = b.at(1)
    bookings = led.view(A, now).bookings
    assert bookings[FOREIGN + b.NORTH] == Reservation(b.NORTH, now, now + b.PLANNER.horizon, 6)
    assert bookings[FOREIGN + b.SOUTH].gpus == 1
    assert set(bookings) == {FOREIGN + b.NORTH, FOREIGN + b.SOUTH}
    assert len(bookings) == 2


def test_our_own_and_finished_pods_are_not_counted() -> None:
    led = ledger()
    led.observe_node(node("n1", b.NORTH))
    assert led.observe_pod(pod("ours", gpus=4, managed_job="job")) == (b.NS, "job")
    led.observe_pod(pod("done", gpus=4, phase="Succeeded"))
    led.observe_pod(pod("cpu", gpus=0))
    assert FOREIGN + b.NORTH not in led.view(A, b.T0).bookings
    # A foreign pod that finishes frees its GPUs; so does one that is deleted.
    led.observe_pod(pod("p", gpus=3))
    assert led.view(A, b.T0).bookings[FOREIGN + b.NORTH].gpus == 3
    led.observe_pod(pod("p", gpus=3, phase="Failed"))
    assert FOREIGN + b.NORTH not in led.view(A, b.T0).bookings
    led.observe_pod(pod("q", gpus=3))
    led.forget_pod("q")
    assert FOREIGN + b.NORTH not in led.view(A, b.T0).bookings


def test_a_node_that_leaves_takes_its_pods_region_with_it() -> None:
    led = ledger()
    led.observe_node(node("n1", b.NORTH))
    led.observe_pod(pod("p", gpus=2))
    assert FOREIGN + b.NORTH in led.view(A, b.T0).bookings
    led.forget_node("n1")
    assert FOREIGN + b.NORTH not in led.view(A, b.T0).bookings


def test_unschedulable_pods_are_summed_per_child_job() -> None:
    led = ledger()
    msg = "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."
    led.observe_pod(pod("j-0", node_name=None, managed_job="job", phase="Pending", unschedulable=msg))
    led.observe_pod(pod("j-1", node_name=None, managed_job="job", phase="Pending", unschedulable=msg))
    led.observe_pod(pod("k-0", node_name=None, managed_job="other", phase="Pending", unschedulable="nope"))
    assert led.pods_of(b.NS, "job") == PodsSummary(2, msg)
    assert led.pods_of(b.NS, "other").unschedulable == 1
    assert led.pods_of("elsewhere", "job") == PodsSummary()
    # Scheduled at last.
    led.observe_pod(pod("j-0", managed_job="job"))
    led.observe_pod(pod("j-1", managed_job="job"))
    assert led.pods_of(b.NS, "job") == PodsSummary()


# -- moves aside -------------------------------------------------------------------------------------


def _two_waiting(wakes: list[str]) -> tuple[CapacityLedger, MovableJob]:
    led = ledger(wakes)
    b_plan = decision(B, b.NORTH, 4)
    mb = MovableJob(b.parsed(job("b")).request(b.T0), b_plan)
    led.apply(B, Book(Reservation(b.NORTH, b.at(4), b.at(6), 1), mb))
    return led, mb


def test_move_aside_books_the_other_job_and_wakes_it() -> None:
    wakes: list[str] = []
    led, mb = _two_waiting(wakes)
    moved = decision(B, b.SOUTH, 1)
    led.apply(A, MoveAside(moved, mb.decision, gpus=1))
    assert wakes == [B]
    assert led.booking(B) == Reservation(b.SOUTH, b.at(1), b.at(3), 1)
    assert led.view(C, b.T0).bookings[B].region == b.SOUTH
    pending = led.view(B, b.T0).pending_move
    assert pending is not None
    assert (pending.decision, pending.previous, pending.for_job) == (moved, mb.decision, A)
    assert led.movable[B].decision == moved  # its movable plan follows the move
    # While the move is in flight, no one else may move it.
    assert B not in led.view(C, b.T0).movable
    assert len(led.view(C, b.T0).movable) == 0


def test_settle_move_lets_others_move_the_job_again() -> None:
    wakes: list[str] = []
    led, mb = _two_waiting(wakes)
    led.apply(A, MoveAside(decision(B, b.SOUTH, 1), mb.decision, gpus=1))
    led.apply(B, SettleMove())
    assert led.view(B, b.T0).pending_move is None
    assert B in led.view(C, b.T0).movable
    # A void move: the job books its own plan back.
    led.apply(A, MoveAside(decision(B, b.SOUTH, 2), replace(mb.decision, start=b.at(9)), gpus=1))
    led.apply(B, SettleMove())
    led.apply(B, Book(Reservation(b.NORTH, b.at(4), b.at(6), 1), mb))
    assert led.booking(B) == Reservation(b.NORTH, b.at(4), b.at(6), 1)


# -- bursts of first decisions (ported from the removed runtime's tests) ---------------------------------


def test_a_long_queue_of_first_decisions_is_a_burst() -> None:
    burst = Burst()
    burst.unplanned.update(f"ns/j{i}" for i in range(BURST_JOBS))
    assert not burst.in_burst()
    burst.unplanned.add("ns/one-more")
    assert burst.in_burst()
    # Through the ledger: jobs first seen without a plan queue up; planned or finished ones do not.
    led = ledger()
    for i in range(BURST_JOBS + 1):
        led.first_seen(f"ns/j{i}", {})
    led.first_seen("ns/planned", status())
    led.first_seen("ns/done", {"phase": "Succeeded"})
    assert led.view("ns/j0", b.T0).in_burst
    assert led.burst.unplanned == {f"ns/j{i}" for i in range(BURST_JOBS + 1)}
    led.apply("ns/j0", PlanRecorded())
    assert not led.view("ns/j1", b.T0).in_burst


def test_late_jobs_are_woken_once_no_first_decision_waits() -> None:
    wakes: list[str] = []
    led = ledger(wakes)
    led.first_seen("ns/a", {})
    led.first_seen("ns/b", {})
    led.first_seen("ns/late", {})
    led.apply("ns/late", PlanRecorded(late=True))
    assert led.view("ns/late", b.T0).rescue
    led.apply("ns/a", PlanRecorded())
    assert not led.view("ns/late", b.T0).may_rescue
    assert wakes == []  # a first decision still waits
    led.apply("ns/b", PlanRecorded())
    assert led.view("ns/late", b.T0).may_rescue
    assert wakes == ["ns/late"]
    led.apply("ns/late", RescueTried())
    assert not led.view("ns/late", b.T0).rescue


def test_late_jobs_search_for_room_one_at_a_time() -> None:
    # All of them woken at once would queue every search ahead of a job created meanwhile.
    wakes: list[str] = []
    led = ledger(wakes)
    for k in ("ns/a", "ns/late1", "ns/late2"):
        led.first_seen(k, {})
    led.apply("ns/late2", PlanRecorded(late=True))
    led.apply("ns/late1", PlanRecorded(late=True))
    led.apply("ns/a", PlanRecorded())
    assert wakes == ["ns/late1"]
    led.stepped("ns/a")  # another job's step does not pass the turn
    led.apply("ns/late1", RescueTried())
    assert wakes == ["ns/late1", "ns/late2"]
    led.stepped("ns/late1")
    assert wakes == ["ns/late1", "ns/late2"]


def test_an_unused_turn_passes_on_and_a_new_arrival_pauses_the_queue() -> None:
    wakes: list[str] = []
    led = ledger(wakes)
    for k in ("ns/late1", "ns/late2", "ns/late3"):
        led.first_seen(k, {})
        led.apply(k, PlanRecorded(late=True))
    assert wakes == ["ns/late1"]
    # late1 started instead of searching: with no first decision waiting, it leaves the queue.
    led.stepped("ns/late1")
    assert wakes == ["ns/late1", "ns/late2"]
    assert "ns/late1" not in led.burst.rescue
    # A job arrives while late2 has the turn: late2 keeps its place, and nobody else is woken...
    led.first_seen("ns/new", {})
    led.stepped("ns/late2")
    assert "ns/late2" in led.burst.rescue
    assert wakes == ["ns/late1", "ns/late2"]
    # ...until the newcomer's first decision is made.
    led.apply("ns/new", PlanRecorded())
    assert wakes == ["ns/late1", "ns/late2", "ns/late2"]
    led.forget("ns/late2")  # deleted during its turn: the next one's turn
    assert wakes[-1] == "ns/late3"


def test_a_bursts_deferred_children_are_created_a_few_at_a_time_once_no_first_decision_waits() -> None:
    wakes: list[str] = []
    led = ledger(wakes)
    later = [f"ns/d{i}" for i in range(CHILD_SLOTS + 2)]
    for k in [*later, "ns/last"]:
        led.first_seen(k, {})
    for k in later:
        led.apply(k, PlanRecorded(child_later=True))
        assert led.view(k, b.T0).child_waits
    assert wakes == []  # "ns/last" still waits for its first decision
    led.apply("ns/last", PlanRecorded())
    assert wakes == later[:CHILD_SLOTS]
    assert not led.view(later[0], b.T0).child_waits  # woken: its step creates the child
    assert led.view(later[-1], b.T0).child_waits
    led.stepped("ns/last")  # a step of a job not creating its child frees no slot
    assert wakes == later[:CHILD_SLOTS]
    led.stepped(later[0])
    assert wakes == later[: CHILD_SLOTS + 1]
    led.forget(later[-1])  # deleted before its turn: never woken
    for k in later[1:CHILD_SLOTS]:
        led.stepped(k)
    assert wakes == later[: CHILD_SLOTS + 1]
    assert not led.burst.children
    assert led.burst.creating == {later[CHILD_SLOTS]}


def test_a_finished_job_passes_on_the_turn_and_the_child_slot_it_was_woken_for() -> None:
    # Its task has ended: a wake-up would reach nobody, and the queues would stall behind it.
    wakes: list[str] = []
    led = ledger(wakes)
    children = [f"ns/d{i}" for i in range(CHILD_SLOTS + 1)]
    for k in ["ns/late1", "ns/late2", *children]:
        led.first_seen(k, {})
    led.apply("ns/late1", PlanRecorded(late=True))
    led.apply("ns/late2", PlanRecorded(late=True))
    for k in children:
        led.apply(k, PlanRecorded(child_later=True))
    assert wakes == ["ns/late1", *children[:CHILD_SLOTS]]
    led.retired("ns/late1")
    led.retired(children[0])
    assert wakes[-2:] == ["ns/late2", children[CHILD_SLOTS]]


def test_a_deleted_job_leaves_no_burst_behind() -> None:
    # A job deleted before its first decision must not keep the operator "in a burst" forever.
    led = ledger()
    for i in range(BURST_JOBS + 1):
        led.first_seen(f"ns/j{i}", {})
    led.burst.rescue.add("ns/j0")
    led.burst.children.add("ns/j1")
    for i in range(BURST_JOBS + 1):
        led.forget(f"ns/j{i}")
    assert not led.burst.in_burst()
    assert led.burst.may_rescue()
    assert led.burst.rescue == set()
    assert led.burst.children == led.burst.creating == set()
