"""Named transitions between phases: each returns the status patch that enters its phase, with the
conditions that go with it. Pure; the only place that pairs phases with conditions and reasons."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from green_operator.accounting.settle import Accounting
from green_operator.api import conditions as cond
from green_operator.api.conditions import Reason
from green_operator.api.manifests import job_name
from green_operator.api.phase import Phase
from green_operator.api.spec import SpecProblem, TrainingJobSpec
from green_operator.api.status import carbon_condition, plan_fields
from green_operator.carbon.provider import ForecastResult
from green_operator.planner import Decision
from green_operator.times import format_duration, rfc3339

from .observed import ChildState, JobMeta, PodsSummary

LATE_GRACE = timedelta(seconds=30)
"""A release this long after the latest start is reported as late."""


class _Conditions:
    """The status' conditions being rewritten for one generation at one instant."""

    def __init__(self, status: Mapping[str, Any], generation: int, now: datetime) -> None:
        self.items: list[dict[str, Any]] = [dict(c) for c in status.get("conditions") or ()]
        self.generation = generation
        self.now = now

    def set(self, ctype: str, status: cond.Status, reason: str, message: str) -> None:
        self.items = cond.set_condition(
            self.items, ctype, status, reason, message, generation=self.generation, now=self.now
        )


def refused(
    status: Mapping[str, Any], meta: JobMeta, problems: Sequence[SpecProblem], now: datetime
) -> dict[str, Any] | None:
    """Pending with Planned=False/InvalidSpec, once per generation (None: already said)."""
    planned = cond.find(status.get("conditions"), cond.PLANNED)
    if (
        planned
        and planned.get("reason") == Reason.INVALID_SPEC
        and planned.get("observedGeneration") == meta.generation
    ):
        return None
    c = _Conditions(status, meta.generation, now)
    c.set(cond.PLANNED, "False", Reason.INVALID_SPEC, spec_message(problems))
    return {"phase": str(Phase.of(status.get("phase")) or Phase.PENDING), "conditions": c.items}


def spec_message(problems: Sequence[SpecProblem]) -> str:
    return "; ".join(str(p) for p in problems)


def child_conflict(status: Mapping[str, Any], meta: JobMeta, message: str, now: datetime) -> dict[str, Any]:
    c = _Conditions(status, meta.generation, now)
    c.set(cond.PLANNED, "False", Reason.CHILD_CONFLICT, message)
    return {"phase": str(Phase.PENDING), "conditions": c.items, "observedGeneration": meta.generation}


def planned(
    status: Mapping[str, Any],
    spec: TrainingJobSpec,
    decision: Decision,
    results: Sequence[ForecastResult],
    source: ForecastResult | None,
    *,
    released: bool,
    replanned: bool,
    now: datetime,
    note: str = "",
) -> dict[str, Any]:
    """Deferred (waiting for its window) or Starting (released at once), with the plan."""
    if note:
        decision = replace(decision, reason=f"{decision.reason} ({note})")
    c = _Conditions(status, spec.generation, now)
    c.set(cond.PLANNED, "True", Reason.REPLANNED if replanned else Reason.PLANNED, decision.reason)
    if released:
        c.set(cond.DEFERRED, "False", Reason.STARTED_NOW, decision.reason)
        c.set(cond.RUNNING, "False", Reason.PODS_PENDING, "waiting for the Job's pods")
    else:
        c.set(cond.DEFERRED, "True", Reason.WAITING_FOR_WINDOW, decision.reason)
    if decision.deadline_at_risk:
        c.set(cond.DEADLINE_AT_RISK, "True", Reason.DEADLINE_INFEASIBLE, decision.reason)
    else:
        c.set(
            cond.DEADLINE_AT_RISK,
            "False",
            Reason.DEADLINE_FEASIBLE,
            f"starts by {rfc3339(spec.latest_start)} at the latest",
        )
    conditions = carbon_condition(c.items, list(results), spec.generation, now)
    patch: dict[str, Any] = {
        "observedGeneration": spec.generation,
        "phase": str(Phase.STARTING if released else Phase.DEFERRED),
        "region": decision.region,
        "jobName": job_name(spec.name),
        "plannedStart": rfc3339(max(decision.start, now) if released else decision.start),
        "latestStart": rfc3339(spec.latest_start),
        "plan": plan_fields(decision, source, now),
        "power": {
            "gpuPowerLimitWatts": None if decision.power_limit_watts is None else round(decision.power_limit_watts)
        },
        "conditions": conditions,
    }
    if released and not status.get("startTime"):
        patch["startTime"] = rfc3339(now)
    return patch


