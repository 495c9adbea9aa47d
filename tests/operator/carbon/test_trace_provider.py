from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from green_operator.carbon.provider import ErrorReason, ProviderError
from green_operator.carbon.series import SignalKind
from green_operator.carbon.trace_file import load_trace_csv, read_trace_rows
from green_operator.carbon.trace_provider import TraceProvider

REPO = Path(__file__).resolve().parents[3]
GB_TRACE = REPO / "data" / "carbon" / "lwa_gb_2020.csv"


def write_csv(path: Path, start: datetime, step: timedelta, values: list[float]) -> Path:
    rows = ["Time,Carbon Intensity"]
    rows += [f"{(start + i * step).strftime('%Y-%m-%d %H:%M:%S')},{v}" for i, v in enumerate(values)]
    path.write_text("\n".join(rows) + "\n")
    return path


class Clock:
    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now


def test_shift_none_uses_file_timestamps_as_utc(tmp_path):
    now = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
    csv = write_csv(
        tmp_path / "z.csv", now - timedelta(seconds=30), timedelta(seconds=10), [100, 200, 300, 400, 500, 600]
    )
    tp = TraceProvider("demo", {"Z": load_trace_csv(csv, zone="Z", provider="demo")}, clock=Clock(now))
    s = tp.history("Z", now, now + timedelta(seconds=20))
    assert [(p.start, p.grams_per_kwh) for p in s.points] == [(now, 400.0), (now + timedelta(seconds=10), 500.0)]
    assert s.step == timedelta(seconds=10)
    assert s.points[0].provider == "demo"
    # the trace's end: [now+30s, ...) has nothing
    with pytest.raises(ProviderError) as ei:
        tp.forecast("Z", now + timedelta(seconds=40), now + timedelta(minutes=5))
    assert ei.value.reason == ErrorReason.NO_DATA


def test_forecast_before_the_trace_is_empty_and_reported(tmp_path):
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    csv = write_csv(tmp_path / "z.csv", t0, timedelta(hours=1), [1, 2, 3])
    tp = TraceProvider("demo", {"Z": load_trace_csv(csv, zone="Z")})
    with pytest.raises(ProviderError, match="no data"):
        tp.forecast("Z", t0 - timedelta(hours=5), t0 - timedelta(hours=1))


def _hourly_trace(tmp_path, days=3):
    t0 = datetime(2020, 1, 1, tzinfo=UTC)
    csv = write_csv(tmp_path / "h.csv", t0, timedelta(hours=1), [float(h) for h in range(24 * days)])
    return load_trace_csv(csv, zone="Z", provider="demo")


def test_to_now_maps_the_anchor_onto_today_midnight(tmp_path):
    now = datetime(2026, 7, 15, 9, 41, tzinfo=UTC)
    tp = TraceProvider(
        "demo", {"Z": _hourly_trace(tmp_path)}, shift="toNow", anchor=datetime(2020, 1, 2, tzinfo=UTC), clock=Clock(now)
    )
    today = datetime(2026, 7, 15, tzinfo=UTC)
    assert tp.base == today
    s = tp.history("Z", today + timedelta(hours=5), today + timedelta(hours=8))
    # wall 05:00 today shows trace 2020-01-02T05:00, i.e. hour 24 + 5 of the trace
    assert [(p.start, p.grams_per_kwh) for p in s.points] == [(today + timedelta(hours=h), 24.0 + h) for h in (5, 6, 7)]


def test_to_now_wraps_by_whole_days_and_starts_mid_step(tmp_path):
    now = datetime(2026, 7, 15, 9, 41, tzinfo=UTC)
    tp = TraceProvider(
        "demo", {"Z": _hourly_trace(tmp_path)}, shift="toNow", anchor=datetime(2020, 1, 2, tzinfo=UTC), clock=Clock(now)
    )
    today = datetime(2026, 7, 15, tzinfo=UTC)
    # 2 days later at 22:30 -> trace 2020-01-04T22:30 is past the 3-day trace: wraps to 2020-01-01T22:30
    start = today + timedelta(days=2, hours=22, minutes=30)
    s = tp.history("Z", start, start + timedelta(hours=3))
    assert [p.grams_per_kwh for p in s.points] == [22.0, 23.0, 24.0, 25.0]
    assert s.points[0].start == today + timedelta(days=2, hours=22)
    assert s.covers(start, start + timedelta(hours=3))
    # the window itself crossing the trace's end: 2020-01-03T22:30.. runs into 2020-01-01T00:00
    start = today + timedelta(days=1, hours=22, minutes=30)
    s = tp.history("Z", start, start + timedelta(hours=3))
    assert [p.grams_per_kwh for p in s.points] == [70.0, 71.0, 0.0, 1.0]
    assert [p.start - s.points[0].start for p in s.points] == [timedelta(hours=h) for h in range(4)]
    # and the day before today is the anchor's previous day
    y = tp.history("Z", today - timedelta(hours=1), today)
    assert [p.grams_per_kwh for p in y.points] == [23.0]


