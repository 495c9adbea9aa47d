"""The fallback chain end to end: real local HTTP servers, a settable clock, a private registry."""

import asyncio
import logging
import math
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from green_operator.api.status import carbon_condition
from green_operator.carbon import DataSource
from green_operator.carbon.config import CarbonConfigError, parse_carbon_config
from green_operator.carbon.metrics import CarbonMetrics
from green_operator.carbon.service import CarbonService, UnknownRegionError

H = timedelta(hours=1)
TOKEN = "emaps-secret-token-42"
FORECAST = "/v3/carbon-intensity/forecast"
HISTORY = "/v3/carbon-intensity/history"


def write_trace(path: Path, value: float, start=datetime(2020, 5, 30, tzinfo=UTC), hours=24 * 8) -> Path:
    rows = ["Time,Carbon Intensity"] + [
        f"{(start + i * H).strftime('%Y-%m-%d %H:%M:%S')},{value}" for i in range(hours)
    ]
    path.write_text("\n".join(rows) + "\n")
    return path


def sample(registry, name, **labels):
    v = registry.get_sample_value(name, labels)
    return 0.0 if v is None else v


@pytest.fixture
def registry():
    return CollectorRegistry()


@pytest.fixture
def build(server, clock, registry, tmp_path, monkeypatch, session_factory):
    """A service with region 'fi' on the local server (Electricity Maps shape), a trace fallback
    'demo' (500 g/kWh), a static factor of 85, and a static-only region 'quiet'."""
    monkeypatch.setenv("EMAPS_TOKEN", TOKEN)
    write_trace(tmp_path / "de.csv", 500.0)
    services = []
    metrics = CarbonMetrics(registry)

    def make(*, trace=True, timeout=2.0, carbon=None, extra_regions=()):
        region = {"provider": "emaps", "zone": "GB", "staticGramsPerKwh": 85}
        if trace:
            region["fallbackTrace"] = {"provider": "demo", "zone": "DE"}
        doc = {
            "providers": {
                "emaps": {
                    "type": "electricitymaps",
                    "baseUrl": server.url + "/v3/",
                    "tokenEnv": "EMAPS_TOKEN",
                    "timeoutSeconds": timeout,
                },
                "demo": {"type": "trace", "files": {"DE": "de.csv"}},
            },
            "carbon": {"cacheTTL": "10m", "staleAfter": "1h", "retryBackoff": "30s", "maxRetries": 0, **(carbon or {})},
            "regions": [
                {"name": "fi", "carbon": region},
                {"name": "quiet", "carbon": {"staticGramsPerKwh": 120}},
                *extra_regions,
            ],
        }
        cfg = parse_carbon_config(doc, base_dir=tmp_path)
        svc = CarbonService.from_config(
            cfg,
            clock=clock,
            session_factory=session_factory,
            metrics=metrics,
            sleep=lambda _s: None,
            rand=lambda: 0.5,
        )
        services.append(svc)
        return svc

    yield make
    for s in services:
        s.close()


@pytest.fixture
def em_up(server, fixture_json):
    server.json(FORECAST, fixture_json("electricitymaps_forecast.json"))
    server.json(HISTORY, fixture_json("electricitymaps_history.json"))


def window(clock, hours=12):
    return clock.now, clock.now + timedelta(hours=hours)


def test_live_answer(build, em_up, server, clock, registry):
    svc = build()
    r = svc.forecast("fi", *window(clock))
    assert (r.source, r.stale, r.error, r.provider) == (DataSource.LIVE, False, None, "emaps")
    assert not r.degraded
    assert r.series.covers(*window(clock))
    assert r.series.value_at(clock.now) == 146.0
    assert r.data_fetched_at == clock.now
    assert [s.source for s in r.spans] == [DataSource.LIVE]
    assert server.last(FORECAST).headers["auth-token"] == TOKEN
    assert sample(registry, "greentraining_provider_requests_total", provider="emaps", outcome="success") == 1
    assert sample(registry, "greentraining_provider_fallback_active", region="fi", source="live") == 1
    assert sample(registry, "greentraining_provider_fallback_active", region="fi", source="static") == 0
    assert sample(registry, "greentraining_provider_data_age_seconds", region="fi") == 0


