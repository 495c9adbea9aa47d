"""Leader election on a `coordination.k8s.io/v1` Lease, the decisions only (no I/O).

It follows client-go's `leaderelection` package, which every Kubernetes controller uses:
- A lease has expired when its record has not changed for `leaseDurationSeconds`, as observed on
  this replica's own monotonic clock. The `renewTime` written by another machine is never compared
  with our wall clock, so clock skew between replicas cannot hand the lease to two holders.
- Writes carry the `resourceVersion` that was read (optimistic concurrency), so two candidates that
  both see an expired lease cannot both take it: the apiserver refuses the second write with 409.
- The holder renews every `retry_period` and gives up (the process exits) when it has not renewed
  for `renew_deadline`, which is shorter than the lease duration: it stops acting before anyone
  else may start.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from green_operator.times import rfc3339


@dataclass(frozen=True)
class LeaseTimings:
    """client-go's defaults: 15 s lease, 10 s renew deadline, 2 s retry period."""

    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError(
                "leader election timings must satisfy 0 < retry period < renew deadline < lease duration, "
                f"got {self.retry_period}s, {self.renew_deadline}s, {self.lease_duration}s"
            )


@dataclass(frozen=True)
class LeaseRecord:
    """The part of a Lease's spec that says who holds it; equality means "unchanged"."""

    holder: str
    duration_s: int
    acquire_time: str
    renew_time: str
    transitions: int

    @classmethod
    def of(cls, lease: Mapping[str, Any]) -> LeaseRecord:
        spec = lease.get("spec") or {}
        return cls(
            holder=str(spec.get("holderIdentity") or ""),
            duration_s=_int(spec.get("leaseDurationSeconds")),
            acquire_time=str(spec.get("acquireTime") or ""),
            renew_time=str(spec.get("renewTime") or ""),
            transitions=_int(spec.get("leaseTransitions")),
        )


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


@dataclass(frozen=True)
class Observation:
    """A record as this replica saw it, and when (monotonic seconds) it first saw it unchanged."""

    record: LeaseRecord
    since: float


def observe(previous: Observation | None, record: LeaseRecord, now: float) -> Observation:
    """Keep the time of the first sighting while the record stays the same."""
    if previous is not None and previous.record == record:
        return previous
    return Observation(record, now)


class Verdict(enum.Enum):
    CREATE = "create"  # no lease yet
    TAKE = "take"  # free or expired: take it over
    RENEW = "renew"  # ours: renew it
    WAIT = "wait"  # someone else holds it


def verdict(identity: str, exists: bool, seen: Observation | None, now: float) -> Verdict:
    if not exists or seen is None:
        return Verdict.CREATE
    record = seen.record
    if record.holder == identity:
        return Verdict.RENEW
    # An empty holder is a lease released on graceful shutdown: free at once.
    if not record.holder or now - seen.since >= max(record.duration_s, 1):
        return Verdict.TAKE
    return Verdict.WAIT


def lease_spec(
    identity: str, timings: LeaseTimings, now: datetime, current: LeaseRecord | None, verdict: Verdict
) -> dict[str, Any]:
    """The spec to write for `verdict` (CREATE, TAKE or RENEW)."""
    stamp = _micro(now)
    if verdict is Verdict.RENEW and current is not None:
        acquired, transitions = current.acquire_time or stamp, current.transitions
    else:
        acquired = stamp
        transitions = current.transitions + 1 if current is not None else 0
    return {
        "holderIdentity": identity,
        "leaseDurationSeconds": max(1, round(timings.lease_duration)),
        "acquireTime": acquired,
        "renewTime": stamp,
        "leaseTransitions": transitions,
    }


def released_spec(current: LeaseRecord, now: datetime) -> dict[str, Any]:
    """What a holder writes on graceful shutdown so a standby need not wait out the lease."""
    return {
        "holderIdentity": "",
        "leaseDurationSeconds": 1,
        "acquireTime": current.acquire_time or _micro(now),
        "renewTime": _micro(now),
        "leaseTransitions": current.transitions,
    }


def _micro(t: datetime) -> str:
    # Lease times are MicroTime: RFC 3339 with microseconds.
    return rfc3339(t).replace("Z", "") + f".{t.microsecond:06d}Z"
