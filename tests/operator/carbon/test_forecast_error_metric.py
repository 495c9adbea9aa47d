"""greentraining_forecast_error_ratio end to end: the forecast cache records a live forecast fetched
over real HTTP from the local provider server, and later scores it against the provider's history."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from green_operator.carbon.config import parse_carbon_config
from green_operator.carbon.metrics import CarbonMetrics
from green_operator.carbon.service import CarbonService
from green_operator.controller.forecasts import ForecastCache
from green_operator.planner import PlannerSettings
from green_operator.regions import RegionConfig

H = timedelta(hours=1)
T0 = datetime(2020, 6, 1, tzinfo=UTC)
FORECAST = "/v3/carbon-intensity/forecast"
HISTORY = "/v3/carbon-intensity/history"


def hourly(key: str, start: datetime, values: list[float]) -> dict[str, Any]:
    """An Electricity Maps response body of hourly values."""
    points = [
        {"carbonIntensity": v, "datetime": (start + i * H).strftime("%Y-%m-%dT%H:%M:%S.000Z")}
        for i, v in enumerate(values)
    ]
    return {"zone": "GB", key: points}


def count(registry: CollectorRegistry, suffix: str, lead: str) -> float:
    v = registry.get_sample_value(f"greentraining_forecast_error_ratio_{suffix}", {"region": "fi", "lead": lead})
    return 0.0 if v is None else v


def test_a_live_forecast_is_scored_against_the_later_history(
    server: Any, clock: Any, tmp_path: Path, session_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMAPS_TOKEN", "token")
    doc = {
        "providers": {"emaps": {"type": "electricitymaps", "baseUrl": server.url + "/v3/", "tokenEnv": "EMAPS_TOKEN"}},
        "carbon": {"cacheTTL": "10m", "maxRetries": 0},
        "regions": [
            {"name": "fi", "carbon": {"provider": "emaps", "zone": "GB"}},
            {"name": "quiet", "carbon": {"staticGramsPerKwh": 120}},
        ],
    }
    registry = CollectorRegistry()
    carbon = CarbonService.from_config(
        parse_carbon_config(doc, base_dir=tmp_path),
        clock=clock,
        session_factory=session_factory,
        metrics=CarbonMetrics(registry),
        sleep=lambda _s: None,
    )
    planner = PlannerSettings(slot=timedelta(minutes=30), horizon=12 * H)
    cache = ForecastCache(carbon, planner, refresh=timedelta(minutes=1))
    fi, quiet = RegionConfig("fi", {}), RegionConfig("quiet", {})
    try:
        # 00:10: the provider forecasts 100 g/kWh for the next two days.
        server.json(FORECAST, hourly("forecast", T0, [100.0] * 48))
        clock.now = T0 + timedelta(minutes=10)
        asyncio.run(cache.all([fi, quiet], clock.now, ()))
        assert count(registry, "count", "1-6h") == 0  # declared at zero, nothing to score yet
        assert (
            registry.get_sample_value("greentraining_forecast_error_ratio_count", {"region": "quiet", "lead": "0-1h"})
            is None
        )

        # 06:10: its history says 125 g/kWh from midnight to 06:00; the next forecast scores the first.
        server.json(HISTORY, hourly("history", T0 - 18 * H, [125.0] * 24))
        server.json(FORECAST, hourly("forecast", T0 + 6 * H, [125.0] * 48))
        clock.now = T0 + 6 * H + timedelta(minutes=10)
        asyncio.run(cache.get(fi, clock.now, ()))
    finally:
        carbon.close()
    # Twelve half-hour slots from 00:00 to 06:00, forecast at 00:10: three within the hour, nine 1-6 h ahead.
    assert count(registry, "count", "0-1h") == 3
    assert count(registry, "count", "1-6h") == 9
    assert count(registry, "sum", "1-6h") == pytest.approx(9 * 0.2)
    assert count(registry, "count", "6-24h") == 0
    assert registry.get_sample_value(
        "greentraining_forecast_error_ratio_bucket", {"region": "fi", "lead": "1-6h", "le": "0.2"}
    ) == pytest.approx(9)
    assert server.count(HISTORY) == 1