def rechecked(
    status: Mapping[str, Any], spec: TrainingJobSpec, results: Sequence[ForecastResult], now: datetime
) -> dict[str, Any]:
    """The same plan after a re-plan: record when it was checked, so the next one is due later."""
    plan_status = dict(status.get("plan") or {})
    plan_status["decidedAt"] = rfc3339(now)
    conditions = carbon_condition(status.get("conditions") or [], list(results), spec.generation, now)
    return {"plan": plan_status, "conditions": conditions, "latestStart": rfc3339(spec.latest_start)}


def window_reached(planned_start: datetime, latest: datetime, now: datetime, tolerance: timedelta) -> bool:
    return now + tolerance >= planned_start and planned_start <= latest


def released(
    status: Mapping[str, Any], spec: TrainingJobSpec, reason: str, message: str, latest: datetime, now: datetime
) -> dict[str, Any]:
    """Starting: the child is let go at its window or at its latest start."""
    c = _Conditions(status, spec.generation, now)
    c.set(cond.DEFERRED, "False", reason, message)
    c.set(cond.RUNNING, "False", Reason.PODS_PENDING, "waiting for the Job's pods")
    late = now - latest
    if late > LATE_GRACE:
        msg = f"started {format_duration(late)} after its latest start (the operator was not running)"
        c.set(cond.DEADLINE_AT_RISK, "True", Reason.STARTED_LATE, msg)
    return {"phase": str(Phase.STARTING), "startTime": rfc3339(now), "conditions": c.items}


def following(
    status: Mapping[str, Any], generation: int, child: ChildState, pods: PodsSummary, now: datetime
) -> tuple[Phase, list[dict[str, Any]]]:
    """Starting or Running, as the child's pods are (Running means they run)."""
    c = _Conditions(status, generation, now)
    if child.ready > 0:
        c.set(cond.RUNNING, "True", Reason.PODS_RUNNING, f"{child.ready} pod(s) running")
        return Phase.RUNNING, c.items
    if pods.unschedulable:
        msg = f"{pods.unschedulable} pod(s) cannot be scheduled: {pods.message}"[:1024]
        c.set(cond.RUNNING, "False", Reason.UNSCHEDULABLE, msg)
    else:
        msg = f"{child.active} pod(s) starting" if child.active else "waiting for the Job's pods"
        c.set(cond.RUNNING, "False", Reason.PODS_PENDING, msg)
    return Phase.STARTING, c.items


def finished(
    status: Mapping[str, Any], generation: int, child: ChildState | None, accounting: Accounting, now: datetime
) -> tuple[Phase, dict[str, Any]]:
    """Succeeded or Failed (a missing child counts as failed), with energy and emissions."""
    c = _Conditions(status, generation, now)
    if child is not None and child.complete:
        phase = Phase.SUCCEEDED
        for ctype, value in ((cond.RUNNING, "False"), (cond.SUCCEEDED, "True"), (cond.FAILED, "False")):
            c.set(ctype, value, Reason.JOB_COMPLETE, "the Job completed")  # type: ignore[arg-type]
    else:
        phase = Phase.FAILED
        reason = Reason.JOB_FAILED if child is not None else Reason.JOB_MISSING
        msg = (child.failure_message if child else "") or ("the Job failed" if child else "the Job was deleted")
        for ctype, value in ((cond.RUNNING, "False"), (cond.SUCCEEDED, "False"), (cond.FAILED, "True")):
            c.set(ctype, value, reason, msg)  # type: ignore[arg-type]
    completed = (child.completion_time if child else None) or now
    return phase, {
        "phase": str(phase),
        "completionTime": rfc3339(completed),
        "conditions": c.items,
        **accounting.status_fields(),
    }
