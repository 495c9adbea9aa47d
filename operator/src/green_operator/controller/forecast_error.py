"""How far each region's forecasts were off: what was forecast for a slot against what the provider
later reported for it, by lead time. Pure: values in, error samples out (the forecast cache does the I/O).

- ``record``: a live forecast, sampled on the planner's slot grid, with its issue time (when the
  provider's data was fetched). One issue per region and slot is kept: a burst of decisions in one
  slot, or a cached answer served again, is not counted twice.
- ``score``: the provider's later account of past slots (its history: measured, or its own estimate
  of what happened). Every recorded forecast of a slot now covered is scored once,
  ``|forecast - actual| / actual``, and labelled by its lead time (the slot's start minus the issue
  time) in ``LEADS`` buckets; the slot is then forgotten. Slots that no history covers within
  ``keep`` are dropped unscored, so memory stays bounded (regions x slots of the horizon x issues).

The ratio is relative to the actual value, so grids with low and high intensity compare; an actual
of 0 (possible for a fully renewable hour) has no relative error and is skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

LEADS: tuple[tuple[timedelta, str], ...] = (
    (timedelta(hours=1), "0-1h"),
    (timedelta(hours=6), "1-6h"),
    (timedelta(hours=24), "6-24h"),
    (timedelta(hours=48), "24-48h"),
)
BEYOND = "48h+"
LEAD_LABELS = (*(label for _, label in LEADS), BEYOND)
DEFAULT_KEEP = timedelta(hours=96)


def lead_label(lead: timedelta) -> str:
    """The bucket of a lead time; a slot that began before the issue (the current one) counts as 0."""
    for bound, label in LEADS:
        if lead < bound:
            return label
    return BEYOND


@dataclass(frozen=True)
class ErrorSample:
    region: str
    lead: str
    """One of ``LEAD_LABELS``."""
    ratio: float
    """|forecast - actual| / actual."""


@dataclass
class _Region:
    forecasts: dict[datetime, list[tuple[datetime, float]]] = field(default_factory=dict)
    """Per slot start: (issue time, forecast value) of every recorded issue that covered it."""
    last_start: datetime | None = None
    last_issued: datetime | None = None


class ForecastErrorTracker:
    def __init__(self, slot: timedelta, keep: timedelta = DEFAULT_KEEP) -> None:
        if slot <= timedelta(0):
            raise ValueError(f"slot must be positive, got {slot}")
        self.slot = slot
        self.keep = keep
        self._regions: dict[str, _Region] = {}

    def record(self, region: str, issued: datetime, start: datetime, values: Sequence[float | None]) -> bool:
        """Remember a forecast of the slots from ``start`` on (None: not a live value, not scored).
        False when this region already has an issue for this slot, or this very issue."""
        r = self._regions.setdefault(region, _Region())
        if r.last_start == start or r.last_issued == issued:
            return False
        r.last_start, r.last_issued = start, issued
        for i, v in enumerate(values):
            if v is not None:
                r.forecasts.setdefault(start + i * self.slot, []).append((issued, v))
        return True

    def pending_since(self, region: str) -> datetime | None:
        """The first slot with a forecast still waiting for its actual, or None."""
        r = self._regions.get(region)
        return min(r.forecasts) if r is not None and r.forecasts else None

    def score(self, region: str, start: datetime, actual: Sequence[float | None], now: datetime) -> list[ErrorSample]:
        """Score the recorded forecasts of the slots from ``start`` on that ``actual`` covers
        (None: no actual for that slot); then drop slots older than ``keep`` before ``now``."""
        r = self._regions.get(region)
        if r is None:
            return []
        out: list[ErrorSample] = []
        for i, a in enumerate(actual):
            t = start + i * self.slot
            if a is None or a <= 0 or t + self.slot > now or t not in r.forecasts:
                continue
            for issued, f in r.forecasts.pop(t):
                out.append(ErrorSample(region, lead_label(t - issued), abs(f - a) / a))
        cutoff = now - self.keep
        for t in [t for t in r.forecasts if t < cutoff]:
            del r.forecasts[t]
        return out
