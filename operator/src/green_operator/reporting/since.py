"""`--since`: a duration back from now (24h, 90m, 7d, 1d12h) or an RFC 3339 time; and the filter."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime, timedelta

from green_operator.times import parse_duration, parse_rfc3339

from .rows import JobRow

_DAYS = re.compile(r"^(\d+)d(.*)$")
_HINT = "write a duration such as 24h, 90m or 7d, or an RFC 3339 time such as 2026-05-01T00:00:00Z"


class SinceError(ValueError):
    pass


def parse_since(text: str, now: datetime) -> datetime:
    """The cut-off time that ``text`` names, relative to ``now`` for durations."""
    s = text.strip()
    if not s:
        raise SinceError(f"--since is empty: {_HINT}")
    if re.match(r"^\d{4}-\d{2}-\d{2}", s):
        try:
            return parse_rfc3339(s)
        except ValueError as exc:
            raise SinceError(f"--since {text!r} is not a valid RFC 3339 time ({exc}): {_HINT}") from None
    # Go durations stop at hours; reports often look back days, so a leading day count is allowed.
    days = timedelta(0)
    m = _DAYS.match(s)
    if m:
        days, s = timedelta(days=int(m.group(1))), m.group(2)
    try:
        rest = parse_duration(s) if s else timedelta(0)
    except ValueError:
        raise SinceError(f"--since {text!r} is neither a duration nor a time: {_HINT}") from None
    if days + rest <= timedelta(0):
        raise SinceError(f"--since {text!r} must be longer than zero: {_HINT}")
    return now - (days + rest)


def select_since(rows: Iterable[JobRow], since: datetime | None) -> list[JobRow]:
    """Jobs created or started at or after ``since`` (all of them when it is None)."""
    if since is None:
        return list(rows)
    return [
        r
        for r in rows
        if (r.created is not None and r.created >= since) or (r.start_time is not None and r.start_time >= since)
    ]
