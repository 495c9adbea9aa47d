"""The plan arm: the operator's own decision core on a fake clock, over an in-memory cluster.

Each simulated job becomes a GreenTrainingJob created at its submission time. Its decisions are
`needs()` then `reconcile()`, exactly as `controller.driver.Controller.step` runs them, and their
actions go to a real `CapacityLedger` and to in-memory objects (`controller.memory`). Nothing here
decides: what the report shows is what the operator would do, re-plans, bursts and moves included.

The fake clock is a queue of wake-ups, as the driver's tasks sleep: a job looks again when its
`Requeue` says (never more than `MAX_SLEEP` later) or sooner on a watch event (its creation, its
pods starting or ending, another job moving it aside, the end of a burst). A deferred job sleeps at
most until its next re-plan, so each deferred job is re-planned every `replan_interval` on its own
grid (`controller.replans`): the operator's default of 10 minutes unless `SimSettings` says
otherwise.

The world around the operator:
- forecasts: one issue per slot and region from the `ForecastModel`, shared by every decision in
  that slot (asking afresh in the same slot gives the same forecast); capacity is the region's GPUs;
- the cluster: a released child's pods start as soon as its region has their GPUs free (else they
  wait, unschedulable, and start in release order as GPUs free up); they run for the job's true
  duration (its duration x the slowdown of the power limit on the child) and the child completes;
- accounting: the energy the pods drew (GPUs x the limit's draw x run time) and the true intensity
  over the two windows `accounting_windows` names.

One shortcut, which changes no decision: a running job's safety-net polls (`RUNNING_POLL`) are
skipped after one that changed nothing, while its pods run and its booking ends more than a slot
ahead: each would book what the last one did and write nothing (any change to its child or pods
wakes it anyway). A test runs simulations with and without the shortcut and compares every outcome.
"""

from __future__ import annotations

import heapq
import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from green_operator.accounting.segments import segmented_windows
from green_operator.accounting.settle import EnergyTotal, Window, accounting_windows
from green_operator.api.interruption import Interruption
from green_operator.api.manifests import ANN_POWER_LIMIT, ANN_REGION, GROUP, KIND, VERSION
from green_operator.api.phase import Phase
from green_operator.api.spec import GPU_RESOURCE, TrainingJobSpec, parse_spec
from green_operator.carbon.provider import DataSource, ForecastResult, SourceSpan
from green_operator.carbon.series import IntensityPoint, IntensitySeries
from green_operator.controller.actions import (
    Action,
    MoveAside,
    PlanRecorded,
    RecordDecision,
    RecordFinish,
    RescueTried,
    SettleMove,
    WriteStatus,
)
from green_operator.controller.joint import propose, snapshot
from green_operator.controller.ledger import CapacityLedger
from green_operator.controller.memory import JsonDict, MemoryExecutor
from green_operator.controller.observed import (
    AccountingInputs,
    ChildState,
    HeldPod,
    JobMeta,
    Observed,
    PodsSummary,
    RegionData,
    Settings,
    child_state,
)
from green_operator.controller.reconcile import needs, reconcile
from green_operator.planner import PowerRequest, RegionForecast
from green_operator.planner.extrapolate import HISTORY_DAYS, extrapolate
from green_operator.planner.grid import EPS
from green_operator.planner.joint import joint_replan
from green_operator.regions import RegionConfig
from green_operator.times import rfc3339

from .engine import PlanArm, RunRecord, SimSettings, option_for, run_record
from .jobs_file import SimJob
from .world import ForecastModel, World

MAX_SLEEP = 3600.0
"""The driver's longest sleep (`controller.driver.MAX_SLEEP`)."""
NAMESPACE = "sim"
REGION_LABEL = "topology.kubernetes.io/region"
PROVIDER = "simulation"
_LOOP = 1000
"""Looks at one job in one instant beyond which reconcile is taken to be looping."""

# Event kinds, in the order they are handled within one instant: watch events before decisions.
_CREATE, _POD_END, _LOOK, _JOINT = 0, 1, 2, 3


def interruption_block(i: Interruption) -> dict[str, Any]:
    def seconds(d: timedelta) -> str:
        return f"{d.total_seconds():.0f}s"

    return {
        "policy": str(i.policy),
        "checkpointGracePeriod": seconds(i.grace_period),
        "minSegment": seconds(i.min_segment),
        "resumeOverhead": seconds(i.resume_overhead),
        "resumeEnergyJoules": i.resume_energy_joules,
    }


