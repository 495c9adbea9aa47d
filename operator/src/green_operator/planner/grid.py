"""The slot grid the planner works on: intensity, prefix sums and free GPUs per region and slot.

Slot ``k`` covers ``[origin + k*slot, origin + (k+1)*slot)``; ``origin`` is the earliest forecast
start. Beyond a region's forecast the intensity is taken as the forecast's mean: a neutral guess
that neither attracts nor repels a run whose tail leaves the forecast. Capacity is whole GPUs per
slot; anything touching a slot occupies it for the whole slot (durations round up).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt

from .columns import ReservationColumns, Reservations
from .model import RegionForecast

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

EPS = 1e-9


def slot_floor(t: datetime, slot: timedelta) -> datetime:
    """Start of the planner slot containing t (slots are aligned to the Unix epoch)."""
    epoch = datetime(1970, 1, 1, tzinfo=t.tzinfo)
    return t - (t - epoch) % slot


def require_utc(value: datetime, field: str) -> None:
    if value.tzinfo is None or value.utcoffset() != timedelta(0):
        raise ValueError(f"{field} must be a UTC-aware datetime, got {value!r}")


class SlotGrid:
    """Per-region arrays over slots; grows on demand (beyond every reservation, all GPUs are free)."""

    def __init__(
        self,
        regions: Sequence[RegionForecast],
        reservations: Reservations,
        *,
        slot: timedelta,
        now: datetime,
        horizon: timedelta,
        min_length: int,
    ) -> None:
        if not regions:
            raise ValueError("regions is empty: pass at least one RegionForecast")
        if slot <= timedelta(0):
            raise ValueError("settings.slot must be positive")
        require_utc(now, "now")
        self.slot = slot
        self.slot_seconds = slot.total_seconds()
        self.slot_hours = self.slot_seconds / 3600.0
        self.names: list[str] = []
        self.row: dict[str, int] = {}
        for rf in regions:
            require_utc(rf.start, f"RegionForecast.start of {rf.region!r}")
            if rf.region in self.row:
                raise ValueError(f"region {rf.region!r} appears twice in regions")
            if rf.capacity_gpus < 0:
                raise ValueError(f"RegionForecast.capacity_gpus of {rf.region!r} must be >= 0")
            if len(rf.intensity) == 0:
                raise ValueError(
                    f"RegionForecast.intensity of {rf.region!r} is empty: pass at least one value "
                    "(a static average will do)"
                )
            self.row[rf.region] = len(self.names)
            self.names.append(rf.region)
        self.origin = min(rf.start for rf in regions)
        self.gpu_models = [rf.gpu_model for rf in regions]
        self.capacity: IntArray = np.array([rf.capacity_gpus for rf in regions], dtype=np.int64)

        offsets: list[int] = []
        for rf in regions:
            k = (rf.start - self.origin) / slot
            if abs(k - round(k)) > EPS:
                raise ValueError(
                    f"RegionForecast.start of {rf.region!r} ({rf.start.isoformat()}) is not on the slot "
                    f"grid of the other regions (origin {self.origin.isoformat()}, slot {slot})"
                )
            offsets.append(round(k))
        forecast_end = [off + len(rf.intensity) for off, rf in zip(offsets, regions, strict=True)]
        horizon_end = math.ceil(self.to_slots(now + horizon) - EPS)
        # Starts must lie inside the forecast and the horizon (slot 0 of "now" is always allowed).
        self.start_limit: IntArray = np.array([min(fe, horizon_end) for fe in forecast_end], dtype=np.int64)
        big = np.iinfo(np.int64).max // 4
        self.extrapolated_from: IntArray = np.array(
            [
                big if rf.extrapolated_from is None else off + rf.extrapolated_from
                for off, rf in zip(offsets, regions, strict=True)
            ],
            dtype=np.int64,
        )
        """Per region, the first slot whose intensity is extrapolated past the forecast."""

        res_rows, res_from, res_to, res_gpus = self._reservation_slots(reservations)
        usage_end = int(res_to.max()) if len(res_to) else 0

        length = max(min_length, max(forecast_end), horizon_end, usage_end) + 1
        self.length = length
        n = len(regions)
        self._fill: FloatArray = np.empty(n, dtype=np.float64)
        self.intensity: FloatArray = np.empty((n, length), dtype=np.float64)
        for r, (off, rf) in enumerate(zip(offsets, regions, strict=True)):
            values = np.asarray(rf.intensity, dtype=np.float64)
            if not np.all(np.isfinite(values)) or np.any(values < 0):
                raise ValueError(f"RegionForecast.intensity of {rf.region!r} has negative or non-finite values")
            measured = values if rf.extrapolated_from is None else values[: max(rf.extrapolated_from, 1)]
            self._fill[r] = float(measured.mean())
            self.intensity[r, :] = self._fill[r]
            end = min(off + len(values), length)
            self.intensity[r, off:end] = values[: end - off]
        self.cum: FloatArray = self._prefix(self.intensity)

        diff = np.zeros((n, length + 1), dtype=np.int64)
        np.add.at(diff, (res_rows, res_from), res_gpus)
        np.add.at(diff, (res_rows, res_to), -res_gpus)
        self.reserved: IntArray = np.cumsum(diff, axis=1)[:, :length]
        self.base_free: IntArray = self.capacity[:, None] - self.reserved

    def _reservation_slots(self, reservations: Reservations) -> tuple[IntArray, IntArray, IntArray, IntArray]:
        """Row, first slot, end slot and GPUs of each reservation that touches this plan's regions
        and slots (others' regions, empty ones and those ended before the origin dropped)."""
        cols = reservations if isinstance(reservations, ReservationColumns) else ReservationColumns.of(reservations)
        rows = np.array([self.row.get(n, -1) for n in cols.names], dtype=np.int64)[cols.region]
        origin = self.origin.timestamp()
        a = np.maximum(np.floor((cols.start - origin) / self.slot_seconds + EPS), 0).astype(np.int64)
        b = np.ceil((cols.end - origin) / self.slot_seconds - EPS).astype(np.int64)
        keep = (rows >= 0) & (cols.gpus > 0) & (cols.end > cols.start) & (b > a)
        return rows[keep], a[keep], b[keep], cols.gpus[keep]

    def _prefix(self, intensity: FloatArray) -> FloatArray:
        cum = np.zeros((intensity.shape[0], intensity.shape[1] + 1), dtype=np.float64)
        np.cumsum(intensity * self.slot_hours, axis=1, out=cum[:, 1:])
        return cum

    def to_slots(self, when: datetime) -> float:
        return (when - self.origin) / self.slot

    def to_time(self, slots: float) -> datetime:
        return self.origin + self.slot * slots

    def ensure(self, length: int, free_arrays: Sequence[IntArray]) -> list[IntArray]:
        """Grow to at least ``length`` slots; returns the given free-GPU arrays grown to match."""
        if length <= self.length:
            return list(free_arrays)
        new_len = max(length, 2 * self.length)
        extra = new_len - self.length
        n = len(self.names)
        ext_i = np.repeat(self._fill[:, None], extra, axis=1)
        self.intensity = np.concatenate([self.intensity, ext_i], axis=1)
        self.cum = self._prefix(self.intensity)
        ext_free = np.repeat(self.capacity[:, None], extra, axis=1)
        self.reserved = np.concatenate([self.reserved, np.zeros((n, extra), dtype=np.int64)], axis=1)
        self.base_free = np.concatenate([self.base_free, ext_free], axis=1)
        self.length = new_len
        return [np.concatenate([f, ext_free], axis=1) for f in free_arrays]

    def extrapolated_slots(self, row: int, start: float, end: float) -> float:
        """Slots of [start, end) whose intensity is extrapolated past the forecast."""
        return max(0.0, end - max(start, float(self.extrapolated_from[row])))

    def integral(self, row: int, start: float, duration: float) -> float:
        """Intensity x hours over [start, start + duration) in slot units (gCO2/kWh x h)."""
        return self._at(row, start + duration) - self._at(row, start)

    def _at(self, row: int, y: float) -> float:
        i = min(max(math.floor(y), 0), self.length - 1)
        return float(self.cum[row, i] + (y - i) * self.intensity[row, i] * self.slot_hours)
