"""Reservations as columns (region code, start, end, GPUs) for the slot grid to read in numpy.

The operator books every job's GPUs in its capacity ledger and passes all of them to each first
decision: a thousand in a burst. As `Reservation` objects that is a Python loop per decision; as
columns that the ledger keeps up to date one booking at a time (`BookingColumns`), the grid reads
them in a few array operations whatever their number.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

from .model import Reservation

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class ReservationColumns:
    """Reservations, one per index: region ``names[region[i]]``, GPUs ``gpus[i]`` over
    ``[start[i], end[i])`` in Unix seconds."""

    names: tuple[str, ...]
    region: IntArray
    start: FloatArray
    end: FloatArray
    gpus: IntArray

    @staticmethod
    def of(reservations: Iterable[Reservation]) -> ReservationColumns:
        codes: dict[str, int] = {}
        region: list[int] = []
        start: list[float] = []
        end: list[float] = []
        gpus: list[int] = []
        for rv in reservations:
            region.append(codes.setdefault(rv.region, len(codes)))
            start.append(rv.start.timestamp())
            end.append(rv.end.timestamp())
            gpus.append(rv.gpus)
        return ReservationColumns(
            tuple(codes),
            np.array(region, dtype=np.int64),
            np.array(start, dtype=np.float64),
            np.array(end, dtype=np.float64),
            np.array(gpus, dtype=np.int64),
        )

    def __len__(self) -> int:
        return len(self.gpus)

    def plus(self, more: Sequence[Reservation]) -> ReservationColumns:
        if not more:
            return self
        extra = ReservationColumns.of(more)
        names = list(self.names)
        remap = np.array([_code(names, n) for n in extra.names], dtype=np.int64)
        return ReservationColumns(
            tuple(names),
            np.concatenate([self.region, remap[extra.region]]),
            np.concatenate([self.start, extra.start]),
            np.concatenate([self.end, extra.end]),
            np.concatenate([self.gpus, extra.gpus]),
        )

    def held_until(self, now: datetime, until: datetime) -> ReservationColumns:
        """Bookings that have ended by ``now`` held until ``until``: a job whose planned end has
        passed may still be running (its status lags), so its GPUs count until the next slot."""
        t = now.timestamp()
        if not bool(np.any(self.end <= t)):
            return self
        end = np.where(self.end > t, self.end, until.timestamp())
        return ReservationColumns(self.names, self.region, self.start, end, self.gpus)

    def reservations(self) -> list[Reservation]:
        """Back to objects (tests and the rare caller that needs them)."""
        return [
            Reservation(
                self.names[int(r)],
                datetime.fromtimestamp(float(a), UTC),
                datetime.fromtimestamp(float(b), UTC),
                int(g),
            )
            for r, a, b, g in zip(self.region, self.start, self.end, self.gpus, strict=True)
        ]


Reservations = Sequence[Reservation] | ReservationColumns
"""What the planner takes as fixed reservations: objects, or columns."""


def _code(names: list[str], name: str) -> int:
    if name not in names:
        names.append(name)
    return names.index(name)


class BookingColumns:
    """Bookings by key, kept as columns: `set` is O(1) (amortised), `without` copies the arrays
    once. A removed booking's row is reused by the next new key."""

    def __init__(self) -> None:
        self._names: list[str] = []
        self._codes: dict[str, int] = {}
        self._row: dict[str, int] = {}
        self._free: list[int] = []
        self._size = 0
        self._region = np.zeros(64, dtype=np.int64)
        self._start = np.zeros(64, dtype=np.float64)
        self._end = np.zeros(64, dtype=np.float64)
        self._gpus = np.zeros(64, dtype=np.int64)

    def __len__(self) -> int:
        return len(self._row)

    def set(self, key: str, r: Reservation | None) -> None:
        if r is None:
            i = self._row.pop(key, None)
            if i is not None:
                self._gpus[i] = 0  # an empty row: ignored by the grid until reused
                self._free.append(i)
            return
        i = self._row.get(key)
        if i is None:
            i = self._free.pop() if self._free else self._grow()
            self._row[key] = i
        code = self._codes.get(r.region)
        if code is None:
            code = self._codes[r.region] = len(self._names)
            self._names.append(r.region)
        self._region[i] = code
        self._start[i] = r.start.timestamp()
        self._end[i] = r.end.timestamp()
        self._gpus[i] = r.gpus

    def _grow(self) -> int:
        if self._size == len(self._gpus):
            n = 2 * len(self._gpus)
            self._region = np.resize(self._region, n)
            self._start = np.resize(self._start, n)
            self._end = np.resize(self._end, n)
            self._gpus = np.resize(self._gpus, n)
            self._gpus[self._size :] = 0
        self._size += 1
        return self._size - 1

    def without(self, keys: Iterable[str]) -> ReservationColumns:
        """Every booking but those of ``keys`` (a copy: later `set` calls do not change it)."""
        gpus = self._gpus[: self._size].copy()
        for k in keys:
            i = self._row.get(k)
            if i is not None:
                gpus[i] = 0
        used = gpus > 0
        return ReservationColumns(
            tuple(self._names),
            self._region[: self._size][used],
            self._start[: self._size][used],
            self._end[: self._size][used],
            gpus[used],
        )
