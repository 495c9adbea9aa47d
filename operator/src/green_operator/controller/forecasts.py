"""One sampled forecast per region, shared by every job decided in the same slot (I/O side)."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from green_operator.carbon.provider import DataSource, ForecastResult
from green_operator.carbon.service import CarbonService
from green_operator.planner import PlannerSettings, RegionForecast
from green_operator.planner.extrapolate import HISTORY_DAYS, extrapolate
from green_operator.planner.grid import slot_floor
from green_operator.regions import NodeInfo, RegionConfig, region_capacity, region_forecast

from .forecast_error import LEAD_LABELS, ForecastErrorTracker
from .observed import RegionData

HISTORY = timedelta(days=HISTORY_DAYS)
"""How much of a region's past the extrapolation's daily profile is built from."""
_LIVE = (DataSource.LIVE, DataSource.CACHED)


@dataclass
class _Cached:
    slot_start: datetime
    fetched: float
    data: RegionData


class ForecastCache:
    """A burst of a thousand creations asks the carbon service once per region, not a thousand
    times: concurrent callers for the same region wait on one fetch (single flight).

    It also measures each live region's forecast error (``forecast_error``): every forecast it
    fetches is recorded, and once a slot the region's history since the oldest unscored slot is
    fetched (one call) and compared (``greentraining_forecast_error_ratio``). Regions on a trace
    file or static factors are not measured: their forecast is their history by design."""

    def __init__(
        self,
        carbon: CarbonService,
        planner: PlannerSettings,
        refresh: timedelta,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._carbon = carbon
        self._planner = planner
        self._refresh = refresh.total_seconds()
        self._clock = clock
        self._entries: dict[str, _Cached] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.errors = ForecastErrorTracker(planner.slot)
        self._scored: dict[str, datetime] = {}
        self._live = set(carbon.live_regions())
        carbon.metrics.declare_forecast_error(self._live, LEAD_LABELS)

    async def get(
        self, region: RegionConfig, now: datetime, nodes: Iterable[NodeInfo], *, fresh: bool = False
    ) -> RegionData:
        settings = self._planner
        slot_start = slot_floor(now, settings.slot)
        cap = region_capacity(region, nodes)
        scoring = False
        async with self._locks.setdefault(region.name, asyncio.Lock()):
            entry = self._entries.get(region.name)
            if (
                fresh
                or entry is None
                or self._clock() - entry.fetched > self._refresh
                or entry.slot_start != slot_start
            ):
                result: ForecastResult = await self._carbon.forecast_async(
                    region.name, slot_start, slot_start + settings.horizon
                )
                view = region_forecast(region.name, cap, result, slot_start, settings.slot, settings.horizon)
                if settings.extrapolation > timedelta(0):
                    view = await self._extended(view, slot_start)
                entry = _Cached(slot_start, self._clock(), RegionData(view, result))
                self._entries[region.name] = entry
                if region.name in self._live:
                    self._record(region.name, result, view, now)
                    scoring = True
        # Capacity follows the nodes; re-derive the planner's view only when it changed.
        view = entry.data.forecast
        if view.capacity_gpus != cap.gpus or view.gpu_model != cap.gpu_model:
            entry.data = RegionData(replace(view, capacity_gpus=cap.gpus, gpu_model=cap.gpu_model), entry.data.result)
        if scoring:  # outside the lock: the callers waiting on this region's forecast need not wait for it
            await self._score(region.name, now)
        return entry.data

    def _record(self, region: str, result: ForecastResult, view: RegionForecast, now: datetime) -> None:
        """Remember the forecast's live slots (fallback values are not the provider's forecast)."""
        s = self._planner
        count = max(1, int(s.horizon / s.slot))
        values = [
            v if result.source_at(view.start + i * s.slot) in _LIVE else None
            for i, v in enumerate(view.intensity[:count])
        ]
        fetched = result.data_fetched_at
        issued = fetched if fetched is not None and fetched <= now else now
        self.errors.record(region, issued, view.start, values)

    async def _score(self, region: str, now: datetime) -> None:
        """Compare the recorded forecasts of past slots with the region's history, once a slot."""
        s = self._planner
        since = self.errors.pending_since(region)
        end = slot_floor(now, s.slot)
        if since is None or since >= end or self._scored.get(region) == end:
            return
        self._scored[region] = end
        since = max(since, end - self.errors.keep)
        past = await self._carbon.history_async(region, since, end)
        raw = past.series.sample(since, s.slot, round((end - since) / s.slot))
        actual = [v if past.source_at(since + i * s.slot) in _LIVE else None for i, v in enumerate(raw)]
        metrics = self._carbon.metrics
        for e in self.errors.score(region, since, actual, now):
            metrics.forecast_error_observed(e.region, e.lead, e.ratio)

    async def _extended(self, view: RegionForecast, slot_start: datetime) -> RegionForecast:
        """The forecast followed by ``planner.extrapolation`` of extrapolated intensity, from the
        region's last two weeks of history and the forecast (``planner.extrapolate``)."""
        s = self._planner
        start = slot_start - HISTORY
        count = round(HISTORY / s.slot)
        # The carbon service always answers (live, cached, trace or static data, as configured).
        past = await self._carbon.history_async(view.region, start, slot_start)
        raw = past.series.sample(start, s.slot, count)
        history: list[float] = []
        for v in raw:  # contiguous up to the forecast: gaps take the last value, leading ones are dropped
            if v is not None:
                history.append(v)
            elif history:
                history.append(history[-1])
        known = [*history, *view.intensity]
        first = slot_start - len(history) * s.slot
        tail = extrapolate(known, s.slot, math.ceil(s.extrapolation / s.slot), start=first)
        return replace(view, intensity=[*view.intensity, *tail], extrapolated_from=len(view.intensity))

    async def all(
        self, regions: Iterable[RegionConfig], now: datetime, nodes: Iterable[NodeInfo], *, fresh: bool = False
    ) -> dict[str, RegionData]:
        node_list = list(nodes)
        got = await asyncio.gather(*(self.get(r, now, node_list, fresh=fresh) for r in regions))
        return {d.forecast.region: d for d in got}
