"""Released jobs: follow the child's pods (Starting, Running, Unschedulable, live energy) to the end,
then settle energy and emissions. Pure; `reconcile` dispatches here once a job is released."""

from __future__ import annotations

from typing import Any

from green_operator.accounting.settle import settle
from green_operator.api import conditions as cond
from green_operator.api.conditions import Reason
from green_operator.api.job_fields import ttl_patch
from green_operator.api.phase import Phase
from green_operator.api.spec import TrainingJobSpec
from green_operator.api.status import decision_from_status
from green_operator.planner import Reservation
from green_operator.times import parse_rfc3339, rfc3339

from . import transitions as tr
from .actions import Action, Book, Done, Emit, PatchChild, RecordFinish, Requeue, WriteStatus
from .observed import ChildState, Observed

RUNNING_POLL = 60.0
"""Safety net while released: the Job and pod watches wake the job sooner."""


def follow(o: Observed, spec: TrainingJobSpec) -> list[Action]:
    child = o.child
    if child is None or child.finished:
        return _finish(o, spec, child)
    phase, conditions = tr.following(o.status, spec.generation, child, o.pods, o.now)
    conditions = _live_energy_condition(o, spec, conditions)
    acts: list[Action] = [Book(_released_booking(o, spec))]
    patch: dict[str, Any] = {}
    before = o.status.get("conditions") or []
    if conditions != before or Phase.of(o.status.get("phase")) is not phase:
        patch.update(phase=str(phase), conditions=conditions)
        was_unschedulable = any(c.get("reason") == Reason.UNSCHEDULABLE for c in before)
        now_unschedulable = any(c.get("reason") == Reason.UNSCHEDULABLE for c in conditions)
        if now_unschedulable and not was_unschedulable:
            msg = next(c["message"] for c in conditions if c.get("reason") == Reason.UNSCHEDULABLE)
            acts.append(Emit(Reason.UNSCHEDULABLE, msg, warning=True))
    live = o.live_energy
    current = o.status.get("energy") or {}
    if live is not None and not (current.get("live") and round(live.joules, 3) == current.get("joules")):
        patch["energy"] = {
            "joules": round(live.joules, 3),
            "kilowattHours": f"{live.joules / 3.6e6:.3f}",
            "source": live.meter,
            "live": True,
            "updatedAt": rfc3339(o.now),
        }
    if patch:
        acts.append(WriteStatus(patch))
    poll = RUNNING_POLL
    if o.settings.live_energy_interval is not None:
        poll = min(poll, o.settings.live_energy_interval.total_seconds())
    return [*acts, Requeue(poll)]


def _live_energy_condition(
    o: Observed, spec: TrainingJobSpec, conditions: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Say when Prometheus cannot be read; the job runs on regardless and its final figure comes from
    the trainer's report. A poll that did not ask (between intervals) changes nothing."""
    if o.settings.live_energy_interval is None:
        return conditions
    status: cond.Status
    if o.live_energy_error is not None:
        why = f"Live energy unavailable: {o.live_energy_error}. The final figure comes from the trainer's report."
        status, reason = "False", Reason.PROMETHEUS_UNAVAILABLE
    elif o.live_energy is not None:
        why = f"Energy so far read from Prometheus ({o.live_energy.meter})."
        status, reason = "True", Reason.LIVE_ENERGY_MEASURED
    else:
        return conditions
    return cond.set_condition(
        conditions, cond.LIVE_ENERGY_AVAILABLE, status, reason, why, generation=spec.generation, now=o.now
    )


def _released_booking(o: Observed, spec: TrainingJobSpec) -> Reservation | None:
    """A released job holds its GPUs from its start for its expected duration; one running past it
    keeps them until the next slot."""
    current = decision_from_status(spec.key, o.status)
    if current is None:
        return None
    started = o.status.get("startTime")
    start = parse_rfc3339(str(started)) if started else current.start
    end = max(start + current.expected_duration, o.now + o.settings.planner.slot)
    return Reservation(current.region, start, end, spec.gpus)


def _finish(o: Observed, spec: TrainingJobSpec, child: ChildState | None) -> list[Action]:
    inputs = o.accounting
    if inputs is None:  # the front-end gathers it when `needs` says so; look again
        return [Requeue(0.0)]
    acc = settle(o.status, inputs.energy, inputs.windows, inputs.actual, inputs.baseline)
    phase, patch = tr.finished(o.status, spec.generation, child, acc, o.now)
    region = str(o.status.get("region") or "")
    reason = Reason.JOB_SUCCEEDED if phase is Phase.SUCCEEDED else Reason.JOB_FAILED
    refused = [
        Emit(Reason.REPORT_REFUSED, f"pod {pod}: trainer report refused ({why}); counted as reportless", True)
        for pod, why in inputs.energy.refusals
    ]
    # Only now, accounted, may the child (and its pods' reports) go: its TTL is set after the status
    # write, so a crash in between leaves the Job in place rather than unaccounted.
    ttl = ttl_patch(spec.job) if child is not None else None
    return [
        WriteStatus(patch),
        Book(None),
        RecordFinish(str(phase), region, acc),
        Emit(reason, acc.summary(str(phase)), warning=phase is Phase.FAILED),
        *refused,
        *([PatchChild(ttl)] if ttl else []),
        Done(),
    ]
