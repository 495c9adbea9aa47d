from datetime import timedelta

import pytest

from green_operator.times import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("10m", timedelta(minutes=10)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1.5h", timedelta(hours=1, minutes=30)),
        ("500ms", timedelta(milliseconds=500)),
        ("2h0m5s", timedelta(hours=2, seconds=5)),
        (" 45m ", timedelta(minutes=45)),
    ],
)
def test_parse_go_durations(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "10", "10 m", "1d", "m", "-5m", "1h-", "abc"])
def test_rejects_non_durations_with_an_example(text):
    with pytest.raises(ValueError, match="'30s'"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["0s", "0.0001ms", "1ns"])  # below a microsecond is zero to timedelta
def test_rejects_zero(text):
    with pytest.raises(ValueError, match="longer than zero"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("d", "text"),
    [
        (timedelta(seconds=90), "1m30s"),
        (timedelta(hours=2), "2h"),
        (timedelta(0), "0s"),
        (timedelta(hours=1, seconds=1), "1h1s"),
    ],
)
def test_format_duration(d, text):
    assert format_duration(d) == text
