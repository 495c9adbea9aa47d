"""Time, the one leaf module for it: aware UTC datetimes, RFC 3339 with a `Z`, Go-style durations.

Everything else imports from here (the planner, the carbon package, the controller, the CLI); this
module imports nothing of ours, so any layer may use it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_ZERO = re.compile(r"(0+(\.0*)?(ns|us|µs|ms|s|m|h))+")


def utcnow() -> datetime:
    return datetime.now(UTC)


def rfc3339(dt: datetime) -> str:
    """Second precision, as Kubernetes' metav1.Time serialises."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(value: str) -> datetime:
    dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        raise ValueError(f"{value!r} has no timezone; write it in RFC 3339, e.g. 2026-12-01T09:00:00Z")
    return dt.astimezone(UTC)


MAX_DURATION = timedelta(days=36525)
"""The longest duration taken (a century): a deadline computed from one stays a valid datetime."""


def parse_duration(text: str) -> timedelta:
    """A positive Go duration ("30s", "10m", "1h30m", "1.5h", "500ms"). Raises ValueError with an
    example of the expected form."""
    s = text.strip()
    pos = 0
    total = 0.0
    while pos < len(s):
        m = _PART.match(s, pos)
        if m is None:
            break
        total += float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
        pos = m.end()
    if not s or pos != len(s):
        raise ValueError(f"{text!r} is not a duration; write it like '30s', '10m' or '1h30m'")
    if not total < MAX_DURATION.total_seconds():  # also inf, and what timedelta cannot hold
        raise ValueError(f"{text!r} is longer than {MAX_DURATION.days // 365} years; write a shorter duration")
    span = timedelta(seconds=total)
    if span <= timedelta(0):  # also "0.0001ms": positive, but below timedelta's microsecond
        raise ValueError(f"{text!r} must be longer than zero (at least 1us)")
    return span


def parse_delay(text: str) -> timedelta:
    """A Go duration that may be zero ("0s": as soon as possible), unlike parse_duration."""
    if _ZERO.fullmatch(text.strip()):
        return timedelta(0)
    return parse_duration(text)


def format_duration(d: timedelta) -> str:
    """Compact human form for messages: 90 s -> '1m30s', 2 h -> '2h'."""
    secs = round(d.total_seconds())
    sign = "-" if secs < 0 else ""
    secs = abs(secs)
    h, rem = divmod(secs, 3600)
    m, s = divmod(rem, 60)
    out = (f"{h}h" if h else "") + (f"{m}m" if m else "") + (f"{s}s" if s or not (h or m) else "")
    return sign + out


def format_minutes(d: timedelta) -> str:
    """Minute precision with days, for plan sentences: 3h10m, 1d2h05m, 0m."""
    minutes = max(round(d.total_seconds() / 60), 0)
    days, rem = divmod(minutes, 24 * 60)
    hours, mins = divmod(rem, 60)
    parts = []
    if days:
        parts.append(f"{days}d")
    if hours:
        parts.append(f"{hours}h")
    if mins or not parts:
        parts.append(f"{mins:02d}m" if parts else f"{mins}m")
    return "".join(parts)