def test_cache_ttl_avoids_requests_until_it_expires(build, em_up, server, clock):
    svc = build()
    svc.forecast("fi", *window(clock))
    clock.advance(minutes=5)
    r = svc.forecast("fi", *window(clock))  # a shifted window, still inside what was fetched
    assert server.count(FORECAST) == 1
    assert r.source is DataSource.LIVE
    assert r.data_fetched_at == clock.now - timedelta(minutes=5)
    clock.advance(minutes=6)
    svc.forecast("fi", *window(clock))
    assert server.count(FORECAST) == 2


def test_provider_failure_falls_back_to_cached_then_marks_it_stale(build, em_up, server, clock, registry):
    svc = build()
    fetched = clock.now
    svc.forecast("fi", *window(clock))
    server.down = True
    clock.advance(minutes=15)
    r = svc.forecast("fi", *window(clock))
    assert r.source is DataSource.CACHED
    assert not r.stale
    assert r.degraded
    assert "HTTP 503" in r.error
    assert "service unavailable" in r.error
    assert "cached emaps data fetched 15m ago" in r.error
    assert r.data_fetched_at == fetched
    assert r.series.value_at(clock.now) == 146.0
    assert sample(registry, "greentraining_provider_errors_total", provider="emaps", reason="http_5xx") == 1
    assert sample(registry, "greentraining_provider_requests_total", provider="emaps", outcome="error") == 1
    assert sample(registry, "greentraining_provider_fallback_active", region="fi", source="cached") == 1
    assert sample(registry, "greentraining_provider_fallback_active", region="fi", source="live") == 0
    assert sample(registry, "greentraining_provider_data_age_seconds", region="fi") == 15 * 60

    clock.advance(minutes=50)  # 65 min old now: past staleAfter (1h)
    r = svc.forecast("fi", *window(clock))
    assert r.source is DataSource.CACHED
    assert r.stale
    assert "stale" in r.error
    assert "HTTP 503" in r.error


def test_no_cache_uses_the_trace_then_static(build, server, clock, registry):
    server.down = True
    r = build().forecast("fi", *window(clock))
    assert r.source is DataSource.TRACE
    assert r.provider == "demo"
    assert r.series.value_at(clock.now) == 500.0
    assert "HTTP 503" in r.error
    assert "from trace demo/DE" in r.error
    assert r.data_fetched_at is None
    assert r.configured is DataSource.LIVE  # a fallback, not the region's choice
    assert sample(registry, "greentraining_provider_data_age_seconds", region="fi") == math.inf

    r = build(trace=False).forecast("fi", *window(clock))
    assert r.source is DataSource.STATIC
    assert r.series.mean(*window(clock)) == 85.0
    assert all(p.estimated for p in r.series.points)
    assert "from static 85 g/kWh (configured staticGramsPerKwh)" in r.error
    assert "HTTP 503" in r.error


def test_short_forecast_is_extended_and_reported(build, em_up, clock):
    svc = build(trace=False)
    start, end = clock.now, clock.now + timedelta(hours=96)  # the fixture ends 2020-06-04T00:00
    r = svc.forecast("fi", start, end)
    assert r.series.covers(start, end)
    assert [(s.source, s.provider) for s in r.spans] == [(DataSource.LIVE, "emaps"), (DataSource.STATIC, "static")]
    assert r.spans[0].end == datetime(2020, 6, 4, tzinfo=UTC)
    assert r.source is DataSource.STATIC
    assert r.provider == "emaps+static"
    assert "2020-06-04T00:00:00Z..2020-06-05T00:10:00Z from static 85 g/kWh" in r.error
    assert r.series.value_at(datetime(2020, 6, 4, 12, tzinfo=UTC)) == 85.0
    assert r.source_at(start) is DataSource.LIVE
    assert r.source_at(datetime(2020, 6, 4, 12, tzinfo=UTC)) is DataSource.STATIC
    assert r.source_at(end) is None
    assert r.live_until == datetime(2020, 6, 4, tzinfo=UTC)
    assert r.series.value_at(datetime(2020, 6, 3, 23, 30, tzinfo=UTC)) == 136.0


