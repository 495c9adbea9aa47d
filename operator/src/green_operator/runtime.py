"""The operator's in-memory state, kept in kopf's memo (never module globals).

Everything here is a cache or a coordination aid: the truth lives in the resources' status, so a
restarted operator rebuilds it all from the API.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from .carbon.provider import ForecastResult
from .carbon.service import CarbonService
from .config import OperatorConfig
from .kube import Kube
from .metrics import OperatorMetrics
from .planner import Decision, RegionForecast, RepairMemo, Reservation
from .planner.grid import slot_floor
from .regions import NodeInfo, region_capacity, region_forecast
from .spec import TrainingJobSpec
from .status import decision_from_status

BURST_JOBS = 8
"""First decisions queued beyond which the operator is in a burst (see Runtime.in_burst)."""


@dataclass
class _CachedForecast:
    slot_start: datetime
    fetched: float
    planner_view: RegionForecast
    result: ForecastResult


class ForecastCache:
    """One sampled forecast per region, shared by every job planned in the same slot.

    A burst of a thousand creations asks the carbon service once per region, not a thousand
    times: concurrent callers for the same region wait on one fetch (single flight).
    """

    def __init__(self, carbon: CarbonService, config: OperatorConfig, clock: Callable[[], float] = time.monotonic):
        self._carbon = carbon
        self._config = config
        self._clock = clock
        self._entries: dict[str, _CachedForecast] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def get(
        self, region: str, now: datetime, nodes: Iterable[NodeInfo], *, fresh: bool = False
    ) -> tuple[RegionForecast, ForecastResult]:
        settings = self._config.planner
        slot_start = slot_floor(now, settings.slot)
        lock = self._locks.setdefault(region, asyncio.Lock())
        cfg = self._config.region(region)
        if cfg is None:
            raise KeyError(f"region {region!r} is not configured")
        cap = region_capacity(cfg, nodes)
        async with lock:
            entry = self._entries.get(region)
            expired = entry is None or self._clock() - entry.fetched > self._config.forecast_refresh.total_seconds()
            if fresh or expired or entry is None or entry.slot_start != slot_start:
                result = await asyncio.to_thread(
                    self._carbon.forecast, region, slot_start, slot_start + settings.horizon
                )
                view = region_forecast(region, cap, result, slot_start, settings.slot, settings.horizon)
                entry = _CachedForecast(slot_start, self._clock(), view, result)
                self._entries[region] = entry
        # Capacity follows the nodes; re-derive the planner's view only when it changed.
        view = entry.planner_view
        if view.capacity_gpus != cap.gpus or view.gpu_model != cap.gpu_model:
            view = replace(view, capacity_gpus=cap.gpus, gpu_model=cap.gpu_model)
            entry.planner_view = view
        return view, entry.result


@dataclass(frozen=True)
class PendingMove:
    decision: Decision
    previous: Decision
    """The plan the move was computed against: if the job's plan changed since, the move is void."""
    for_job: str


