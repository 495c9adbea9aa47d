"""The MultiKueue dispatcher's decision for one Workload: which worker, and when. Pure.

MultiKueue (Kueue's multi-cluster admission check) creates the remote copy of a workload only in the
workers listed in the manager Workload's `status.nominatedClusterNames`, once the Workload holds
quota in the manager; with `multiKueue.dispatcherName` set to ours, nobody else writes that list.
So the worker (= the region) and the start are decided by when, and to whom, we nominate:

- not ours (no estimated duration), or a malformed annotation: nominated at once to the reachable
  worker with the most free GPUs (carbon-blind), the latter with a Warning Event;
- ours: planned over the reachable workers' regions with the same planner and capacity ledger as
  everything else (each region's capacity is its worker's free GPUs as seen from the worker), with
  the deadline shortened by `workerLostTimeout` so a worker lost after it reserved the workload is
  noticed in time to run it elsewhere. While the start is far, the Workload is deactivated (its
  manager quota goes back, as for the single-cluster check); in the last window it waits; at the
  start our annotations go onto the manager Job's pod templates and the worker is nominated.
- a nominated worker that became unreachable before it reserved the workload: planned again over the
  others (never past the latest start); once a worker reserved it (`clusterName`), it is Kueue's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from green_operator.planner import Decision, JobRequest, PlannerSettings, RegionForecast, Reservation, plan
from green_operator.planner.reasons import format_time
from green_operator.times import format_duration, rfc3339

from .admission import (
    DEFERRED,
    INVALID_ANNOTATION,
    PENDING,
    START_TOLERANCE,
    Event,
    KueueSettings,
    decision_from_plan,
    plan_record,
    pod_set_updates,
)
from .inputs import Malformed, Managed, Unmanaged, read_inputs
from .workload import WorkloadView

DISPATCHED = "CarbonDispatched"
REDISPATCHED = "CarbonRedispatched"
NO_WORKER = "NoWorkerAvailable"


@dataclass(frozen=True)
class MultiKueueSettings:
    worker_lost_timeout: timedelta = timedelta(minutes=15)
    """Kueue's `multiKueue.workerLostTimeout` (keep them equal): a worker lost after it reserved a
    workload is noticed only this late, so plans start at least this long before the latest start."""
    probe_interval: timedelta = timedelta(seconds=15)
    """How often each worker's nodes and pods are read (its free GPUs, and whether it answers)."""


@dataclass(frozen=True)
class Worker:
    cluster: str
    """The MultiKueueCluster's name."""
    region: str
    active: bool
    """Its MultiKueueCluster is `Active=True` in the manager (Kueue can reach it)."""
    reachable: bool
    """Our own last read of it, with the credentials mounted into the operator, succeeded."""
    free_gpus: int = 0
    why: str = ""
    """Why it is unavailable, for people."""

    @property
    def available(self) -> bool:
        return self.active and self.reachable


@dataclass(frozen=True)
class DispatchSituation:
    wl: WorkloadView
    check: str
    """The MultiKueue AdmissionCheck's name on this workload."""
    now: datetime
    clusters: Sequence[str]
    """The workers of the check's MultiKueueConfig, in its order."""
    workers: Mapping[str, Worker]
    """The configured workers, by MultiKueueCluster name."""
    forecasts: Mapping[str, RegionForecast | None]
    """By region; capacity is the worker's free GPUs. None: no carbon data for it."""
    bookings: Mapping[str, Reservation] = field(default_factory=dict)
    planner: PlannerSettings = field(default_factory=PlannerSettings)
    settings: KueueSettings = field(default_factory=KueueSettings)
    multikueue: MultiKueueSettings = field(default_factory=MultiKueueSettings)


@dataclass(frozen=True)
class Dispatch:
    nominate: tuple[str, ...] | None = None
    """Write `nominatedClusterNames` (None: leave it; (): clear a nomination of a lost worker)."""
    pod_set_updates: tuple[Mapping[str, Any], ...] = ()
    """Annotations to add to the manager Job's pod templates before nominating."""
    plan: Mapping[str, Any] | None = None
    events: tuple[Event, ...] = ()
    booking: Reservation | None = None
    rebook: bool = False
    wake_after: float | None = None
    hold_until: datetime | None = None


