"""Time helpers: the operator works in aware UTC datetimes and writes RFC 3339 with a `Z`."""

from __future__ import annotations

from datetime import UTC, datetime


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
