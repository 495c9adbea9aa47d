"""The planner: jobs + forecasts + capacity + clock -> one decision per job. Pure and deterministic.

How it works:

1. Jobs become slot-unit contexts (``contexts``). A job may start at its earliest time
   (``max(earliest_start, now)``, possibly mid-slot: it then occupies that whole slot and is
   priced from the exact instant) or at any later slot boundary up to its latest start, inside
   the forecast horizon.
2. Each job's best placement is the (region, start, power limit) with the least expected
   emissions among those that fit the GPUs still free and meet the deadline (``placement``).
   Equal costs go to the earlier start, then the user's preferred region, then the faster limit.
   A share of each region's GPUs (``reserve_fraction``) is kept for jobs that cannot wait: a job
   takes it only to meet its deadline, or to start at once in its preferred region (what a
   carbon-blind scheduler would do), or where nothing else runs.
3. Several schedules are built (``search``): previous plans kept with the other jobs around them;
   least slack first; the same with the jobs that found no room first; least slack first under
   congestion prices (``prices``: what a contended GPU-slot is worth); the jobs that lose most
   without their best region first. Each is polished (``improve``): late jobs are repaired by
   moving other jobs out of their way (each still on time), then single jobs move to cheaper
   placements. The one with fewest late jobs, then fewest broken promises (jobs whose previous
   plan was on time), then least emissions wins; then the jobs with most to gain may take places
   others hold, those moving aside.
4. A job that was planned before keeps its plan unless a move beats it by more than
   ``hysteresis_fraction`` (and the old plan still fits and meets the deadline); for a plan whose
   run lay partly on extrapolated intensity, only the share on forecasts is protected.
5. A job with no placement that meets its deadline starts as early as capacity allows, at its
   fastest limit, flagged ``deadline_at_risk``.
6. The carbon-blind baseline (start as soon as possible in the first allowed region with room,
   default limit, in order of earliest start) is computed alongside; if it misses fewer
   deadlines, or emits less, the plan falls back to it. So with exact forecasts the plan never
   emits more than the baseline nor misses more deadlines within one call.

``preemption.plan_with_preemption`` plans a new job the same way with the deferred jobs' plans
held, and moves deferred jobs aside when the new job would otherwise miss its deadline.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np

from .columns import Reservations
from .contexts import Contexts, validate
from .decisions import decision
from .grid import EPS, FloatArray, IntArray, SlotGrid, require_utc
from .improve import Finder, cheaper_windows, improve, relocate, repair
from .model import Decision, JobRequest, PlannerSettings, RegionForecast
from .placement import (
    FreeGpus,
    JobContext,
    Placement,
    best_by_region,
    best_placement,
    earliest_placement,
    placement_at,
)
from .prices import congestion_prices
from .reasons import Risk
from .schedule import Schedule

_IMPROVE_PASSES = 2
_BIG_BATCH = 300
"""Above this many jobs per call, one improvement pass instead of two (speed)."""
_REPAIR_JOBS = 40
"""Late jobs per schedule that repair tries to bring on time (least slack first): a bound on the
work when far more jobs are submitted than the GPUs can run."""
_REPAIR_GIVE_UP = 4
"""Failed repairs in a row after which the others are not tried."""
_RELOCATE_JOBS = 30
"""Jobs per schedule, most to gain first, that may move into places others hold."""
_RELOCATE_WINDOWS = 2
"""Target windows per region tried for each of them."""
_MAX_PRICE_ROUNDS = 40
_PRICE_WORK = 4_000
"""Subgradient rounds x jobs per call (each costs one best-placement search); batches too big
for two rounds go unpriced."""


class BudgetSpentError(Exception):
    """A step given a time limit (``until``) ran past it; its partial result is dropped."""


def latest_start(job: JobRequest) -> datetime:
    """The latest start that still meets the deadline at the default limit: the promise."""
    return job.deadline - job.duration


def _price_rounds(n: int) -> int:
    """Subgradient rounds for n jobs: many for the hourly batches of tens to hundreds of jobs, few
    for huge batches so one call stays within seconds."""
    return min(_MAX_PRICE_ROUNDS, _PRICE_WORK // max(n, 1))


class Planner:
    def __init__(
        self,
        jobs: Sequence[JobRequest],
        regions: Sequence[RegionForecast],
        reservations: Reservations,
        now: datetime,
        settings: PlannerSettings,
    ) -> None:
        require_utc(now, "now")
        if not 0 <= settings.hysteresis_fraction < 1:
            raise ValueError("settings.hysteresis_fraction must be in [0, 1)")
        if settings.default_gpu_watts <= 0:
            raise ValueError("settings.default_gpu_watts must be positive")
        if not 0 <= settings.reserve_fraction < 1:
            raise ValueError("settings.reserve_fraction must be in [0, 1)")
        if settings.reserve_ramp < timedelta(0):
            raise ValueError("settings.reserve_ramp must not be negative")
        self.jobs = list(jobs)
        self.now = now
        self.settings = settings
        slot = settings.slot
        for job in self.jobs:
            validate(job)
        # Long enough for every deadline plus a run; the grid grows if a late start needs more.
        origin = min(rf.start for rf in regions) if regions else now
        min_len = 0
        for job in self.jobs:
            end = max(job.deadline, job.earliest_start, now) - origin
            min_len = max(min_len, math.ceil(end / slot) + math.ceil(job.duration / slot) + 2)
        self.grid = SlotGrid(
            regions,
            reservations,
            slot=slot,
            now=now,
            horizon=settings.horizon + settings.extrapolation,
            min_length=min_len,
        )
        self._contexts = Contexts(self.grid, now, settings.default_gpu_watts, settings.reference_gpu_model)
        self.contexts = self._contexts.build(self.jobs)
        self.slack = [
            (latest_start(job) - self.contexts[i].earliest_time).total_seconds() for i, job in enumerate(self.jobs)
        ]
        self.slack_order = sorted(range(len(self.jobs)), key=lambda i: (self.slack[i], self.jobs[i].key, i))
        self.reserve = self._reserve()
        self._passes = _IMPROVE_PASSES if len(self.jobs) <= _BIG_BATCH else 1
        # Slots a start at the earliest time in the preferred region holds at the fastest limit.
        self._start_now = [
            (
                int(next(g.rows[g.ranks == 0][0] for g in c.groups if bool(np.any(g.ranks == 0)))),
                c.s0 + max(math.ceil(c.offset + c.duration * min(g.options[0].slowdown for g in c.groups) - EPS), 1),
            )
            for c in self.contexts
        ]
        self._ideal: list[float] | None = None
        self._best_by_region: list[list[Placement]] = []
        empty = self.new_schedule()
        self.had_on_time_plan = [self.previous_placement(i, empty) is not None for i in range(len(self.jobs))]

    # -- building blocks -------------------------------------------------------------------------

    def _reserve(self) -> IntArray | None:
        """GPUs per region and slot that only jobs which cannot wait may take."""
        fraction = self.settings.reserve_fraction
        if fraction <= 0:
            return None
        grid = self.grid
        now = grid.to_slots(self.now)
        ramp = max(self.settings.reserve_ramp / grid.slot, EPS)
        ahead = np.clip((np.arange(grid.length) - now) / ramp, 0.0, 1.0)
        reserve: IntArray = np.floor(fraction * grid.capacity[:, None] * ahead[None, :] + EPS).astype(np.int64)
        return reserve

    def room(self, s: Schedule) -> FreeGpus:
        """The schedule's free GPUs outside the reserve."""
        return s.room()

    @staticmethod
    def _score(p: Placement, ctx: JobContext, prices: FloatArray | None) -> float:
        if prices is None:
            return p.grams
        width = min(p.occupy_to, prices.shape[1] - 1)
        return p.grams + ctx.gpus * float(prices[p.row, width] - prices[p.row, min(p.occupy_from, width)])

    def finder(self, prices: FloatArray | None) -> Finder:
        """Best on-time placement outside the reserve, else inside it (the reserve is for jobs
        that need it to meet their deadline)."""

        def find(s: Schedule, i: int) -> Placement | None:
            ctx = self.contexts[i]
            if self.reserve is None:
                return best_placement(self.grid, ctx, s.free, prices)
            room = self.room(s)
            # Starting at once in the preferred region may use the reserve: that is what a
            # carbon-blind scheduler does; the reserve absorbs what deferring and moving add.
            # (Not when the GPUs are not free there at all, nor when the room has them: then the
            # best placement in the room weighed that start.)
            row, end = self._start_now[i]
            free_now = bool(np.all(s.free.array[row, ctx.s0 : end] >= ctx.gpus))
            if not free_now or bool(np.all(room.array[row, ctx.s0 : end] >= ctx.gpus)):
                return best_placement(self.grid, ctx, room, prices, fallback=s.free)
            p = best_placement(self.grid, ctx, room, prices)
            now = best_placement(self.grid, ctx, s.free, prices, columns=1, preferred_only=True)
            if now is not None and (p is None or self._score(now, ctx, prices) <= self._score(p, ctx, prices)):
                p = now
            if p is None:
                p = best_placement(self.grid, ctx, s.free, prices)
            return p

        return find

    def new_schedule(self) -> Schedule:
        return Schedule(self.grid, self.contexts, self.reserve)

    def place_earliest(self, s: Schedule, i: int) -> None:
        """As early as capacity allows (deadline or not); a job too big for every region is
        recorded at its earliest time without taking GPUs."""
        ctx = self.contexts[i]
        p = earliest_placement(self.grid, ctx, s.free)
        if p is None:
            s.place(i, self._unplaceable(ctx), counted=False)
        else:
            s.place(i, p)

    def _risk(self, s: Schedule, i: int) -> Risk:
        ctx = self.contexts[i]
        if not s.counted[i]:
            return Risk.TOO_BIG
        if s.meets(i):
            return Risk.NONE
        fastest = min(g.options[0].slowdown for g in ctx.groups)
        if ctx.s0 + ctx.offset + ctx.duration * fastest > ctx.deadline + EPS:
            return Risk.TOO_SHORT
        return Risk.NO_CAPACITY

    def _unplaceable(self, ctx: JobContext) -> Placement:
        group = ctx.groups[0]
        p = placement_at(self.grid, ctx, None, int(group.rows[0]), ctx.earliest_time, group.options[0])
        assert p is not None
        return p

    def previous_placement(self, i: int, s: Schedule) -> Placement | None:
        """The job's previous plan if it still fits and still meets the deadline."""
        job, ctx = self.jobs[i], self.contexts[i]
        prev = job.previous
        if prev is None or prev.region not in self.grid.row:
            return None
        if prev.start < ctx.earliest_time - timedelta(seconds=1):
            return None
        row = self.grid.row[prev.region]
        group = next((g for g in ctx.groups if row in g.rows), None)
        if group is None:
            return None
        option = next((o for o in group.options if o.limit_watts == prev.power_limit_watts), None)
        if option is None:
            return None
        start = max(prev.start, ctx.earliest_time)
        pos = self.grid.to_slots(start)
        if pos + ctx.duration * option.slowdown > ctx.deadline + EPS:
            return None
        return placement_at(self.grid, ctx, s.free, row, start, option)

    def is_previous(self, i: int, p: Placement) -> bool:
        prev = self.jobs[i].previous
        return (
            prev is not None
            and self.grid.names[p.row] == prev.region
            and abs((p.start_time - prev.start).total_seconds()) < 1
            and p.option.limit_watts == prev.power_limit_watts
        )

    def threshold(self, i: int, current: Placement) -> float:
        """How much better a move must be: the hysteresis for a job still on its previous plan."""
        return self.hysteresis(i) if self.is_previous(i, current) else 0.0

    def hysteresis(self, i: int) -> float:
        """The hysteresis protects a plan made on forecasts; the share of the previous plan's run
        that lay on extrapolated intensity (a guess, now better known) is not protected."""
        h = self.settings.hysteresis_fraction
        prev = self.jobs[i].previous
        if prev is None or prev.extrapolated <= timedelta(0) or prev.expected_duration <= timedelta(0):
            return h
        return h * max(0.0, 1.0 - prev.extrapolated / prev.expected_duration)

    # -- schedules -------------------------------------------------------------------------------

    def baseline(self) -> Schedule:
        """Carbon-blind: in order of earliest start, as early as capacity allows, first region."""
        s = self.new_schedule()
        for i in sorted(range(len(self.jobs)), key=lambda i: (self.contexts[i].earliest_time, i)):
            self.place_earliest(s, i)
        return s

    def greedy(self, order: Sequence[int], prices: FloatArray | None = None, until: float = math.inf) -> Schedule:
        """Each job in turn takes its best placement among the GPUs still free; a previous plan
        stays unless the best beats it by more than the hysteresis. Raises ``BudgetSpentError`` past
        ``until`` (``time.perf_counter``)."""
        s = self.new_schedule()
        find = self.finder(prices)
        for i in order:
            if until < math.inf and time.perf_counter() > until:
                raise BudgetSpentError
            p = find(s, i)
            prev = self.previous_placement(i, s)
            if prev is not None and (p is None or p.grams >= prev.grams * (1 - self.hysteresis(i))):
                same = p is not None and (p.row, p.start_time, p.option) == (prev.row, prev.start_time, prev.option)
                s.kept[i] = not same
                p = prev
            if p is None:
                # Nothing in the horizon meets the deadline: as early as capacity allows (which may
                # still meet it, beyond the horizon).
                self.place_earliest(s, i)
            else:
                s.place(i, p)
        return s

    def keep(self) -> Schedule | None:
        """Every previous plan that still fits stays where it is; the other jobs fill in around
        them. None when no job has a previous plan that fits."""
        s = self.new_schedule()
        rest = self.hold_previous(s)
        if len(rest) == len(self.jobs):
            return None
        self.fill_in(s, rest)
        return s

    def hold_previous(self, s: Schedule, afresh: int = 0) -> list[int]:
        """Put every job whose previous plan still fits back at it, least slack first, except the
        first ``afresh`` jobs (new ones, to be placed anew). Returns the others, in that order."""
        rest: list[int] = []
        for i in self.slack_order:
            prev = self.previous_placement(i, s) if i >= afresh else None
            if prev is None:
                rest.append(i)
            else:
                s.place(i, prev)
        return rest

    def fill_in(self, s: Schedule, order: Sequence[int]) -> None:
        """Each job in ``order`` at its best placement in the room left, else as early as it can."""
        find = self.finder(None)
        for i in order:
            p = find(s, i)
            if p is None:
                self.place_earliest(s, i)
            else:
                s.place(i, p)

    def polish(
        self, s: Schedule, movable: Sequence[bool], prices: FloatArray | None, until: float = math.inf
    ) -> Schedule:
        """Repair late jobs, then move single jobs to cheaper placements; stop at ``until``
        (``time.perf_counter``) with the schedule as good as it got."""
        failed = 0
        for i in [i for i in self.slack_order if s.counted[i] and not s.meets(i)][:_REPAIR_JOBS]:
            if until < math.inf and time.perf_counter() > until:
                return s
            failed = 0 if repair(s, i, movable, self.finder(prices)) else failed + 1
            if failed >= _REPAIR_GIVE_UP:
                break  # far more work than GPUs: the rest will not fit either
        improve(s, self._by_grams(s), self.finder(None), self.threshold, passes=self._passes, until=until)
        return s

    def relocate_gainers(self, s: Schedule, movable: Sequence[bool], budget: int | None = None) -> Schedule:
        """Move the ``budget`` jobs with most to gain into places others hold (those moving
        aside), then single moves again. By default only for batches of up to ``_BIG_BATCH``."""
        if budget is None:
            budget = _RELOCATE_JOBS if len(self.jobs) <= _BIG_BATCH else 0
        if budget <= 0 or not any(s.meets(i) for i in range(len(self.jobs))):
            return s  # (only jobs on time relocate)
        find = self.finder(None)
        ideal = self.ideal()
        gain = [s.placement(i).grams - ideal[i] if s.meets(i) else 0.0 for i in range(len(self.jobs))]
        hopefuls = sorted((i for i in range(len(self.jobs)) if gain[i] > 0), key=lambda i: (-gain[i], i))
        moved = 0
        for i in hopefuls[:budget]:
            cur = s.placement(i)
            targets = cheaper_windows(s, i, movable, _RELOCATE_WINDOWS)
            margin = max(self.threshold(i, cur) * cur.grams, 1e-9 * cur.grams)
            moved += relocate(s, i, targets, movable, find, margin=margin)
        if moved:
            improve(s, self._by_grams(s), find, self.threshold, passes=self._passes)
        return s

    @staticmethod
    def _by_grams(s: Schedule) -> list[int]:
        return sorted(range(len(s.contexts)), key=lambda i: (-s.placement(i).grams, i))

    def ideal(self) -> list[float]:
        """Each job's least emissions were it alone (with the fixed reservations and reserve)."""
        if self._ideal is None:
            room = self.room(self.new_schedule())
            self._best_by_region = [best_by_region(self.grid, ctx, room) for ctx in self.contexts]
            self._ideal = [b[0].grams if b else math.inf for b in self._best_by_region]
        return self._ideal

    def regret_order(self) -> list[int]:
        """Jobs that lose most when denied their best region first (then least slack)."""
        self.ideal()
        regret = [b[1].grams - b[0].grams if len(b) > 1 else 0.0 for b in self._best_by_region]
        return sorted(range(len(self.jobs)), key=lambda i: (-regret[i], self.slack[i], self.jobs[i].key, i))

    def search(self, movable: Sequence[bool], *, relocate: bool = True) -> Schedule:
        """The best of: previous plans kept, the least-slack greedy, the same with the jobs that
        found no room first, the greedy under congestion prices and the greedy that serves the
        jobs with most to lose first; each polished (for big batches only the best one or two),
        the winner then relocating the jobs with most to gain."""
        plain = self.greedy(self.slack_order)
        if len(self.jobs) == 1:
            # Alone among fixed reservations, the greedy's placement is the job's best (its previous
            # plan weighed with the hysteresis; the earliest start when late): with no other job in
            # the batch, keeping, repairing, polishing and relocating have nothing to trade (a
            # property test checks it, late jobs included).
            return plain
        raw: list[tuple[Schedule, FloatArray | None]] = []
        kept = self.keep()
        if kept is not None:
            raw.append((kept, None))
        raw.append((plain, None))
        stuck = frozenset(i for i in range(len(self.jobs)) if self._risk(plain, i) is Risk.NO_CAPACITY)
        if stuck:
            # The jobs that found no room go first: cheap, and strong when most of them are late.
            first = [i for i in self.slack_order if i in stuck]
            rest = [i for i in self.slack_order if i not in stuck]
            raw.append((self.greedy(first + rest), None))
        if len(self.jobs) > 1:
            upper = min(c.grams for c, _ in raw)
            room = self.room(self.new_schedule()).array
            prices = congestion_prices(self.grid, self.contexts, upper, _price_rounds(len(self.jobs)), room)
            if prices is not None:
                raw.append((self.greedy(self.slack_order, prices.cum), prices.cum))
                if len(self.jobs) <= _BIG_BATCH:
                    raw.append((self.greedy(self.regret_order()), None))
        if len(self.jobs) > _BIG_BATCH:  # polishing is most of the time: only the most promising
            raw = sorted(raw, key=lambda c: self._rank(c[0]))[: 2 if len(self.jobs) <= 2 * _BIG_BATCH else 1]
        candidates = [self.polish(c, movable, p) for c, p in raw]
        best = min(candidates, key=self._rank)
        return self.relocate_gainers(best, movable) if relocate else best

    def _rank(self, s: Schedule) -> tuple[int, int, float]:
        return (s.misses, self.broken(s), s.grams)

    def broken(self, s: Schedule) -> int:
        """Jobs whose previous plan met the deadline but that are late in ``s``: trading one of
        them for another late job is no gain and breaks a promise already made."""
        return sum(self.had_on_time_plan[i] and not s.meets(i) for i in range(len(self.jobs)))

    def solve(self) -> tuple[Schedule, Schedule]:
        """The chosen schedule and the carbon-blind baseline; the baseline wins when it misses
        fewer deadlines or emits less (beyond the hysteresis when re-planning)."""
        base = self.baseline()
        best = self.search([True] * len(self.jobs))
        any_previous = any(job.previous is not None for job in self.jobs)
        margin = 1 - self.settings.hysteresis_fraction if any_previous else 1.0
        if base.misses < best.misses or (base.misses == best.misses and base.grams < best.grams * margin - 1e-9):
            best = base.copy()
            best.kept = [False] * len(self.jobs)
        return best, base

    def risk(self, s: Schedule, i: int) -> Risk:
        return self._risk(s, i)

    def decisions(self, s: Schedule, base: Schedule, which: Sequence[int] | None = None) -> list[Decision]:
        return [self._decision(i, s, base) for i in (range(len(self.jobs)) if which is None else which)]

    # -- output ------------------------------------------------------------------------------

    def _decision(self, i: int, outcome: Schedule, base: Schedule) -> Decision:
        p = outcome.placement(i)
        return decision(
            self.jobs[i],
            self.contexts[i],
            self.grid,
            p,
            base.placement(i),
            risk=self._risk(outcome, i),
            kept=outcome.kept[i],
            now=self.now,
            settings=self.settings,
            profile=self._contexts.profile(self.grid.gpu_models[p.row]),
        )


def plan(
    jobs: Sequence[JobRequest],
    regions: Sequence[RegionForecast],
    reservations: Reservations,
    now: datetime,
    settings: PlannerSettings,
) -> list[Decision]:
    """One decision per job, in input order. See the module docstring for the method."""
    if not jobs:
        return []
    planner = Planner(jobs, regions, reservations, now, settings)
    return planner.decisions(*planner.solve())
