"""The periodic joint re-plan, pure part: what the ledger holds in, moves proposed out.

Every ``replan_interval`` the operator re-plans all deferred jobs together (``planner.joint``):

1. ``snapshot``: the deferred jobs the ledger may move (movable, no move in flight, not starting
   within the next slot), each with its current plan as ``previous``, and every other booking
   (running jobs, interruptible jobs' segments, other pods' GPUs) as fixed.
2. ``planner.joint.joint_replan`` on that snapshot: pure and CPU-bound, so the operator runs it off
   the event loop while the ledger goes on changing.
3. ``propose``: each move whose job still has the plan it was computed against, and which still fits
   next to what the ledger books *now*, becomes a ``MoveAside`` in the ledger: booked at once, and
   adopted by the job's own reconcile at its next step (``reconcile._apply_move``), exactly as when
   a new job moves deferred jobs aside. A move never starts a job past its latest start: the
   planner only offers runs that finish by the deadline.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from green_operator.planner import Decision, JobRequest, Reservation
from green_operator.planner.joint import JointSettings

__all__ = ["JOINT", "JointSettings", "Snapshot", "propose", "snapshot"]

from .actions import MoveAside
from .ledger import CapacityLedger

JOINT = "the periodic joint re-plan"
"""Who moved the job, as its status and Events say ("moved aside for the periodic joint re-plan")."""


@dataclass(frozen=True)
class Snapshot:
    jobs: tuple[JobRequest, ...]
    fixed: tuple[Reservation, ...]
    plans: Mapping[str, Decision]
    """Each job's plan when the snapshot was taken: a move computed against another is void."""


def snapshot(ledger: CapacityLedger, now: datetime, slot: timedelta) -> Snapshot:
    soon = now + slot
    jobs: list[JobRequest] = []
    plans: dict[str, Decision] = {}
    for key, m in ledger.movable.items():
        if key in ledger.pending or m.decision.start <= soon:
            continue
        jobs.append(replace(m.request, previous=m.decision))
        plans[key] = m.decision
    fixed = [r for k, r in ledger.bookings().items() if k not in plans]
    fixed += ledger.foreign(now).values()
    return Snapshot(tuple(jobs), tuple(fixed), plans)


def propose(
    ledger: CapacityLedger,
    snap: Snapshot,
    moved: Sequence[Decision],
    capacity: Mapping[str, int],
    now: datetime,
    slot: timedelta,
) -> list[str]:
    """Book the moves that still hold (see the module docstring); returns the keys moved.

    A move into room that another move of the same plan frees fits only once that one is booked,
    and the plan lists its moves in no such order. So moves that do not fit are tried again after
    each round that booked some: otherwise the move that frees the room is booked alone, and the
    job it was freed for must take it by its own re-plan before the moved job's own re-plan takes
    it back."""
    gpus = {j.key: j.gpus for j in snap.jobs}
    applied: list[str] = []
    waiting = list(moved)
    while waiting:
        unfit: list[Decision] = []
        for d in waiting:
            m = ledger.movable.get(d.key)
            if m is None or d.key in ledger.pending or m.decision != snap.plans.get(d.key):
                continue  # started, finished, re-planned or moved by another since the snapshot
            want = Reservation(d.region, d.start, d.end, gpus[d.key])
            if not _fits(ledger, d.key, want, capacity.get(d.region, 0), now, slot):
                unfit.append(d)  # room another move frees, or taken by a job that arrived meanwhile
                continue
            ledger.apply(JOINT, MoveAside(d, m.decision, gpus[d.key]))
            applied.append(d.key)
        if len(unfit) == len(waiting):
            break
        waiting = unfit
    return applied


def _fits(ledger: CapacityLedger, key: str, want: Reservation, capacity: int, now: datetime, slot: timedelta) -> bool:
    """Whether ``want`` fits beside every other booking (other pods' GPUs too) in its region, slot
    by slot."""
    others = [r for k, r in ledger.bookings().items() if k != key] + list(ledger.foreign(now).values())
    overlapping = [r for r in others if r.region == want.region and r.start < want.end and r.end > want.start]
    t = want.start
    while t < want.end:
        end = t + slot
        used = sum(r.gpus for r in overlapping if r.start < end and r.end > t)
        if used + want.gpus > capacity:
            return False
        t = end
    return True
