"""The two online arms of a simulation: the carbon-blind baseline and the planner (receding horizon).

The plan arm does what the operator does: plan each job when it is submitted with
``plan_with_preemption`` (running jobs fixed, deferred jobs movable aside), start jobs when their
planned start comes, and re-plan every deferred job together every ``replan_every`` with a fresh
forecast, passing each job's previous decision so hysteresis applies. ``SimSettings`` switches off
preemption or the joint re-plan to measure what each brings.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from green_operator.planner import (
    Decision,
    JobRequest,
    PlannerSettings,
    PowerOption,
    PowerRequest,
    RegionForecast,
    RepairMemo,
    Reservation,
    default_option,
    fixed_option,
    plan,
    plan_with_preemption,
    power_profile,
)

from .jobs_file import SimJob
from .world import ForecastModel, World

_SECOND = timedelta(seconds=1)


@dataclass(frozen=True)
class SimSettings:
    planner: PlannerSettings = field(default_factory=PlannerSettings)
    power: PowerRequest = field(default_factory=PowerRequest)
    replan_every: timedelta = timedelta(hours=1)
    preemption: bool = True
    """Plan arrivals with ``plan_with_preemption`` (deferred jobs may be moved aside); False plans
    each arrival with every other plan held fixed."""
    batch_replan: bool = True
    """Re-plan all deferred jobs in one ``plan`` call (they may trade places); False re-plans each
    alone, in submission order, with every other plan held fixed."""


@dataclass(frozen=True)
class RunRecord:
    """How one job actually ran in one arm."""

    job_id: str
    region: str
    start: datetime
    power_limit_watts: float | None
    duration: timedelta
    grams: float
    deadline_met: bool


def option_for(world: World, limit_watts: float | None, gpu_watts: float) -> PowerOption:
    profile = power_profile(world.gpu_model)
    if limit_watts is None:
        return default_option(profile, gpu_watts)
    return fixed_option(profile, limit_watts, gpu_watts)


def _record(
    world: World, job: SimJob, region: str, start: datetime, limit: float | None, gpu_watts: float
) -> RunRecord:
    opt = option_for(world, limit, gpu_watts)
    duration = job.duration * opt.slowdown
    grams = world.grams(region, start, duration, job.gpus, opt.watts)
    return RunRecord(job.id, region, start, limit, duration, grams, start + duration <= job.deadline + _SECOND)


def run_baseline(world: World, jobs: Sequence[SimJob], settings: SimSettings) -> list[RunRecord]:
    """Carbon-blind: each job starts as soon as one of its regions (in order) has the GPUs free,
    at the default power limit; queued jobs are started in submission order whenever GPUs free up."""
    gpu_watts = settings.planner.default_gpu_watts
    free = dict(world.capacity)
    order = sorted(range(len(jobs)), key=lambda i: (jobs[i].submit_time, i))
    events: list[tuple[datetime, int, int]] = []  # (time, kind 0=end 1=submit, job index)
    for i in order:
        heapq.heappush(events, (jobs[i].submit_time, 1, i))
    queue: list[int] = []
    records: dict[int, RunRecord] = {}
    placed_in: dict[int, str] = {}
    while events:
        now, kind, i = heapq.heappop(events)
        if kind == 0:
            free[placed_in[i]] += jobs[i].gpus
        else:
            queue.append(i)
        if events and events[0][0] == now:
            continue  # settle every event at this instant first
        waiting: list[int] = []
        for q in queue:
            job = jobs[q]
            region = next((r for r in job.regions if free[r] >= job.gpus), None)
            if region is None:
                waiting.append(q)
                continue
            free[region] -= job.gpus
            rec = _record(world, job, region, now, None, gpu_watts)
            records[q] = rec
            placed_in[q] = region
            heapq.heappush(events, (now + rec.duration, 0, q))
        queue = waiting
    too_big = [jobs[q].id for q in queue]
    if too_big:
        raise ValueError(f"job(s) {', '.join(too_big)} need more GPUs than any of their regions has")
    return [records[i] for i in range(len(jobs))]


@dataclass
class _State:
    decision: Decision | None = None
    started: bool = False
    record: RunRecord | None = None
    reservation: Reservation | None = None
    plans: int = 0
    moves: int = 0
    flags: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class PlanArm:
    records: list[RunRecord]
    planner_calls: int
    replans: int
    moves: int
    """Re-plans that changed a deferred job's region, start or limit."""
    flagged: int
    """Jobs the planner flagged deadline_at_risk at some point."""


