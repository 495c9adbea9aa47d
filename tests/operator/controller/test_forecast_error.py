"""Forecast vs later actual, by lead time: the pure tracker behind greentraining_forecast_error_ratio."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from green_operator.controller.forecast_error import LEAD_LABELS, ErrorSample, ForecastErrorTracker, lead_label

SLOT = timedelta(minutes=30)
T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)


@pytest.mark.parametrize(
    ("lead", "label"),
    [
        (-SLOT, "0-1h"),
        (timedelta(0), "0-1h"),
        (timedelta(minutes=59), "0-1h"),
        (H, "1-6h"),
        (6 * H, "6-24h"),
        (30 * H, "24-48h"),
        (48 * H, "48h+"),
        (100 * H, "48h+"),
    ],
)
def test_lead_buckets(lead: timedelta, label: str) -> None:
    assert lead_label(lead) == label
    assert label in LEAD_LABELS


def test_each_forecast_of_a_slot_is_scored_once_by_its_lead() -> None:
    t = ForecastErrorTracker(SLOT)
    # Issued at T0 for T0..T0+2h (4 slots), then at T0+1h for T0+1h..T0+3h.
    assert t.record("de", T0, T0, [100.0, 110.0, 120.0, 130.0])
    assert t.record("de", T0 + H, T0 + H, [150.0, 150.0, 150.0, 150.0])
    assert t.pending_since("de") == T0
    actual = [100.0, 100.0, 100.0, 100.0]  # T0 .. T0+2h
    got = t.score("de", T0, actual, now=T0 + 2 * H)
    assert sorted((e.lead, round(e.ratio, 3)) for e in got) == [
        ("0-1h", 0.0),
        ("0-1h", 0.1),
        ("0-1h", 0.5),  # the second issue's first slot (lead 0)
        ("0-1h", 0.5),  # ... and its second (lead 30 min)
        ("1-6h", 0.2),  # the first issue, 1 h ahead
        ("1-6h", 0.3),
    ]
    assert all(isinstance(e, ErrorSample) and e.region == "de" for e in got)
    # Scored slots are forgotten: the same history again scores nothing.
    assert t.score("de", T0, actual, now=T0 + 2 * H) == []
    assert t.pending_since("de") == T0 + 2 * H


def test_slots_not_yet_over_missing_or_zero_actuals_wait() -> None:
    t = ForecastErrorTracker(SLOT)
    t.record("gb", T0, T0, [100.0, 100.0, 100.0])
    # The third slot is still running at now; the first has no actual; the second's actual is 0.
    assert t.score("gb", T0, [None, 0.0, 50.0], now=T0 + 75 * timedelta(minutes=1)) == []
    got = t.score("gb", T0, [80.0], now=T0 + 2 * H)
    assert [round(e.ratio, 2) for e in got] == [0.25]


def test_one_issue_per_region_and_slot_and_none_values_are_not_recorded() -> None:
    t = ForecastErrorTracker(SLOT)
    assert t.record("fr", T0, T0, [100.0, None])
    assert not t.record("fr", T0 + timedelta(minutes=5), T0, [200.0])  # same slot: a burst
    assert not t.record("fr", T0, T0 + SLOT, [200.0])  # the same issue served again from cache
    assert t.record("de", T0, T0, [1.0])  # regions are apart
    got = t.score("fr", T0, [100.0, 100.0], now=T0 + H)
    assert [e.ratio for e in got] == [0.0]


def test_unscored_slots_are_dropped_after_keep() -> None:
    t = ForecastErrorTracker(SLOT, keep=4 * H)
    t.record("de", T0, T0, [100.0] * 4)
    assert t.score("de", T0 + 10 * H, [], now=T0 + 10 * H) == []
    assert t.pending_since("de") is None
    assert t.score("nowhere", T0, [1.0], now=T0 + H) == []


def test_a_slot_must_be_positive() -> None:
    with pytest.raises(ValueError, match="slot must be positive"):
        ForecastErrorTracker(timedelta(0))
