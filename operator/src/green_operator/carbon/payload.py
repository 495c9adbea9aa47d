"""Reading provider JSON defensively: every missing or mistyped field becomes an error naming its path.

Providers raise ``PayloadError`` from these helpers and turn it into a ``ProviderError`` with reason
``malformed``; nothing downstream ever sees a KeyError from a surprising response.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from .series import IntensityPoint, IntensitySeries, utc


class PayloadError(ValueError):
    """A response that does not have the documented shape; the message names the field path."""


def as_mapping(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise PayloadError(f"{path}: expected an object, got {_kind(value)}")
    return value


def as_list(value: Any, path: str) -> Sequence[Any]:
    if not isinstance(value, list):
        raise PayloadError(f"{path}: expected a list, got {_kind(value)}")
    return value


def field(obj: Mapping[str, Any], key: str, path: str) -> Any:
    if key not in obj:
        raise PayloadError(f"{path}.{key}: missing field")
    return obj[key]


def timestamp(value: Any, path: str) -> datetime:
    """ISO 8601 -> aware UTC. Offsets (+01:00) are converted; a value without offset is taken as UTC."""
    if not isinstance(value, str):
        raise PayloadError(f"{path}: expected an ISO 8601 timestamp, got {_kind(value)}")
    try:
        return utc(datetime.fromisoformat(value.strip()))
    except ValueError:
        raise PayloadError(f"{path}: {value!r} is not an ISO 8601 timestamp") from None


def number(value: Any, path: str, *, allow_none: bool = False) -> float | None:
    """A finite, non-negative number (an intensity); None passes through only when allowed."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PayloadError(f"{path}: expected a number, got {_kind(value)}")
    v = float(value)
    if not math.isfinite(v) or v < 0:
        raise PayloadError(f"{path}: {value!r} is not a valid intensity (must be finite and >= 0)")
    return v


def duration(value: Any, path: str) -> timedelta:
    """A duration given as minutes (number) or as .NET TimeSpan text 'hh:mm:ss' / 'd.hh:mm:ss'."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value <= 0:
            raise PayloadError(f"{path}: duration must be positive, got {value!r}")
        return timedelta(minutes=float(value))
    if isinstance(value, str):
        text = value.strip()
        days = 0
        if "." in text.split(":", 1)[0]:
            day_text, text = text.split(".", 1)
            days = int(day_text) if day_text.isdigit() else -1
        parts = text.split(":")
        try:
            if days < 0 or len(parts) != 3:
                raise ValueError
            h, m, s = int(parts[0]), int(parts[1]), float(parts[2])
        except ValueError:
            raise PayloadError(f"{path}: {value!r} is not a duration (minutes or 'hh:mm:ss')") from None
        span = timedelta(days=days, hours=h, minutes=m, seconds=s)
        if span <= timedelta(0):
            raise PayloadError(f"{path}: duration must be positive, got {value!r}")
        return span
    raise PayloadError(f"{path}: expected a duration, got {_kind(value)}")


def infer_step(starts: Sequence[datetime], default: timedelta) -> timedelta:
    """The most common gap between consecutive starts (the shortest on a tie), else ``default``."""
    gaps: dict[timedelta, int] = {}
    for a, b in itertools.pairwise(starts):
        g = b - a
        if g > timedelta(0):
            gaps[g] = gaps.get(g, 0) + 1
    if not gaps:
        return default
    return max(gaps.items(), key=lambda kv: (kv[1], -kv[0]))[0]


def build_series(
    zone: str, points: Iterable[IntensityPoint], default_step: timedelta, step: timedelta | None = None
) -> IntensitySeries:
    """Sort points by time, keep the last of any duplicates, and infer the step if not given."""
    by_start: dict[datetime, IntensityPoint] = {}
    for p in points:
        by_start[p.start] = p
    ordered = tuple(by_start[k] for k in sorted(by_start))
    st = step or infer_step([p.start for p in ordered], default_step)
    return IntensitySeries(zone, ordered, st)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return type(value).__name__


def iso_z(dt: datetime) -> str:
    """UTC timestamp as 'YYYY-MM-DDThh:mm:ssZ' for query parameters and messages."""
    return utc(dt).strftime("%Y-%m-%dT%H:%M:%SZ")