def test_rate_limit_is_honoured_then_recovered(build, em_up, server, clock, registry, fixture_json):
    svc = build()
    server.route(
        FORECAST,
        server.Reply(429, {"error": "quota"}, {"Retry-After": "120"}),
        server.Reply(200, fixture_json("electricitymaps_forecast.json")),
    )
    r = svc.forecast("fi", *window(clock))
    assert r.source is DataSource.TRACE
    assert "HTTP 429" in r.error
    assert sample(registry, "greentraining_provider_requests_total", provider="emaps", outcome="rate_limited") == 1
    clock.advance(seconds=60)
    r = svc.forecast("fi", *window(clock))
    assert server.count(FORECAST) == 1  # not asked again before Retry-After
    assert "next attempt after 2020-06-01T00:12:00Z" in r.error
    clock.advance(seconds=61)
    r = svc.forecast("fi", *window(clock))
    assert server.count(FORECAST) == 2
    assert (r.source, r.error) == (DataSource.LIVE, None)


def test_failures_back_off_and_recovery_restores_live(build, server, clock, registry, fixture_json, caplog):
    svc = build()
    server.down = True
    with caplog.at_level(logging.WARNING, logger="green_operator.carbon.service"):
        svc.forecast("fi", *window(clock))
        clock.advance(seconds=10)
        svc.forecast("fi", *window(clock))
    assert server.count(FORECAST) == 1  # backing off: 30 s * (0.5 + 0.5 * 0.5) = 22.5 s
    assert len([r for r in caplog.records if "using fallbacks" in r.getMessage()]) == 1
    clock.advance(seconds=13)
    r = svc.forecast("fi", *window(clock))
    assert server.count(FORECAST) == 2
    assert r.source is DataSource.TRACE
    # second failure doubles the wait: 60 s * 0.75 = 45 s
    server.down = False
    server.json(FORECAST, fixture_json("electricitymaps_forecast.json"))
    clock.advance(seconds=40)
    assert svc.forecast("fi", *window(clock)).source is DataSource.TRACE
    clock.advance(seconds=6)
    r = svc.forecast("fi", *window(clock))
    assert (r.source, r.error, r.stale) == (DataSource.LIVE, None, False)
    assert sample(registry, "greentraining_provider_fallback_active", region="fi", source="live") == 1
    assert sample(registry, "greentraining_provider_fallback_active", region="fi", source="trace") == 0


def test_timeout_falls_back_and_is_counted(build, server, clock, registry):
    server.route(FORECAST, server.Reply(200, {"forecast": []}, delay_s=5.0))
    r = build(timeout=0.2).forecast("fi", *window(clock))
    assert r.source is DataSource.TRACE
    assert "timed out after 0.2s" in r.error
    assert sample(registry, "greentraining_provider_requests_total", provider="emaps", outcome="timeout") == 1
    assert sample(registry, "greentraining_provider_errors_total", provider="emaps", reason="timeout") == 1


def test_malformed_and_missing_fields_fall_back(build, server, clock, registry, fixture_json):
    server.route(FORECAST, server.Reply(200, b"<html>maintenance</html>"))
    r = build().forecast("fi", *window(clock))
    assert r.source is DataSource.TRACE
    assert "malformed JSON" in r.error
    body = fixture_json("electricitymaps_forecast.json")
    del body["forecast"][0]["datetime"]
    server.json(FORECAST, body)
    r = build().forecast("fi", *window(clock))
    assert "forecast[0].datetime: missing field" in r.error
    assert sample(registry, "greentraining_provider_errors_total", provider="emaps", reason="malformed") == 2


def test_secrets_never_reach_results_or_metrics(build, server, clock, registry):
    server.json(FORECAST, {"error": f"token {TOKEN} has expired"}, status=401)
    r = build().forecast("fi", *window(clock))
    assert r.source is DataSource.TRACE
    assert "HTTP 401" in r.error
    assert TOKEN not in r.error
    assert TOKEN not in repr(r)
    assert TOKEN.encode() not in generate_latest(registry)
    assert sample(registry, "greentraining_provider_errors_total", provider="emaps", reason="auth") == 1


