"""Each region's carbon intensity over the report's span, as labelled curves for the chart.

History (what held) up to now, the forecast beyond it (for jobs still waiting for their window),
both from the carbon service and its fallback chain. Every stretch keeps the source it came from, so
a trace or static fallback is labelled as such on the chart rather than passed off as measured data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from green_operator.carbon.provider import DataSource, ForecastResult


@dataclass(frozen=True)
class Curve:
    """A step function: ``values[i]`` holds from ``times[i]`` to ``times[i + 1]`` (one more time than values)."""

    times: tuple[datetime, ...]
    values: tuple[float, ...]
    source: str
    """live, cached, trace or static."""
    provider: str
    forecast: bool
    configured: str = DataSource.LIVE
    """The source the region is configured with (ForecastResult.configured)."""

    @property
    def by_trace(self) -> bool:
        """The region's configured trace file: replayed data, but by design, not a fallback."""
        return self.source == DataSource.TRACE and self.configured == DataSource.TRACE

    @property
    def fallback(self) -> bool:
        return self.source != DataSource.LIVE and not self.by_trace

    @property
    def label(self) -> str:
        kind = "forecast" if self.forecast else "history"
        if self.fallback:
            return f"{kind}: {self.source} fallback ({self.provider})"
        if self.by_trace:
            return f"{kind}: trace ({self.provider})"
        return f"{kind}: {self.provider}"


class IntensitySource(Protocol):
    """What the chart needs from the carbon service (CarbonService satisfies it)."""

    def history(self, region: str, start: datetime, end: datetime) -> ForecastResult: ...

    def forecast(self, region: str, start: datetime, end: datetime) -> ForecastResult: ...


def curves_from_result(result: ForecastResult, start: datetime, end: datetime, *, forecast: bool) -> list[Curve]:
    """One curve per stretch of the answer that came from one source, clipped to [start, end)."""
    out: list[Curve] = []
    spans = result.spans or ()
    if not spans and result.series.points:
        # An answer without span bookkeeping: one curve under the answer's (worst) source.
        pieces = [(start, end, str(result.source), result.provider)]
    else:
        pieces = [(max(s.start, start), min(s.end, end), str(s.source), s.provider) for s in spans]
    for a, b, source, provider in pieces:
        if b <= a:
            continue
        pts = result.series.window(a, b).points
        if not pts:
            continue
        times = (*tuple(max(p.start, a) for p in pts), b)
        values = tuple(p.grams_per_kwh for p in pts)
        out.append(Curve(times, values, source, provider, forecast, str(result.configured)))
    return out


def region_curves(
    source: IntensitySource, region: str, start: datetime, end: datetime, now: datetime
) -> tuple[list[Curve], list[str]]:
    """History over [start, min(end, now)), forecast over [now, end) when the span reaches the future.

    Returns the curves and notes; a region the service cannot answer for (not configured) gives no
    curves and a note instead of failing the whole report.
    """
    curves: list[Curve] = []
    notes: list[str] = []
    parts: list[tuple[datetime, datetime, bool]] = []
    if start < min(end, now):
        parts.append((start, min(end, now), False))
    if end > max(start, now):
        parts.append((max(start, now), end, True))
    for a, b, is_forecast in parts:
        try:
            result = (source.forecast if is_forecast else source.history)(region, a, b)
        except LookupError as exc:  # UnknownRegionError: the region is not in this configuration
            return [], [f"{region}: no intensity curve ({exc})"]
        curves.extend(curves_from_result(result, a, b, forecast=is_forecast))
        if result.degraded and result.error:
            kind = "forecast" if is_forecast else "history"
            notes.append(f"{region} {kind}: {result.error}")
    return curves, notes
