"""Green Software Foundation Carbon Aware SDK WebAPI.

Forecast: ``GET /emissions/forecasts/current?location=..`` (``forecastData`` is the series; the
optimal window comes as ``optimalDataPoints`` in current versions and ``optimalDataPoint`` in older
ones, both accepted). History: ``GET /emissions/bylocations?location=..&time=..&toTime=..``.
The SDK passes through its backing source's units, so ``scale`` converts them (1 for gCO2eq/kWh,
0.453592 for WattTime's lbs/MWh) and ``signal`` records what the values mean.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from . import plugin
from .payload import (
    PayloadError,
    as_list,
    as_mapping,
    build_series,
    duration,
    field,
    iso_z,
    number,
    timestamp,
)
from .provider import ErrorReason
from .series import IntensityPoint, IntensitySeries, SignalKind, utc

if TYPE_CHECKING:
    from .transport import HttpClient


@dataclass(frozen=True)
class CarbonAwareForecast:
    location: str
    series: IntensitySeries
    optimal: tuple[IntensityPoint, ...]
    generated_at: datetime | None


class CarbonAwareSdkProvider:
    def __init__(
        self,
        name: str,
        client: HttpClient,
        *,
        scale: float = 1.0,
        signal: SignalKind = SignalKind.AVERAGE,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.name = name
        self._client = client
        self._scale = scale
        self._signal = signal
        self._clock = clock

    def forecast_current(self, location: str) -> CarbonAwareForecast:
        body = self._client.get_json("/emissions/forecasts/current", params={"location": location})
        fetched = self._clock()
        try:
            items = as_list(body, "response")
            chosen = _pick_location(items, location)
            path = f"response[{items.index(chosen)}]"
            obj = as_mapping(chosen, path)
            data = as_list(field(obj, "forecastData", path), f"{path}.forecastData")
            pts, durations = self._points(data, f"{path}.forecastData", "timestamp", "value", fetched)
            if "optimalDataPoints" in obj:
                raw_opt = as_list(obj["optimalDataPoints"], f"{path}.optimalDataPoints")
                opt, _ = self._points(raw_opt, f"{path}.optimalDataPoints", "timestamp", "value", fetched)
            elif obj.get("optimalDataPoint") is not None:
                opt, _ = self._points(
                    [obj["optimalDataPoint"]], f"{path}.optimalDataPoint", "timestamp", "value", fetched
                )
            else:
                opt = []
            gen = obj.get("generatedAt")
            generated = timestamp(gen, f"{path}.generatedAt") if gen is not None else None
        except PayloadError as exc:
            raise self._client.error(f"unexpected forecast shape: {exc}", ErrorReason.MALFORMED) from None
        step = _common(durations)
        return CarbonAwareForecast(
            location, build_series(location, pts, timedelta(minutes=5), step), tuple(opt), generated
        )

    def forecast(self, zone: str, start: datetime, end: datetime) -> IntensitySeries:
        series = self.forecast_current(zone).series.window(utc(start), utc(end))
        if not series.points:
            raise self._client.error(
                f"no forecast for location {zone} in [{iso_z(start)}, {iso_z(end)})", ErrorReason.NO_DATA
            )
        return series

    def history(self, zone: str, start: datetime, end: datetime) -> IntensitySeries:
        params = {"location": zone, "time": iso_z(start), "toTime": iso_z(end)}
        body = self._client.get_json("/emissions/bylocations", params=params)
        fetched = self._clock()
        try:
            items = as_list(body, "response")
            mine = [it for it in items if not isinstance(it, Mapping) or it.get("location") in (None, zone)]
            pts, durations = self._points(mine, "response", "time", "rating", fetched)
        except PayloadError as exc:
            raise self._client.error(f"unexpected history shape: {exc}", ErrorReason.MALFORMED) from None
        series = build_series(zone, pts, timedelta(minutes=5), _common(durations)).window(utc(start), utc(end))
        if not series.points:
            raise self._client.error(
                f"no emissions data for location {zone} in [{iso_z(start)}, {iso_z(end)})",
                ErrorReason.NO_DATA,
            )
        return series

    def _points(
        self, items: Sequence[Any], where: str, time_key: str, value_key: str, fetched: datetime
    ) -> tuple[list[IntensityPoint], list[timedelta]]:
        pts: list[IntensityPoint] = []
        durs: list[timedelta] = []
        for i, raw in enumerate(items):
            path = f"{where}[{i}]"
            obj = as_mapping(raw, path)
            when = timestamp(field(obj, time_key, path), f"{path}.{time_key}")
            value = number(field(obj, value_key, path), f"{path}.{value_key}")
            assert value is not None
            if obj.get("duration") is not None:
                durs.append(duration(obj["duration"], f"{path}.duration"))
            pts.append(IntensityPoint(when, value * self._scale, self.name, self._signal, False, fetched))
        return pts, durs


def _pick_location(items: Sequence[Any], location: str) -> Any:
    if not items:
        raise PayloadError("response: empty list, no forecast for any location")
    for it in items:
        if isinstance(it, Mapping) and it.get("location") == location:
            return it
    if len(items) == 1:
        return items[0]
    raise PayloadError(f"response: no element for location {location!r}")


def _common(durations: Sequence[timedelta]) -> timedelta | None:
    """The duration most points declare, used as the series step; None to infer it from gaps."""
    if not durations:
        return None
    counts: dict[timedelta, int] = {}
    for d in durations:
        counts[d] = counts.get(d, 0) + 1
    return max(counts.items(), key=lambda kv: (kv[1], -kv[0]))[0]


# -- configuration: providers.<name> with type: carbonawaresdk -------------------------------------


@dataclass(frozen=True)
class CarbonAwareSdkConfig:
    TYPE: ClassVar[str] = "carbonawaresdk"
    name: str
    base_url: str
    units: plugin.Units = "gCO2eqPerKWh"
    signal: SignalKind = SignalKind.AVERAGE
    timeout: timedelta | None = None

    @property
    def scale(self) -> float:
        return plugin.UNIT_SCALE[self.units]


class CarbonAwareSdkSchema(plugin.Schema):
    """providers.<name> with type: carbonawaresdk."""

    type: Literal["carbonawaresdk"]
    base_url: plugin.HttpUrl = Field(
        alias="baseUrl", description="the Carbon Aware SDK WebAPI address, e.g. http://carbon-aware-sdk"
    )
    units: plugin.UnitsField = Field("gCO2eqPerKWh", description="gCO2eqPerKWh or lbsPerMWh")
    signal: plugin.SignalField = Field(None, description="average or marginal (default: marginal for lbsPerMWh)")
    timeout_seconds: plugin.Seconds = Field(None, alias="timeoutSeconds", description="request timeout in seconds")


def parse_config(name: str, m: Mapping[str, Any], p: str, base: Path) -> CarbonAwareSdkConfig:
    v = plugin.validate(CarbonAwareSdkSchema, m, p)
    return CarbonAwareSdkConfig(
        name=name,
        base_url=v.base_url,
        units=v.units,
        signal=plugin.signal_of(v.signal, v.units),
        timeout=plugin.timedelta_or_none(v.timeout_seconds),
    )


def build(pc: CarbonAwareSdkConfig, ctx: plugin.BuildContext) -> plugin.Built:
    client = ctx.http_client(pc.name, pc.base_url, pc.timeout)
    return CarbonAwareSdkProvider(pc.name, client, scale=pc.scale, signal=pc.signal, clock=ctx.clock), client.close


PROVIDER = plugin.ProviderType(
    "carbonawaresdk", parse_config, build, zone_example="'uksouth' (Carbon Aware SDK)", schema=CarbonAwareSdkSchema
)
