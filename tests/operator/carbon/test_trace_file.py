from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from green_operator.carbon.series import SignalKind
from green_operator.carbon.trace_file import TraceFormatError, load_trace_csv, read_trace_rows


def write(tmp_path, lines):
    path = tmp_path / "t.csv"
    path.write_text("\n".join(["Time,Carbon Intensity", *lines]) + "\n")
    return path


def test_rows_are_columns_scaled_with_the_most_common_gap_as_step(tmp_path):
    # 30-minute rows, then 15-minute ones (as the GB file does part-way): 15 minutes is the commoner gap.
    starts = [datetime(2020, 1, 1, tzinfo=UTC) + timedelta(minutes=m) for m in (0, 30, 60, 75, 90, 105, 120)]
    path = write(tmp_path, [f"{t:%Y-%m-%d %H:%M:%S},{i * 10}" for i, t in enumerate(starts)])
    rows = read_trace_rows(path, scale=0.5)
    assert rows.starts_us.dtype == np.int64
    assert rows.values.dtype == np.float64
    assert [rows.start_at(i) for i in range(len(rows))] == starts
    assert rows.values.tolist() == [0.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0]
    assert rows.step == timedelta(minutes=15)


def test_equally_common_gaps_give_the_shorter_step(tmp_path):
    path = write(tmp_path, ["2020-01-01 00:00:00,1", "2020-01-01 01:00:00,2", "2020-01-01 01:30:00,3"])
    assert read_trace_rows(path).step == timedelta(minutes=30)


def test_an_offset_timestamp_is_read_as_utc(tmp_path):
    path = write(tmp_path, ["2020-01-01T01:00:00+01:00,1", "2020-01-01T01:00:00+00:00,2"])
    rows = read_trace_rows(path)
    assert rows.start_at(0) == datetime(2020, 1, 1, tzinfo=UTC)


def test_series_from_the_rows(tmp_path):
    path = write(tmp_path, ["2020-01-01 00:00:00,100", "2020-01-01 01:00:00,200"])
    series = load_trace_csv(path, zone="Z", provider="p", signal=SignalKind.MARGINAL, scale=2.0)
    assert series.zone == "Z"
    assert series.step == timedelta(hours=1)
    assert [(p.start, p.grams_per_kwh, p.provider, p.signal) for p in series.points] == [
        (datetime(2020, 1, 1, tzinfo=UTC), 200.0, "p", SignalKind.MARGINAL),
        (datetime(2020, 1, 1, 1, tzinfo=UTC), 400.0, "p", SignalKind.MARGINAL),
    ]


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["2020-01-01 01:00:00,1", "2020-01-01 00:00:00,2"], r"t\.csv:3: timestamps must increase"),
        (["2020-01-01 00:00:00,1", "2020-01-01 00:00:00,2"], r"t\.csv:3: timestamps must increase"),
        (["2020-01-01 00:00:00,1", "yesterday,2"], r"t\.csv:3: expected 'YYYY-MM-DD HH:MM:SS,<gCO2/kWh>'"),
        (["2020-01-01 00:00:00,1", "2020-01-01 01:00:00"], r"t\.csv:3: expected"),
        (["2020-01-01 00:00:00,1"], "a trace needs at least two rows"),
    ],
)
def test_bad_rows_name_the_file_and_line(tmp_path, lines, message):
    with pytest.raises(TraceFormatError, match=message):
        read_trace_rows(write(tmp_path, lines))


def test_missing_header_and_missing_file(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(TraceFormatError, match="line 1 must be a header"):
        read_trace_rows(empty)
    with pytest.raises(TraceFormatError, match="cannot read trace file"):
        read_trace_rows(tmp_path / "absent.csv")
