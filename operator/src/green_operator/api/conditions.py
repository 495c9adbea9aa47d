"""Status conditions with Kubernetes semantics (metav1.Condition).

`lastTransitionTime` moves only when `status` changes; `observedGeneration` records the spec it
describes; reasons are CamelCase constants. Functions return new lists: the status is written as a
whole list because a JSON merge patch replaces lists.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from green_operator.times import rfc3339

Status = Literal["True", "False", "Unknown"]

# Condition types.
PLANNED = "Planned"
DEFERRED = "Deferred"
RUNNING = "Running"
SUCCEEDED = "Succeeded"
FAILED = "Failed"
DEADLINE_AT_RISK = "DeadlineAtRisk"
CARBON_DATA_AVAILABLE = "CarbonDataAvailable"
LIVE_ENERGY_AVAILABLE = "LiveEnergyAvailable"
"""While released, with Prometheus configured: whether the running job's energy so far can be read."""

ORDER = (PLANNED, DEFERRED, RUNNING, SUCCEEDED, FAILED, DEADLINE_AT_RISK, CARBON_DATA_AVAILABLE, LIVE_ENERGY_AVAILABLE)


class Reason:
    """CamelCase reasons used across conditions and Events."""

    PLANNED = "Planned"
    REPLANNED = "Replanned"
    INVALID_SPEC = "InvalidSpec"
    WAITING_FOR_WINDOW = "WaitingForLowCarbonWindow"
    WINDOW_REACHED = "LowCarbonWindowReached"
    LATEST_START_REACHED = "LatestStartReached"
    STARTED_NOW = "StartedImmediately"
    JOB_CREATED = "JobCreated"
    PODS_PENDING = "PodsPending"
    PODS_RUNNING = "PodsRunning"
    JOB_COMPLETE = "JobComplete"
    JOB_SUCCEEDED = "JobSucceeded"
    JOB_FAILED = "JobFailed"
    JOB_MISSING = "JobMissing"
    UNSCHEDULABLE = "Unschedulable"
    CHILD_CONFLICT = "JobNameTaken"
    TEMPLATE_CHANGED = "TemplateChanged"
    MOVED_ASIDE = "MovedAside"
    NOT_FINISHED = "NotFinished"
    DEADLINE_FEASIBLE = "DeadlineFeasible"
    DEADLINE_INFEASIBLE = "DeadlineInfeasible"
    STARTED_LATE = "StartedAfterLatestStart"
    REPORT_REFUSED = "TrainerReportRefused"
    """A pod's termination message was refused as a trainer report (accounting/reports.py)."""
    LIVE_DATA = "LiveData"
    TRACE_DATA = "TraceData"
    """The region is configured to plan on a carbon trace file, and does: by design, not a fallback."""
    FALLBACK_DATA = "FallbackData"
    STALE_DATA = "StaleData"
    LIVE_ENERGY_MEASURED = "LiveEnergyMeasured"
    PROMETHEUS_UNAVAILABLE = "PrometheusUnavailable"
    PAUSED = "Paused"
    RESUMED = "Resumed"
    NO_PROGRESS = "NoProgressAcrossPause"
    GPUS_TAKEN = "GPUsTaken"


def find(conditions: Sequence[Mapping[str, Any]] | None, ctype: str) -> Mapping[str, Any] | None:
    return next((c for c in conditions or () if c.get("type") == ctype), None)


def is_true(conditions: Sequence[Mapping[str, Any]] | None, ctype: str) -> bool:
    c = find(conditions, ctype)
    return c is not None and c.get("status") == "True"


def set_condition(
    conditions: Sequence[Mapping[str, Any]] | None,
    ctype: str,
    status: Status,
    reason: str,
    message: str,
    *,
    generation: int,
    now: datetime,
) -> list[dict[str, Any]]:
    """Return the list with `ctype` set; other conditions are kept, sorted in a stable order."""
    if not reason or not reason[0].isupper() or not reason.isalnum():
        raise ValueError(f"condition reason must be CamelCase, got {reason!r}")
    old = find(conditions, ctype)
    transition = now if old is None or old.get("status") != status else old.get("lastTransitionTime", now)
    new = {
        "type": ctype,
        "status": status,
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
        "lastTransitionTime": transition if isinstance(transition, str) else rfc3339(transition),
    }
    rest = [dict(c) for c in conditions or () if c.get("type") != ctype]
    return sorted([*rest, new], key=_order)


def _order(c: Mapping[str, Any]) -> tuple[int, str]:
    t = str(c.get("type"))
    return (ORDER.index(t) if t in ORDER else len(ORDER), t)