def run_plan(world: World, jobs: Sequence[SimJob], settings: SimSettings, forecasts: ForecastModel) -> PlanArm:
    ps = settings.planner
    slot = world.slot
    horizon_slots = math.ceil(ps.horizon / slot)
    replan_slots = max(1, round(settings.replan_every / slot))
    order = sorted(range(len(jobs)), key=lambda i: (jobs[i].submit_time, i))
    states = [_State() for _ in jobs]
    requests = [
        JobRequest(
            key=j.id,
            gpus=j.gpus,
            duration=j.duration,
            earliest_start=j.submit_time,
            deadline=j.deadline,
            regions=j.regions,
            power=settings.power,
        )
        for j in jobs
    ]
    running: list[Reservation] = []
    deferred: list[int] = []
    calls = replans = 0
    memo = RepairMemo()  # as the operator keeps one per process

    def regions_at(k: int) -> list[RegionForecast]:
        values = forecasts.issue(k, horizon_slots)
        start = world.origin + slot * k
        return [
            RegionForecast(r, world.capacity[r], world.gpu_model, start, values[row].tolist())
            for row, r in enumerate(world.regions)
        ]

    def start_job(i: int, d: Decision) -> None:
        st = states[i]
        st.started = True
        st.record = _record(world, jobs[i], d.region, d.start, d.power_limit_watts, ps.default_gpu_watts)
        running.append(Reservation(d.region, d.start, d.start + st.record.duration, jobs[i].gpus))

    def accept(i: int, d: Decision, now: datetime) -> None:
        st = states[i]
        prev = st.decision
        if prev is not None and (prev.region, prev.start, prev.power_limit_watts) != (
            d.region,
            d.start,
            d.power_limit_watts,
        ):
            st.moves += 1
        st.decision = d
        st.plans += 1
        if d.deadline_at_risk:
            st.flags.add("at_risk")
        if d.start <= now + _SECOND:
            start_job(i, d)
        else:
            deferred.append(i)

    next_submit = 0
    k = math.floor(world.to_slots(jobs[order[0]].submit_time) + 1e-9)
    while next_submit < len(order) or deferred:
        if k >= world.length:
            raise ValueError("the simulation ran past the end of the traces; use longer traces")
        t_k = world.origin + slot * k
        running[:] = [r for r in running if r.end > t_k]
        for i in deferred:
            d = states[i].decision
            if d is not None and d.start <= t_k + _SECOND:
                start_job(i, d)
        deferred[:] = [i for i in deferred if not states[i].started]
        if deferred and k % replan_slots == 0:
            batch = sorted(deferred, key=lambda i: (jobs[i].submit_time, i))
            replans += 1
            if settings.batch_replan:
                deferred.clear()
                reqs = [_with_previous(requests[i], states[i].decision) for i in batch]
                decisions = plan(reqs, regions_at(k), list(running), t_k, ps)
                calls += 1
                for i, d in zip(batch, decisions, strict=True):
                    accept(i, d, t_k)
            else:
                for i in batch:
                    others = [
                        Reservation(d.region, d.start, d.end, jobs[q].gpus)
                        for q in deferred
                        if q != i and (d := states[q].decision) is not None
                    ]
                    req = _with_previous(requests[i], states[i].decision)
                    (d,) = plan([req], regions_at(k), running + others, t_k, ps)
                    calls += 1
                    deferred.remove(i)
                    accept(i, d, t_k)
        t_next = t_k + slot
        while next_submit < len(order) and jobs[order[next_submit]].submit_time < t_next:
            i = order[next_submit]
            next_submit += 1
            now = jobs[i].submit_time
            if settings.preemption:
                movable = [q for q in deferred if states[q].decision is not None]
                result = plan_with_preemption(
                    [requests[i]],
                    [_with_previous(requests[q], states[q].decision) for q in movable],
                    regions_at(k),
                    running,
                    now,
                    ps,
                    memo,
                )
                calls += 1
                accept(i, result.decisions[0], now)
                by_key = {jobs[q].id: q for q in movable}
                for d in result.moved:
                    q = by_key[d.key]
                    deferred.remove(q)
                    accept(q, d, now)
            else:
                planned = [
                    Reservation(d.region, d.start, d.end, jobs[q].gpus)
                    for q in deferred
                    if (d := states[q].decision) is not None
                ]
                (d,) = plan([requests[i]], regions_at(k), running + planned, now, ps)
                calls += 1
                accept(i, d, now)
        k += 1
    records = []
    for st in states:
        assert st.record is not None
        records.append(st.record)
    return PlanArm(
        records=records,
        planner_calls=calls,
        replans=replans,
        moves=sum(st.moves for st in states),
        flagged=sum("at_risk" in st.flags for st in states),
    )


def _with_previous(req: JobRequest, previous: Decision | None) -> JobRequest:
    return JobRequest(
        key=req.key,
        gpus=req.gpus,
        duration=req.duration,
        earliest_start=req.earliest_start,
        deadline=req.deadline,
        regions=req.regions,
        power=req.power,
        previous=previous,
    )
