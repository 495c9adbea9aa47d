"""What the online arms share, and the carbon-blind baseline.

The plan arm is the operator itself: its reconciler on a fake clock (`simulate.operator`).
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from green_operator.api.interruption import Interruption
from green_operator.config import OperatorConfig
from green_operator.planner import (
    PlannerSettings,
    PowerOption,
    PowerRequest,
    default_option,
    fixed_option,
    power_profile,
)
from green_operator.planner.joint import JointSettings

from .jobs_file import SimJob
from .world import World

_SECOND = timedelta(seconds=1)


DEFAULT_REPLAN_INTERVAL: timedelta = OperatorConfig.replan_interval
"""The operator's default `planner.replanInterval` (10 minutes): the simulator's too."""


@dataclass(frozen=True)
class SimSettings:
    planner: PlannerSettings = field(default_factory=PlannerSettings)
    power: PowerRequest = field(default_factory=PowerRequest)
    """Every job's `spec.power`."""
    replan_interval: timedelta = DEFAULT_REPLAN_INTERVAL
    """How often each deferred job is re-planned on a fresh forecast (the operator's setting)."""
    interruption: Interruption | None = None
    """The `spec.interruption` of the jobs marked interruptible: they are paused and resumed along
    their segments (the trainer checkpoints as the contract says). None: the column is ignored and
    every job runs in one piece."""
    joint: JointSettings | None = None
    """The periodic joint re-plan of all deferred jobs (every `replan_interval`, as the operator's
    task); None: off, each deferred job is re-planned on its own only."""


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


def run_record(
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
            rec = run_record(world, job, region, now, None, gpu_watts)
            records[q] = rec
            placed_in[q] = region
            heapq.heappush(events, (now + rec.duration, 0, q))
        queue = waiting
    too_big = [jobs[q].id for q in queue]
    if too_big:
        raise ValueError(f"job(s) {', '.join(too_big)} need more GPUs than any of their regions has")
    return [records[i] for i in range(len(jobs))]


@dataclass(frozen=True)
class PlanArm:
    """What the operator did: how each job ran, and how it got there."""

    records: list[RunRecord]
    decisions: int
    """Calls of `reconcile` (every look at every job)."""
    planner_calls: int
    """Decisions that ran the planner: first plans, re-plans and searches for room."""
    replans: int
    """Deferred jobs planned again: periodic re-plans (every `replan_interval`) and searches for room."""
    busiest_replan_minute: int
    """The most re-plans in one minute of the run: how bunched the periodic re-plans came."""
    moves: int
    """Plans of deferred jobs that changed region, start or power limit (re-planned or moved aside)."""
    moved_aside: int
    """Deferred jobs moved aside to make room for another (`MoveAside`)."""
    flagged: int
    """Jobs whose plan was flagged deadline_at_risk at some point."""
    burst_plans: int
    """First decisions made in a burst (more than `BURST_JOBS` waiting): planned without moving others."""
    burst_late: int
    """Of those, the ones left late, which searched for room once the burst was over."""
    waited_for_gpus: int
    """Released jobs whose pods found their region's GPUs taken and waited, unschedulable."""
    events: Mapping[str, int]
    """Kubernetes Events the operator posted, by reason."""
    accounted_grams: float
    """Emissions as the operator's own accounting put them in status (sum over jobs)."""
    accounted_baseline_grams: float
    joint: Mapping[str, int] = field(default_factory=dict)
    """Periodic joint re-plans by outcome (`planner.joint.OUTCOMES`), and "moves": the jobs they moved."""
