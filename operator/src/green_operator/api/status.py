"""Pure translation between planner decisions, child Job state and the GreenTrainingJob status."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from green_operator.api import conditions as cond
from green_operator.api.conditions import Reason
from green_operator.api.phase import Phase
from green_operator.carbon.provider import DataSource, ForecastResult
from green_operator.planner import Decision, Reservation
from green_operator.times import format_duration, parse_duration, parse_rfc3339, rfc3339


def plan_fields(decision: Decision, source: ForecastResult | None, now: datetime) -> dict[str, Any]:
    return {
        "intensityForecast": round(decision.forecast_intensity, 2),
        "baselineIntensity": round(decision.baseline_intensity, 2),
        "baselineRegion": decision.baseline_region,
        "baselineStart": rfc3339(decision.baseline_start),
        "expectedGrams": round(decision.expected_grams, 2),
        "baselineGrams": round(decision.baseline_grams, 2),
        "expectedDuration": format_duration(decision.expected_duration),
        "provider": source.provider if source else "",
        "dataSource": str(source.source) if source else "",
        "decidedAt": rfc3339(now),
        "reason": decision.reason,
        "powerLimitWatts": decision.power_limit_watts,
        "deadlineAtRisk": decision.deadline_at_risk,
        "extrapolatedHours": round(decision.extrapolated.total_seconds() / 3600, 2),
    }


def decision_from_status(key: str, status: Mapping[str, Any]) -> Decision | None:
    """Rebuild the current plan from status (for hysteresis after a restart); None if there is none."""
    plan = status.get("plan") or {}
    try:
        return Decision(
            key=key,
            region=status["region"],
            start=parse_rfc3339(status["plannedStart"]),
            power_limit_watts=plan.get("powerLimitWatts"),
            expected_duration=parse_duration(plan["expectedDuration"]),
            expected_grams=float(plan["expectedGrams"]),
            forecast_intensity=float(plan["intensityForecast"]),
            baseline_region=plan["baselineRegion"],
            baseline_start=parse_rfc3339(plan["baselineStart"]),
            baseline_grams=float(plan["baselineGrams"]),
            baseline_intensity=float(plan["baselineIntensity"]),
            deadline_at_risk=bool(plan.get("deadlineAtRisk", False)),
            reason=str(plan.get("reason", "")),
            extrapolated=timedelta(hours=float(plan.get("extrapolatedHours") or 0.0)),
        )
    except (KeyError, TypeError, ValueError):
        return None


def reservation_from_status(status: Mapping[str, Any], gpus: int) -> Reservation | None:
    """The GPUs a job holds according to its status (None for finished or unplanned jobs)."""
    phase = Phase.of(status.get("phase"))
    if (phase is not None and phase.terminal) or not status.get("region") or not status.get("plannedStart"):
        return None
    if status.get("segments"):
        return _segment_reservation(status, gpus)
    try:
        start = parse_rfc3339(status.get("startTime") or status["plannedStart"])
        duration = parse_duration((status.get("plan") or {})["expectedDuration"])
    except (KeyError, ValueError):
        return None
    return Reservation(status["region"], start, start + duration, gpus)


def _segment_reservation(status: Mapping[str, Any], gpus: int) -> Reservation | None:
    """An interruptible job holds its running segment's GPUs, or its next planned segment's."""
    for state in ("Running", "Planned"):
        for s in status.get("segments") or []:
            if s.get("state") == state:
                try:
                    return Reservation(status["region"], parse_rfc3339(s["start"]), parse_rfc3339(s["end"]), gpus)
                except (KeyError, ValueError):
                    return None
    return None


def carbon_condition(
    existing: Sequence[Mapping[str, Any]], results: Sequence[ForecastResult], generation: int, now: datetime
) -> list[dict[str, Any]]:
    """CarbonDataAvailable: True when every candidate region's data for the present is fresh live data,
    or the trace file the region is configured with (reason TraceData: replayed, not measured).

    A provider's forecast rarely spans the whole planning horizon (Electricity Maps ~72 h, UK 48 h);
    the rest is filled from traces or static factors. That is said in the message, but only a fallback
    in force now (the provider failing) turns the condition False, with the provider's error. A trace
    standing in for a failing live provider is such a fallback.
    """

    def by_trace(r: ForecastResult) -> bool:
        return r.configured is DataSource.TRACE and r.source_at(now) is DataSource.TRACE

    degraded = [r for r in results if r.stale or not (r.source_at(now) in (DataSource.LIVE, None) or by_trace(r))]
    if not degraded:
        parts = []
        for r in results:
            if by_trace(r):
                until = r.spans[0].end if len(r.spans) > 1 else None
                tail = f" until {rfc3339(until)}, then {r.provider}" if until else ""
                parts.append(f"{r.region}: trace data from {r.provider.split('+')[0]} (configured){tail}")
                continue
            until = r.live_until
            tail = f" until {rfc3339(until)}, then {r.provider}" if r.source is not DataSource.LIVE and until else ""
            parts.append(f"{r.region}: live data from {r.provider.split('+')[0]}{tail}")
        return cond.set_condition(
            existing,
            cond.CARBON_DATA_AVAILABLE,
            "True",
            Reason.TRACE_DATA if any(by_trace(r) for r in results) else Reason.LIVE_DATA,
            "; ".join(parts)[:1024],
            generation=generation,
            now=now,
        )
    parts = []
    for r in degraded:
        src = r.source_at(now) or r.source
        what = "stale data" if r.stale and src in (DataSource.LIVE, DataSource.CACHED) else f"{src} data"
        parts.append(f"{r.region}: {what} from {r.provider}" + (f" ({r.error})" if r.error else ""))
    only_stale = all((r.source_at(now) or r.source) in (DataSource.LIVE, DataSource.CACHED) for r in degraded)
    return cond.set_condition(
        existing,
        cond.CARBON_DATA_AVAILABLE,
        "False",
        Reason.STALE_DATA if only_stale else Reason.FALLBACK_DATA,
        "; ".join(parts)[:1024],
        generation=generation,
        now=now,
    )