def candidates(s: DispatchSituation) -> list[Worker]:
    """The check's workers that we know (configured) and that are available, in the config's order."""
    return [s.workers[c] for c in s.clusters if c in s.workers and s.workers[c].available]


def decide_dispatch(s: DispatchSituation) -> Dispatch:
    wl = s.wl
    mine = wl.checks.get(s.check)
    if wl.finished:
        return Dispatch(rebook=True)
    if mine is None or wl.quota_reserved_at is None or wl.evicted or not wl.active:
        return Dispatch()  # MultiKueue creates nothing remote without the manager's quota
    if wl.cluster_name is not None:
        return Dispatch(rebook=True)  # a worker reserved it: its pods count there now, and it is Kueue's
    if mine.state != PENDING:
        return Dispatch()
    lost = [n for n in wl.nominated if not (n in s.workers and s.workers[n].available)]
    pool = candidates(s)
    if wl.nominated and len(lost) < len(wl.nominated):
        return _nominated(s, pool)  # to a worker that answers: MultiKueue is creating it there
    why_lost = ", ".join(f"{n} ({s.workers[n].why if n in s.workers else 'not configured'})" for n in lost)
    if not pool:
        known = [s.workers[c] for c in s.clusters if c in s.workers]
        text = "; ".join(f"{w.cluster}: {w.why or 'unavailable'}" for w in known) or "none of them is configured"
        return Dispatch(
            nominate=() if wl.nominated else None,
            events=(Event(NO_WORKER, f"No worker of {s.check} can take the workload now: {text}", True),),
            wake_after=s.multikueue.probe_interval.total_seconds(),
        )
    inputs = read_inputs(wl)
    match inputs:
        case Unmanaged():
            return _now_blind(s, pool, inputs.message, lost=why_lost)
        case Malformed():
            return _now_blind(s, pool, f"carbon-blind: {inputs.message}", warning=True, lost=why_lost)
    assert isinstance(inputs, Managed)
    return _managed(s, inputs, pool, why_lost)


def _nominated(s: DispatchSituation, pool: list[Worker]) -> Dispatch:
    """Nominated to a worker that answers but has not reserved it (its own quota is full, say): left
    to it until the latest start, then moved to the available worker with the most free GPUs that
    has room, if any (MultiKueue deletes the unreserved remote workload; no Job was copied yet)."""
    m = read_inputs(s.wl)
    if not isinstance(m, Managed):
        return Dispatch()
    left = (m.latest_start - s.now).total_seconds()
    if left > START_TOLERANCE.total_seconds():
        return Dispatch(wake_after=left)
    room = [w for w in pool if w.cluster not in s.wl.nominated and w.free_gpus >= m.gpus]
    if not room:
        return Dispatch()
    best = max(room, key=lambda w: w.free_gpus)
    text = (
        f"Dispatched to worker {best.cluster} ({best.region}): its latest start has come and worker(s) "
        f"{', '.join(s.wl.nominated)} had not taken it (the deadline holds)"
    )
    updates = pod_set_updates(s.wl, best.region, None, None)
    return Dispatch((best.cluster,), updates, events=(Event(REDISPATCHED, text),))


def _now_blind(
    s: DispatchSituation, pool: list[Worker], why: str, *, warning: bool = False, lost: str = ""
) -> Dispatch:
    best = max(pool, key=lambda w: w.free_gpus)  # max keeps the first of equals: the config's order
    text = f"Dispatched to worker {best.cluster} ({best.region}) at once: {why}"
    if lost:
        text = f"{text}; nominated worker(s) lost: {lost}"
    reason = INVALID_ANNOTATION if warning else DISPATCHED
    updates = pod_set_updates(s.wl, best.region, None, None)
    return Dispatch((best.cluster,), updates, events=(Event(reason, text, warning),), rebook=True)


