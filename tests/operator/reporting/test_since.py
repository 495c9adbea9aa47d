"""`--since`: durations back from now, RFC 3339 times, and which jobs it keeps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from green_operator.reporting import SinceError, parse_since, rows_from_items, select_since
from tests.operator.reporting import samples as s


@pytest.mark.parametrize(
    ("text", "back"),
    [
        ("24h", timedelta(hours=24)),
        ("90m", timedelta(minutes=90)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("7d", timedelta(days=7)),
        ("1d12h", timedelta(days=1, hours=12)),
        (" 45s ", timedelta(seconds=45)),
    ],
)
def test_durations_count_back_from_now(text: str, back: timedelta) -> None:
    assert parse_since(text, s.NOW) == s.NOW - back


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-05-01T00:00:00Z", datetime(2026, 5, 1, tzinfo=UTC)),
        ("2026-05-01T02:00:00+02:00", datetime(2026, 5, 1, tzinfo=UTC)),
        ("2026-05-10T09:15:30.5Z", datetime(2026, 5, 10, 9, 15, 30, 500000, tzinfo=UTC)),
    ],
)
def test_rfc3339_times(text: str, expected: datetime) -> None:
    assert parse_since(text, s.NOW) == expected


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("yesterday", "neither a duration nor a time"),
        ("", "empty"),
        ("0s", "neither a duration nor a time"),
        ("0d", "longer than zero"),
        ("24", "neither a duration nor a time"),
        ("2026-05-01", "no timezone"),
        ("2026-13-01T00:00:00Z", "not a valid RFC 3339 time"),
    ],
)
def test_bad_values_say_how_to_write_them(text: str, says: str) -> None:
    with pytest.raises(SinceError, match=says) as info:
        parse_since(text, s.NOW)
    assert "--since" in str(info.value)
    assert "24h" in str(info.value)  # the hint shows a valid form


def test_keeps_jobs_created_or_started_since() -> None:
    rows = rows_from_items(s.all_jobs())
    # Created 06:00 .. 11:59; at 09:00: running (created 09:00), failed (started 09:00), deferred, pending.
    kept = select_since(rows, datetime(2026, 5, 10, 9, 0, tzinfo=UTC))
    assert {r.name for r in kept} == {"running", "failed", "deferred", "pending"}


def test_a_job_created_before_but_started_after_is_kept() -> None:
    rows = rows_from_items([s.succeeded_saving()])  # created 06:00, started 08:00
    assert [r.name for r in select_since(rows, datetime(2026, 5, 10, 7, 0, tzinfo=UTC))] == ["good"]
    assert select_since(rows, datetime(2026, 5, 10, 8, 0, 1, tzinfo=UTC)) == []


def test_no_since_keeps_everything() -> None:
    rows = rows_from_items(s.all_jobs())
    assert select_since(rows, None) == rows
