"""The one currency of carbon data: intensity series in gCO2eq/kWh on UTC timestamps.

Every provider converts into these types at its boundary, so nothing downstream ever sees
lbs/MWh, naive datetimes or provider-specific JSON.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum


class SignalKind(StrEnum):
    """What an intensity value means: grid average (incl. lifecycle) or marginal emissions (MOER)."""

    AVERAGE = "average"
    MARGINAL = "marginal"


@dataclass(frozen=True, slots=True)
class IntensityPoint:
    """Carbon intensity holding from ``start`` until the next point (or ``start + step``)."""

    start: datetime
    grams_per_kwh: float
    provider: str
    signal: SignalKind = SignalKind.AVERAGE
    estimated: bool = False
    fetched_at: datetime | None = None

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.start.utcoffset() != timedelta(0):
            raise ValueError(f"IntensityPoint.start must be UTC-aware, got {self.start!r}")


@dataclass(frozen=True)
class IntensitySeries:
    """A step function of intensity over time for one grid zone, sorted by start."""

    zone: str
    points: tuple[IntensityPoint, ...]
    step: timedelta = timedelta(hours=1)
    _starts: tuple[datetime, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        starts = tuple(p.start for p in self.points)
        if any(b <= a for a, b in itertools.pairwise(starts)):
            raise ValueError(f"series for zone {self.zone!r} is not strictly increasing in time")
        object.__setattr__(self, "_starts", starts)

    def __len__(self) -> int:
        return len(self.points)

    @property
    def start(self) -> datetime | None:
        return self.points[0].start if self.points else None

    @property
    def end(self) -> datetime | None:
        """End of the last point's interval."""
        return self.points[-1].start + self.step if self.points else None

    def covers(self, start: datetime, end: datetime) -> bool:
        s, e = self.start, self.end
        return s is not None and e is not None and s <= start and e >= end

    def value_at(self, when: datetime) -> float | None:
        """The intensity in force at ``when``, or None outside the series."""
        i = bisect.bisect_right(self._starts, when) - 1
        if i < 0 or (when >= self.points[i].start + self.step and i == len(self.points) - 1):
            return None
        return self.points[i].grams_per_kwh

    def window(self, start: datetime, end: datetime) -> IntensitySeries:
        """Points whose interval overlaps [start, end)."""
        lo = max(bisect.bisect_right(self._starts, start) - 1, 0)
        if lo == len(self.points) - 1 and start >= self.points[lo].start + self.step:
            lo += 1  # the last point's interval ends before the window starts
        hi = bisect.bisect_left(self._starts, end)
        return IntensitySeries(self.zone, self.points[lo:hi], self.step)

    def sample(self, start: datetime, slot: timedelta, count: int) -> list[float | None]:
        """Mean intensity of each slot [start + i*slot, start + (i+1)*slot), None where uncovered.

        The mean is time-weighted over the step function, so any provider step (5 min, 30 min,
        hourly) maps onto any planner slot length.
        """
        out: list[float | None] = []
        for i in range(count):
            a = start + i * slot
            out.append(self.mean(a, a + slot))
        return out

    def mean(self, start: datetime, end: datetime) -> float | None:
        """Time-weighted mean over [start, end), or None if any part of it is uncovered."""
        if end <= start or not self.covers(start, end):
            return None
        i = bisect.bisect_right(self._starts, start) - 1
        total = 0.0
        t = start
        while t < end:
            p = self.points[i]
            nxt = self.points[i + 1].start if i + 1 < len(self.points) else p.start + self.step
            seg_end = min(nxt, end)
            total += p.grams_per_kwh * (seg_end - t).total_seconds()
            t = seg_end
            i += 1
            if i >= len(self.points) and t < end:
                return None
        return total / (end - start).total_seconds()


def utc(dt: datetime) -> datetime:
    """Normalise to an aware UTC datetime; naive values are taken as UTC (as the traces are)."""
    if dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def series_from_values(
    zone: str,
    provider: str,
    start: datetime,
    step: timedelta,
    values: Sequence[float],
    *,
    signal: SignalKind = SignalKind.AVERAGE,
    estimated: bool = False,
    fetched_at: datetime | None = None,
) -> IntensitySeries:
    """Build a regular series; handy for traces, static factors and tests."""
    s = utc(start)
    pts = tuple(
        IntensityPoint(s + i * step, float(v), provider, signal, estimated, fetched_at) for i, v in enumerate(values)
    )
    return IntensitySeries(zone, pts, step)
