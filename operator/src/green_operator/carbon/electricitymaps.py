"""Electricity Maps API v3: latest, history (last 24 h), past-range and forecast, in gCO2eq/kWh."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import ConfigDict, Field, model_validator

from . import plugin
from .credentials import CredentialError, SecretRef
from .payload import PayloadError, as_list, as_mapping, build_series, field, iso_z, number, timestamp
from .provider import ErrorReason, ProviderError
from .series import IntensityPoint, IntensitySeries, SignalKind, utc

if TYPE_CHECKING:
    from .transport import HttpClient

DEFAULT_BASE_URL = "https://api.electricitymaps.com/v3/"
HISTORY_SPAN = timedelta(hours=24)
"""How far back carbon-intensity/history reaches; older windows use past-range."""


class ElectricityMapsProvider:
    """Grid-average (lifecycle or direct) intensity; the token goes in the ``auth-token`` header."""

    def __init__(
        self,
        name: str,
        client: HttpClient,
        *,
        token: SecretRef | None = None,
        emission_factor_type: str | None = None,
        disable_estimations: bool = False,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.name = name
        self._client = client
        self._token = token
        self._eft = emission_factor_type
        self._disable_estimations = disable_estimations
        self._clock = clock

    def latest(self, zone: str) -> IntensityPoint:
        body = self._get("carbon-intensity/latest", {"zone": zone})
        try:
            obj = as_mapping(body, "response")
            pt = self._point(obj, "response", self._clock())
        except PayloadError as exc:
            raise self._client.error(f"unexpected latest response: {exc}", ErrorReason.MALFORMED) from None
        if pt is None:
            raise self._client.error(f"no current intensity for zone {zone}", ErrorReason.NO_DATA)
        return pt

    def forecast(self, zone: str, start: datetime, end: datetime) -> IntensitySeries:
        body = self._get("carbon-intensity/forecast", {"zone": zone})
        return self._series(body, ("forecast",), zone, start, end)

    def history(self, zone: str, start: datetime, end: datetime) -> IntensitySeries:
        if utc(start) >= self._clock() - HISTORY_SPAN:
            body = self._get("carbon-intensity/history", {"zone": zone})
        else:
            params = {"zone": zone, "start": iso_z(start), "end": iso_z(end)}
            body = self._get("carbon-intensity/past-range", params)
        return self._series(body, ("history", "data"), zone, start, end)

    # -- internals -----------------------------------------------------------------------------

    def _get(self, path: str, params: dict[str, str]) -> Any:
        headers: dict[str, str] = {}
        if self._token is not None:
            try:
                token = self._token.read()
            except CredentialError as exc:
                raise ProviderError(self.name, f"API token: {exc}", reason=ErrorReason.CREDENTIALS) from None
            self._client.remember_secret(token)
            headers["auth-token"] = token
        if self._eft:
            params["emissionFactorType"] = self._eft
        if self._disable_estimations:
            params["disableEstimations"] = "true"
        return self._client.get_json(path, params=params, headers=headers)

    def _series(self, body: Any, keys: Sequence[str], zone: str, start: datetime, end: datetime) -> IntensitySeries:
        fetched = self._clock()
        try:
            obj = as_mapping(body, "response")
            key = next((k for k in keys if k in obj), keys[0])
            items = as_list(field(obj, key, "response"), f"response.{key}")
            pts = [self._point(as_mapping(it, f"{key}[{i}]"), f"{key}[{i}]", fetched) for i, it in enumerate(items)]
        except PayloadError as exc:
            raise self._client.error(f"unexpected response shape: {exc}", ErrorReason.MALFORMED) from None
        series = build_series(zone, (p for p in pts if p is not None), timedelta(hours=1)).window(utc(start), utc(end))
        if not series.points:
            raise self._client.error(
                f"no intensity data for zone {zone} in [{iso_z(start)}, {iso_z(end)})", ErrorReason.NO_DATA
            )
        return series

    def _point(self, obj: Mapping[str, Any], path: str, fetched: datetime) -> IntensityPoint | None:
        value = number(field(obj, "carbonIntensity", path), f"{path}.carbonIntensity", allow_none=True)
        when = timestamp(field(obj, "datetime", path), f"{path}.datetime")
        if value is None:  # Electricity Maps sends null where it has no value: a hole, not a zero
            return None
        estimated = obj.get("isEstimated") is True
        return IntensityPoint(when, value, self.name, SignalKind.AVERAGE, estimated, fetched)


# -- configuration: providers.<name> with type: electricitymaps ------------------------------------


@dataclass(frozen=True)
class ElectricityMapsConfig:
    TYPE: ClassVar[str] = "electricitymaps"
    name: str
    base_url: str = DEFAULT_BASE_URL
    token: SecretRef | None = None
    emission_factor_type: Literal["lifecycle", "direct"] | None = None
    disable_estimations: bool = False
    timeout: timedelta | None = None


class ElectricityMapsSchema(plugin.Schema):
    """providers.<name> with type: electricitymaps."""

    model_config = ConfigDict(
        **plugin.Schema.model_config, json_schema_extra=plugin.SecretFields.schema_extra(("token", False))
    )

    type: Literal["electricitymaps"]
    base_url: plugin.HttpUrl = Field(DEFAULT_BASE_URL, alias="baseUrl", description="the API's address")
    token_env: plugin.EnvName = Field(None, alias="tokenEnv", description="environment variable holding the token")
    token_file: plugin.FileName = Field(
        None, alias="tokenFile", description="file (a mounted Secret) holding the token"
    )
    emission_factor_type: Annotated[
        Literal["lifecycle", "direct"] | None, plugin.Hint("must be 'lifecycle' or 'direct'")
    ] = Field(None, alias="emissionFactorType", description="lifecycle or direct emissions (default: the API's)")
    disable_estimations: Annotated[bool, plugin.Hint("expected true or false")] = Field(
        False, alias="disableEstimations", description="leave out estimated values"
    )
    timeout_seconds: plugin.Seconds = Field(None, alias="timeoutSeconds", description="request timeout in seconds")

    @model_validator(mode="after")
    def _secrets(self) -> ElectricityMapsSchema:
        plugin.SecretFields.check(self, "token", required=False)
        return self


def parse_config(name: str, m: Mapping[str, Any], p: str, base: Path) -> ElectricityMapsConfig:
    v = plugin.validate(ElectricityMapsSchema, m, p)
    return ElectricityMapsConfig(
        name=name,
        base_url=v.base_url,
        token=plugin.SecretFields.ref(v.token_env, v.token_file, base),
        emission_factor_type=v.emission_factor_type,
        disable_estimations=v.disable_estimations,
        timeout=plugin.timedelta_or_none(v.timeout_seconds),
    )


def build(pc: ElectricityMapsConfig, ctx: plugin.BuildContext) -> plugin.Built:
    client = ctx.http_client(pc.name, pc.base_url, pc.timeout)
    provider = ElectricityMapsProvider(
        pc.name,
        client,
        token=pc.token,
        emission_factor_type=pc.emission_factor_type,
        disable_estimations=pc.disable_estimations,
        clock=ctx.clock,
    )
    return provider, client.close


PROVIDER = plugin.ProviderType(
    "electricitymaps", parse_config, build, zone_example="'FI' (Electricity Maps)", schema=ElectricityMapsSchema
)
