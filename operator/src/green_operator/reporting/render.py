"""The report as a text table (for people) or a JSON document (for scripts)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from green_operator.times import format_duration, rfc3339

from .rows import JobRow, Totals

_MISSING = "-"
HEADERS = (
    "NAMESPACE",
    "NAME",
    "PHASE",
    "REGION",
    "PLANNED",
    "STARTED",
    "DURATION",
    "KWH",
    "METER",
    "CO2 G",
    "BASELINE G",
    "SAVED G",
    "SAVED %",
    "AT RISK",
    "DATA",
)
_RIGHT = {"DURATION", "KWH", "CO2 G", "BASELINE G", "SAVED G", "SAVED %"}


def _when(t: datetime | None) -> str:
    return _MISSING if t is None else t.strftime("%m-%d %H:%M")


def _num(v: float | None, digits: int, signed: bool = False) -> str:
    if v is None:
        return _MISSING
    return f"{v:+.{digits}f}" if signed else f"{v:.{digits}f}"


def _pct(v: float | None) -> str:
    return _MISSING if v is None else f"{v:+.1f}%"


def _duration(row: JobRow, now: datetime) -> str:
    d = row.duration(now)
    if d is not None:
        return format_duration(d) + ("+" if row.phase == "Running" else "")
    if row.expected_duration is not None:
        return "~" + format_duration(row.expected_duration)
    return _MISSING


def _meter(row: JobRow) -> str:
    if row.meter is None:
        return _MISSING
    if row.estimated_pods and row.meter != "estimate":
        return f"{row.meter} ({row.estimated_pods} pod(s) est.)"
    return row.meter


def table_cells(row: JobRow, now: datetime) -> tuple[str, ...]:
    return (
        row.namespace,
        row.name,
        row.phase,
        row.region or _MISSING,
        _when(row.planned_start),
        _when(row.start_time),
        _duration(row, now),
        _num(row.energy_kwh, 3),
        _meter(row),
        _num(row.grams, 1),
        _num(row.baseline_grams, 1),
        _num(row.saved_grams, 1, signed=True),
        _pct(row.saved_percent),
        "yes" if row.deadline_at_risk else "no",
        row.data_source or _MISSING,
    )


def _total_cells(t: Totals) -> tuple[str, ...]:
    return (
        "TOTAL",
        f"{t.with_results}/{t.jobs} jobs",
        "",
        "",
        "",
        "",
        "",
        f"{t.energy_kwh:.3f}",
        f"{t.estimated_energy_jobs} est." if t.estimated_energy_jobs else "",
        f"{t.grams:.1f}",
        f"{t.baseline_grams:.1f}",
        f"{t.saved_grams:+.1f}",
        _pct(t.saved_percent),
        f"{t.deadline_at_risk} job(s)" if t.deadline_at_risk else "",
        "",
    )


def format_table(rows: Sequence[JobRow], totals: Totals, now: datetime, notes: Sequence[str] = ()) -> str:
    """Aligned columns, a totals line, then notes (skipped fields, how the totals are made)."""
    body = [table_cells(r, now) for r in rows]
    total = _total_cells(totals)
    widths = [max(len(c[i]) for c in (HEADERS, *body, total)) for i in range(len(HEADERS))]

    def line(cells: Sequence[str]) -> str:
        parts = [c.rjust(w) if h in _RIGHT else c.ljust(w) for c, w, h in zip(cells, widths, HEADERS, strict=True)]
        return "  ".join(parts).rstrip()

    out = [line(HEADERS), *(line(c) for c in body)]
    out.append("-" * len(line(HEADERS)))
    out.append(line(total))
    out.append(
        f"Totals add the {totals.with_results} of {totals.jobs} job(s) with measured results. SAVED is against "
        "running immediately (negative: the plan emitted more). Times UTC; DURATION ~planned, + still running."
    )
    for r in rows:
        out.extend(f"note: {r.key}: {p}" for p in r.problems)
    out.extend(f"note: {n}" for n in notes)
    return "\n".join(out)


def _t(t: datetime | None) -> str | None:
    return None if t is None else rfc3339(t)


def _secs(d: timedelta | None) -> float | None:
    return None if d is None else d.total_seconds()


def row_json(row: JobRow, now: datetime) -> dict[str, Any]:
    return {
        "namespace": row.namespace,
        "name": row.name,
        "phase": row.phase,
        "region": row.region,
        "created": _t(row.created),
        "plannedStart": _t(row.planned_start),
        "latestStart": _t(row.latest_start),
        "startTime": _t(row.start_time),
        "completionTime": _t(row.completion_time),
        "durationSeconds": _secs(row.duration(now)),
        "expectedDurationSeconds": _secs(row.expected_duration),
        "energyJoules": row.energy_joules,
        "energyKWh": row.energy_kwh,
        "meter": row.meter,
        "estimatedPods": row.estimated_pods,
        "emissionsGrams": row.grams,
        "baselineGrams": row.baseline_grams,
        "savedGrams": row.saved_grams,
        "savedPercent": row.saved_percent,
        "intensity": row.intensity,
        "planIntensity": row.plan_intensity,
        "baselineIntensity": row.baseline_intensity,
        "baselineRegion": row.baseline_region,
        "baselineStart": _t(row.baseline_start),
        "expectedGrams": row.expected_grams,
        "planBaselineGrams": row.plan_baseline_grams,
        "provider": row.provider,
        "dataSource": row.data_source,
        "deadlineAtRisk": row.deadline_at_risk,
        "reason": row.reason,
        "inTotals": row.has_results,
        "problems": list(row.problems),
    }


def totals_json(t: Totals) -> dict[str, Any]:
    return {
        "jobs": t.jobs,
        "jobsWithResults": t.with_results,
        "energyKWh": t.energy_kwh,
        "emissionsGrams": t.grams,
        "baselineGrams": t.baseline_grams,
        "savedGrams": t.saved_grams,
        "savedPercent": t.saved_percent,
        "deadlineAtRisk": t.deadline_at_risk,
        "estimatedEnergyJobs": t.estimated_energy_jobs,
    }


def report_json(
    rows: Sequence[JobRow],
    totals: Totals,
    now: datetime,
    *,
    namespace: str | None,
    since: datetime | None,
    chart: dict[str, Any] | None = None,
    notes: Sequence[str] = (),
) -> dict[str, Any]:
    return {
        "generatedAt": rfc3339(now),
        "namespace": namespace,
        "since": _t(since),
        "rows": [row_json(r, now) for r in rows],
        "totals": totals_json(totals),
        "chart": chart,
        "notes": list(notes),
    }