def gtj_body(job: SimJob, power: PowerRequest, interruption: Interruption | None = None) -> JsonDict:
    """The GreenTrainingJob a user would create for this job (interruptible ones with `interruption`)."""
    power_spec: dict[str, Any] = {"policy": str(power.policy), "maxSlowdownPercent": power.max_slowdown_percent}
    if power.watts is not None:
        power_spec["gpuPowerLimitWatts"] = power.watts
    seconds = job.duration.total_seconds()
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": {
            "name": job.id,
            "namespace": NAMESPACE,
            "uid": f"uid-{job.id}",
            "generation": 1,
            "creationTimestamp": rfc3339(job.submit_time),
        },
        "spec": {
            "estimatedDuration": f"{seconds:.0f}s" if seconds == int(seconds) else f"{seconds:.6f}s",
            "schedule": {"deadline": rfc3339(job.deadline)},
            "placement": {"regions": list(job.regions)},
            "power": power_spec,
            **({"interruption": interruption_block(interruption)} if interruption and job.interruptible else {}),
            "template": {
                "spec": {
                    "containers": [
                        {"name": "train", "image": "trainer", "resources": {"limits": {GPU_RESOURCE: job.gpus}}}
                    ]
                }
            },
        },
    }


@dataclass
class _Job:
    sim: SimJob
    key: str
    meta: JobMeta
    spec: TrainingJobSpec
    released_at: datetime | None = None
    """When its child was let go (its pods created)."""
    record: RunRecord | None = None
    """Set when its pods start."""
    child_body: JsonDict | None = None
    child: ChildState | None = None
    done: bool = False
    flagged: bool = False
    # An interruptible job's pods, segment by segment (a pause ends them; a resume starts new ones).
    running_since: datetime | None = None
    resumes: bool = False
    pods_seq: int = 0
    work: timedelta = timedelta(0)
    """Work done so far, in the true run time at its power limit (resume overheads excluded)."""
    run_time: timedelta = timedelta(0)
    grams: float = 0.0
    segment_joules: float = 0.0
    joules: float = 0.0
    held: tuple[HeldPod, ...] = ()

    @property
    def segmented(self) -> bool:
        return self.spec.interruption.interruptible


class _Stats:
    def __init__(self) -> None:
        self.decisions = self.planner_calls = self.first_plans = 0
        self.moves = self.moved_aside = self.burst_plans = self.burst_late = 0
        self.waited: set[str] = set()
        self.grams = self.baseline_grams = 0.0
        self.replans_by_minute = Counter[datetime]()

    def count(
        self, j: _Job, before: JsonDict, after: JsonDict, actions: Sequence[Action], in_burst: bool, now: datetime
    ) -> None:
        self.decisions += 1
        decided = next((a for a in actions if isinstance(a, RecordDecision)), None)
        moved = any(isinstance(a, SettleMove) for a in actions)
        recheck = any(isinstance(a, WriteStatus) and "plan" in a.patch and "phase" not in a.patch for a in actions)
        if (decided is not None and not moved) or recheck or any(isinstance(a, RescueTried) for a in actions):
            self.planner_calls += 1
            if decided is None or not decided.first:
                self.replans_by_minute[now.replace(second=0, microsecond=0)] += 1
        if decided is not None:
            j.flagged |= decided.deadline_at_risk
            if decided.first:
                self.first_plans += 1
                self.burst_plans += in_burst
            elif _place(before) != _place(after):
                self.moves += 1
        for a in actions:
            if isinstance(a, MoveAside):
                self.moved_aside += 1
            elif isinstance(a, PlanRecorded) and a.late:
                self.burst_late += 1
            elif isinstance(a, RecordFinish):
                self.grams += a.accounting.grams
                self.baseline_grams += a.accounting.baseline_grams


def _place(status: JsonDict) -> tuple[Any, Any, Any]:
    return status.get("region"), status.get("plannedStart"), (status.get("plan") or {}).get("powerLimitWatts")


