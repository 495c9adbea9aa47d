"""Stitching one answer out of several sources: pure, no I/O.

The window [start, end) is filled from candidate series in priority order (live, cached, trace,
static); each later candidate only fills what is still uncovered. A series covers the stretch from
its first point to its last point's end, except across a hole: a gap between consecutive points
longer than max(2 steps, 1 h) is *not* bridged, so a missing stretch is filled by the next source
instead of silently repeating an old value.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from .provider import DataSource, SourceSpan
from .series import IntensityPoint, IntensitySeries, SignalKind

_MIN_HOLE = timedelta(hours=1)


@dataclass(frozen=True)
class Candidate:
    source: DataSource
    provider: str
    series: IntensitySeries
    fetched_at: datetime | None = None


def coverage(series: IntensitySeries) -> list[tuple[datetime, datetime]]:
    """The stretches [a, b) the series really covers, holes excluded."""
    pts = series.points
    if not pts:
        return []
    hole = max(2 * series.step, _MIN_HOLE)
    runs: list[tuple[datetime, datetime]] = []
    run_start = pts[0].start
    for prev, cur in itertools.pairwise(pts):
        if cur.start - prev.start > hole:
            runs.append((run_start, prev.start + series.step))
            run_start = cur.start
    runs.append((run_start, pts[-1].start + series.step))
    return runs


def static_series(
    zone: str,
    start: datetime,
    end: datetime,
    grams_per_kwh: float,
    *,
    provider: str = "static",
    step: timedelta = timedelta(hours=1),
) -> IntensitySeries:
    """A flat series over [start, end) on a regular grid; values flagged estimated."""
    pts: list[IntensityPoint] = []
    t = start
    while t < end:
        pts.append(IntensityPoint(t, grams_per_kwh, provider, SignalKind.AVERAGE, estimated=True))
        t += step
    return IntensitySeries(zone, tuple(pts), step)


def assemble(
    zone: str, start: datetime, end: datetime, candidates: Sequence[Candidate]
) -> tuple[IntensitySeries, tuple[SourceSpan, ...]]:
    """Fill [start, end) from ``candidates`` in order. Raises ValueError if they leave a gap
    (callers end the list with a static series, which covers everything)."""
    gaps: list[tuple[datetime, datetime]] = [(start, end)]
    pieces: list[tuple[datetime, datetime, Candidate]] = []
    for cand in candidates:
        if not gaps:
            break
        runs = coverage(cand.series)
        remaining: list[tuple[datetime, datetime]] = []
        for ga, gb in gaps:
            cursor = ga
            for ra, rb in runs:
                a, b = max(cursor, ra), min(gb, rb)
                if a < b:
                    if cursor < a:
                        remaining.append((cursor, a))
                    pieces.append((a, b, cand))
                    cursor = b
            if cursor < gb:
                remaining.append((cursor, gb))
        gaps = remaining
    if gaps:
        a, b = gaps[0]
        raise ValueError(f"no source covers [{a.isoformat()}, {b.isoformat()})")
    pieces.sort(key=lambda piece: piece[0])
    points: list[IntensityPoint] = []
    spans: list[SourceSpan] = []
    for a, b, cand in pieces:
        points.extend(_clip(cand.series, a, b))
        last = spans[-1] if spans else None
        if last and last.end == a and (last.source, last.provider) == (cand.source, cand.provider):
            spans[-1] = replace(last, end=b)
        else:
            spans.append(SourceSpan(cand.source, cand.provider, a, b, cand.fetched_at))
    # The last point must reach `end`; within a bridged gap it holds longer than its own step.
    step = max(pieces[-1][2].series.step, end - points[-1].start)
    return IntensitySeries(zone, tuple(points), step), tuple(spans)


def _clip(series: IntensitySeries, a: datetime, b: datetime) -> list[IntensityPoint]:
    """The points describing [a, b): the one in force at ``a`` (moved to ``a``) and those after it."""
    starts = [p.start for p in series.points]
    i = bisect.bisect_right(starts, a) - 1
    first = series.points[i]
    out = [first if first.start == a else replace(first, start=a)]
    j = i + 1
    while j < len(series.points) and series.points[j].start < b:
        out.append(series.points[j])
        j += 1
    return out