def _managed(s: DispatchSituation, m: Managed, pool: list[Worker], lost: str) -> Dispatch:
    wl, now = s.wl, s.now
    by_region = {w.region: w for w in pool}
    latest = m.latest_start
    budget = s.multikueue.worker_lost_timeout
    reserved = rfc3339(wl.quota_reserved_at) if wl.quota_reserved_at else ""
    previous = decision_from_plan(wl.key, wl.plan) if wl.plan else None
    if previous is not None and previous.region not in by_region:
        previous = None  # its worker is gone: plan afresh over the others
    new_plan: dict[str, Any] | None = None
    forecasts = [f for w in pool if (f := s.forecasts.get(w.region)) is not None]
    if previous is not None and (wl.plan or {}).get("reservedAt") == reserved and not lost:
        d = previous  # this reservation was planned already (an operator or Kueue restart)
    elif not forecasts:
        if previous is not None:
            d = previous  # no carbon data: the plan made with it stands
        else:
            return _now_blind(s, pool, "no carbon forecast for any worker's region", lost=lost)
    else:
        # Start early enough that a worker lost after reserving is noticed (workerLostTimeout) and
        # the workload can still start elsewhere by its latest start.
        deadline = max(m.deadline - budget, now + m.duration)
        request = JobRequest(
            key=wl.key,
            gpus=m.gpus,
            duration=m.duration,
            earliest_start=now,
            deadline=deadline,
            regions=tuple(f.region for f in forecasts),
            power=m.power,
            previous=previous,
        )
        others = [b for b in s.bookings.values() if b.end > now]
        d = plan([request], forecasts, others, now, s.planner)[0]
        new_plan = {**plan_record(d, latest, now, reserved, ()), "cluster": by_region[d.region].cluster}
    worker = by_region[d.region]
    start = min(d.start, max(latest - budget, now))
    if now + START_TOLERANCE >= start:
        return _nominate(s, m, d, worker, new_plan, lost)
    booking = Reservation(d.region, start, start + d.expected_duration, m.gpus)
    until = (
        f"until {format_time(start, now)} in {d.region} "
        f"(worker {worker.cluster}; latest start {format_time(latest, now)})"
    )
    events: tuple[Event, ...] = ()
    if lost:
        events = (Event(REDISPATCHED, f"Nominated worker(s) lost: {lost}; planned again: {until}: {d.reason}"),)
    elif new_plan is not None and (previous is None or previous.start != d.start or previous.region != d.region):
        events = (Event(DEFERRED, f"Held by the carbon dispatcher {until}: {d.reason}"),)
    clear = () if wl.nominated else None
    far = start - now - s.settings.pending_window
    if far > timedelta(0):
        hold = min(far, s.settings.max_hold)
        return Dispatch(clear, (), new_plan, events, booking, True, None, now + hold)
    return Dispatch(clear, (), new_plan, events, booking, True, max((start - now).total_seconds(), 0.0))


def _nominate(
    s: DispatchSituation, m: Managed, d: Decision, worker: Worker, new_plan: Mapping[str, Any] | None, lost: str
) -> Dispatch:
    limit = d.power_limit_watts
    updates = pod_set_updates(s.wl, d.region, limit, d.forecast_intensity)
    watts = "" if limit is None or m.user_power_limit else f"; GPU power limit {round(limit)} W"
    if d.start <= s.now + START_TOLERANCE and new_plan is not None:
        what = f"no cleaner window before its deadline: {d.reason}"
    elif d.start > s.now + START_TOLERANCE:
        budget = format_duration(s.multikueue.worker_lost_timeout)
        what = f"its latest start less the worker-lost budget ({budget}) has come"
    else:
        what = f"its low-carbon window ({d.forecast_intensity:.0f} gCO2eq/kWh; {d.reason})"
    saving = (
        f"; expected {d.expected_grams:.0f} gCO2eq against {d.baseline_grams:.0f} running at once "
        f"in {d.baseline_region}"
    )
    text = f"Dispatched to worker {worker.cluster} ({d.region}) {format_time(s.now, s.now)}: {what}{watts}{saving}"
    reason = REDISPATCHED if lost else DISPATCHED
    if lost:
        text = f"{text}; nominated worker(s) lost: {lost}"
    booking = Reservation(d.region, s.now, s.now + d.expected_duration, m.gpus)
    return Dispatch((worker.cluster,), updates, new_plan, (Event(reason, text),), booking, True)
