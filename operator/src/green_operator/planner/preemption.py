"""Planning a new job when others already hold the capacity it needs: move deferred jobs aside.

Jobs planned earlier book the cleanest windows; a job that arrives later with a tight deadline can
then find no room before its latest start, although the deferred jobs in its way could run
elsewhere or at another time and still meet their own deadlines. ``plan_with_preemption`` plans
the new job exactly as ``plan`` does, with every deferred job's plan held fixed. Then:

- if that leaves the new job without room before its deadline, it moves deferred jobs out of its
  way (those in its regions and time span, at most ``_MAX_MOVED``), each only to a placement that
  still meets that job's deadline; a deferred job whose plan was on time is never made late;
- if the new job is on time but its cleanest place is held by deferred jobs that have nearly as
  clean alternatives, they move there when that cuts the expected emissions of all the jobs
  involved by more than the hysteresis share of the new job's.

How the operator calls it, for each newly created job (instead of ``plan``):

- ``jobs``: the new job (``JobRequest`` as for ``plan``).
- ``movable``: every other job that is planned but has not started (its Job is still suspended),
  each with ``previous`` set to its current decision. Jobs about to start (say, within a minute)
  are better left out: pass them as reservations.
- ``reservations``: everything else: running jobs, and plans that must not change.

Then write ``decisions`` as the new jobs' plans, and for each decision in ``moved`` re-point that
suspended Job at its new plan exactly as a re-plan does (region, start, power limit, status).
``moved`` is empty in the common case, which costs what ``plan`` costs plus a few milliseconds.

Pass the same ``RepairMemo`` to every call (the operator keeps one per process): under sustained
pressure, a burst far beyond capacity, nearly every new job is stuck and the search for room, which
then always fails, is most of the planning time. The memo remembers the jobs it failed for and the
GPUs held at the time; a job no easier to place, arriving while nothing held then was freed or moved,
is not searched for again.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from .grid import slot_floor
from .improve import repair, slack_slots
from .model import Decision, JobRequest, PlannerSettings, PowerRequest, RegionForecast, Reservation
from .placement import placement_at
from .reasons import Risk
from .scheduler import Planner

_MAX_MOVED = 150
"""Deferred jobs, nearest the stuck job's window first, that one call may consider moving."""
_MAX_REPLANNED = 40
"""Jobs (new and deferred) up to which a failed repair is followed by re-planning them all."""


_Held = tuple[str, datetime, datetime, int]
"""GPUs booked: region, the slots from start to end (as the planner occupies them), count."""
_Freedom = tuple[datetime, tuple[str, ...], timedelta, PowerRequest]
"""What bounds a deferred job's moves: deadline, regions, duration, power request."""


@dataclass(frozen=True)
class _World:
    """What decides whether room can be made: the GPUs held fixed, the deferred jobs that may move
    (and how far), the regions' sizes. Not where the deferred jobs sit now: any arrangement of them
    that meets their deadlines is open to the search."""

    held: Counter[_Held]
    freedom: dict[str, _Freedom]
    capacity: dict[str, int]

    @classmethod
    def of(
        cls,
        reservations: Sequence[Reservation],
        movable: Sequence[JobRequest],
        regions: Sequence[RegionForecast],
        slot: timedelta,
    ) -> _World:
        held: Counter[_Held] = Counter(_booking(r.region, r.start, r.end, r.gpus, slot) for r in reservations)
        # Not a deferred job's earliest start: that only moves later as time passes.
        freedom = {m.key: (m.deadline, m.regions, m.duration, m.power) for m in movable}
        return cls(held, freedom, {rf.region: rf.capacity_gpus for rf in regions})

    def no_easier_than(self, then: _World, planning: str) -> bool:
        """Everything held then is still held in the same place, every job that could move then
        still can, exactly as far (one gone may have freed its GPUs), and no region grew. The job
        being planned now may have been among those that could move then: it traded places with the
        job planned then, which it is no easier than."""
        return (
            all(self.capacity.get(r, 0) <= c for r, c in then.capacity.items())
            and all(self.freedom.get(k) == f for k, f in then.freedom.items() if k != planning)
            and all(self.held[k] >= n for k, n in then.held.items())
        )


def _booking(region: str, start: datetime, end: datetime, gpus: int, slot: timedelta) -> _Held:
    # Whole slots, as occupied: plans that round-trip through status differ in their fractions.
    return (region, slot_floor(start, slot), _slot_ceil(end, slot), gpus)


@dataclass(frozen=True)
class _Failure:
    job: JobRequest
    earliest: datetime
    world: _World


