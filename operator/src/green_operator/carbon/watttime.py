"""WattTime API v3: marginal (MOER) or average (AOER) emissions, converted from lbs/MWh to g/kWh.

Auth: GET /login with HTTP Basic auth returns a bearer token that expires after 30 minutes. The
token is cached and renewed shortly before it expires, and once more if a request gets a 401.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping
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

DEFAULT_BASE_URL = "https://api.watttime.org"
TOKEN_LIFETIME = timedelta(minutes=30)
LBS_PER_MWH_TO_G_PER_KWH = plugin.LBS_PER_MWH_TO_G_PER_KWH
"""1 lb = 453.592 g and 1 MWh = 1000 kWh, so 1 lb/MWh = 0.453592 g/kWh."""
MAX_HORIZON_HOURS = 72

UNIT_FACTORS: Mapping[str, float] = {
    "lbs_co2_per_mwh": LBS_PER_MWH_TO_G_PER_KWH,
    "kg_co2_per_mwh": 1.0,
    "g_co2_per_kwh": 1.0,
}
SIGNAL_KINDS: Mapping[str, SignalKind] = {"co2_moer": SignalKind.MARGINAL, "co2_aoer": SignalKind.AVERAGE}


class WattTimeProvider:
    def __init__(
        self,
        name: str,
        client: HttpClient,
        *,
        username: SecretRef,
        password: SecretRef,
        signal_type: str = "co2_moer",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        refresh_margin: timedelta = timedelta(minutes=2),
    ) -> None:
        if signal_type not in SIGNAL_KINDS:
            raise ValueError(f"signal_type must be one of {sorted(SIGNAL_KINDS)}, got {signal_type!r}")
        self.name = name
        self._client = client
        self._username = username
        self._password = password
        self._signal_type = signal_type
        self._clock = clock
        self._refresh_margin = refresh_margin
        self._lock = threading.Lock()
        self._token: str | None = None
        self._token_at: datetime | None = None
        self.logins = 0
        """Successful logins so far (observable for tests and debugging)."""

    def forecast(self, zone: str, start: datetime, end: datetime) -> IntensitySeries:
        now = self._clock()
        hours = math.ceil(max((utc(end) - now).total_seconds(), 3600.0) / 3600.0)
        params = {
            "region": zone,
            "signal_type": self._signal_type,
            "horizon_hours": str(min(hours, MAX_HORIZON_HOURS)),
        }
        return self._series(self._get("/v3/forecast", params), zone, start, end)

    def history(self, zone: str, start: datetime, end: datetime) -> IntensitySeries:
        params = {
            "region": zone,
            "signal_type": self._signal_type,
            "start": iso_z(start),
            "end": iso_z(end),
        }
        return self._series(self._get("/v3/historical", params), zone, start, end)

    # -- auth ----------------------------------------------------------------------------------

    def _current_token(self, *, force: bool = False) -> str:
        with self._lock:
            now = self._clock()
            fresh = (
                self._token is not None
                and self._token_at is not None
                and now - self._token_at < TOKEN_LIFETIME - self._refresh_margin
            )
            if force or not fresh:
                self._token = self._login()
                self._token_at = now
                self.logins += 1
            assert self._token is not None
            return self._token

    def _login(self) -> str:
        try:
            user, pw = self._username.read(), self._password.read()
        except CredentialError as exc:
            raise ProviderError(self.name, f"login: {exc}", reason=ErrorReason.CREDENTIALS) from None
        self._client.remember_secret(pw)
        resp = self._client.request("/login", auth=(user, pw))
        if resp.status_code in (401, 403):
            raise self._client.error(
                f"login rejected with HTTP {resp.status_code}: check the username and password secrets "
                f"({self._username.describe()}, {self._password.describe()})",
                ErrorReason.AUTH,
            )
        self._client.check(resp, "/login")
        body = self._client.decode(resp, "/login")
        token = body.get("token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise self._client.error("login response has no 'token' field", ErrorReason.MALFORMED)
        self._client.remember_secret(token)
        return token

    def _get(self, path: str, params: dict[str, str]) -> Any:
        token = self._current_token()
        resp = self._client.request(path, params=params, headers={"Authorization": f"Bearer {token}"})
        if resp.status_code == 401:  # expired or revoked early: log in again, retry exactly once
            resp.close()
            token = self._current_token(force=True)
            resp = self._client.request(path, params=params, headers={"Authorization": f"Bearer {token}"})
        self._client.check(resp, path)
        return self._client.decode(resp, path)

    # -- parsing -------------------------------------------------------------------------------

    def _series(self, body: Any, zone: str, start: datetime, end: datetime) -> IntensitySeries:
        fetched = self._clock()
        try:
            obj = as_mapping(body, "response")
            meta = as_mapping(field(obj, "meta", "response"), "response.meta")
            units = field(meta, "units", "response.meta")
            if not isinstance(units, str) or units not in UNIT_FACTORS:
                raise PayloadError(
                    f"response.meta.units: unsupported units {units!r}; expected one of {sorted(UNIT_FACTORS)}"
                )
            factor = UNIT_FACTORS[units]
            signal_type = meta.get("signal_type", self._signal_type)
            kind = SIGNAL_KINDS.get(str(signal_type), SIGNAL_KINDS[self._signal_type])
            period = meta.get("data_point_period_seconds")
            step = timedelta(seconds=period) if isinstance(period, int) and 0 < period <= 86400 else None
            items = as_list(field(obj, "data", "response"), "response.data")
            pts: list[IntensityPoint] = []
            for i, it in enumerate(items):
                d = as_mapping(it, f"data[{i}]")
                when = timestamp(field(d, "point_time", f"data[{i}]"), f"data[{i}].point_time")
                v = number(field(d, "value", f"data[{i}]"), f"data[{i}].value", allow_none=True)
                if v is not None:
                    pts.append(IntensityPoint(when, v * factor, self.name, kind, False, fetched))
        except PayloadError as exc:
            raise self._client.error(f"unexpected response shape: {exc}", ErrorReason.MALFORMED) from None
        series = build_series(zone, pts, timedelta(minutes=5), step).window(utc(start), utc(end))
        if not series.points:
            raise self._client.error(
                f"no data for region {zone} in [{iso_z(start)}, {iso_z(end)})", ErrorReason.NO_DATA
            )
        return series


# -- configuration: providers.<name> with type: watttime -------------------------------------------


@dataclass(frozen=True)
class WattTimeConfig:
    TYPE: ClassVar[str] = "watttime"
    name: str
    username: SecretRef
    password: SecretRef
    base_url: str = DEFAULT_BASE_URL
    signal_type: str = "co2_moer"
    timeout: timedelta | None = None


class WattTimeSchema(plugin.Schema):
    """providers.<name> with type: watttime."""

    model_config = ConfigDict(
        **plugin.Schema.model_config,
        json_schema_extra=plugin.SecretFields.schema_extra(("username", True), ("password", True)),
    )

    type: Literal["watttime"]
    base_url: plugin.HttpUrl = Field(DEFAULT_BASE_URL, alias="baseUrl", description="the API's address")
    username_env: plugin.EnvName = Field(None, alias="usernameEnv", description="environment variable: the username")
    username_file: plugin.FileName = Field(None, alias="usernameFile", description="file holding the username")
    password_env: plugin.EnvName = Field(None, alias="passwordEnv", description="environment variable: the password")
    password_file: plugin.FileName = Field(None, alias="passwordFile", description="file holding the password")
    signal_type: Annotated[
        Literal["co2_moer", "co2_aoer"],
        plugin.Hint(f"must be one of {', '.join(sorted(SIGNAL_KINDS))} (intensity signals in lbs/MWh)"),
    ] = Field("co2_moer", alias="signalType", description="co2_moer (marginal) or co2_aoer (average)")
    timeout_seconds: plugin.Seconds = Field(None, alias="timeoutSeconds", description="request timeout in seconds")

    @model_validator(mode="after")
    def _secrets(self) -> WattTimeSchema:
        plugin.SecretFields.check(self, "username", required=True)
        plugin.SecretFields.check(self, "password", required=True)
        return self


def parse_config(name: str, m: Mapping[str, Any], p: str, base: Path) -> WattTimeConfig:
    v = plugin.validate(WattTimeSchema, m, p)
    user = plugin.SecretFields.ref(v.username_env, v.username_file, base)
    pw = plugin.SecretFields.ref(v.password_env, v.password_file, base)
    assert user is not None
    assert pw is not None
    return WattTimeConfig(
        name=name,
        username=user,
        password=pw,
        base_url=v.base_url,
        signal_type=v.signal_type,
        timeout=plugin.timedelta_or_none(v.timeout_seconds),
    )


def build(pc: WattTimeConfig, ctx: plugin.BuildContext) -> plugin.Built:
    client = ctx.http_client(pc.name, pc.base_url, pc.timeout)
    provider = WattTimeProvider(
        pc.name, client, username=pc.username, password=pc.password, signal_type=pc.signal_type, clock=ctx.clock
    )
    return provider, client.close


PROVIDER = plugin.ProviderType(
    "watttime", parse_config, build, zone_example="'CAISO_NORTH' (WattTime)", schema=WattTimeSchema
)