@dataclass
class Runtime:
    config: OperatorConfig
    carbon: CarbonService
    kube: Kube
    metrics: OperatorMetrics
    forecasts: ForecastCache
    reservations: dict[str, Reservation] = field(default_factory=dict)
    """Plans made in this process, fresher than the status-based index until their status lands."""
    statuses: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The last status this process wrote per job: only the operator writes status, so it is the newest."""
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The child Jobs' latest state, from the Job watch."""
    wakeups: dict[str, asyncio.Event] = field(default_factory=dict)
    phases: dict[str, str] = field(default_factory=dict)
    at_risk: set[str] = field(default_factory=set)
    live_read_at: dict[str, datetime] = field(default_factory=dict)
    movable: dict[str, tuple[TrainingJobSpec, Decision]] = field(default_factory=dict)
    """Deferred jobs' specs and current plans, for moving them aside when a new job needs room."""
    pending_moves: dict[str, PendingMove] = field(default_factory=dict)
    repair_memo: RepairMemo = field(default_factory=RepairMemo)
    """New jobs no move could help, so a burst beyond capacity does not search again for each."""
    unplanned: set[str] = field(default_factory=set)
    """Jobs seen without a plan yet: their first decision is still queued."""
    rescue: set[str] = field(default_factory=set)
    """Jobs planned late during a burst without moving others aside: they try once it is over."""
    rescue_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    """Late jobs search for room one at a time, so a new job's first decision never waits long."""

    def wakeup(self, key: str) -> asyncio.Event:
        return self.wakeups.setdefault(key, asyncio.Event())

    def poke(self, key: str) -> None:
        ev = self.wakeups.get(key)
        if ev is not None:
            ev.set()

    def in_burst(self) -> bool:
        """Many first decisions queued: plan each quickly, and leave moving deferred jobs aside for
        the late ones until the queue has drained (a search for room per job would hold up the rest)."""
        return len(self.unplanned) > BURST_JOBS

    def may_rescue(self) -> bool:
        """Late jobs from a burst search for room only once no first decision is waiting."""
        return not self.unplanned

    def first_plan_done(self, key: str) -> None:
        self.unplanned.discard(key)
        if self.rescue and self.may_rescue():
            for k in self.rescue:
                self.poke(k)

    def forget(self, key: str) -> None:
        for d in (
            self.reservations,
            self.statuses,
            self.jobs,
            self.wakeups,
            self.phases,
            self.live_read_at,
            self.movable,
            self.pending_moves,
        ):
            d.pop(key, None)
        self.at_risk.discard(key)
        self.rescue.discard(key)
        self.first_plan_done(key)
        self.metrics.set_phases(self.phases.values())
        self.metrics.deadline_at_risk.set(len(self.at_risk))

    def observe_status(self, key: str, status: Mapping[str, Any]) -> None:
        """Keep the phase and deadline-risk gauges in step with what was just written."""
        phase = status.get("phase")
        if phase and self.phases.get(key) != phase:
            self.phases[key] = phase
            self.metrics.set_phases(self.phases.values())
        risky = phase not in ("Succeeded", "Failed") and any(
            c.get("type") == "DeadlineAtRisk" and c.get("status") == "True" for c in status.get("conditions") or ()
        )
        (self.at_risk.add if risky else self.at_risk.discard)(key)
        self.metrics.deadline_at_risk.set(len(self.at_risk))

    def reservations_except(
        self, key: str, indexed: Mapping[str, Reservation], now: datetime, slot: timedelta
    ) -> dict[str, Reservation]:
        """Every other job's GPUs, by job: status-based index overlaid with this process's fresher plans.

        A job still running past its expected end keeps its GPUs until the next slot.
        """
        merged = {**indexed, **self.reservations}
        merged.pop(key, None)
        return {k: r if r.end > now else replace(r, end=now + slot) for k, r in merged.items()}

    def track_movable(self, key: str, spec: TrainingJobSpec | None, status: Mapping[str, Any]) -> None:
        """Deferred jobs (not yet released) can be moved aside for a new job: remember their spec and plan."""
        decision = decision_from_status(key, status) if spec and status.get("phase") == "Deferred" else None
        if spec is None or decision is None:
            self.movable.pop(key, None)
        else:
            self.movable[key] = (spec, decision)

    def movable_except(self, key: str, starting_after: datetime) -> dict[str, tuple[TrainingJobSpec, Decision]]:
        return {
            k: (spec, d)
            for k, (spec, d) in self.movable.items()
            if k != key and k not in self.pending_moves and d.start > starting_after
        }

    def move_aside(self, decision: Decision, gpus: int, previous: Decision, for_job: str) -> None:
        """Record a move decided for a deferred job; its own task applies it (it is woken now)."""
        self.pending_moves[decision.key] = PendingMove(decision, previous, for_job)
        self.reservations[decision.key] = Reservation(decision.region, decision.start, decision.end, gpus)
        spec = self.movable.get(decision.key, (None, None))[0]
        if spec is not None:
            self.movable[decision.key] = (spec, decision)
        self.poke(decision.key)