class RepairMemo:
    """New jobs that moving deferred jobs aside could not make room for, with what held the GPUs then.

    A later job is hopeless too when it is no easier (as many GPUs or more, as long or longer, the
    same power request, no region the failed job could not use, no earlier start, no later
    latest start) and the world is no easier: every GPU-slot held fixed then still is, every
    deferred job that could move then still can and no further (deadline, regions, length), and
    no region grew. Room appears only when something held is freed, or a job leaves or gains
    freedom, and then the memo no longer applies. Where the deferred jobs sit does not matter: the
    search may rearrange them. This is sound for the placement problem; the search itself is a
    bounded heuristic, so the memo may skip a search that luck would have won, never one that the
    world made easier.
    """

    def __init__(self, size: int = 8) -> None:
        self._failures: deque[_Failure] = deque(maxlen=size)
        self.skipped = 0
        """Searches skipped so far (for logs and benchmarks)."""

    def hopeless(self, job: JobRequest, now: datetime, world: _World, slot: timedelta) -> bool:
        earliest = max(job.earliest_start, now)
        for f in self._failures:
            if _no_easier(job, earliest, f, slot) and world.no_easier_than(f.world, job.key):
                self.skipped += 1
                return True
        return False

    def record(self, job: JobRequest, now: datetime, world: _World) -> None:
        self._failures.append(_Failure(job, max(job.earliest_start, now), world))


def _no_easier(job: JobRequest, earliest: datetime, f: _Failure, slot: timedelta) -> bool:
    # Plans start on slot boundaries (or now): a deadline seconds later, as for a job created
    # seconds later with the same delay, allows no later start unless it crosses a boundary.
    return (
        job.gpus >= f.job.gpus
        and job.duration >= f.job.duration
        and job.power == f.job.power
        and set(job.regions or f.world.capacity) <= set(f.job.regions or f.world.capacity)
        and earliest >= f.earliest
        and slot_floor(job.latest_start, slot) <= slot_floor(f.job.latest_start, slot)
    )


def _slot_ceil(t: datetime, slot: timedelta) -> datetime:
    floor = slot_floor(t, slot)
    return floor if floor == t else floor + slot


@dataclass(frozen=True)
class PreemptionResult:
    decisions: list[Decision]
    """One per new job, in input order."""
    moved: list[Decision]
    """New plans for the movable jobs that had to move, in the order they were given; the others
    keep their plans."""


def plan_with_preemption(
    jobs: Sequence[JobRequest],
    movable: Sequence[JobRequest],
    regions: Sequence[RegionForecast],
    reservations: Sequence[Reservation],
    now: datetime,
    settings: PlannerSettings,
    memo: RepairMemo | None = None,
) -> PreemptionResult:
    """Plan ``jobs`` against ``reservations`` and the movable jobs' current plans; if a new job
    then has no room before its deadline, move movable jobs out of its way (each to a placement
    that still meets its own deadline) when that makes room. See the module docstring."""
    if not jobs:
        return PreemptionResult([], [])
    missing = [m.key for m in movable if m.previous is None]
    if missing:
        raise ValueError(
            f"movable jobs {missing} have no previous decision: pass each movable job with previous= "
            "its current plan, or pass its GPUs as a Reservation"
        )
    keys = [j.key for j in jobs] + [m.key for m in movable]
    if len(set(keys)) != len(keys):
        raise ValueError("job keys must be unique across jobs and movable")
    held = [
        Reservation(m.previous.region, m.previous.start, m.previous.end, m.gpus)
        for m in movable
        if m.previous is not None
    ]
    fixed = Planner(jobs, regions, [*reservations, *held], now, settings)
    chosen, base = fixed.solve()
    stuck = [i for i in range(len(jobs)) if fixed.risk(chosen, i) is Risk.NO_CAPACITY]
    if not movable:
        return PreemptionResult(fixed.decisions(chosen, base), [])
    if not stuck:
        if len(jobs) == 1 and chosen.meets(0):
            better = _displace(jobs[0], movable, held, regions, reservations, now, settings, chosen.placement(0).grams)
            if better is not None:
                return better
        return PreemptionResult(fixed.decisions(chosen, base), [])

    # A single new job is remembered when no move helps it (with several, the others take room too).
    remember = memo is not None and len(jobs) == 1
    if remember:
        assert memo is not None
        world = _World.of(reservations, movable, regions, settings.slot)
        if memo.hopeless(jobs[0], now, world, settings.slot):
            return PreemptionResult(fixed.decisions(chosen, base), [])

    def give_up() -> PreemptionResult:
        if remember:
            assert memo is not None
            memo.record(jobs[0], now, world)
        return PreemptionResult(fixed.decisions(chosen, base), [])

    # Only deferred jobs in a stuck job's regions and time span can make room for it (directly;
    # those moving aside may still use any region); the others stay as they are.
    names = {r for i in stuck for r in (jobs[i].regions or [rf.region for rf in regions])}
    lo = min(max(jobs[i].earliest_start, now) for i in stuck)
    hi = max(jobs[i].deadline for i in stuck)
    near = sorted(
        (abs((m.previous.start - lo).total_seconds()), k)
        for k, m in enumerate(movable)
        if m.previous is not None and m.previous.region in names and m.previous.start < hi and m.previous.end > lo
    )
    chosen_set = {k for _, k in near[:_MAX_MOVED]}
    others = [r for k, r in enumerate(held) if k not in chosen_set]
    candidates = [movable[k] for k in sorted(chosen_set)]
    if not candidates:
        return give_up()
    n_new = len(jobs)
    joint = Planner([*jobs, *candidates], regions, [*reservations, *others], now, settings)
    s = joint.new_schedule()
    # Movable jobs hold their plans; the new jobs and any movable job whose plan no longer fits
    # (capacity shrank) are placed around them, least slack first.
    joint.fill_in(s, joint.hold_previous(s, afresh=n_new))
    find = joint.finder(None)
    everyone = [True] * len(joint.jobs)
    late_before = s.misses
    for i in joint.slack_order:
        if s.counted[i] and not s.meets(i):
            repair(s, i, everyone, find)
    if sum(not s.meets(i) for i in range(n_new)) >= chosen.misses:
        if len(joint.jobs) > _MAX_REPLANNED:
            return give_up()
        # Moving jobs out of the way one window at a time was not enough: re-plan them all
        # together, and take it if it saves a new job without breaking a plan that was on time.
        s = joint.search(everyone, relocate=False)
        saved = sum(not s.meets(i) for i in range(n_new)) < chosen.misses
        if not (saved and joint.broken(s) == 0 and s.misses < late_before):
            return give_up()
    joint_base = joint.baseline()
    moved = [i for i in range(n_new, len(joint.jobs)) if not joint.is_previous(i, s.placement(i))]
    return PreemptionResult(joint.decisions(s, joint_base, range(n_new)), joint.decisions(s, joint_base, moved))