def test_to_now_time_runs_on_after_midnight(tmp_path):
    clock = Clock(datetime(2026, 7, 15, 23, 0, tzinfo=UTC))
    tp = TraceProvider(
        "demo", {"Z": _hourly_trace(tmp_path)}, shift="toNow", anchor=datetime(2020, 1, 2, tzinfo=UTC), clock=clock
    )
    clock.now += timedelta(hours=3)  # the operator keeps running into the next day
    tomorrow = datetime(2026, 7, 16, tzinfo=UTC)
    s = tp.history("Z", tomorrow + timedelta(hours=1), tomorrow + timedelta(hours=2))
    assert [p.grams_per_kwh for p in s.points] == [49.0]  # anchor day + 1, hour 1


def test_noise_is_deterministic_bounded_and_forecast_only(tmp_path):
    series = _hourly_trace(tmp_path, days=4)
    now = datetime(2026, 7, 15, tzinfo=UTC)

    def make(seed):
        return TraceProvider(
            "demo",
            {"Z": series},
            shift="toNow",
            anchor=datetime(2020, 1, 2, tzinfo=UTC),
            noise_fraction=0.1,
            seed=seed,
            clock=Clock(now),
        )

    a, b, c = make(1), make(1), make(2)
    w = (now, now + timedelta(hours=24))
    fa, fb, fc = (p.forecast("Z", *w) for p in (a, b, c))
    truth = a.history("Z", *w)
    assert [p.grams_per_kwh for p in fa.points] == [p.grams_per_kwh for p in fb.points]
    assert [p.grams_per_kwh for p in fa.points] != [p.grams_per_kwh for p in fc.points]
    assert [p.grams_per_kwh for p in truth.points] == [24.0 + h for h in range(24)]
    ratios = [
        f.grams_per_kwh / t.grams_per_kwh for f, t in zip(fa.points, truth.points, strict=True) if t.grams_per_kwh
    ]
    assert all(0.8 - 1e-9 <= r <= 1.2 + 1e-9 for r in ratios)
    assert any(abs(r - 1) > 0.01 for r in ratios)
    # the same hour gets the same noise whatever window asks for it
    later = a.forecast("Z", now + timedelta(hours=5), now + timedelta(hours=6))
    assert later.points[0].grams_per_kwh == fa.points[5].grams_per_kwh


def test_noise_fraction_is_validated():
    with pytest.raises(ValueError, match="noise fraction"):
        TraceProvider("demo", {}, noise_fraction=0.7)


def test_anchor_outside_the_trace_is_refused(tmp_path):
    with pytest.raises(ValueError, match="outside the trace"):
        TraceProvider("demo", {"Z": _hourly_trace(tmp_path)}, shift="toNow", anchor=datetime(2021, 1, 1, tzinfo=UTC))


def test_unknown_zone(tmp_path):
    tp = TraceProvider("demo", {"Z": _hourly_trace(tmp_path)})
    with pytest.raises(ProviderError, match="no trace for zone 'Q'; have Z"):
        tp.forecast("Q", datetime(2020, 1, 1, tzinfo=UTC), datetime(2020, 1, 2, tzinfo=UTC))


def test_real_gb_trace_replayed_on_today():
    series = load_trace_csv(GB_TRACE, zone="GB", provider="demo", signal=SignalKind.AVERAGE)
    now = datetime(2026, 11, 3, 14, 7, tzinfo=UTC)
    tp = TraceProvider("demo", {"GB": series}, shift="toNow", anchor=datetime(2020, 6, 1, tzinfo=UTC), clock=Clock(now))
    today = datetime(2026, 11, 3, tzinfo=UTC)
    s = tp.history("GB", today + timedelta(hours=12), today + timedelta(hours=13))
    expected = series.window(datetime(2020, 6, 1, 12, tzinfo=UTC), datetime(2020, 6, 1, 13, tzinfo=UTC))
    assert [p.grams_per_kwh for p in s.points] == [p.grams_per_kwh for p in expected.points]
    assert len(s.points) == 2  # half-hourly in June 2020


def test_rows_and_series_replay_alike_and_rows_take_the_providers_name_and_signal():
    # The operator builds the provider from the file's rows (columns, not a point object per row).
    rows = read_trace_rows(GB_TRACE, scale=2.0)
    series = load_trace_csv(GB_TRACE, zone="GB", provider="demo", signal=SignalKind.MARGINAL, scale=2.0)
    now = datetime(2026, 11, 3, 14, 7, tzinfo=UTC)
    kwargs = {"shift": "toNow", "anchor": datetime(2020, 6, 1, tzinfo=UTC), "noise_fraction": 0.05, "seed": 3}
    from_rows = TraceProvider("demo", {"GB": rows}, signal=SignalKind.MARGINAL, clock=Clock(now), **kwargs)
    from_series = TraceProvider("other", {"GB": series}, clock=Clock(now), **kwargs)
    for start in (now - timedelta(days=14), now, now + timedelta(days=400)):
        for method in ("forecast", "history"):
            a = getattr(from_rows, method)("GB", start, start + timedelta(hours=48))
            b = getattr(from_series, method)("GB", start, start + timedelta(hours=48))
            assert a == b
            assert len(a.points) >= 96
    assert {(p.provider, p.signal) for p in a.points} == {("demo", SignalKind.MARGINAL)}
