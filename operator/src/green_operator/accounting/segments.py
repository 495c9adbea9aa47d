"""Accounting for interruptible jobs: every segment counts.

The paused segments' energy comes from the reports the operator read from their pods before it let
them go (status.progress); the last segment's from its pods, as for any job. Emissions use the
region's intensity over the segments only (not the pauses between them), weighted by their length;
the baseline is the same energy run in one piece from the baseline's start.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from green_operator.carbon.provider import ForecastResult
from green_operator.times import parse_rfc3339

from .settle import Accounting, AccountingWindows, EnergyTotal, Window, settle


def spans(status: Mapping[str, Any], completed: datetime | None, now: datetime) -> list[tuple[datetime, datetime]]:
    """The segments the job ran: Done ones as recorded, a Running one up to `completed` (or now)."""
    out = []
    for s in status.get("segments") or []:
        try:
            start = parse_rfc3339(str(s["start"]))
            if s.get("state") == "Done":
                out.append((start, parse_rfc3339(str(s["end"]))))
            elif s.get("state") == "Running":
                out.append((start, max(completed or now, start)))
        except (KeyError, ValueError):
            continue
    return out


def segmented_windows(
    status: Mapping[str, Any], completed: datetime | None, default_region: str, now: datetime
) -> AccountingWindows:
    """The actual window spans the first segment's start to the end (history is fetched once for
    it); the baseline's is as long as the segments together, from the baseline's start."""
    ran = spans(status, completed, now)
    start = ran[0][0] if ran else now
    end = max(ran[-1][1] if ran else now, start + timedelta(seconds=1))
    busy = sum((b - a for a, b in ran), timedelta(0)) or timedelta(seconds=1)
    plan = status.get("plan") or {}
    region = str(status.get("region") or default_region)
    b_region = str(plan.get("baselineRegion") or region)
    b_start = parse_rfc3339(plan["baselineStart"]) if plan.get("baselineStart") else start
    return AccountingWindows(
        Window(region, start, end, True), Window(b_region, b_start, b_start + busy, b_start + busy <= now)
    )


def with_paused_energy(energy: EnergyTotal, status: Mapping[str, Any]) -> EnergyTotal:
    """The last segment's energy plus what the paused segments' pods reported."""
    progress = status.get("progress") or {}
    joules = float(progress.get("energyJoules") or 0.0)
    if not joules:
        return energy
    meters = sorted({energy.meter, *(str(r.get("meter") or "") for r in progress.get("segmentReports") or [])} - {""})
    meter = meters[0] if len(meters) == 1 else f"mixed({','.join(m for m in meters if m != 'none')})"
    return replace(energy, joules=energy.joules + joules, meter=meter)


def settle_segments(
    status: Mapping[str, Any],
    energy: EnergyTotal,
    windows: AccountingWindows,
    actual: ForecastResult,
    baseline: ForecastResult,
    ran: Sequence[tuple[datetime, datetime]],
) -> Accounting:
    """`settle`, with the intensity averaged over the segments that ran (weighted by length)."""
    acc = settle(status, with_paused_energy(energy, status), windows, actual, baseline)
    weighted = 0.0
    total = 0.0
    for a, b in ran:
        mean = actual.series.mean(a, max(b, a + timedelta(seconds=1)))
        if mean is None:
            continue
        seconds = max((b - a).total_seconds(), 1.0)
        weighted += mean * seconds
        total += seconds
    return replace(acc, intensity=weighted / total) if total else acc
