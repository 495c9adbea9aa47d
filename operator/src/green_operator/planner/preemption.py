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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from .improve import repair, slack_slots
from .model import Decision, JobRequest, PlannerSettings, RegionForecast, Reservation
from .placement import placement_at
from .reasons import Risk
from .scheduler import Planner

_MAX_MOVED = 150
"""Deferred jobs, nearest the stuck job's window first, that one call may consider moving."""
_MAX_REPLANNED = 40
"""Jobs (new and deferred) up to which a failed repair is followed by re-planning them all."""


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
        return PreemptionResult(fixed.decisions(chosen, base), [])
    n_new = len(jobs)
    joint = Planner([*jobs, *candidates], regions, [*reservations, *others], now, settings)
    s = joint.new_schedule()
    # Movable jobs hold their plans; the new jobs and any movable job whose plan no longer fits
    # (capacity shrank) are placed around them, least slack first.
    rest = []
    for i in joint.slack_order:
        prev = joint.previous_placement(i, s) if i >= n_new else None
        if prev is None:
            rest.append(i)
        else:
            s.place(i, prev)
    find = joint.finder(None)
    for i in rest:
        p = find(s, i)
        if p is None:
            joint.place_earliest(s, i)
        else:
            s.place(i, p)
    everyone = [True] * len(joint.jobs)
    late_before = s.misses
    for i in joint.slack_order:
        if s.counted[i] and not s.meets(i):
            repair(s, i, everyone, find)
    if sum(not s.meets(i) for i in range(n_new)) >= chosen.misses:
        if len(joint.jobs) > _MAX_REPLANNED:
            return PreemptionResult(fixed.decisions(chosen, base), [])
        # Moving jobs out of the way one window at a time was not enough: re-plan them all
        # together, and take it if it saves a new job without breaking a plan that was on time.
        s = joint.search(everyone, relocate=False)
        saved = sum(not s.meets(i) for i in range(n_new)) < chosen.misses
        if not (saved and joint.broken(s) == 0 and s.misses < late_before):
            return PreemptionResult(fixed.decisions(chosen, base), [])
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
