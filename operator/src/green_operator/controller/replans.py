"""When a waiting job's plan is next checked against fresh forecasts.

Each job re-plans on its own grid: every ``replan_interval``, at a second of the interval fixed by
the job's name. Jobs decided in the same seconds (a burst of a thousand) would otherwise re-plan in
the same seconds every interval, forever; on their grids they spread over the whole interval, and a
job still re-plans once an interval (its first re-plan after a decision just comes sooner).
Deterministic, so a restarted operator and the simulator agree.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from green_operator.api.manifests import job_name
from green_operator.api.spec import TrainingJobSpec
from green_operator.times import parse_rfc3339, rfc3339

from .observed import Observed

SPREAD = 1.0
"""The share of the interval over which jobs' grids are spread (0: every job on the same grid)."""

_SETTLE = 1.0
"""Seconds: status keeps whole seconds, so a re-plan made just after its grid point records a time
up to a second before it; the next grid point is looked for past that second."""

_NEVER_DECIDED = datetime.min.replace(tzinfo=UTC)


def replan_at(job: str, decided_at: str, interval: timedelta) -> datetime:
    """`decided_at`: the RFC 3339 text written to status.plan.decidedAt."""
    period = interval.total_seconds()
    digest = hashlib.blake2b(job.encode(), digest_size=8).digest()
    phase = float(int.from_bytes(digest) % max(int(period * SPREAD), 1))
    after = parse_rfc3339(decided_at).timestamp() + _SETTLE
    return datetime.fromtimestamp(phase + (math.floor((after - phase) / period) + 1) * period, UTC)


def replan_after(o: Observed, spec: TrainingJobSpec) -> datetime:
    """When the decision being made now (and written as its status) is next re-planned."""
    return replan_at(job_name(spec.name), rfc3339(o.now), o.settings.replan_interval)


def next_replan(status: Mapping[str, Any], interval: timedelta) -> datetime:
    """Due at once when the status records no decision."""
    decided = (status.get("plan") or {}).get("decidedAt")
    if not decided:
        return _NEVER_DECIDED
    return replan_at(str(status.get("jobName") or ""), str(decided), interval)
