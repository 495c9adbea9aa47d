"""The carbon AdmissionCheck's decision for one Workload. Pure: values in, a `Verdict` out.

See docs/design/kueue-admission.md. In short, once Kueue has reserved quota and our check is
`Pending`:

- not ours (no estimated duration): `Ready` at once, saying so;
- a malformed annotation: `Ready` at once (carbon-blind) and a Warning Event naming the fix;
- ours: plan (or keep the plan kept in the Workload's annotation for this reservation); while the
  start is more than the pending window away, deactivate the Workload until the window opens
  (`spec.active: false`: Kueue evicts it and gives the quota back; a `Retry` in Kueue v0.17 keeps
  the quota for its whole backoff, see the decision record); `Pending` in the last window, `Ready`
  at the planned start, and at the latest start whatever else holds. `Ready` carries
  `podSetUpdates` that add only absent keys.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from green_operator.api.conditions import Reason
from green_operator.api.manifests import ANN_INTENSITY, ANN_POWER_LIMIT, ANN_REGION
from green_operator.planner import Decision, JobRequest, PlannerSettings, Reservation, plan
from green_operator.planner.reasons import format_time
from green_operator.times import format_duration, parse_rfc3339, rfc3339

from .inputs import Malformed, Managed, Unmanaged, read_inputs
from .workload import WorkloadView

READY, PENDING = "Ready", "Pending"
START_TOLERANCE = timedelta(seconds=1)
INVALID_ANNOTATION = "InvalidCarbonAnnotation"
DEFERRED = "CarbonDeferred"


@dataclass(frozen=True)
class KueueSettings:
    pending_window: timedelta = timedelta(minutes=5)
    """How long before its planned start a workload keeps its quota (check `Pending`)."""
    max_hold: timedelta = timedelta(hours=1)
    """The longest a Workload stays deactivated at once: a held workload is re-planned (on its new
    quota reservation) at least this often."""


@dataclass(frozen=True)
class Situation:
    """Everything one decision reads, gathered by the controller."""

    wl: WorkloadView
    check: str
    """Our AdmissionCheck's name on this workload."""
    now: datetime
    region: str
    """The region of the flavor Kueue assigned (fixed before checks run)."""
    forecast: Any | None
    """The region's `RegionForecast` (None: no carbon data could be had)."""
    bookings: Mapping[str, Reservation] = field(default_factory=dict)
    """Every other booking in the capacity ledger."""
    planner: PlannerSettings = field(default_factory=PlannerSettings)
    settings: KueueSettings = field(default_factory=KueueSettings)


@dataclass(frozen=True)
class CheckUpdate:
    state: str
    message: str
    requeue_after_seconds: int | None = None
    pod_set_updates: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True)
class Event:
    reason: str
    message: str
    warning: bool = False


@dataclass(frozen=True)
class Verdict:
    update: CheckUpdate | None = None
    plan: Mapping[str, Any] | None = None
    """A new plan for the Workload's annotation (None: keep what is there)."""
    events: tuple[Event, ...] = ()
    booking: Reservation | None = None
    rebook: bool = False
    """Replace this workload's booking in the capacity ledger with `booking`."""
    wake_after: float | None = None
    """Look again after this many seconds (a start inside the pending window)."""
    hold_until: datetime | None = None
    """Deactivate the Workload (its quota goes back to Kueue) and reactivate it at this time."""


def decide(s: Situation) -> Verdict:
    wl = s.wl
    mine = wl.checks.get(s.check)
    if wl.finished:
        return Verdict(rebook=True)
    if mine is None or wl.quota_reserved_at is None or wl.evicted or not wl.active:
        return Verdict()  # nothing to decide until Kueue reserves quota (a held plan stays booked)
    if mine.state == READY:
        return Verdict(rebook=True)  # admitted: its pods hold the GPUs now
    if mine.state != PENDING:
        return Verdict()  # Retry or Rejected (set by someone else): Kueue is about to evict it
    inputs = read_inputs(wl)
    match inputs:
        case Unmanaged():
            return Verdict(CheckUpdate(READY, inputs.message), rebook=True)
        case Malformed():
            text = f"carbon-blind, admitted at once: {inputs.message}"
            return Verdict(CheckUpdate(READY, text), events=(Event(INVALID_ANNOTATION, text, True),), rebook=True)
    assert isinstance(inputs, Managed)
    return _managed(s, inputs)