def test_history_uses_the_cached_forecast_when_history_fails(build, em_up, server, clock):
    svc = build(trace=False)
    svc.forecast("fi", *window(clock))
    server.route(HISTORY, server.Reply(500, {"error": "boom"}))
    clock.advance(hours=3)
    run = (clock.now - timedelta(hours=2), clock.now)
    r = svc.history("fi", *run)
    assert r.source is DataSource.CACHED
    assert r.series.value_at(run[0]) == 151.0  # the forecast value for 01:00-02:00
    assert "HTTP 500" in r.error
    assert r.series.covers(*run)


def test_history_live(build, em_up, clock):
    svc = build()
    clock.now = datetime(2020, 6, 1, tzinfo=UTC)
    run = (datetime(2020, 5, 31, 10, tzinfo=UTC), datetime(2020, 5, 31, 12, 30, tzinfo=UTC))
    r = svc.history("fi", *run)
    assert (r.source, r.error) == (DataSource.LIVE, None)
    assert [p.start for p in r.series.points] == [run[0], run[0] + H, run[0] + 2 * H]


def test_static_only_region_says_so(build, clock, registry):
    r = build().forecast("quiet", *window(clock))
    assert r.source is DataSource.STATIC
    assert r.series.mean(*window(clock)) == 120.0
    assert r.error.startswith("no live provider configured for region quiet")
    assert sample(registry, "greentraining_provider_fallback_active", region="quiet", source="static") == 1
    assert sample(registry, "greentraining_provider_data_age_seconds", region="quiet") == math.inf


def test_trace_as_primary_provider_is_reported_as_trace(build, clock, registry):
    svc = build(extra_regions=[{"name": "demo-de", "carbon": {"provider": "demo", "zone": "DE"}}])
    for r in (svc.forecast("demo-de", *window(clock)), svc.history("demo-de", clock.now - 2 * H, clock.now)):
        # Replayed data, never passed off as live; but what the region is configured with, so no error.
        assert (r.source, r.configured, r.provider, r.error) == (DataSource.TRACE, DataSource.TRACE, "demo", None)
        assert [s.source for s in r.spans] == [DataSource.TRACE]
        assert r.data_fetched_at is None
        assert not r.stale
    assert svc.forecast("demo-de", *window(clock)).series.value_at(clock.now) == 500.0
    assert sample(registry, "greentraining_provider_fallback_active", region="demo-de", source="trace") == 1
    assert sample(registry, "greentraining_provider_fallback_active", region="demo-de", source="live") == 0
    # A trace does not age: the stale-data alert (age above its threshold) stays quiet for it.
    assert sample(registry, "greentraining_provider_data_age_seconds", region="demo-de") == 0
    assert sample(registry, "greentraining_provider_requests_total", provider="demo", outcome="success") == 0


def test_the_condition_tells_a_configured_trace_from_a_trace_fallback(build, server, clock):
    svc = build(extra_regions=[{"name": "demo-de", "carbon": {"provider": "demo", "zone": "DE"}}])
    configured = svc.forecast("demo-de", *window(clock))
    (c,) = carbon_condition([], [configured], 1, clock.now)
    assert (c["status"], c["reason"]) == ("True", "TraceData")
    assert c["message"] == "demo-de: trace data from demo (configured)"
    server.down = True
    fallback = svc.forecast("fi", *window(clock))  # the live provider fails: its fallback trace stands in
    assert (fallback.source, fallback.configured) == (DataSource.TRACE, DataSource.LIVE)
    (c,) = carbon_condition([], [configured, fallback], 1, clock.now)
    assert (c["status"], c["reason"]) == ("False", "FallbackData")
    assert c["message"].startswith("fi: trace data from demo (")
    assert "HTTP 503" in c["message"]


def test_regions_and_bad_arguments(build, clock):
    svc = build()
    assert svc.regions() == ["fi", "quiet"]
    with pytest.raises(UnknownRegionError, match="unknown region 'mars'; configured regions: fi, quiet"):
        svc.forecast("mars", *window(clock))
    with pytest.raises(ValueError, match="empty window"):
        svc.forecast("fi", clock.now, clock.now)


