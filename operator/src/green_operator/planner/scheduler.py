"""The planner: jobs + forecasts + capacity + clock -> one decision per job. Pure and deterministic.

How it works:

1. Jobs become slot-unit contexts. A job may start at its earliest time (``max(earliest_start,
   now)``, possibly mid-slot: it then occupies that whole slot and is priced from the exact
   instant) or at any later slot boundary up to its latest start, inside the forecast horizon.
2. Least slack first (slack = latest start - earliest start; ties by key), each job takes the
   (region, start, power limit) with the least expected emissions among those that fit the GPUs
   still free. Equal costs go to the earlier start, then the user's preferred region, then the
   faster limit.
3. A job that was planned before keeps its plan unless the new best beats it by more than
   ``hysteresis_fraction`` (and the old plan still fits and meets the deadline).
4. A job with no placement that meets its deadline starts as early as capacity allows, at its
   fastest limit, flagged ``deadline_at_risk``. If capacity (not its own length) was the cause, the
   plan is redone with such jobs first, twice at most.
5. The carbon-blind baseline (start as soon as possible in the first allowed region with room,
   default limit, in order of earliest start) is computed alongside; if it misses fewer
   deadlines, or emits less, the plan falls back to it. So with exact forecasts the plan never
   emits more than the baseline.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from .grid import EPS, FloatArray, SlotGrid, require_utc
from .model import Decision, JobRequest, PlannerSettings, PowerPolicy, PowerRequest, RegionForecast, Reservation
from .placement import (
    FreeGpus,
    JobContext,
    Placement,
    RegionGroup,
    best_placement,
    earliest_placement,
    placement_at,
)
from .power import PowerOption, power_options
from .power_profiles import PowerProfile, power_profile
from .reasons import ReasonInputs, Risk, build_reason

_REPAIR_ROUNDS = 2
_PRICE_ROUNDS = 5


def _prefix(values: FloatArray) -> FloatArray:
    out = np.zeros((values.shape[0], values.shape[1] + 1))
    np.cumsum(values, axis=1, out=out[:, 1:])
    return out


def latest_start(job: JobRequest) -> datetime:
    """The latest start that still meets the deadline at the default limit: the promise."""
    return job.deadline - job.duration


@dataclass
class _Outcome:
    placements: list[Placement | None]
    risks: list[Risk]
    kept: list[bool]

    @property
    def misses(self) -> int:
        return sum(r is not Risk.NONE for r in self.risks)

    @property
    def grams(self) -> float:
        return sum(p.grams for p in self.placements if p is not None)


class _Planner:
    def __init__(
        self,
        jobs: Sequence[JobRequest],
        regions: Sequence[RegionForecast],
        reservations: Sequence[Reservation],
        now: datetime,
        settings: PlannerSettings,
    ) -> None:
        require_utc(now, "now")
        if not 0 <= settings.hysteresis_fraction < 1:
            raise ValueError("settings.hysteresis_fraction must be in [0, 1)")
        if settings.default_gpu_watts <= 0:
            raise ValueError("settings.default_gpu_watts must be positive")
        self.jobs = list(jobs)
        self.now = now
        self.settings = settings
        slot = settings.slot
        for job in self.jobs:
            _validate(job)
        # Long enough for every deadline plus a run; the grid grows if a late start needs more.
        origin = min(rf.start for rf in regions) if regions else now
        min_len = 0
        for job in self.jobs:
            end = max(job.deadline, job.earliest_start, now) - origin
            min_len = max(min_len, math.ceil(end / slot) + math.ceil(job.duration / slot) + 2)
        self.grid = SlotGrid(regions, reservations, slot=slot, now=now, horizon=settings.horizon, min_length=min_len)
        self._profiles: dict[str, PowerProfile | None] = {}
        self._options: dict[tuple[str, PowerRequest], tuple[PowerOption, ...]] = {}
        self.contexts = [self._context(i, job) for i, job in enumerate(self.jobs)]

    def profile(self, model: str) -> PowerProfile | None:
        if model not in self._profiles:
            self._profiles[model] = power_profile(model)
        return self._profiles[model]

    def options(self, model: str, request: PowerRequest) -> tuple[PowerOption, ...]:
        key = (model, request)
        if key not in self._options:
            opts = power_options(self.profile(model), request, self.settings.default_gpu_watts)
            self._options[key] = tuple(opts)
        return self._options[key]

    def _context(self, index: int, job: JobRequest) -> JobContext:
        grid = self.grid
        names = job.regions or tuple(grid.names)
        unknown = [r for r in names if r not in grid.row]
        if unknown:
            raise ValueError(
                f"job {job.key!r}: regions {unknown} are not among the configured regions {grid.names}; "
                "drop them from spec.placement.regions or configure them"
            )
        by_model: dict[str, list[tuple[int, int]]] = {}
        for rank, name in enumerate(dict.fromkeys(names)):
            row = grid.row[name]
            by_model.setdefault(grid.gpu_models[row], []).append((row, rank))
        duration = job.duration / grid.slot
        groups = tuple(
            RegionGroup(
                rows=np.array([r for r, _ in pairs], dtype=np.int64),
                ranks=np.array([k for _, k in pairs], dtype=np.int64),
                options=_distinct_occupancy(self.options(model, job.power), duration),
            )
            for model, pairs in by_model.items()
        )
        earliest = max(job.earliest_start, self.now)
        pos = grid.to_slots(earliest)
        s0 = max(math.floor(pos + EPS), 0)
        offset = max(pos - s0, 0.0) if pos - s0 > EPS else 0.0
        cap = max(int(grid.capacity[grid.row[n]]) for n in names)
        return JobContext(
            index=index,
            gpus=job.gpus,
            earliest_time=earliest,
            s0=s0,
            offset=offset,
            deadline=grid.to_slots(job.deadline),
            duration=duration,
            groups=groups,
            max_region_capacity=cap,
        )

    # -- the two schedules -------------------------------------------------------------------

    def baseline(self) -> _Outcome:
        free = FreeGpus(self.grid.base_free.copy())
        n = len(self.jobs)
        out = _Outcome([None] * n, [Risk.NONE] * n, [False] * n)
        order = sorted(range(n), key=lambda i: (self.contexts[i].earliest_time, i))
        for i in order:
            self._place_earliest(i, free, out)
        return out

    def _place_earliest(self, i: int, free: FreeGpus, out: _Outcome) -> None:
        ctx = self.contexts[i]
        p = earliest_placement(self.grid, ctx, free)
        if p is None:
            out.placements[i] = self._unplaceable(ctx)
            out.risks[i] = Risk.TOO_BIG
            return
        free.take(p, ctx.gpus)
        out.placements[i] = p
        if p.start + ctx.duration * p.option.slowdown > ctx.deadline + EPS:
            out.risks[i] = self._risk_kind(ctx)

    def _risk_kind(self, ctx: JobContext) -> Risk:
        fastest = min(g.options[0].slowdown for g in ctx.groups)
        if ctx.s0 + ctx.offset + ctx.duration * fastest > ctx.deadline + EPS:
            return Risk.TOO_SHORT
        return Risk.NO_CAPACITY

    def _unplaceable(self, ctx: JobContext) -> Placement:
        group = ctx.groups[0]
        p = placement_at(self.grid, ctx, None, int(group.rows[0]), ctx.earliest_time, group.options[0])
        assert p is not None
        return p

    def congestion_prices(self) -> FloatArray | None:
        """Per-GPU prices per region and slot (returned prefix-summed) that steer jobs away from
        slots more jobs want than fit: a few subgradient steps on the Lagrangian relaxation of
        capacity. Each job alone takes its best priced placement; where the picks overload a slot,
        its price rises. None when the picks already fit (no contention)."""
        grid = self.grid
        watts = float(np.mean([g.options[0].watts for c in self.contexts for g in c.groups]))
        unit = float(grid.intensity.mean()) * grid.slot_hours * watts / 1000.0
        prices = np.zeros((len(grid.names), grid.length))
        for k in range(_PRICE_ROUNDS):
            cum = _prefix(prices)
            alone = FreeGpus(grid.base_free.copy())
            picks = [best_placement(grid, ctx, alone, cum) for ctx in self.contexts]
            if prices.shape[1] < grid.length:
                prices = np.pad(prices, ((0, 0), (0, grid.length - prices.shape[1])))
            usage = np.zeros_like(prices)
            for ctx, p in zip(self.contexts, picks, strict=True):
                if p is not None:
                    usage[p.row, p.occupy_from : p.occupy_to] += ctx.gpus
            room = np.maximum(grid.base_free, 0).astype(np.float64)
            over = usage - room
            if not np.any(over > 0):
                break
            prices = np.maximum(prices + unit / (1.0 + k) * over / np.maximum(room, 1.0), 0.0)
        return _prefix(prices) if np.any(prices > 0) else None

    def greedy(self, first: frozenset[int], prices: FloatArray | None = None) -> _Outcome:
        n = len(self.jobs)
        free = FreeGpus(self.grid.base_free.copy())
        out = _Outcome([None] * n, [Risk.NONE] * n, [False] * n)
        slack = [
            (latest_start(job) - self.contexts[i].earliest_time).total_seconds() for i, job in enumerate(self.jobs)
        ]
        order = sorted(range(n), key=lambda i: (i not in first, slack[i], self.jobs[i].key, i))
        h = self.settings.hysteresis_fraction
        for i in order:
            ctx = self.contexts[i]
            p = best_placement(self.grid, ctx, free, prices)
            prev = self._previous(i, free)
            if prev is not None and (p is None or p.grams >= prev.grams * (1 - h)):
                same = p is not None and (p.row, p.start_time, p.option) == (prev.row, prev.start_time, prev.option)
                out.kept[i] = not same
                p = prev
            if p is None:
                # Nothing in the horizon meets the deadline: as early as capacity allows (which may
                # still meet it, beyond the horizon).
                self._place_earliest(i, free, out)
                continue
            free.take(p, ctx.gpus)
            out.placements[i] = p
        return out

    def _previous(self, i: int, free: FreeGpus) -> Placement | None:
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
        return placement_at(self.grid, ctx, free, row, start, option)

    def run(self) -> list[Decision]:
        base = self.baseline()
        outcome = self.greedy(frozenset())
        if len(self.jobs) > 1:
            prices = self.congestion_prices()
            if prices is not None:
                priced = self.greedy(frozenset(), prices)
                if (priced.misses, priced.grams) < (outcome.misses, outcome.grams):
                    outcome = priced
        promoted: set[int] = set()
        for _ in range(_REPAIR_ROUNDS):
            stuck = {i for i, r in enumerate(outcome.risks) if r is Risk.NO_CAPACITY} - promoted
            if not stuck:
                break
            promoted |= stuck
            retry = self.greedy(frozenset(promoted))
            if (retry.misses, retry.grams) < (outcome.misses, outcome.grams):
                outcome = retry
        any_previous = any(job.previous is not None for job in self.jobs)
        margin = 1 - self.settings.hysteresis_fraction if any_previous else 1.0
        if base.misses < outcome.misses or (
            base.misses == outcome.misses and base.grams < outcome.grams * margin - 1e-9
        ):
            outcome = _Outcome(list(base.placements), list(base.risks), [False] * len(self.jobs))
        return [self._decision(i, outcome, base) for i in range(len(self.jobs))]

    # -- output ------------------------------------------------------------------------------

    def _decision(self, i: int, outcome: _Outcome, base: _Outcome) -> Decision:
        job, ctx, grid = self.jobs[i], self.contexts[i], self.grid
        p = outcome.placements[i]
        b = base.placements[i]
        assert p is not None and b is not None
        region = grid.names[p.row]
        group = next(g for g in ctx.groups if p.row in g.rows)
        model = grid.gpu_models[p.row]
        risk = outcome.risks[i]
        reason = build_reason(
            ReasonInputs(
                now=self.now,
                earliest=ctx.earliest_time,
                region=region,
                start=p.start_time,
                intensity=p.intensity,
                baseline_region=grid.names[b.row],
                baseline_start=b.start_time,
                baseline_intensity=b.intensity,
                risk=risk,
                kept_previous=outcome.kept[i],
                hysteresis_fraction=self.settings.hysteresis_fraction,
                duration=job.duration,
                deadline=job.deadline,
                latest_start=latest_start(job),
                gpus=job.gpus,
                regions=job.regions or tuple(grid.names),
                max_region_capacity=ctx.max_region_capacity,
                policy=job.power.policy,
                option=p.option,
                lowest_energy_option=min(group.options, key=lambda o: o.energy_per_work),
                default_option=group.options[0],
                has_profile=self.profile(model) is not None,
                gpu_model=model,
            )
        )
        limit = None if job.power.policy is PowerPolicy.NONE else p.option.limit_watts
        return Decision(
            key=job.key,
            region=region,
            start=p.start_time,
            power_limit_watts=limit,
            expected_duration=job.duration * p.option.slowdown,
            expected_grams=p.grams,
            forecast_intensity=p.intensity,
            baseline_region=grid.names[b.row],
            baseline_start=b.start_time,
            baseline_grams=b.grams,
            baseline_intensity=b.intensity,
            deadline_at_risk=risk is not Risk.NONE,
            reason=reason,
        )


def _distinct_occupancy(options: tuple[PowerOption, ...], duration: float) -> tuple[PowerOption, ...]:
    """The default plus, per number of occupied slots, the option with the least energy.

    Options that occupy the same slots differ only in the last partial slot, where the one with
    less energy wins in all but contrived forecasts; pruning them keeps Auto about as fast as None.
    """
    if len(options) <= 2:
        return options
    kept: dict[int, PowerOption] = {}
    for opt in options[1:]:  # energy falls along the list, so the last one per count wins
        kept[math.ceil(duration * opt.slowdown - EPS)] = opt
    return (options[0], *kept.values())


def _validate(job: JobRequest) -> None:
    if not job.key:
        raise ValueError("JobRequest.key must not be empty")
    if job.gpus < 1:
        raise ValueError(f"job {job.key!r}: gpus must be >= 1, got {job.gpus}")
    if job.duration <= timedelta(0):
        raise ValueError(f"job {job.key!r}: duration (estimatedDuration) must be positive")
    require_utc(job.earliest_start, f"job {job.key!r}: earliest_start")
    require_utc(job.deadline, f"job {job.key!r}: deadline")


def plan(
    jobs: Sequence[JobRequest],
    regions: Sequence[RegionForecast],
    reservations: Sequence[Reservation],
    now: datetime,
    settings: PlannerSettings,
) -> list[Decision]:
    """One decision per job, in input order. See the module docstring for the method."""
    if not jobs:
        return []
    return _Planner(jobs, regions, reservations, now, settings).run()