class OperatorSimulation:
    def __init__(
        self,
        world: World,
        jobs: Sequence[SimJob],
        settings: SimSettings,
        forecasts: ForecastModel,
        *,
        skip_quiet_polls: bool = True,
    ) -> None:
        self.world = world
        self.skip_quiet_polls = skip_quiet_polls
        self.sim_jobs = jobs
        self.model = forecasts
        self.gpu_watts = settings.planner.default_gpu_watts
        self.power = settings.power
        self.interruption = settings.interruption
        self.slot = world.slot
        self.horizon_slots = math.ceil(settings.planner.horizon / world.slot)
        self.extra_slots = math.ceil(settings.planner.extrapolation / world.slot)
        self._day_slots = round(timedelta(days=1) / world.slot)
        regions = {r: RegionConfig(r, {REGION_LABEL: r}, gpu_model=world.gpu_model or None) for r in world.regions}
        self.settings = Settings(regions=regions, planner=settings.planner, replan_interval=settings.replan_interval)
        self.ledger = CapacityLedger(regions, settings.planner.horizon, wake=self._poke)
        self.api = MemoryExecutor(self.ledger, on_child=self._child_written)
        self.jobs: dict[str, _Job] = {}
        self.free = dict(world.capacity)
        self.pending_pods: list[str] = []
        """Released jobs whose pods wait for GPUs, in release order."""
        self.stats = _Stats()
        self.now = world.origin
        self._queue: list[tuple[datetime, int, int, str]] = []
        self._next_look: dict[str, tuple[datetime, int]] = {}
        self._seq = 0
        self._forecast_slot = -1
        self._forecast_data: dict[str, RegionData] = {}
        self.joint = settings.joint
        self.joint_every = settings.replan_interval
        if settings.joint is not None and settings.joint.interval is not None:
            self.joint_every = settings.joint.interval
        self.planner_settings = settings.planner
        self.joint_counts: Counter[str] = Counter()

    # -- the fake clock ----------------------------------------------------------------------------

    def _push(self, when: datetime, kind: int, key: str) -> int:
        self._seq += 1
        heapq.heappush(self._queue, (when, kind, self._seq, key))
        return self._seq

    def _look_at(self, key: str, when: datetime) -> None:
        """Wake the job at `when` unless it is to look sooner already."""
        current = self._next_look.get(key)
        if current is None or when < current[0]:
            self._next_look[key] = (when, self._push(when, _LOOK, key))

    def _poke(self, key: str) -> None:
        if key in self.jobs and not self.jobs[key].done:
            self._look_at(key, self.now)

    def run(self) -> PlanArm:
        for job in sorted(self.sim_jobs, key=lambda j: j.submit_time):
            self._push(job.submit_time, _CREATE, job.id)
        by_id = {j.id: j for j in self.sim_jobs}
        if self.joint is not None and self.sim_jobs:
            self._push(min(j.submit_time for j in self.sim_jobs) + self.joint_every, _JOINT, "")
        instant, looks = self.now, Counter[str]()
        end = self.world.origin + self.slot * self.world.length
        while self._queue:
            when, kind, seq, key = heapq.heappop(self._queue)
            if when > end:
                raise ValueError("the simulation ran past the end of the traces; use longer traces")
            self.now = when
            if kind == _CREATE:
                self._create(by_id[key])
            elif kind == _JOINT:
                self._joint_replan()
                if any(not j.done for j in self.jobs.values()) or len(self.jobs) < len(self.sim_jobs):
                    self._push(when + self.joint_every, _JOINT, "")
            elif kind == _POD_END:
                job_key, _, pods = key.partition("#")
                j = self.jobs[job_key]
                if int(pods) == j.pods_seq:  # not ended by a pause since
                    self._pods_end(j)
            elif self._next_look.get(key) == (when, seq):
                del self._next_look[key]
                if when != instant:
                    instant, looks = when, Counter()
                looks[key] += 1
                if looks[key] > _LOOP:
                    raise RuntimeError(f"{key}: reconcile did not settle at {rfc3339(when)}")
                self._step(self.jobs[key])
        return self._result()

    # -- watch events ------------------------------------------------------------------------------

    def _joint_replan(self) -> None:
        """The operator's periodic joint re-plan (`controller.joint`), run in place: the ledger wakes
        the jobs it moves, which adopt their moves at their next step."""
        assert self.joint is not None
        now, slot = self.now, self.planner_settings.slot
        snap = snapshot(self.ledger, now, slot)
        if not snap.jobs:
            return
        regions = [d.forecast for d in self._forecasts(now).values()]
        result = joint_replan(
            snap.jobs,
            regions,
            snap.fixed,
            now,
            self.planner_settings,
            budget_s=self.joint.budget.total_seconds(),
            max_moves=self.joint.max_moves,
            min_gain=self.joint.min_gain,
            keep_reserve=self.joint.keep_reserve,
        )
        moved = propose(self.ledger, snap, result.moved, self.world.capacity, now, slot)
        self.joint_counts[result.outcome] += 1
        self.joint_counts["moves"] += len(moved)

    def _create(self, job: SimJob) -> None:
        body = gtj_body(job, self.power, self.interruption)
        meta = JobMeta.of(body)
        spec = parse_spec(body, self.settings.region_names)
        if not isinstance(spec, TrainingJobSpec):
            raise ValueError(f"job {job.id!r}: {'; '.join(map(str, spec))}")
        self.jobs[meta.key] = _Job(job, meta.key, meta, spec)
        self.api.add(body)
        self._look_at(meta.key, self.now)

    def _child_written(self, key: str, child: JsonDict) -> JsonDict:
        """The Job controller: an unsuspended child's pods are created at once and start when their
        region has the GPUs free."""
        j = self.jobs[key]
        if j.segmented:
            return self._segment_written(j, child)
        if (child.get("spec") or {}).get("suspend") or j.released_at is not None:
            return child
        j.released_at = self.now
        child = {**child, "status": {**(child.get("status") or {}), "startTime": rfc3339(self.now), "active": 1}}
        if self._fits(child, j):
            return self._start(j, child)
        self.pending_pods.append(key)
        self.stats.waited.add(key)
        return child

    def _segment_written(self, j: _Job, child: JsonDict) -> JsonDict:
        """An interruptible job's child: suspending it ends its pods (they checkpoint and report),
        unsuspending it starts new ones (resuming from the checkpoint) when there is room."""
        suspended = bool((child.get("spec") or {}).get("suspend"))
        if suspended and j.running_since is not None:
            return self._pause_pods(j, child)
        if suspended or j.running_since is not None or j.key in self.pending_pods:
            return child
        if j.released_at is None:
            j.released_at = self.now
        child = {**child, "status": {**(child.get("status") or {}), "startTime": rfc3339(self.now), "active": 1}}
        if self._fits(child, j):
            return self._start(j, child)
        self.pending_pods.append(j.key)
        self.stats.waited.add(j.key)
        return child

    def _pause_pods(self, j: _Job, child: JsonDict) -> JsonDict:
        assert j.running_since is not None and j.record is not None
        rec = j.record
        ran = self.now - j.running_since
        overhead = self.interruption.resume_overhead if (self.interruption and j.resumes) else timedelta(0)
        j.work += max(ran - overhead, timedelta(0))
        self._account_segment(j, rec.region, j.running_since, ran)
        self.free[rec.region] += j.spec.gpus
        j.running_since = None
        j.pods_seq += 1  # the pods' planned end no longer applies
        fraction = min(j.work / rec.duration, 1.0) if rec.duration else 1.0
        report = {"v": 1, "meter": PROVIDER, "energyJoules": j.segment_joules, "progress": {"fraction": fraction}}
        j.held = (HeldPod(f"{j.sim.id}-{j.pods_seq}", True, json.dumps(report)),)
        return {**child, "status": {**(child.get("status") or {}), "active": 0, "ready": 0}}

    def _account_segment(self, j: _Job, region: str, start: datetime, ran: timedelta) -> None:
        assert j.record is not None
        watts = option_for(self.world, j.record.power_limit_watts, self.gpu_watts).watts
        j.grams += self.world.grams(region, start, ran, j.spec.gpus, watts)
        j.segment_joules = j.spec.gpus * watts * ran.total_seconds()
        j.joules += j.segment_joules
        j.run_time += ran

    def _fits(self, child: JsonDict, j: _Job) -> bool:
        return self.free[_region_of(child)] >= j.spec.gpus

    def _start(self, j: _Job, child: JsonDict) -> JsonDict:
        """The pods run from now, at the place and power limit the child says."""
        region = _region_of(child)
        annotations = _pod_annotations(child)
        limit_text = annotations.get(ANN_POWER_LIMIT) or ""
        limit = float(limit_text) if limit_text else None
        if j.segmented and j.record is not None:  # a resume: the rest of the work, after the overhead
            overhead = self.interruption.resume_overhead if self.interruption else timedelta(0)
            j.resumes = True
            left = j.record.duration - j.work + overhead
        else:
            j.record = run_record(self.world, j.sim, region, self.now, limit, self.gpu_watts)
            left = j.record.duration
        j.running_since = self.now
        self.free[region] -= j.spec.gpus
        self._push(self.now + left, _POD_END, f"{j.key}#{j.pods_seq}")
        return {**child, "status": {**child["status"], "ready": 1, "active": 1}}

    def _pods_end(self, j: _Job) -> None:
        rec = j.record
        assert rec is not None
        self.free[rec.region] += j.spec.gpus
        if j.segmented:
            assert j.running_since is not None
            self._account_segment(j, rec.region, j.running_since, self.now - j.running_since)
            j.running_since = None
            j.record = replace(
                rec, duration=j.run_time, grams=j.grams, deadline_met=self.now <= j.sim.deadline + timedelta(seconds=1)
            )
        child = self.api.children[j.key]
        done = rfc3339(self.now)
        status = {
            "startTime": child["status"]["startTime"],
            "completionTime": done,
            "succeeded": 1,
            "conditions": [{"type": "Complete", "status": "True", "lastTransitionTime": done}],
        }
        self.api.set_child(j.key, {**child, "status": status})
        self._poke(j.key)
        waiting, self.pending_pods = self.pending_pods, []
        for key in waiting:
            other = self.jobs[key]
            child = self.api.children[key]
            if self._fits(child, other):
                self.api.set_child(key, self._start(other, child))
                self._poke(key)
            else:
                self.pending_pods.append(key)

    def _pods(self, j: _Job) -> PodsSummary:
        if j.key not in self.pending_pods:
            return PodsSummary(held=j.held)
        region = _region_of(self.api.children[j.key])
        return PodsSummary(1, f"0/1 nodes are available: 1 Insufficient {GPU_RESOURCE} ({region} is full)")

    # -- one decision ------------------------------------------------------------------------------

    def _step(self, j: _Job) -> None:
        """Observe, decide, apply once: `driver.Controller.step` on the fake clock."""
        now = self.now
        status = self.api.status(j.key)
        body = self.api.children.get(j.key)
        if body is not j.child_body:
            j.child_body = body
            j.child = child_state(body, j.meta.uid) if body is not None else None
        child = j.child
        n = needs(status, True, child, now, self.settings.replan_interval, None, interruptible=j.segmented)
        view = self.ledger.view(j.key, now)
        observed = Observed(
            meta=j.meta,
            spec=j.spec,
            status=status,
            child=child,
            now=now,
            settings=self.settings,
            ledger=view,
            forecasts=self._forecasts(now) if n.forecasts else {},
            pods=self._pods(j),
            accounting=self._accounting(j, status, child, now) if n.accounting else None,
            service=self.api.service(j.key, j.meta.uid),
        )
        actions = reconcile(observed)
        booked = self.ledger.booking(j.key)
        out = self.api.execute(j.meta, actions)
        if self.api.released_pods:  # the report finalizer removed: the paused pods go
            for key, _ in self.api.released_pods:
                self.jobs[key].held = ()
            self.api.released_pods.clear()
        after = self.api.status(j.key)
        self.stats.count(j, status, after, actions, view.in_burst, now)
        if out.done:
            j.done = True
            return
        delay = min(MAX_SLEEP if out.requeue is None else out.requeue, MAX_SLEEP)
        when = now + timedelta(seconds=delay)
        phase = Phase.of(after.get("phase"))
        quiet = not out.status_written and not out.child_changed and self.ledger.booking(j.key) == booked
        if self.skip_quiet_polls and quiet and phase is not None and phase.released and delay > 0:
            when = max(when, self._quiet_until(j))
        self._look_at(j.key, when)

    def _quiet_until(self, j: _Job) -> datetime:
        """After a poll that changed nothing, until when the next ones would change nothing either:
        its pods run, and its booking holds to its expected end while that is more than a slot ahead."""
        booking = self.ledger.booking(j.key)
        if booking is None or j.record is None or j.key in self.pending_pods:
            return self.now
        return booking.end - self.slot

    def _forecasts(self, now: datetime) -> dict[str, RegionData]:
        """The forecast issued in the current slot, per region: built once per slot, shared."""
        w = self.world
        k = math.floor(w.to_slots(now) + EPS)
        if k == self._forecast_slot:
            return self._forecast_data
        if k >= w.length:
            raise ValueError("the simulation ran past the end of the traces; use longer traces")
        values = self.model.issue(k, self.horizon_slots)
        start = w.origin + self.slot * k
        spans = (SourceSpan(DataSource.TRACE, PROVIDER, start, start + self.slot * values.shape[1]),)
        data: dict[str, RegionData] = {}
        for row, r in enumerate(w.regions):
            # The series holds the present slot only: decisions read the planner's view, and the
            # series only for its provenance.
            series = IntensitySeries(r, (IntensityPoint(start, float(values[row, 0]), PROVIDER),), self.slot)
            result = ForecastResult(
                r, series, DataSource.TRACE, PROVIDER, stale=False, spans=spans, configured=DataSource.TRACE
            )
            forecast = values[row].tolist()
            view = RegionForecast(r, w.capacity[r], w.gpu_model, start, forecast)
            if self.extra_slots > 0 and forecast:
                # Past the forecast: the region's last two weeks of actual intensity and the forecast.
                history = w.truth[row, max(0, k - HISTORY_DAYS * self._day_slots) : k].tolist()
                first = start - len(history) * self.slot
                tail = extrapolate(history + forecast, self.slot, self.extra_slots, start=first)
                view = RegionForecast(r, w.capacity[r], w.gpu_model, start, forecast + tail, len(forecast))
            data[r] = RegionData(view, result)
        self._forecast_slot, self._forecast_data = k, data
        return data

    def _accounting(self, j: _Job, status: JsonDict, child: ChildState | None, now: datetime) -> AccountingInputs:
        started, completed = (child.start_time, child.completion_time) if child else (None, None)
        if j.segmented:
            # The last segment's pods report theirs; the paused ones' are in status already.
            windows = segmented_windows(status, completed, j.spec.regions[0], now)
            energy = EnergyTotal(j.segment_joules, PROVIDER, 0, None, "")
            return AccountingInputs(energy, windows, self._truth(windows.actual), self._truth(windows.baseline))
        windows = accounting_windows(status, started, completed, j.spec.regions[0], now)
        joules = 0.0
        rec = j.record
        if rec is not None:
            watts = option_for(self.world, rec.power_limit_watts, self.gpu_watts).watts
            joules = j.spec.gpus * watts * rec.duration.total_seconds()
        energy = EnergyTotal(joules, PROVIDER, 0, None, "")
        return AccountingInputs(energy, windows, self._truth(windows.actual), self._truth(windows.baseline))

    def _truth(self, w: Window) -> ForecastResult:
        """The true mean intensity over the window, as a one-step series (all `settle` reads)."""
        world = self.world
        slots = (w.end - w.start) / self.slot
        mean = world.integral(world.row[w.region], world.to_slots(w.start), slots) / (slots * world.slot_hours)
        series = IntensitySeries(w.region, (IntensityPoint(w.start, mean, PROVIDER),), w.end - w.start)
        spans = (SourceSpan(DataSource.TRACE, PROVIDER, w.start, w.end),)
        return ForecastResult(
            w.region, series, DataSource.TRACE, PROVIDER, stale=False, spans=spans, configured=DataSource.TRACE
        )

    def _result(self) -> PlanArm:
        unfinished = [j.key for j in self.jobs.values() if not j.done or j.record is None]
        if unfinished:
            raise RuntimeError(f"{len(unfinished)} job(s) never finished, e.g. {unfinished[0]}")
        records: list[RunRecord] = []
        for job in self.sim_jobs:
            rec = self.jobs[f"{NAMESPACE}/{job.id}"].record
            assert rec is not None
            records.append(rec)
        events: Counter[str] = Counter()
        for (reason, _), count in self.api.events.items():
            events[reason] += count
        s = self.stats
        return PlanArm(
            records=records,
            decisions=s.decisions,
            planner_calls=s.planner_calls,
            replans=s.planner_calls - s.first_plans,
            busiest_replan_minute=max(s.replans_by_minute.values(), default=0),
            moves=s.moves,
            moved_aside=s.moved_aside,
            flagged=sum(j.flagged for j in self.jobs.values()),
            burst_plans=s.burst_plans,
            burst_late=s.burst_late,
            waited_for_gpus=len(s.waited),
            events=dict(sorted(events.items())),
            joint=dict(self.joint_counts),
            accounted_grams=s.grams,
            accounted_baseline_grams=s.baseline_grams,
        )


def _pod_annotations(child: JsonDict) -> dict[str, str]:
    template = (child.get("spec") or {}).get("template") or {}
    return dict((template.get("metadata") or {}).get("annotations") or {})


def _region_of(child: JsonDict) -> str:
    return str(_pod_annotations(child)[ANN_REGION])


def run_operator(world: World, jobs: Sequence[SimJob], settings: SimSettings, forecasts: ForecastModel) -> PlanArm:
    """The plan arm: what the operator does with these jobs in this world."""
    return OperatorSimulation(world, jobs, settings, forecasts).run()
