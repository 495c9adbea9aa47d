"""What really happens in a simulation: the traces on the planner's slot grid, and forecasts of them.

Truth is each trace's time-weighted mean per slot (15 min by default), held constant within the
slot; every arm (baseline, plan, oracle) is charged against the same truth, so their differences
come from decisions only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt

from green_operator.carbon.series import IntensitySeries
from green_operator.planner.grid import EPS

from .jobs_file import SimJob

FloatArray = npt.NDArray[np.float64]
WEEK = timedelta(days=7)


class TraceCoverageError(ValueError):
    """A trace does not cover the simulated period."""


def _floor(t: datetime, slot: timedelta, origin: datetime) -> datetime:
    return origin + slot * math.floor((t - origin) / slot + EPS)


def week_shift(series: IntensitySeries, start: datetime, end: datetime) -> timedelta:
    """A whole number of weeks to add to the trace's times so it covers [start, end) (weekday and
    time of day are kept, so weekly and daily patterns stay aligned)."""
    s, e = series.start, series.end
    assert s is not None and e is not None
    if e - s < end - start:
        raise TraceCoverageError(
            f"trace {series.zone!r} spans {e - s} but the simulation needs {end - start}; use a longer trace"
        )
    k = math.ceil((start - s) / WEEK)
    while s + k * WEEK > start:
        k -= 1
    if e + k * WEEK < end:
        raise TraceCoverageError(f"trace {series.zone!r} cannot be shifted by whole weeks to cover {start} .. {end}")
    return k * WEEK


@dataclass
class World:
    regions: list[str]
    capacity: dict[str, int]
    gpu_model: str
    origin: datetime
    slot: timedelta
    truth: FloatArray
    """gCO2/kWh per region (row) and slot (column)."""
    shifts: dict[str, timedelta]
    padded_from: int
    """First slot index where some trace had ended and its mean was used instead."""

    def __post_init__(self) -> None:
        self.slot_hours = self.slot.total_seconds() / 3600.0
        self.row = {r: i for i, r in enumerate(self.regions)}
        self.cum = np.zeros((self.truth.shape[0], self.truth.shape[1] + 1))
        np.cumsum(self.truth * self.slot_hours, axis=1, out=self.cum[:, 1:])

    @property
    def length(self) -> int:
        return int(self.truth.shape[1])

    def to_slots(self, t: datetime) -> float:
        return (t - self.origin) / self.slot

    def integral(self, row: int, start: float, duration: float) -> float:
        """gCO2/kWh x hours over [start, start + duration), in slots from the origin."""
        return self._at(row, start + duration) - self._at(row, start)

    def _at(self, row: int, y: float) -> float:
        i = min(max(math.floor(y), 0), self.length - 1)
        return float(self.cum[row, i] + (y - i) * self.truth[row, i] * self.slot_hours)

    def grams(self, region: str, start: datetime, duration: timedelta, gpus: int, watts: float) -> float:
        return gpus * watts / 1000.0 * self.integral(self.row[region], self.to_slots(start), duration / self.slot)


def check_regions_match(traces: Mapping[str, object], capacity: Mapping[str, int]) -> None:
    missing = [r for r in traces if r not in capacity]
    if missing:
        raise ValueError(f"no --capacity for region(s) {', '.join(missing)}: add --capacity REGION=GPUS")
    extra = [r for r in capacity if r not in traces]
    if extra:
        raise ValueError(f"no --trace for region(s) {', '.join(extra)}: add --trace REGION=FILE")


def build_world(
    traces: Mapping[str, IntensitySeries],
    capacity: Mapping[str, int],
    *,
    start: datetime,
    end: datetime,
    slot: timedelta,
    gpu_model: str,
    align: bool,
    required_end: datetime,
) -> World:
    """Sample every trace onto the slot grid over [start, end). Each trace must cover
    [start, required_end) — shifted by whole weeks when ``align`` — and is extended with its own
    mean beyond its end (reported via ``padded_from``)."""
    check_regions_match(traces, capacity)
    regions = list(traces)
    origin = start
    n = math.ceil((end - origin) / slot - EPS)
    truth = np.empty((len(regions), n))
    shifts: dict[str, timedelta] = {}
    padded_from = n
    for i, r in enumerate(regions):
        series = traces[r]
        shift = week_shift(series, start, required_end) if align else timedelta(0)
        s, e = series.start, series.end
        assert s is not None and e is not None
        if not (s + shift <= start and e + shift >= required_end):
            raise TraceCoverageError(
                f"trace for {r} covers {s + shift:%Y-%m-%d %H:%M} .. {e + shift:%Y-%m-%d %H:%M} UTC but the "
                f"jobs need {start:%Y-%m-%d %H:%M} .. {required_end:%Y-%m-%d %H:%M}; pass --align-traces "
                "to shift it by whole weeks, or use another trace"
            )
        shifts[r] = shift
        mean = float(np.mean([p.grams_per_kwh for p in series.points]))
        values = series.sample(origin - shift, slot, n)
        for k, v in enumerate(values):
            if v is None:
                truth[i, k] = mean
                padded_from = min(padded_from, k)
            else:
                truth[i, k] = v
    return World(regions, dict(capacity), gpu_model, origin, slot, truth, shifts, padded_from)


class ForecastModel:
    """Forecasts issued at a slot: the truth ahead with a multiplicative error that is zero now and
    grows with lead time as an AR(1) process (correlation ``rho`` per slot, long-run standard
    deviation ``error``). Each issue slot draws its own errors from ``(seed, slot)``, so runs are
    reproducible and two plans in the same slot see the same forecast."""

    def __init__(self, world: World, error: float, seed: int, rho: float = 0.97) -> None:
        if error < 0:
            raise ValueError("--forecast-error must be >= 0 (0.1 means 10 %)")
        self.world = world
        self.error = error
        self.seed = seed
        self.rho = rho
        self._cache: dict[tuple[int, int], FloatArray] = {}

    def issue(self, k: int, length: int) -> FloatArray:
        key = (k, length)
        if key in self._cache:
            return self._cache[key]
        w = self.world
        end = min(k + length, w.length)
        truth = w.truth[:, k:end]
        if self.error == 0 or truth.shape[1] == 0:
            out = truth.copy()
        else:
            rng = np.random.default_rng([self.seed, k])
            z = rng.standard_normal(truth.shape)
            e = np.zeros(truth.shape)
            scale = math.sqrt(1 - self.rho**2) * self.error
            for i in range(1, truth.shape[1]):
                e[:, i] = self.rho * e[:, i - 1] + scale * z[:, i]
            out = np.maximum(truth * (1 + e), 0.0)
        self._cache = {key: out}  # only the latest issue is reused
        return out


def first_slot(jobs: Sequence[SimJob], slot: timedelta) -> datetime:
    """The slot boundary at or before the first submission (slots are aligned to the hour)."""
    first = min(j.submit_time for j in jobs)
    return _floor(first, slot, first.replace(minute=0, second=0, microsecond=0))