def _displace(
    job: JobRequest,
    movable: Sequence[JobRequest],
    held: Sequence[Reservation],
    regions: Sequence[RegionForecast],
    reservations: Sequence[Reservation],
    now: datetime,
    settings: PlannerSettings,
    grams: float,
) -> PreemptionResult | None:
    """The new job at the placement it would take were no job deferred, the deferred jobs in its
    way moved to their next best placements (still on time), when that cuts the total emissions
    by more than the hysteresis share of the new job's. None when it does not."""
    alone = Planner([job], regions, reservations, now, settings)
    s = alone.new_schedule()
    ideal = alone.finder(None)(s, 0)
    h = settings.hysteresis_fraction
    if ideal is None or ideal.grams >= grams * (1 - h):
        return None
    region = alone.grid.names[ideal.row]
    a, b = ideal.start_time, ideal.start_time + job.duration * ideal.option.slowdown
    in_way = [
        k
        for k, m in enumerate(movable)
        if m.previous is not None and m.previous.region == region and m.previous.start < b and m.previous.end > a
    ]
    if not in_way:
        return None
    taken = set(in_way)
    others = [r for k, r in enumerate(held) if k not in taken]
    joint = Planner([job, *(movable[k] for k in in_way)], regions, [*reservations, *others], now, settings)
    js = joint.new_schedule()
    for i in range(1, len(joint.jobs)):
        prev = joint.previous_placement(i, js)
        if prev is None:
            return None
        js.place(i, prev)
    before = js.grams + grams
    find = joint.finder(None)
    target = find(js, 0)
    if target is None or target.grams >= grams * (1 - h):
        # Not yet free: clear the ideal window, then put the jobs taken out back on time.
        for j in list(range(1, len(joint.jobs))):
            if js.occ_from[j] < ideal.occupy_to and js.occ_to[j] > ideal.occupy_from and int(js.rows[j]) == ideal.row:
                js.remove(j)
        target = placement_at(joint.grid, joint.contexts[0], js.room(), ideal.row, ideal.start_time, ideal.option)
        if target is None:
            return None
    js.place(0, target)
    for j in sorted(range(1, len(joint.jobs)), key=lambda j: (slack_slots(joint.contexts[j]), j)):
        if js.placements[j] is None:
            q = find(js, j)
            if q is None:
                return None
            js.place(j, q)
    if js.grams >= before - h * grams:
        return None
    joint_base = joint.baseline()
    moved = [i for i in range(1, len(joint.jobs)) if not joint.is_previous(i, js.placement(i))]
    return PreemptionResult(joint.decisions(js, joint_base, [0]), joint.decisions(js, joint_base, moved))
