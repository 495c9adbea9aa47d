"""UK Carbon Intensity API (National Grid ESO): national or regional, half-hourly, gCO2/kWh, no auth.

Zones: ``national`` (or ``GB``) for Great Britain as a whole, or a region id ``1``..``18``
(1 North Scotland ... 13 London ... 17 Wales, 18 GB). Forecasts come from ``fw48h``; history from
the ``{from}/{to}`` endpoints, where the national series has measured ``actual`` values and the
regional one only modelled values (flagged estimated).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from . import plugin
from .payload import PayloadError, as_list, as_mapping, build_series, field, iso_z, number, timestamp
from .provider import ErrorReason
from .series import IntensityPoint, IntensitySeries, SignalKind, utc

if TYPE_CHECKING:
    from .transport import HttpClient

DEFAULT_BASE_URL = "https://api.carbonintensity.org.uk"
NATIONAL_ZONES = frozenset({"national", "gb"})
REGION_IDS = range(1, 19)
STEP = timedelta(minutes=30)


def parse_zone(zone: str) -> int | None:
    """None for the national series, else the region id; ValueError for anything else."""
    z = zone.strip().lower()
    if z in NATIONAL_ZONES:
        return None
    if z.isdigit() and int(z) in REGION_IDS:
        return int(z)
    raise ValueError(f"UK Carbon Intensity zone must be 'national' or a region id 1..18, got {zone!r}")


def _slot(dt: datetime) -> str:
    """The API's ``{from}`` format, floored to the half hour: YYYY-MM-DDThh:mmZ."""
    t = utc(dt)
    t = t.replace(minute=t.minute - t.minute % 30, second=0, microsecond=0)
    return t.strftime("%Y-%m-%dT%H:%MZ")


