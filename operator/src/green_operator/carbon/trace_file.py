"""Reading carbon-intensity trace files: CSV, header on line 1, naive timestamp (UTC) then a value."""

from __future__ import annotations

import csv
import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

from .series import IntensityPoint, IntensitySeries, SignalKind


class TraceFormatError(ValueError):
    """A trace file that cannot be read; the message names the file and line."""


def load_trace_csv(
    path: str | Path,
    *,
    zone: str | None = None,
    provider: str = "trace",
    signal: SignalKind = SignalKind.AVERAGE,
    scale: float = 1.0,
) -> IntensitySeries:
    """Load a trace. ``scale`` converts units (e.g. 0.453592 for lbs/MWh -> g/kWh).

    The step is the most common gap between rows, so a trace that changes resolution part-way
    (the GB file goes from 30 to 15 minutes) still reads right: each point holds until the next.
    """
    p = Path(path)
    points: list[IntensityPoint] = []
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
                if points and t <= points[-1].start:
                    raise TraceFormatError(f"{p}:{lineno}: timestamps must increase ({t.isoformat()})")
                points.append(IntensityPoint(t, v, provider, signal, estimated=False))
    except OSError as exc:
        raise TraceFormatError(f"{p}: cannot read trace file: {exc.strerror}") from exc
    if len(points) < 2:
        raise TraceFormatError(f"{p}: a trace needs at least two rows")
    gaps: dict[timedelta, int] = {}
    for a, b in itertools.pairwise(points):
        g = b.start - a.start
        gaps[g] = gaps.get(g, 0) + 1
    step = max(gaps.items(), key=lambda kv: (kv[1], -kv[0]))[0]
    return IntensitySeries(zone or p.stem, tuple(points), step)
