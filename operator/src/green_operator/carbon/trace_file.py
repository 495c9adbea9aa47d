"""Reading carbon-intensity trace files: CSV, header on line 1, naive timestamp (UTC) then a value."""

from __future__ import annotations

import csv
from array import array
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt

from .series import IntensityPoint, IntensitySeries, SignalKind

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


def epoch_us(dt: datetime) -> int:
    """A UTC-aware time as microseconds since the Unix epoch: traces' times as whole numbers."""
    return (dt - EPOCH) // MICROSECOND


def from_epoch_us(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


class TraceFormatError(ValueError):
    """A trace file that cannot be read; the message names the file and line."""


@dataclass(frozen=True)
class TraceRows:
    """A trace as two columns: a year of 15-minute rows is 35,000 points, and as
    ``IntensityPoint`` objects (a datetime each) that is 9 MiB the operator would hold for its
    whole life; as columns, 0.5 MiB."""

    starts_us: npt.NDArray[np.int64]
    """Each row's start, microseconds since the Unix epoch (UTC); strictly increasing."""
    values: npt.NDArray[np.float64]
    """gCO2eq/kWh, the file's values times the unit scale."""
    step: timedelta
    """The most common gap between rows: a trace that changes resolution part-way (the GB file
    goes from 30 to 15 minutes) still reads right, as each row holds until the next."""

    def __len__(self) -> int:
        return int(self.starts_us.size)

    def start_at(self, i: int) -> datetime:
        return from_epoch_us(int(self.starts_us[i]))


def read_trace_rows(path: str | Path, *, scale: float = 1.0) -> TraceRows:
    """Read and check a trace file. ``scale`` converts units (e.g. 0.453592 for lbs/MWh -> g/kWh)."""
    p = Path(path)
    starts, values = array("q"), array("d")
    try:
        with p.open(newline="") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None or len(header) < 2:
                raise TraceFormatError(f"{p}: line 1 must be a header with a time and a value column")
            for lineno, row in enumerate(reader, start=2):
                if not row or not row[0].strip():
                    continue
                try:
                    t = datetime.fromisoformat(row[0].strip())
                    v = float(row[1]) * scale
                except (ValueError, IndexError) as exc:
                    raise TraceFormatError(
                        f"{p}:{lineno}: expected 'YYYY-MM-DD HH:MM:SS,<gCO2/kWh>', got {row!r}"
                    ) from exc
                t = t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)
                us = epoch_us(t)
                if starts and us <= starts[-1]:
                    raise TraceFormatError(f"{p}:{lineno}: timestamps must increase ({t.isoformat()})")
                starts.append(us)
                values.append(v)
    except OSError as exc:
        raise TraceFormatError(f"{p}: cannot read trace file: {exc.strerror}") from exc
    if len(starts) < 2:
        raise TraceFormatError(f"{p}: a trace needs at least two rows")
    starts_us = np.frombuffer(starts, dtype=np.int64).copy()
    gaps, counts = np.unique(np.diff(starts_us), return_counts=True)
    # The most common gap; among equally common ones, the shortest (unique sorts ascending).
    step = timedelta(microseconds=int(gaps[int(np.argmax(counts))]))
    return TraceRows(starts_us, np.frombuffer(values, dtype=np.float64).copy(), step)


def load_trace_csv(
    path: str | Path,
    *,
    zone: str | None = None,
    provider: str = "trace",
    signal: SignalKind = SignalKind.AVERAGE,
    scale: float = 1.0,
) -> IntensitySeries:
    """Load a trace as a series (``read_trace_rows``'s checks and step)."""
    rows = read_trace_rows(path, scale=scale)
    points = tuple(
        IntensityPoint(rows.start_at(i), float(v), provider, signal, estimated=False) for i, v in enumerate(rows.values)
    )
    return IntensitySeries(zone or Path(path).stem, points, rows.step)
