"""Go-style duration strings ("30s", "10m", "1h30m", "1.5h", "500ms"), as Kubernetes users write them."""

from __future__ import annotations

import re
from datetime import timedelta

_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def parse_duration(text: str) -> timedelta:
    """Parse a positive Go duration. Raises ValueError with an example of the expected form."""
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
    if total <= 0:
        raise ValueError(f"{text!r} must be longer than zero")
    return timedelta(seconds=total)


def format_duration(d: timedelta) -> str:
    """Compact human form for messages: 90 s -> '1m30s', 2 h -> '2h'."""
    secs = round(d.total_seconds())
    sign = "-" if secs < 0 else ""
    secs = abs(secs)
    h, rem = divmod(secs, 3600)
    m, s = divmod(rem, 60)
    out = (f"{h}h" if h else "") + (f"{m}m" if m else "") + (f"{s}s" if s or not (h or m) else "")
    return sign + out
