import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from green_operator.carbon.assemble import Candidate, assemble, coverage, static_series
from green_operator.carbon.provider import DataSource
from green_operator.carbon.series import IntensityPoint, IntensitySeries, series_from_values

T0 = datetime(2026, 1, 1, tzinfo=UTC)
H = timedelta(hours=1)


def live(values, start=T0, step=H):
    return Candidate(DataSource.LIVE, "emaps", series_from_values("Z", "emaps", start, step, values), T0)


def static(start, end, g=300.0):
    return Candidate(DataSource.STATIC, "static", static_series("Z", start, end, g))


def test_live_covering_everything_is_used_alone():
    series, spans = assemble("Z", T0, T0 + 3 * H, [live([1, 2, 3, 4]), static(T0, T0 + 3 * H)])
    assert [p.grams_per_kwh for p in series.points] == [1, 2, 3]
    assert [(s.source, s.start, s.end) for s in spans] == [(DataSource.LIVE, T0, T0 + 3 * H)]
    assert series.covers(T0, T0 + 3 * H)


def test_short_forecast_is_extended_by_static_and_reported():
    end = T0 + 5 * H
    series, spans = assemble("Z", T0, end, [live([1, 2]), static(T0, end)])
    assert series.covers(T0, end)
    assert series.mean(T0, end) == pytest.approx((1 + 2 + 3 * 300) / 5)
    assert [(s.source, s.start, s.end) for s in spans] == [
        (DataSource.LIVE, T0, T0 + 2 * H),
        (DataSource.STATIC, T0 + 2 * H, end),
    ]
    assert all(p.estimated for p in series.points if p.provider == "static")


def test_window_starting_before_the_forecast_and_mid_step():
    start, end = T0 - 30 * timedelta(minutes=1), T0 + 90 * timedelta(minutes=1)
    series, spans = assemble("Z", start, end, [live([10, 20]), static(start, end, 99)])
    assert [(p.start, p.grams_per_kwh) for p in series.points] == [(start, 99), (T0, 10), (T0 + H, 20)]
    assert [s.source for s in spans] == [DataSource.STATIC, DataSource.LIVE]
    assert series.covers(start, end)


def test_holes_are_not_bridged_but_short_gaps_are():
    pts = [IntensityPoint(T0 + h * H, float(h), "emaps") for h in (0, 1, 2, 5, 6)]  # 2h..5h missing
    s = IntensitySeries("Z", tuple(pts), H)
    assert coverage(s) == [(T0, T0 + 3 * H), (T0 + 5 * H, T0 + 7 * H)]
    gappy = [IntensityPoint(T0 + h * timedelta(minutes=30), 1.0, "x") for h in (0, 2, 3)]  # one 30-min slot missing
    assert coverage(IntensitySeries("Z", tuple(gappy), timedelta(minutes=30))) == [(T0, T0 + 2 * H)]
    series, spans = assemble("Z", T0, T0 + 7 * H, [Candidate(DataSource.LIVE, "emaps", s), static(T0, T0 + 7 * H)])
    assert [s.source for s in spans] == [DataSource.LIVE, DataSource.STATIC, DataSource.LIVE]
    assert series.value_at(T0 + 3 * H) == 300


def test_priority_order_cached_before_trace():
    end = T0 + 4 * H
    cached = Candidate(DataSource.CACHED, "emaps", series_from_values("Z", "emaps", T0, H, [5, 5, 5]), T0)
    trace = Candidate(DataSource.TRACE, "demo", series_from_values("DE", "demo", T0, H, [7, 7, 7, 7, 7]))
    series, spans = assemble("Z", T0, end, [cached, trace, static(T0, end)])
    assert [p.grams_per_kwh for p in series.points] == [5, 5, 5, 7]
    assert [s.source for s in spans] == [DataSource.CACHED, DataSource.TRACE]


def test_last_point_reaches_the_end_inside_a_bridged_gap():
    # 15-minute series with a 45-minute gap (bridged, < 1 h): the window ends inside that gap.
    q = timedelta(minutes=15)
    pts = [IntensityPoint(T0, 1.0, "x"), IntensityPoint(T0 + q, 2.0, "x"), IntensityPoint(T0 + 4 * q, 3.0, "x")]
    s = IntensitySeries("Z", tuple(pts), q)
    end = T0 + 3 * q
    series, _ = assemble("Z", T0, end, [Candidate(DataSource.LIVE, "x", s), static(T0, end)])
    assert series.covers(T0, end)
    assert series.mean(T0, end) == pytest.approx((1 + 2 + 2) / 3)


def test_gap_left_uncovered_is_an_error():
    with pytest.raises(ValueError, match="no source covers"):
        assemble("Z", T0, T0 + 5 * H, [live([1, 2])])


def test_static_series_grid():
    s = static_series("Z", T0, T0 + 150 * timedelta(minutes=1), 42.0)
    assert [p.start for p in s.points] == [T0, T0 + H, T0 + 2 * H]
    assert s.covers(T0, T0 + 150 * timedelta(minutes=1))


@st.composite
def gappy_series(draw, provider):
    offsets = sorted(set(draw(st.lists(st.integers(0, 48 * 4), min_size=1, max_size=40))))
    pts = tuple(
        IntensityPoint(T0 + o * timedelta(minutes=15), float(draw(st.integers(1, 900))), provider) for o in offsets
    )
    return IntensitySeries("Z", pts, timedelta(minutes=15 * draw(st.integers(1, 4))))


@settings(max_examples=150, deadline=None)
@given(
    live_s=gappy_series("live"),
    trace_s=gappy_series("trace"),
    a=st.integers(-8, 200),
    length=st.integers(1, 200),
)
def test_assembled_series_covers_the_window_and_respects_priority(live_s, trace_s, a, length):
    start = T0 + a * timedelta(minutes=15)
    end = start + length * timedelta(minutes=15)
    cands = [
        Candidate(DataSource.LIVE, "live", live_s),
        Candidate(DataSource.TRACE, "trace", trace_s),
        static(start, end, 7.0),
    ]
    series, spans = assemble("Z", start, end, cands)
    assert series.covers(start, end)
    assert spans[0].start == start
    assert spans[-1].end == end
    assert all(x.end == y.start for x, y in itertools.pairwise(spans))
    live_runs, trace_runs = coverage(live_s), coverage(trace_s)
    t = start
    while t < end:  # every 5 minutes: the value comes from the best source covering t
        v = series.value_at(t)
        if any(ra <= t < rb for ra, rb in live_runs):
            assert v is not None
            assert v == max((p for p in live_s.points if p.start <= t), key=lambda p: p.start).grams_per_kwh
        elif any(ra <= t < rb for ra, rb in trace_runs):
            assert v is not None
            assert v == max((p for p in trace_s.points if p.start <= t), key=lambda p: p.start).grams_per_kwh
        else:
            assert v == 7.0
        t += timedelta(minutes=5)