class UKCarbonIntensityProvider:
    def __init__(
        self, name: str, client: HttpClient, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self.name = name
        self._client = client
        self._clock = clock

    def forecast(self, zone: str, start: datetime, end: datetime) -> IntensitySeries:
        region = self._zone(zone)
        frm = _slot(start)
        path = f"/intensity/{frm}/fw48h" if region is None else f"/regional/intensity/{frm}/fw48h/regionid/{region}"
        return self._fetch(path, zone, region, start, end, prefer_actual=False)

    def history(self, zone: str, start: datetime, end: datetime) -> IntensitySeries:
        region = self._zone(zone)
        frm, to = _slot(start), _slot(utc(end) + STEP - timedelta(microseconds=1))
        path = f"/intensity/{frm}/{to}" if region is None else f"/regional/intensity/{frm}/{to}/regionid/{region}"
        return self._fetch(path, zone, region, start, end, prefer_actual=True)

    def _zone(self, zone: str) -> int | None:
        try:
            return parse_zone(zone)
        except ValueError as exc:
            raise self._client.error(str(exc), ErrorReason.CLIENT_ERROR) from None

    def _fetch(
        self, path: str, zone: str, region: int | None, start: datetime, end: datetime, *, prefer_actual: bool
    ) -> IntensitySeries:
        body = self._client.get_json(path)
        fetched = self._clock()
        try:
            obj = as_mapping(body, "response")
            if region is None:
                slots = as_list(field(obj, "data", "response"), "response.data")
                pts = self._points(slots, "data", fetched, prefer_actual)
            else:
                slots, where = _regional_slots(obj, region)
                pts = self._points(slots, where, fetched, prefer_actual, regional=True)
        except PayloadError as exc:
            raise self._client.error(f"unexpected response shape: {exc}", ErrorReason.MALFORMED) from None
        series = build_series(zone, pts, STEP).window(utc(start), utc(end))
        if not series.points:
            raise self._client.error(
                f"no intensity data for zone {zone} in [{iso_z(start)}, {iso_z(end)})", ErrorReason.NO_DATA
            )
        return series

    def _points(
        self,
        slots: Sequence[Any],
        where: str,
        fetched: datetime,
        prefer_actual: bool,
        *,
        regional: bool = False,
    ) -> list[IntensityPoint]:
        out: list[IntensityPoint] = []
        for i, raw in enumerate(slots):
            path = f"{where}[{i}]"
            slot = as_mapping(raw, path)
            when = timestamp(field(slot, "from", path), f"{path}.from")
            intensity = as_mapping(field(slot, "intensity", path), f"{path}.intensity")
            forecast = number(intensity.get("forecast"), f"{path}.intensity.forecast", allow_none=True)
            actual = number(intensity.get("actual"), f"{path}.intensity.actual", allow_none=True)
            if prefer_actual and actual is not None:
                value, estimated = actual, False
            elif forecast is not None:
                # A forecast standing in for a measurement (history) or a modelled regional value.
                value, estimated = forecast, prefer_actual or regional
            else:
                continue  # neither value: a hole, filled by the fallback chain
            out.append(IntensityPoint(when, value, self.name, SignalKind.AVERAGE, estimated, fetched))
        return out


def _regional_slots(obj: Mapping[str, Any], region: int) -> tuple[Sequence[Any], str]:
    """Accept the per-region shape (data: {regionid, data: [...]}, or that object in a one-element
    list) and the all-regions shape (data: [{from, to, regions: [...]}])."""
    data = field(obj, "data", "response")
    if isinstance(data, Mapping):
        return as_list(field(data, "data", "response.data"), "response.data.data"), "data.data"
    items = as_list(data, "response.data")
    if items and isinstance(items[0], Mapping) and "regions" not in items[0]:
        first = as_mapping(items[0], "response.data[0]")
        return as_list(field(first, "data", "response.data[0]"), "response.data[0].data"), "data[0].data"
    slots: list[Any] = []
    for i, raw in enumerate(items):
        path = f"data[{i}]"
        slot = as_mapping(raw, path)
        regions = as_list(field(slot, "regions", path), f"{path}.regions")
        for r in regions:
            rm = as_mapping(r, f"{path}.regions[]")
            if rm.get("regionid") == region:
                slots.append({"from": field(slot, "from", path), "intensity": field(rm, "intensity", path)})
    if not slots:
        raise PayloadError(f"response.data: region id {region} not present")
    return slots, "data[].regions"


# -- configuration: providers.<name> with type: ukcarbonintensity ----------------------------------


@dataclass(frozen=True)
class UKCarbonIntensityConfig:
    TYPE: ClassVar[str] = "ukcarbonintensity"
    name: str
    base_url: str = DEFAULT_BASE_URL
    timeout: timedelta | None = None


class UKCarbonIntensitySchema(plugin.Schema):
    """providers.<name> with type: ukcarbonintensity (no credentials)."""

    type: Literal["ukcarbonintensity"]
    base_url: plugin.HttpUrl = Field(DEFAULT_BASE_URL, alias="baseUrl", description="the API's address")
    timeout_seconds: plugin.Seconds = Field(None, alias="timeoutSeconds", description="request timeout in seconds")


def parse_config(name: str, m: Mapping[str, Any], p: str, base: Path) -> UKCarbonIntensityConfig:
    v = plugin.validate(UKCarbonIntensitySchema, m, p)
    return UKCarbonIntensityConfig(name=name, base_url=v.base_url, timeout=plugin.timedelta_or_none(v.timeout_seconds))


def build(pc: UKCarbonIntensityConfig, ctx: plugin.BuildContext) -> plugin.Built:
    client = ctx.http_client(pc.name, pc.base_url, pc.timeout)
    return UKCarbonIntensityProvider(pc.name, client, clock=ctx.clock), client.close


def static_zone(pc: UKCarbonIntensityConfig, zone: str, path: str) -> str | None:
    """The national series has GB's factor; a regional one has none of its own."""
    try:
        return "GB" if parse_zone(zone) is None else None
    except ValueError as exc:
        raise plugin.CarbonConfigError(f"{path}: {exc}") from None


PROVIDER = plugin.ProviderType(
    "ukcarbonintensity",
    parse_config,
    build,
    static_zone,
    zone_example="'national' or '13' (UK Carbon Intensity)",
    schema=UKCarbonIntensitySchema,
)
