from datetime import UTC, datetime, timedelta

import pytest

from green_operator.carbon.payload import (
    PayloadError,
    build_series,
    duration,
    infer_step,
    number,
    timestamp,
)
from green_operator.carbon.series import IntensityPoint


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2020-06-01T00:00Z", datetime(2020, 6, 1, 0, 0, tzinfo=UTC)),
        ("2020-06-01T00:00:00.000Z", datetime(2020, 6, 1, 0, 0, tzinfo=UTC)),
        ("2023-06-08T00:05:00+00:00", datetime(2023, 6, 8, 0, 5, tzinfo=UTC)),
        # offsets are converted, not dropped: 01:00 at +01:00 is midnight UTC
        ("2020-06-01T01:00:00+01:00", datetime(2020, 6, 1, 0, 0, tzinfo=UTC)),
        ("2020-05-31T19:30:00-04:30", datetime(2020, 6, 1, 0, 0, tzinfo=UTC)),
        # no offset: taken as UTC, like the trace files
        ("2020-06-01 00:00:00", datetime(2020, 6, 1, 0, 0, tzinfo=UTC)),
    ],
)
def test_timestamps_normalise_to_utc(text, expected):
    got = timestamp(text, "x")
    assert got == expected
    assert got.utcoffset() == timedelta(0)
    assert got.tzinfo is UTC


def test_timestamp_across_a_dst_change_stays_exact():
    # 2020-03-29 01:00 UTC is when Europe/London jumps to BST; UTC arithmetic has no hole or overlap.
    a = timestamp("2020-03-29T00:30:00+00:00", "a")
    b = timestamp("2020-03-29T02:30:00+01:00", "b")
    assert b - a == timedelta(hours=1)


@pytest.mark.parametrize("bad", ["yesterday", "2020-13-01T00:00Z", 12, None])
def test_bad_timestamps_name_the_field(bad):
    with pytest.raises(PayloadError, match=r"^forecast\[3\]\.datetime: "):
        timestamp(bad, "forecast[3].datetime")


def test_numbers():
    assert number(146, "v") == 146.0
    assert number(None, "v", allow_none=True) is None
    for bad in ("146", True, -1, float("nan"), float("inf"), None, [1]):
        with pytest.raises(PayloadError, match=r"^v: "):
            number(bad, "v")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (5, timedelta(minutes=5)),
        (0.5, timedelta(seconds=30)),
        ("01:00:00", timedelta(hours=1)),
        ("00:05:00", timedelta(minutes=5)),
        ("1.02:00:00", timedelta(days=1, hours=2)),
    ],
)
def test_durations_in_minutes_or_timespan(raw, expected):
    assert duration(raw, "d") == expected


@pytest.mark.parametrize("raw", ["5m", "01:00", 0, -5, "00:00:00", None])
def test_bad_durations(raw):
    with pytest.raises(PayloadError, match=r"^d: "):
        duration(raw, "d")


def test_infer_step_takes_the_most_common_gap():
    t0 = datetime(2020, 1, 1, tzinfo=UTC)
    starts = [t0, t0 + timedelta(minutes=30), t0 + timedelta(minutes=60), t0 + timedelta(minutes=75)]
    assert infer_step(starts, timedelta(hours=1)) == timedelta(minutes=30)
    assert infer_step([t0], timedelta(hours=1)) == timedelta(hours=1)


def test_build_series_sorts_and_deduplicates():
    t0 = datetime(2020, 1, 1, tzinfo=UTC)
    pts = [
        IntensityPoint(t0 + timedelta(hours=1), 2.0, "p"),
        IntensityPoint(t0, 1.0, "p"),
        IntensityPoint(t0 + timedelta(hours=1), 3.0, "p"),
    ]
    s = build_series("Z", pts, timedelta(minutes=5))
    assert [p.grams_per_kwh for p in s.points] == [1.0, 3.0]
    assert s.step == timedelta(hours=1)