def test_naive_datetimes_are_taken_as_utc(build, em_up, clock):
    naive = clock.now.replace(tzinfo=None)
    r = build().forecast("fi", naive, naive + timedelta(hours=2))
    assert r.series.start == clock.now


def test_concurrent_callers_share_one_request(build, server, clock, fixture_json):
    server.route(FORECAST, server.Reply(200, fixture_json("electricitymaps_forecast.json"), delay_s=0.3))
    svc = build()
    results = []
    barrier = threading.Barrier(6)

    def call():
        barrier.wait()
        results.append(svc.forecast("fi", *window(clock)))

    threads = [threading.Thread(target=call) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert len(results) == 6
    assert server.count(FORECAST) == 1
    assert {r.source for r in results} == {DataSource.LIVE}


def test_async_variant_runs_off_the_event_loop(build, em_up, clock):
    svc = build()

    async def main():
        loop_thread = threading.get_ident()
        seen = []
        orig = svc.forecast

        def spy(*a):
            seen.append(threading.get_ident())
            return orig(*a)

        svc.forecast = spy
        r = await svc.forecast_async("fi", *window(clock))
        return r, loop_thread, seen

    r, loop_thread, seen = asyncio.run(main())
    assert r.source is DataSource.LIVE
    assert seen
    assert seen[0] != loop_thread


def test_bad_trace_file_fails_at_start_naming_the_field(tmp_path, registry):
    cfg = parse_carbon_config(
        {"providers": {"demo": {"type": "trace", "files": {"DE": "missing.csv"}}}}, base_dir=tmp_path
    )
    with pytest.raises(CarbonConfigError, match=r"^providers\.demo\.files\.DE: .*missing\.csv: cannot read trace file"):
        CarbonService.from_config(cfg, metrics=CarbonMetrics(registry))


def test_watttime_region_through_the_service(server, clock, registry, fixture_json, monkeypatch, session_factory):
    monkeypatch.setenv("WT_USER", "u")
    monkeypatch.setenv("WT_PASS", "p")
    server.json("/login", {"token": "t"})
    server.json("/v3/forecast", fixture_json("watttime_forecast.json"))
    clock.now = datetime(2023, 6, 8, tzinfo=UTC)
    cfg = parse_carbon_config(
        {
            "providers": {
                "wt": {"type": "watttime", "baseUrl": server.url, "usernameEnv": "WT_USER", "passwordEnv": "WT_PASS"}
            },
            "regions": [{"name": "us-west1", "carbon": {"provider": "wt", "zone": "CAISO_NORTH"}}],
        }
    )
    svc = CarbonService.from_config(cfg, clock=clock, session_factory=session_factory, metrics=CarbonMetrics(registry))
    try:
        r = svc.forecast("us-west1", clock.now, clock.now + timedelta(hours=2))
    finally:
        svc.close()
    assert (r.source, r.error) == (DataSource.LIVE, None)
    assert r.series.points[0].grams_per_kwh == pytest.approx(425.01605069 * 0.453592)
    assert r.series.points[0].signal == "marginal"


def test_forecast_beyond_the_provider_horizon_is_not_refetched_within_ttl(build, em_up, server, clock):
    svc = build(trace=False)
    svc.forecast("fi", clock.now, clock.now + timedelta(hours=96))  # the fixture ends after ~72 h
    clock.advance(minutes=5)
    r = svc.forecast("fi", clock.now, clock.now + timedelta(hours=100))
    assert server.count(FORECAST) == 1
    assert r.spans[0].source is DataSource.LIVE


def test_history_for_a_later_window_asks_again(build, em_up, server, clock):
    svc = build()
    clock.now = datetime(2020, 6, 1, tzinfo=UTC)
    svc.history("fi", clock.now - timedelta(hours=6), clock.now - timedelta(hours=4))
    svc.history("fi", clock.now - timedelta(hours=6), clock.now - timedelta(hours=5))  # inside: cached
    assert server.count(HISTORY) == 1
    svc.history("fi", clock.now - timedelta(hours=3), clock.now)
    assert server.count(HISTORY) == 2
