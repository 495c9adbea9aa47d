"""The periodic joint re-plan's pure part: the ledger's deferred jobs in, moves booked as moves aside."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from green_operator.controller.actions import Book, MoveAside
from green_operator.controller.joint import JOINT, propose, snapshot
from green_operator.controller.ledger import CapacityLedger
from green_operator.controller.observed import MovableJob
from green_operator.planner import Decision, JobRequest, PowerRequest, Reservation
from tests.operator.controller import builders as b

SLOT = b.PLANNER.slot


def decision(key: str, start_h: float, region: str = b.NORTH) -> Decision:
    start = b.at(start_h)
    return Decision(key, region, start, None, timedelta(hours=2), 100.0, 100.0, region, b.T0, 200.0, 200.0, False, "")


def defer(ledger: CapacityLedger, key: str, start_h: float, gpus: int = 4) -> Decision:
    d = decision(key, start_h)
    req = JobRequest(key, gpus, timedelta(hours=2), b.T0, b.at(20), (b.NORTH,), PowerRequest())
    ledger.apply(key, Book(Reservation(d.region, d.start, d.end, gpus), MovableJob(req, d)))
    return d


def test_snapshot_takes_deferred_jobs_and_fixes_the_rest() -> None:
    ledger = b.new_ledger()
    a = defer(ledger, "ns/a", 6)
    defer(ledger, "ns/soon", 0.1)  # starts within the next slot: left alone
    ledger.apply("ns/running", Book(Reservation(b.NORTH, b.T0, b.at(3), 8)))  # not movable
    snap = snapshot(ledger, b.T0, SLOT)
    assert [j.key for j in snap.jobs] == ["ns/a"]
    assert snap.jobs[0].previous == a
    assert sorted(r.gpus for r in snap.fixed) == [4, 8]


def test_a_move_is_booked_and_the_job_woken() -> None:
    woken: list[str] = []
    ledger = CapacityLedger(b.REGIONS, b.PLANNER.horizon, wake=woken.append)
    old = defer(ledger, "ns/a", 6)
    snap = snapshot(ledger, b.T0, SLOT)
    new = decision("ns/a", 9)
    assert propose(ledger, snap, [new], {b.NORTH: b.CAPACITY}, b.T0, SLOT) == ["ns/a"]
    pending = ledger.pending["ns/a"]
    assert (pending.decision, pending.previous, pending.for_job) == (new, old, JOINT)
    assert ledger.booking("ns/a") == Reservation(b.NORTH, b.at(9), b.at(11), 4)
    assert woken == ["ns/a"]


def test_a_move_computed_against_an_older_plan_is_void() -> None:
    ledger = b.new_ledger()
    defer(ledger, "ns/a", 6)
    snap = snapshot(ledger, b.T0, SLOT)
    defer(ledger, "ns/a", 7)  # the job re-planned itself meanwhile
    assert propose(ledger, snap, [decision("ns/a", 9)], {b.NORTH: b.CAPACITY}, b.T0, SLOT) == []
    assert "ns/a" not in ledger.pending


def test_a_move_into_room_taken_meanwhile_is_dropped() -> None:
    ledger = b.new_ledger()
    defer(ledger, "ns/a", 6)
    snap = snapshot(ledger, b.T0, SLOT)
    ledger.apply("ns/new", Book(Reservation(b.NORTH, b.at(9), b.at(10), b.CAPACITY - 2)))  # arrived meanwhile
    assert propose(ledger, snap, [decision("ns/a", 9)], {b.NORTH: b.CAPACITY}, b.T0, SLOT) == []
    assert propose(ledger, snap, [decision("ns/a", 12)], {b.NORTH: b.CAPACITY}, b.T0, SLOT) == ["ns/a"]


def test_a_move_into_room_another_move_frees_is_booked_whatever_the_order() -> None:
    """The plan swaps two jobs of 12 GPUs (capacity 16): each move fits only once the other is
    booked elsewhere, or after it. Listed beneficiary first, both are still booked."""
    ledger = b.new_ledger()
    defer(ledger, "ns/flex", 6, gpus=12)
    defer(ledger, "ns/urgent", 12, gpus=12)
    snap = snapshot(ledger, b.T0, SLOT)
    moves = [decision("ns/urgent", 6), decision("ns/flex", 12)]
    assert propose(ledger, snap, moves, {b.NORTH: b.CAPACITY}, b.T0, SLOT) == []  # a true swap: neither fits first
    three = [decision("ns/urgent", 6), decision("ns/flex", 9)]
    assert propose(ledger, snap, three, {b.NORTH: b.CAPACITY}, b.T0, SLOT) == ["ns/flex", "ns/urgent"]
    assert ledger.booking("ns/urgent") == Reservation(b.NORTH, b.at(6), b.at(8), 12)
    assert ledger.booking("ns/flex") == Reservation(b.NORTH, b.at(9), b.at(11), 12)


def test_moves_mirror_move_aside() -> None:
    """The joint re-plan books exactly what a MoveAside by another job would."""
    one, two = b.new_ledger(), b.new_ledger()
    old = defer(one, "ns/a", 6)
    defer(two, "ns/a", 6)
    new = replace(decision("ns/a", 9), reason="moved")
    propose(one, snapshot(one, b.T0, SLOT), [new], {b.NORTH: b.CAPACITY}, b.T0, SLOT)
    two.apply(JOINT, MoveAside(new, old, 4))
    assert one.bookings() == two.bookings()
    assert one.pending == two.pending
