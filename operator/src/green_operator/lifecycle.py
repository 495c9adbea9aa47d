"""One GreenTrainingJob's life, driven by a kopf daemon: plan, create the Job, wait for the window
(re-planning as forecasts change), release, follow the pods, account.

`reconcile_once` looks at the latest known state and takes at most one step, returning how long to
sleep before looking again (or DONE). It is idempotent: the operator may die between any two API
calls and a fresh process picks up from the status and the child Job, never creating a second Job.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Final, cast

import kopf

from . import conditions as cond
from .accounting import JOULES_PER_KWH, account
from .carbon.provider import ForecastResult
from .clock import parse_rfc3339, rfc3339, utcnow
from .conditions import Reason
from .durations import format_duration
from .kube import OwnershipConflictError
from .live_energy import fetch_live_energy
from .manifests import build_job, job_name, placement_patch
from .planner import Decision, PowerPolicy, Reservation, plan, plan_with_preemption
from .regions import NodeInfo
from .runtime import PendingMove, Runtime
from .spec import SpecProblem, TrainingJobSpec, parse_spec
from .status import (
    TERMINAL_PHASES,
    carbon_condition,
    decision_from_status,
    observe_job,
    plan_fields,
    running_conditions,
)

DONE: Final = -1.0
START_TOLERANCE = timedelta(seconds=1)
"""A planned start this close to now counts as now."""
RUNNING_POLL = 60.0
"""Safety net while running: Job events wake us sooner; this catches a missed watch event."""


@dataclass
class World:
    """What a step may read besides the resource itself (kopf indexes, snapshotted per step)."""

    nodes: Iterable[NodeInfo]
    reservations: Mapping[str, Reservation]


class Step:
    def __init__(self, rt: Runtime, body: Mapping[str, Any], world: World, logger: logging.Logger | Any) -> None:
        self.rt = rt
        self.body = body
        self.world = world
        self.logger = logger
        meta = body["metadata"]
        self.namespace: str = meta["namespace"]
        self.name: str = meta["name"]
        self.uid: str = meta.get("uid", "")
        self.generation = int(meta.get("generation", 1))
        self.key = f"{self.namespace}/{self.name}"
        self.status: dict[str, Any] = dict(rt.statuses.get(self.key) or body.get("status") or {})
        self.spec: TrainingJobSpec | None = None

    # -- writing -------------------------------------------------------------------------------

    async def write(self, patch: dict[str, Any]) -> None:
        patch.setdefault("observedGeneration", self.generation)
        result = await asyncio.to_thread(self.rt.kube.patch_gtj_status, self.namespace, self.name, patch)
        if result is not None:
            self.status = dict(result.get("status") or {})
            self.rt.statuses[self.key] = self.status
            self.rt.observe_status(self.key, self.status)
            self.rt.track_movable(self.key, self.spec, self.status)

    def event(self, reason: str, message: str, warning: bool = False) -> None:
        # kopf queues events and posts them from its own task: no API call on this path.
        body = cast(kopf.Body, self.body)
        (kopf.warn if warning else kopf.info)(body, reason=reason, message=message)

    def conditions(self) -> list[dict[str, Any]]:
        return list(self.status.get("conditions") or [])

    def set(
        self, conds: list[dict[str, Any]], ctype: str, status: cond.Status, reason: str, msg: str, now: datetime
    ) -> list[dict[str, Any]]:
        return cond.set_condition(conds, ctype, status, reason, msg, generation=self.generation, now=now)

    # -- the step ------------------------------------------------------------------------------

    async def run(self) -> float:
        phase = self.status.get("phase")
        if phase in TERMINAL_PHASES:
            return DONE
        parsed = parse_spec(self.body, self.rt.config.region_names)
        if isinstance(parsed, list):
            return await self.refuse(parsed)
        self.spec = parsed
        if not self.status.get("jobName") or not self.status.get("plannedStart"):
            return await self.plan_and_create(parsed)
        if phase == "Deferred":
            return await self.while_deferred(parsed)
        return await self.while_running(parsed)

    async def refuse(self, problems: list[SpecProblem]) -> float:
        """A spec the CRD could not reject but that cannot work: say so once per generation, then
        wait for an edit (the spec-update handler wakes us)."""
        self.rt.first_plan_done(self.key)  # nothing to plan until an edit: not part of any burst
        message = "; ".join(str(p) for p in problems)
        planned = cond.find(self.status.get("conditions"), cond.PLANNED)
        if not (
            planned
            and planned.get("reason") == Reason.INVALID_SPEC
            and planned.get("observedGeneration") == self.generation
        ):
            now = utcnow()
            c = self.set(self.conditions(), cond.PLANNED, "False", Reason.INVALID_SPEC, message, now)
            await self.write({"phase": self.status.get("phase") or "Pending", "conditions": c})
            self.event(Reason.INVALID_SPEC, f"Cannot plan this job: {message}", warning=True)
            self.logger.warning("invalid spec: %s", message)
        return 3600.0

    async def decide(
        self, spec: TrainingJobSpec, previous: Decision | None, *, fresh: bool = False, preempt: bool = False
    ) -> tuple[Decision, dict[str, ForecastResult]]:
        """Plan this job. A new job (`preempt`) may move deferred jobs aside when it would otherwise
        miss its deadline, each moved job still meeting its own; their tasks apply the moves."""
        now = utcnow()
        settings = self.rt.config.planner
        # Jobs moved aside may go to any region (forecasts are cached per slot, so this is cheap).
        names = set(self.rt.config.region_names) if preempt else set(spec.regions)
        got = await asyncio.gather(
            *(self.rt.forecasts.get(r, now, self.world.nodes, fresh=fresh) for r in sorted(names))
        )
        views = [g[0] for g in got]
        results = {g[0].region: g[1] for g in got if g[0].region in spec.regions}
        # From here to the bookkeeping below nothing awaits: other jobs' plans and moves are read and
        # updated as one step, so two jobs never count on the same GPUs.
        # Jobs due within the current slot are about to be released: not worth moving.
        movable = self.rt.movable_except(self.key, now + settings.slot) if preempt else {}
        others = [
            r
            for k, r in self.rt.reservations_except(self.key, self.world.reservations, now, settings.slot).items()
            if k not in movable
        ]
        t0 = time.perf_counter()
        request = spec.request(now, previous)
        if movable:
            requests = [s.request(now, d) for s, d in movable.values()]
            outcome = plan_with_preemption([request], requests, views, others, now, settings, self.rt.repair_memo)
            decision = outcome.decisions[0]
            for moved in outcome.moved:
                self.rt.move_aside(moved, movable[moved.key][0].gpus, movable[moved.key][1], self.key)
        else:
            decision = plan([request], views, others, now, settings)[0]
        self.logger.debug(
            "planned in %.1f ms against %d reservations and %d movable jobs",
            (time.perf_counter() - t0) * 1e3,
            len(others),
            len(movable),
        )
        self.rt.reservations[self.key] = Reservation(decision.region, decision.start, decision.end, spec.gpus)
        # Others see this job at its new plan at once, movable if it waits (a move decided before the
        # plan is in status is applied right after it: it names this plan as the one it moves from).
        if decision.start > now + settings.slot:
            self.rt.movable[self.key] = (spec, decision)
        else:
            self.rt.movable.pop(self.key, None)
        return decision, results

    def manifest(self, spec: TrainingJobSpec, decision: Decision, suspend: bool) -> dict[str, Any]:
        region = self.rt.config.region(decision.region)
        assert region is not None
        return build_job(
            gtj_name=self.name,
            gtj_uid=self.uid,
            namespace=self.namespace,
            template=spec.template,
            parallelism=spec.parallelism,
            backoff_limit=spec.backoff_limit,
            region=decision.region,
            node_selector=region.node_selector,
            tolerations=region.tolerations,
            power_limit_watts=decision.power_limit_watts,
            intensity=decision.forecast_intensity,
            suspend=suspend,
            metrics_port=self.rt.config.trainer_metrics_port,
            # Granted whenever the policy may set a limit: a re-plan can change the limit of a waiting
            # Job, but not its containers' security context.
            grant_power_capability=self.rt.config.grant_power_limit_capability
            and spec.power.policy is not PowerPolicy.NONE,
        )

    async def plan_and_create(self, spec: TrainingJobSpec) -> float:
        try:
            return await self._plan_and_create(spec)
        finally:
            self.rt.first_plan_done(self.key)

    async def _plan_and_create(self, spec: TrainingJobSpec) -> float:
        t0 = time.perf_counter()
        burst = self.rt.in_burst()
        decision, results = await self.decide(spec, decision_from_status(self.key, self.status), preempt=not burst)
        if burst and decision.deadline_at_risk:
            self.rt.rescue.add(self.key)
        now = utcnow()
        start_now = decision.start <= now + START_TOLERANCE
        manifest = self.manifest(spec, decision, suspend=not start_now)
        try:
            job, created = await asyncio.to_thread(self.rt.kube.create_job, manifest, self.uid)
        except OwnershipConflictError as exc:
            c = self.set(self.conditions(), cond.PLANNED, "False", Reason.INVALID_SPEC, str(exc), now)
            await self.write({"phase": "Pending", "conditions": c})
            self.event(Reason.INVALID_SPEC, str(exc), warning=True)
            return 300.0
        released = start_now
        if not created:
            # A previous process created it and died before writing status: continue from the Job.
            existing_spec = job.get("spec") or {}
            if not existing_spec.get("suspend"):
                released = True
            elif start_now:
                await asyncio.to_thread(
                    self.rt.kube.patch_job, self.namespace, job_name(self.name), {"spec": {"suspend": False}}
                )
            else:
                await self.move(spec, decision, job)
        await self.write_plan(spec, decision, results, released=released, now=now, replanned=False)
        self.rt.metrics.reconcile_seconds.labels("plan").observe(time.perf_counter() - t0)
        return 0.0 if released else self.sleep_while_deferred(spec)

    async def move(self, spec: TrainingJobSpec, decision: Decision, job: Mapping[str, Any] | None) -> None:
        """Re-point a suspended, never-started Job at a new plan (scheduling directives are mutable)."""
        region = self.rt.config.region(decision.region)
        assert region is not None
        old_selector = (((job or {}).get("spec") or {}).get("template") or {}).get("spec", {}).get("nodeSelector") or {}
        patch = placement_patch(
            node_selector=region.node_selector,
            previous_node_selector=old_selector,
            tolerations=region.tolerations,
            user_template=spec.template,
            region=decision.region,
            power_limit_watts=decision.power_limit_watts,
            intensity=decision.forecast_intensity,
        )
        await asyncio.to_thread(self.rt.kube.patch_job, self.namespace, job_name(self.name), patch)

    async def write_plan(
        self,
        spec: TrainingJobSpec,
        decision: Decision,
        results: Mapping[str, ForecastResult],
        *,
        released: bool,
        now: datetime,
        replanned: bool,
        note: str = "",
    ) -> None:
        if note:
            decision = replace(decision, reason=f"{decision.reason} ({note})")
        c = self.conditions()
        verb = Reason.REPLANNED if replanned else Reason.PLANNED
        c = self.set(c, cond.PLANNED, "True", verb, decision.reason, now)
        if released:
            c = self.set(c, cond.DEFERRED, "False", Reason.STARTED_NOW, decision.reason, now)
            c = self.set(c, cond.RUNNING, "False", Reason.PODS_PENDING, "waiting for the Job's pods", now)
        else:
            c = self.set(c, cond.DEFERRED, "True", Reason.WAITING_FOR_WINDOW, decision.reason, now)
        if decision.deadline_at_risk:
            c = self.set(c, cond.DEADLINE_AT_RISK, "True", Reason.DEADLINE_INFEASIBLE, decision.reason, now)
        else:
            c = self.set(
                c,
                cond.DEADLINE_AT_RISK,
                "False",
                Reason.DEADLINE_FEASIBLE,
                f"starts by {rfc3339(spec.latest_start)} at the latest",
                now,
            )
        c = carbon_condition(c, list(results.values()), self.generation, now)
        patch: dict[str, Any] = {
            "phase": "Running" if released else "Deferred",
            "region": decision.region,
            "jobName": job_name(self.name),
            "plannedStart": rfc3339(max(decision.start, now) if released else decision.start),
            "latestStart": rfc3339(spec.latest_start),
            "plan": plan_fields(decision, results.get(decision.region), now),
            "power": {
                "gpuPowerLimitWatts": None if decision.power_limit_watts is None else round(decision.power_limit_watts)
            },
            "conditions": c,
        }
        if released and not self.status.get("startTime"):
            patch["startTime"] = rfc3339(now)
        await self.write(patch)
        outcome = "replanned" if replanned else ("started" if released else "deferred")
        self.rt.metrics.decisions.labels(outcome).inc()
        if decision.deadline_at_risk:
            self.rt.metrics.decisions.labels("deadline_at_risk").inc()
        if not replanned:
            self.rt.metrics.planned_grams.labels(decision.region).inc(decision.expected_grams)
            self.rt.metrics.planned_baseline_grams.labels(decision.region).inc(decision.baseline_grams)
        self.event(
            Reason.REPLANNED if replanned else (Reason.STARTED_NOW if released else Reason.WAITING_FOR_WINDOW),
            decision.reason,
            warning=decision.deadline_at_risk,
        )
        if released:
            created = parse_rfc3339(self.body["metadata"]["creationTimestamp"])
            self.rt.metrics.deferral_seconds.observe(max((now - created).total_seconds(), 0.0))

    def sleep_while_deferred(self, spec: TrainingJobSpec) -> float:
        now = utcnow()
        planned = parse_rfc3339(self.status["plannedStart"])
        latest = parse_rfc3339(self.status.get("latestStart") or rfc3339(spec.latest_start))
        replan_at = self.next_replan()
        wake = min(planned, latest, replan_at)
        return max((wake - now).total_seconds(), 0.0)

    def next_replan(self) -> datetime:
        decided = (self.status.get("plan") or {}).get("decidedAt")
        base = parse_rfc3339(decided) if decided else utcnow()
        return base + self.rt.config.replan_interval

    async def while_deferred(self, spec: TrainingJobSpec) -> float:
        await self.apply_pending_move(spec)
        now = utcnow()
        planned = parse_rfc3339(self.status["plannedStart"])
        latest = parse_rfc3339(self.status["latestStart"])
        spec_changed = self.status.get("observedGeneration") != self.generation
        due = now >= self.next_replan() and now < planned and now < latest
        # A late job (left so by a burst, or still at risk at a re-plan) tries moving deferred jobs
        # aside, as on arrival. That search costs tens of milliseconds: one job at a time, and never
        # while a first decision waits.
        search = not spec_changed and (self.key in self.rt.rescue or (due and self.key in self.rt.at_risk))
        if search and self.rt.may_rescue():
            async with self.rt.rescue_lock:
                search = self.rt.may_rescue()  # a new job may have arrived while this one waited
                if search:
                    self.rt.rescue.discard(self.key)
                if search or due:
                    await self.replan(spec, False, preempt=search, record=due)
        elif spec_changed or due:
            await self.replan(spec, spec_changed)
        if spec_changed or due or search:
            planned = parse_rfc3339(self.status["plannedStart"])
            latest = parse_rfc3339(self.status["latestStart"])
        if now + START_TOLERANCE >= planned or now >= latest:
            await self.release(spec, planned, latest)
            return 0.0
        return self.sleep_while_deferred(spec)

    async def apply_pending_move(self, spec: TrainingJobSpec) -> None:
        """Another job's arrival moved this one aside (plan_with_preemption). Apply it unless this job's
        plan changed meanwhile (its own re-plan or a spec edit), which supersedes the move."""
        pending = self.rt.pending_moves.get(self.key)
        if pending is None:
            return
        try:
            await self._apply_move(spec, pending)
        finally:
            # Only now may others move this job again: until the move is in status, its plan in
            # status (and so in the movable set) is not the one others count on.
            if self.rt.pending_moves.get(self.key) is pending:
                del self.rt.pending_moves[self.key]

    async def _apply_move(self, spec: TrainingJobSpec, pending: PendingMove) -> None:
        current = decision_from_status(self.key, self.status)
        if (
            current is None
            or self.status.get("observedGeneration") != self.generation
            or (current.region, current.start, current.power_limit_watts)
            != (pending.previous.region, pending.previous.start, pending.previous.power_limit_watts)
        ):
            # Superseded by a spec edit (the re-plan that follows places this job afresh).
            if current is not None:
                self.rt.reservations[self.key] = Reservation(current.region, current.start, current.end, spec.gpus)
            return
        job = await asyncio.to_thread(self.rt.kube.read_job, self.namespace, job_name(self.name))
        if job is None:
            await asyncio.to_thread(self.rt.kube.create_job, self.manifest(spec, pending.decision, True), self.uid)
        else:
            await self.move(spec, pending.decision, job)
        results = {}
        for region in {pending.decision.region}:
            _, results[region] = await self.rt.forecasts.get(region, utcnow(), self.world.nodes)
        await self.write_plan(
            spec,
            pending.decision,
            results,
            released=False,
            now=utcnow(),
            replanned=True,
            note=f"moved aside for {pending.for_job}",
        )

    async def replan(
        self, spec: TrainingJobSpec, spec_changed: bool, *, preempt: bool = False, record: bool = True
    ) -> None:
        """Plan again; write the new plan when it moved, else (``record``) that it was re-checked."""
        t0 = time.perf_counter()
        previous = None if spec_changed else decision_from_status(self.key, self.status)
        decision, results = await self.decide(spec, previous, fresh=not spec_changed, preempt=preempt)
        now = utcnow()
        old = decision_from_status(self.key, self.status)
        moved = old is None or (decision.region, decision.start, decision.power_limit_watts) != (
            old.region,
            old.start,
            old.power_limit_watts,
        )
        if moved or spec_changed:
            job = await asyncio.to_thread(self.rt.kube.read_job, self.namespace, job_name(self.name))
            if job is None:
                # Someone deleted the suspended Job: recreate it on the new plan.
                await asyncio.to_thread(self.rt.kube.create_job, self.manifest(spec, decision, True), self.uid)
            else:
                await self.move(spec, decision, job)
            await self.write_plan(spec, decision, results, released=False, now=now, replanned=True)
        elif record:
            # Same plan: record that it was re-checked so the next re-plan is due later.
            plan_status = dict(self.status.get("plan") or {})
            plan_status["decidedAt"] = rfc3339(now)
            c = carbon_condition(self.conditions(), list(results.values()), self.generation, now)
            await self.write({"plan": plan_status, "conditions": c, "latestStart": rfc3339(spec.latest_start)})
        self.rt.metrics.reconcile_seconds.labels("replan").observe(time.perf_counter() - t0)

    async def release(self, spec: TrainingJobSpec, planned: datetime, latest: datetime) -> None:
        t0 = time.perf_counter()
        now = utcnow()
        name = job_name(self.name)
        # Its GPUs are taken from now, whatever the plan said (a late job starts at its latest start,
        # before its planned one), and it can no longer be moved aside.
        self.rt.movable.pop(self.key, None)
        current = decision_from_status(self.key, self.status)
        if current is not None:
            self.rt.reservations[self.key] = Reservation(
                current.region, now, now + current.expected_duration, spec.gpus
            )
        job = await asyncio.to_thread(self.rt.kube.read_job, self.namespace, name)
        if job is None:
            decision = decision_from_status(self.key, self.status)
            assert decision is not None
            await asyncio.to_thread(self.rt.kube.create_job, self.manifest(spec, decision, False), self.uid)
        elif (job.get("spec") or {}).get("suspend"):
            await asyncio.to_thread(self.rt.kube.patch_job, self.namespace, name, {"spec": {"suspend": False}})
        late = now - latest
        if now + START_TOLERANCE >= planned and planned <= latest:
            reason, what = Reason.WINDOW_REACHED, "its low-carbon window"
        else:
            reason, what = Reason.LATEST_START_REACHED, "its latest start (the deadline holds)"
        region = self.status.get("region", "")
        message = f"Started in {region} at {now:%H:%M} UTC: {what}"
        c = self.conditions()
        c = self.set(c, cond.DEFERRED, "False", reason, message, now)
        c = self.set(c, cond.RUNNING, "False", Reason.PODS_PENDING, "waiting for the Job's pods", now)
        if late > timedelta(seconds=30):
            msg = f"started {format_duration(late)} after its latest start (the operator was not running)"
            c = self.set(c, cond.DEADLINE_AT_RISK, "True", Reason.STARTED_LATE, msg, now)
        await self.write({"phase": "Running", "startTime": rfc3339(now), "conditions": c})
        self.event(reason, message)
        created = parse_rfc3339(self.body["metadata"]["creationTimestamp"])
        self.rt.metrics.deferral_seconds.observe(max((now - created).total_seconds(), 0.0))
        self.rt.metrics.reconcile_seconds.labels("release").observe(time.perf_counter() - t0)

    async def while_running(self, spec: TrainingJobSpec) -> float:
        job = self.rt.jobs.get(self.key)
        if job is None:
            job = await asyncio.to_thread(self.rt.kube.read_job, self.namespace, job_name(self.name))
        obs = observe_job(job)
        now = utcnow()
        phase, c = running_conditions(self.conditions(), obs, self.generation, now)
        if phase == "Running":
            patch: dict[str, Any] = {}
            if c != self.conditions():
                patch.update(phase="Running", conditions=c)
            poll = RUNNING_POLL
            if self.rt.config.prometheus_url:
                interval = self.rt.config.live_energy_interval
                poll = min(poll, interval.total_seconds())
                last = self.rt.live_read_at.get(self.key)
                if last is None or now - last >= interval:
                    self.rt.live_read_at[self.key] = now
                    live = await self.live_energy(now)
                    if live is not None:
                        patch["energy"] = live
            if patch:
                await self.write(patch)
            return poll
        await self.finish(spec, phase, c, obs, now)
        return DONE

    async def live_energy(self, now: datetime) -> dict[str, Any] | None:
        """The running job's energy so far from Prometheus, when it changed; best effort."""
        url = self.rt.config.prometheus_url
        assert url is not None
        live = await asyncio.to_thread(fetch_live_energy, url, self.namespace, self.name)
        current = self.status.get("energy") or {}
        if live is None or (current.get("live") and round(live.joules, 3) == current.get("joules")):
            return None
        return {
            "joules": round(live.joules, 3),
            "kilowattHours": f"{live.joules / JOULES_PER_KWH:.3f}",
            "source": live.meter,
            "live": True,
            "updatedAt": rfc3339(now),
        }

    async def finish(self, spec: TrainingJobSpec, phase: str, c: list[dict[str, Any]], obs: Any, now: datetime) -> None:
        pods = []
        if obs.exists:
            pods = await asyncio.to_thread(self.rt.kube.list_job_pods, self.namespace, job_name(self.name))
        result = await account(self.rt, spec, self.status, pods, obs, now)
        patch: dict[str, Any] = {
            "phase": phase,
            "completionTime": rfc3339(obs.completion_time or now),
            "conditions": c,
            **result.status_fields(),
        }
        await self.write(patch)
        self.rt.reservations.pop(self.key, None)
        region = self.status.get("region", "")
        self.rt.metrics.finished.labels(self.namespace, phase).inc()
        result.record_metrics(self.rt.metrics, self.namespace, region)
        self.event(
            "JobSucceeded" if phase == "Succeeded" else "JobFailed", result.summary(phase), warning=phase == "Failed"
        )


async def sleep_until(stopped: asyncio.Event, wake: asyncio.Event, seconds: float) -> None:
    """Sleep until the timeout, a wake-up (Job event, spec edit) or a stop (deletion, shutdown)."""
    if seconds <= 0:
        return
    waiters = [asyncio.ensure_future(wake.wait()), asyncio.ensure_future(stopped.wait())]
    try:
        await asyncio.wait(waiters, timeout=min(seconds, 3600.0), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()


async def run_lifecycle(
    rt: Runtime,
    body_of: Callable[[], Mapping[str, Any]],
    stopped: asyncio.Event,
    world_of: Callable[[], World],
    logger: logging.Logger | Any,
) -> None:
    """Step until the job is done or the stop flag is set; `body_of` returns the latest object seen."""
    meta = body_of()["metadata"]
    key = f"{meta['namespace']}/{meta['name']}"
    wake = rt.wakeup(key)
    while not stopped.is_set():
        wake.clear()
        delay = await Step(rt, body_of(), world_of(), logger).run()
        if delay == DONE:
            return
        await sleep_until(stopped, wake, delay)