def _managed(s: Situation, m: Managed) -> Verdict:
    wl, now = s.wl, s.now
    latest = m.latest_start
    reserved = rfc3339(wl.quota_reserved_at) if wl.quota_reserved_at else ""
    previous = decision_from_plan(wl.key, wl.plan) if wl.plan else None
    same_region = previous is not None and previous.region == s.region
    new_plan: dict[str, Any] | None = None
    if previous is not None and same_region and (wl.plan or {}).get("reservedAt") == reserved:
        d = previous  # this reservation was planned already (an operator or Kueue restart)
    elif now + START_TOLERANCE >= latest:
        return _ready(s, m, None, f"its latest start {format_time(latest, now)} has come (the deadline holds)")
    elif s.forecast is None:
        if previous is not None and same_region:
            d = previous  # no carbon data: the plan made with it stands (never past the latest start)
        else:
            return _ready(s, m, None, f"no carbon forecast for {s.region}: admitted now, carbon-blind")
    else:
        request = JobRequest(
            key=wl.key,
            gpus=m.gpus,
            duration=m.duration,
            earliest_start=now,
            deadline=m.deadline,
            regions=(s.region,),
            power=m.power,
            previous=previous if same_region else None,
        )
        others = [b for k, b in s.bookings.items() if b.end > now]
        d = plan([request], [s.forecast], others, now, s.planner)[0]
        new_plan = plan_record(d, latest, now, reserved, wl.flavors)
    start = min(d.start, latest)
    if now + START_TOLERANCE >= start:
        what = "its low-carbon window" if start < latest else "its latest start (the deadline holds)"
        if new_plan is not None and d.start <= now + START_TOLERANCE:
            what = f"no cleaner window before its deadline: {d.reason}"
        return _ready(s, m, d, what, new_plan)
    booking = Reservation(d.region, start, start + d.expected_duration, m.gpus)
    until = f"until {format_time(start, now)} (latest start {format_time(latest, now)})"
    events: tuple[Event, ...] = ()
    if new_plan is not None and (previous is None or previous.start != d.start):
        events = (Event(DEFERRED, f"Held by the carbon check {until}: {d.reason}"),)
    far = start - now - s.settings.pending_window
    if far > timedelta(0):
        hold = min(far, s.settings.max_hold)
        until_active = now + hold
        message = (
            f"Deferred {until} in {d.region}: {d.reason}. The quota goes back to Kueue: the workload is "
            f"inactive until {format_time(until_active, now)} ({format_duration(hold)}), then queued again."
        )
        return Verdict(CheckUpdate(PENDING, message), new_plan, events, booking, True, None, until_active)
    message = f"Starting {format_time(start, now)} in {d.region}, in its low-carbon window; quota held until then."
    wake = max((start - now).total_seconds(), 0.0)
    return Verdict(CheckUpdate(PENDING, message), new_plan, events, booking, True, wake)


def _ready(
    s: Situation, m: Managed, d: Decision | None, what: str, new_plan: Mapping[str, Any] | None = None
) -> Verdict:
    limit = d.power_limit_watts if d is not None else None
    intensity = d.forecast_intensity if d is not None else None
    updates = pod_set_updates(s.wl, s.region, limit, intensity)
    watts = "" if limit is None or m.user_power_limit else f"; GPU power limit {round(limit)} W"
    message = f"Admitted {format_time(s.now, s.now)} in {s.region}: {what}{watts}"
    reason = Reason.LATEST_START_REACHED if "latest start" in what else Reason.WINDOW_REACHED
    return Verdict(CheckUpdate(READY, message, None, updates), new_plan, (Event(reason, message),), None, True)


def pod_set_updates(
    wl: WorkloadView, region: str, limit: float | None, intensity: float | None
) -> tuple[Mapping[str, Any], ...]:
    """One update per pod set adding our annotations, only those its template does not carry:
    Kueue fails a workload whose update conflicts with the template, and a user's value wins."""
    ours = {ANN_REGION: region}
    if limit is not None:
        ours[ANN_POWER_LIMIT] = str(round(limit))
    if intensity is not None:
        ours[ANN_INTENSITY] = f"{intensity:.1f}"
    out = []
    for ps in wl.pod_sets:
        add = {k: v for k, v in ours.items() if k not in ps.annotations}
        if add:
            out.append({"name": ps.name, "annotations": add})
    return tuple(out)


def reactivate_after(wl: WorkloadView, now: datetime) -> float | None:
    """Seconds until a Workload we deactivated is to be queued again (None: not held by us)."""
    if wl.active or wl.held_until is None:
        return None
    return max((wl.held_until - now).total_seconds(), 0.0)


# -- the plan kept in the Workload's annotation ---------------------------------------------------


def plan_record(
    d: Decision, latest: datetime, now: datetime, reserved_at: str, flavors: Sequence[str]
) -> dict[str, Any]:
    return {
        "region": d.region,
        "plannedStart": rfc3339(d.start),
        "latestStart": rfc3339(latest),
        "powerLimitWatts": d.power_limit_watts,
        "expectedSeconds": d.expected_duration.total_seconds(),
        "expectedGrams": round(d.expected_grams, 3),
        "intensity": round(d.forecast_intensity, 3),
        "baselineRegion": d.baseline_region,
        "baselineStart": rfc3339(d.baseline_start),
        "baselineGrams": round(d.baseline_grams, 3),
        "baselineIntensity": round(d.baseline_intensity, 3),
        "atRisk": d.deadline_at_risk,
        "reason": d.reason,
        "decidedAt": rfc3339(now),
        "reservedAt": reserved_at,
        "flavors": list(flavors),
    }


def decision_from_plan(key: str, p: Mapping[str, Any]) -> Decision | None:
    """The plan annotation as a planner Decision (None when it cannot be read: plan afresh)."""
    try:
        limit = p.get("powerLimitWatts")
        return Decision(
            key=key,
            region=str(p["region"]),
            start=parse_rfc3339(str(p["plannedStart"])),
            power_limit_watts=None if limit is None else float(limit),
            expected_duration=timedelta(seconds=float(p["expectedSeconds"])),
            expected_grams=float(p["expectedGrams"]),
            forecast_intensity=float(p["intensity"]),
            baseline_region=str(p["baselineRegion"]),
            baseline_start=parse_rfc3339(str(p["baselineStart"])),
            baseline_grams=float(p["baselineGrams"]),
            baseline_intensity=float(p["baselineIntensity"]),
            deadline_at_risk=bool(p.get("atRisk")),
            reason=str(p.get("reason", "")),
        )
    except (KeyError, TypeError, ValueError):
        return None
