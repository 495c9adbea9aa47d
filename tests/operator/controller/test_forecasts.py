"""The forecast cache extends a region's forecast past the horizon from the region's own history:
weekends where the history had them, at the right hours."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from prometheus_client import CollectorRegistry

from green_operator.carbon.config import parse_carbon_config
from green_operator.carbon.metrics import CarbonMetrics
from green_operator.carbon.service import CarbonService
from green_operator.controller.forecasts import ForecastCache
from green_operator.planner import PlannerSettings
from green_operator.regions import RegionConfig

H = timedelta(hours=1)
MONDAY = datetime(2024, 3, 4, tzinfo=UTC)
NOW = MONDAY + timedelta(days=17, hours=6)  # Thursday 06:00, three weeks of trace behind it


def intensity(t: datetime) -> float:
    """300 on weekdays, 100 at weekends, 20 more in the evening."""
    return (100.0 if t.weekday() >= 5 else 300.0) + (20.0 if t.hour >= 18 else 0.0)


def test_the_forecast_is_extended_with_weekends_from_the_history(tmp_path: Path) -> None:
    rows = ["Time,Carbon Intensity"]
    rows += [f"{(MONDAY + i * H):%Y-%m-%d %H:%M:%S},{intensity(MONDAY + i * H)}" for i in range(24 * 28)]
    (tmp_path / "z.csv").write_text("\n".join(rows) + "\n")
    doc = {
        "providers": {"t": {"type": "trace", "files": {"Z": "z.csv"}}},
        "regions": [{"name": "r", "carbon": {"provider": "t", "zone": "Z"}}],
    }
    carbon = CarbonService.from_config(
        parse_carbon_config(doc, base_dir=tmp_path), metrics=CarbonMetrics(CollectorRegistry())
    )
    settings = PlannerSettings(slot=H, horizon=12 * H, extrapolation=72 * H)
    try:
        data = asyncio.run(ForecastCache(carbon, settings, timedelta(minutes=1)).get(RegionConfig("r", {}), NOW, ()))
    finally:
        carbon.close()
    view = data.forecast
    assert view.extrapolated_from == 12
    assert len(view.intensity) == 12 + 72
    times = [NOW + i * H for i in range(len(view.intensity))]
    assert view.intensity[:12] == [intensity(t) for t in times[:12]]
    # Past the forecast: Saturday and Sunday near 100, Friday near 300, evenings 20 higher.
    past = list(zip(times[12:], view.intensity[12:], strict=True))
    saturday = [v for t, v in past if t.weekday() == 5]
    friday = [v for t, v in past if t.weekday() == 4 and t.hour < 18]
    assert saturday
    assert max(saturday) < 160
    assert min(friday) > 260
    evening, morning = ([v for t, v in past if t.weekday() == 5 and (t.hour >= 18) is e] for e in (True, False))
    assert min(evening) > max(morning)
