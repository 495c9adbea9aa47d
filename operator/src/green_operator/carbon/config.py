"""The carbon part of the operator configuration: providers, cache/retry settings, per-region sources.

``parse_carbon_config`` reads only the top-level keys ``providers``, ``carbon`` and ``regions`` (and
inside each region only ``name`` and ``carbon``); everything else belongs to other parts of the
operator and is ignored here. Every error names the offending field path and says how to fix it.
Parsing is pure: trace files are read when the service is built (``CarbonService.from_config``).

Secrets are configured by reference (``tokenEnv``/``tokenFile`` ...) and never read here, so these
objects can be logged or repr()'d safely.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar, Literal

from green_operator.times import parse_duration

from .credentials import SecretRef
from .electricitymaps import DEFAULT_BASE_URL as EMAPS_URL
from .series import SignalKind, utc
from .static_factors import StaticFactor, default_static_factor
from .trace_provider import MAX_NOISE_FRACTION, TraceShift
from .ukci import DEFAULT_BASE_URL as UKCI_URL
from .ukci import parse_zone as parse_ukci_zone
from .watttime import DEFAULT_BASE_URL as WATTTIME_URL
from .watttime import LBS_PER_MWH_TO_G_PER_KWH, SIGNAL_KINDS

Units = Literal["gCO2eqPerKWh", "lbsPerMWh"]
UNIT_SCALE: Mapping[str, float] = {"gCO2eqPerKWh": 1.0, "lbsPerMWh": LBS_PER_MWH_TO_G_PER_KWH}


class CarbonConfigError(ValueError):
    """Invalid carbon configuration; the message starts with the field path (``regions[2].carbon.zone``)."""


# -- typed configuration --------------------------------------------------------------------------


@dataclass(frozen=True)
class ElectricityMapsConfig:
    TYPE: ClassVar[str] = "electricitymaps"
    name: str
    base_url: str = EMAPS_URL
    token: SecretRef | None = None
    emission_factor_type: Literal["lifecycle", "direct"] | None = None
    disable_estimations: bool = False
    timeout: timedelta | None = None


@dataclass(frozen=True)
class WattTimeConfig:
    TYPE: ClassVar[str] = "watttime"
    name: str
    username: SecretRef
    password: SecretRef
    base_url: str = WATTTIME_URL
    signal_type: str = "co2_moer"
    timeout: timedelta | None = None


@dataclass(frozen=True)
class UKCarbonIntensityConfig:
    TYPE: ClassVar[str] = "ukcarbonintensity"
    name: str
    base_url: str = UKCI_URL
    timeout: timedelta | None = None


@dataclass(frozen=True)
class CarbonAwareSdkConfig:
    TYPE: ClassVar[str] = "carbonawaresdk"
    name: str
    base_url: str
    units: Units = "gCO2eqPerKWh"
    signal: SignalKind = SignalKind.AVERAGE
    timeout: timedelta | None = None

    @property
    def scale(self) -> float:
        return UNIT_SCALE[self.units]


@dataclass(frozen=True)
class TraceConfig:
    TYPE: ClassVar[str] = "trace"
    name: str
    files: Mapping[str, Path]
    units: Units = "gCO2eqPerKWh"
    signal: SignalKind = SignalKind.AVERAGE
    shift: TraceShift = "none"
    anchor: _dt.datetime | None = None
    noise_fraction: float = 0.0
    seed: int = 0

    @property
    def scale(self) -> float:
        return UNIT_SCALE[self.units]


ProviderConfig = ElectricityMapsConfig | WattTimeConfig | UKCarbonIntensityConfig | CarbonAwareSdkConfig | TraceConfig
PROVIDER_TYPES: tuple[str, ...] = (
    "electricitymaps",
    "watttime",
    "ukcarbonintensity",
    "carbonawaresdk",
    "trace",
)


@dataclass(frozen=True)
class TraceRef:
    provider: str
    zone: str


@dataclass(frozen=True)
class RegionCarbonConfig:
    region: str
    provider: str | None = None
    """Name of the live provider instance; None for a static-only region."""
    zone: str | None = None
    fallback_trace: TraceRef | None = None
    static: StaticFactor = field(default_factory=lambda: default_static_factor(None, ""))


@dataclass(frozen=True)
class CarbonSettings:
    cache_ttl: timedelta = timedelta(minutes=10)
    """Reuse a live answer this long before asking the provider again."""
    stale_after: timedelta = timedelta(hours=2)
    """A cached answer older than this is reported stale."""
    request_timeout: timedelta = timedelta(seconds=10)
    forecast_horizon: timedelta = timedelta(hours=48)
    """Forecasts are fetched for at least this far ahead so that later, shifted windows hit the cache."""
    retry_backoff: timedelta = timedelta(seconds=30)
    """Wait after the first failed call before asking that provider/zone again; doubles per failure."""
    max_retry_backoff: timedelta = timedelta(minutes=10)
    max_retries: int = 2
    """Immediate retries of one HTTP request after a connection failure or 5xx."""


@dataclass(frozen=True)
class CarbonConfig:
    providers: Mapping[str, ProviderConfig]
    regions: tuple[RegionCarbonConfig, ...]
    settings: CarbonSettings = CarbonSettings()

    def region(self, name: str) -> RegionCarbonConfig:
        for r in self.regions:
            if r.region == name:
                return r
        raise KeyError(name)


# -- parsing --------------------------------------------------------------------------------------

_SETTINGS_KEYS = {
    "cacheTTL": "cache_ttl",
    "staleAfter": "stale_after",
    "requestTimeout": "request_timeout",
    "forecastHorizon": "forecast_horizon",
    "retryBackoff": "retry_backoff",
    "maxRetryBackoff": "max_retry_backoff",
}
_REGION_CARBON_KEYS = ("provider", "zone", "fallbackTrace", "staticGramsPerKwh")
_MAX_PLAUSIBLE_G_PER_KWH = 2000.0


def parse_carbon_config(doc: Mapping[str, Any], base_dir: str | Path | None = None) -> CarbonConfig:
    """Read ``providers``, ``carbon`` and ``regions`` from the operator config document.

    Relative paths (trace files, token files) resolve against ``base_dir`` (default: the current
    directory), normally the directory of the config file.
    """
    if not isinstance(doc, Mapping):
        raise CarbonConfigError(f"<root>: expected a mapping (YAML object), got {_kind(doc)}")
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    settings = _parse_settings(doc.get("carbon"), "carbon")
    providers = _parse_providers(doc.get("providers"), "providers", base)
    regions = _parse_regions(doc.get("regions"), "regions", providers)
    return CarbonConfig(providers, regions, settings)


def _parse_settings(raw: Any, path: str) -> CarbonSettings:
    if raw is None:
        return CarbonSettings()
    m = _mapping(raw, path)
    _known(m, path, (*_SETTINGS_KEYS, "maxRetries"))
    values: dict[str, Any] = {}
    for key, attr in _SETTINGS_KEYS.items():
        if key in m:
            values[attr] = _duration(m[key], f"{path}.{key}")
    if "maxRetries" in m:
        n = m["maxRetries"]
        if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= 10:
            raise CarbonConfigError(f"{path}.maxRetries: expected a whole number 0..10, got {n!r}")
        values["max_retries"] = n
    s = CarbonSettings(**values)
    if s.cache_ttl > s.stale_after:
        raise CarbonConfigError(
            f"{path}.cacheTTL: must not exceed staleAfter "
            f"({m.get('cacheTTL')} > {m.get('staleAfter', '2h')}); otherwise fresh cache hits would be stale"
        )
    if s.retry_backoff > s.max_retry_backoff:
        raise CarbonConfigError(f"{path}.retryBackoff: must not exceed maxRetryBackoff")
    return s


def _parse_providers(raw: Any, path: str, base: Path) -> dict[str, ProviderConfig]:
    if raw is None:
        return {}
    m = _mapping(raw, path)
    out: dict[str, ProviderConfig] = {}
    for name, body in m.items():
        p = f"{path}.{name}"
        if not isinstance(name, str) or not name.strip():
            raise CarbonConfigError(f"{path}: provider names must be non-empty strings, got {name!r}")
        pm = _mapping(body, p)
        ptype = pm.get("type")
        if ptype not in PROVIDER_TYPES:
            raise CarbonConfigError(f"{p}.type: unknown provider type {ptype!r}; known: {', '.join(PROVIDER_TYPES)}")
        out[name] = _PARSERS[ptype](name, pm, p, base)
    return out


def _parse_emaps(name: str, m: Mapping[str, Any], p: str, base: Path) -> ProviderConfig:
    _known(
        m,
        p,
        (
            "type",
            "baseUrl",
            "tokenEnv",
            "tokenFile",
            "emissionFactorType",
            "disableEstimations",
            "timeoutSeconds",
        ),
    )
    eft = m.get("emissionFactorType")
    if eft is not None and eft not in ("lifecycle", "direct"):
        raise CarbonConfigError(f"{p}.emissionFactorType: must be 'lifecycle' or 'direct', got {eft!r}")
    dis = m.get("disableEstimations", False)
    if not isinstance(dis, bool):
        raise CarbonConfigError(f"{p}.disableEstimations: expected true or false, got {dis!r}")
    return ElectricityMapsConfig(
        name=name,
        base_url=_url(m.get("baseUrl", EMAPS_URL), f"{p}.baseUrl"),
        token=_secret(m, "token", p, base, required=False),
        emission_factor_type=eft,
        disable_estimations=dis,
        timeout=_timeout(m, p),
    )


def _parse_watttime(name: str, m: Mapping[str, Any], p: str, base: Path) -> ProviderConfig:
    _known(
        m,
        p,
        (
            "type",
            "baseUrl",
            "usernameEnv",
            "usernameFile",
            "passwordEnv",
            "passwordFile",
            "signalType",
            "timeoutSeconds",
        ),
    )
    sig = m.get("signalType", "co2_moer")
    if sig not in SIGNAL_KINDS:
        raise CarbonConfigError(
            f"{p}.signalType: must be one of {', '.join(sorted(SIGNAL_KINDS))} "
            f"(intensity signals in lbs/MWh), got {sig!r}"
        )
    user = _secret(m, "username", p, base, required=True)
    pw = _secret(m, "password", p, base, required=True)
    assert user is not None
    assert pw is not None
    return WattTimeConfig(
        name=name,
        username=user,
        password=pw,
        base_url=_url(m.get("baseUrl", WATTTIME_URL), f"{p}.baseUrl"),
        signal_type=sig,
        timeout=_timeout(m, p),
    )


def _parse_ukci(name: str, m: Mapping[str, Any], p: str, base: Path) -> ProviderConfig:
    _known(m, p, ("type", "baseUrl", "timeoutSeconds"))
    return UKCarbonIntensityConfig(
        name=name, base_url=_url(m.get("baseUrl", UKCI_URL), f"{p}.baseUrl"), timeout=_timeout(m, p)
    )


def _parse_sdk(name: str, m: Mapping[str, Any], p: str, base: Path) -> ProviderConfig:
    _known(m, p, ("type", "baseUrl", "units", "signal", "timeoutSeconds"))
    if "baseUrl" not in m:
        raise CarbonConfigError(
            f"{p}.baseUrl: required; the Carbon Aware SDK WebAPI address, e.g. http://carbon-aware-sdk"
        )
    units = _units(m, p)
    return CarbonAwareSdkConfig(
        name=name,
        base_url=_url(m["baseUrl"], f"{p}.baseUrl"),
        units=units,
        signal=_signal(m, p, units),
        timeout=_timeout(m, p),
    )


def _parse_trace(name: str, m: Mapping[str, Any], p: str, base: Path) -> ProviderConfig:
    _known(m, p, ("type", "files", "units", "signal", "shift", "anchor", "noiseFraction", "seed"))
    files_raw = _mapping(m.get("files"), f"{p}.files") if "files" in m else None
    if not files_raw:
        raise CarbonConfigError(
            f"{p}.files: required; map each zone to a CSV trace, e.g. {{DE: data/carbon/lwa_ger_2020.csv}}"
        )
    files: dict[str, Path] = {}
    for zone, path in files_raw.items():
        if not isinstance(path, str) or not path.strip():
            raise CarbonConfigError(f"{p}.files.{zone}: expected a file path, got {path!r}")
        fp = Path(path)
        files[str(zone)] = fp if fp.is_absolute() else base / fp
    shift = m.get("shift", "none")
    if shift not in ("none", "toNow"):
        raise CarbonConfigError(
            f"{p}.shift: must be 'none' (file timestamps as they are) or 'toNow' (replay on the wall clock), "
            f"got {shift!r}"
        )
    anchor_raw = m.get("anchor")
    anchor: _dt.datetime | None = None
    if anchor_raw is not None:
        if isinstance(anchor_raw, _dt.datetime):
            anchor = utc(anchor_raw)
        elif isinstance(anchor_raw, _dt.date):
            anchor = _dt.datetime(anchor_raw.year, anchor_raw.month, anchor_raw.day, tzinfo=_dt.UTC)
        elif isinstance(anchor_raw, str):
            try:
                anchor = utc(_dt.datetime.fromisoformat(anchor_raw.strip()))
            except ValueError:
                raise CarbonConfigError(
                    f'{p}.anchor: {anchor_raw!r} is not a timestamp; write e.g. "2020-06-01T00:00:00Z"'
                ) from None
        else:
            raise CarbonConfigError(f"{p}.anchor: expected a timestamp string, got {_kind(anchor_raw)}")
    noise = m.get("noiseFraction", 0.0)
    if isinstance(noise, bool) or not isinstance(noise, int | float) or not 0 <= noise < MAX_NOISE_FRACTION:
        raise CarbonConfigError(
            f"{p}.noiseFraction: expected a number in [0, {MAX_NOISE_FRACTION}), e.g. 0.05, got {noise!r}"
        )
    seed = m.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise CarbonConfigError(f"{p}.seed: expected a whole number, got {seed!r}")
    units = _units(m, p)
    return TraceConfig(
        name=name,
        files=files,
        units=units,
        signal=_signal(m, p, units),
        shift=shift,
        anchor=anchor,
        noise_fraction=float(noise),
        seed=seed,
    )


_PARSERS = {
    "electricitymaps": _parse_emaps,
    "watttime": _parse_watttime,
    "ukcarbonintensity": _parse_ukci,
    "carbonawaresdk": _parse_sdk,
    "trace": _parse_trace,
}


def _parse_regions(raw: Any, path: str, providers: Mapping[str, ProviderConfig]) -> tuple[RegionCarbonConfig, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise CarbonConfigError(f"{path}: expected a list of regions, got {_kind(raw)}")
    seen: set[str] = set()
    out: list[RegionCarbonConfig] = []
    for i, item in enumerate(raw):
        p = f"{path}[{i}]"
        rm = _mapping(item, p)
        name = rm.get("name")
        if not isinstance(name, str) or not name.strip():
            raise CarbonConfigError(f"{p}.name: required; the region's name, e.g. europe-north1")
        if name in seen:
            raise CarbonConfigError(f"{p}.name: duplicate region {name!r}; region names must be unique")
        seen.add(name)
        out.append(_parse_region_carbon(name, rm.get("carbon"), f"{p}.carbon", providers))
    return tuple(out)


def _parse_region_carbon(region: str, raw: Any, p: str, providers: Mapping[str, ProviderConfig]) -> RegionCarbonConfig:
    if raw is None:
        return RegionCarbonConfig(region=region, static=default_static_factor(None, region))
    m = _mapping(raw, p)
    _known(m, p, _REGION_CARBON_KEYS)
    provider = m.get("provider")
    zone_raw = m.get("zone")
    zone = None if zone_raw is None else str(zone_raw).strip()
    static_zone = zone
    if provider is not None:
        if not isinstance(provider, str) or provider not in providers:
            known = ", ".join(sorted(providers)) or "(none configured under providers)"
            raise CarbonConfigError(
                f"{p}.provider: unknown provider {provider!r}; known: {known}. "
                "Define it under 'providers' or fix the name"
            )
        if not zone:
            raise CarbonConfigError(
                f"{p}.zone: required when provider is set; the provider's grid zone, e.g. 'FI' "
                "(Electricity Maps), 'CAISO_NORTH' (WattTime), 'national' or '13' (UK Carbon Intensity), "
                "'uksouth' (Carbon Aware SDK)"
            )
        pc = providers[provider]
        if isinstance(pc, UKCarbonIntensityConfig):
            try:
                static_zone = "GB" if parse_ukci_zone(zone) is None else None
            except ValueError as exc:
                raise CarbonConfigError(f"{p}.zone: {exc}") from None
        if isinstance(pc, TraceConfig):
            _trace_zone(pc, zone, f"{p}.zone")
            static_zone = zone
    elif zone_raw is not None and not zone:
        raise CarbonConfigError(f"{p}.zone: must not be empty")
    fallback = None
    if "fallbackTrace" in m:
        fm = _mapping(m["fallbackTrace"], f"{p}.fallbackTrace")
        _known(fm, f"{p}.fallbackTrace", ("provider", "zone"))
        tname = fm.get("provider")
        tcfg = providers.get(tname) if isinstance(tname, str) else None
        if not isinstance(tcfg, TraceConfig):
            traces = ", ".join(sorted(n for n, c in providers.items() if isinstance(c, TraceConfig)))
            raise CarbonConfigError(
                f"{p}.fallbackTrace.provider: {tname!r} is not a provider of type trace; "
                f"trace providers: {traces or '(none configured)'}"
            )
        tzone = fm.get("zone")
        if not isinstance(tzone, str | int) or isinstance(tzone, bool):
            raise CarbonConfigError(f"{p}.fallbackTrace.zone: required; one of {', '.join(tcfg.files)}")
        _trace_zone(tcfg, str(tzone), f"{p}.fallbackTrace.zone")
        fallback = TraceRef(tcfg.name, str(tzone))
    if "staticGramsPerKwh" in m:
        v = m["staticGramsPerKwh"]
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v <= _MAX_PLAUSIBLE_G_PER_KWH:
            raise CarbonConfigError(
                f"{p}.staticGramsPerKwh: expected the region's annual average in gCO2eq/kWh "
                f"(0 < value <= {_MAX_PLAUSIBLE_G_PER_KWH:g}), got {v!r}"
            )
        static = StaticFactor(float(v), "configured staticGramsPerKwh")
    else:
        static = default_static_factor(static_zone, region)
    return RegionCarbonConfig(region, provider, zone, fallback, static)


# -- small readers ---------------------------------------------------------------------------------


def _mapping(raw: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise CarbonConfigError(f"{path}: expected a mapping (YAML object), got {_kind(raw)}")
    return raw


def _known(m: Mapping[str, Any], path: str, allowed: Sequence[str]) -> None:
    for key in m:
        if key not in allowed:
            raise CarbonConfigError(f"{path}.{key}: unknown field; known fields: {', '.join(allowed)}")


def _duration(raw: Any, path: str) -> timedelta:
    if not isinstance(raw, str):
        raise CarbonConfigError(f"{path}: expected a duration string like '30s', '10m' or '1h30m', got {raw!r}")
    try:
        return parse_duration(raw)
    except ValueError as exc:
        raise CarbonConfigError(f"{path}: {exc}") from None


def _timeout(m: Mapping[str, Any], p: str) -> timedelta | None:
    if "timeoutSeconds" not in m:
        return None
    v = m["timeoutSeconds"]
    if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v <= 300:
        raise CarbonConfigError(f"{p}.timeoutSeconds: expected seconds in (0, 300], e.g. 10, got {v!r}")
    return timedelta(seconds=float(v))


def _url(raw: Any, path: str) -> str:
    if not isinstance(raw, str) or not raw.startswith(("http://", "https://")):
        raise CarbonConfigError(f"{path}: expected an http(s) URL, got {raw!r}")
    return raw


def _secret(m: Mapping[str, Any], stem: str, p: str, base: Path, *, required: bool) -> SecretRef | None:
    env, file = m.get(f"{stem}Env"), m.get(f"{stem}File")
    if env is not None and file is not None:
        raise CarbonConfigError(f"{p}.{stem}Env: set either {stem}Env or {stem}File, not both")
    if env is not None:
        if not isinstance(env, str) or not env.strip():
            raise CarbonConfigError(f"{p}.{stem}Env: expected an environment variable name, got {env!r}")
        return SecretRef(env=env.strip())
    if file is not None:
        if not isinstance(file, str) or not file.strip():
            raise CarbonConfigError(f"{p}.{stem}File: expected a file path, got {file!r}")
        fp = Path(file)
        return SecretRef(file=fp if fp.is_absolute() else base / fp)
    if required:
        raise CarbonConfigError(
            f"{p}.{stem}Env: required; name the environment variable (or use {stem}File for a mounted "
            "Secret file) that holds it"
        )
    return None


def _units(m: Mapping[str, Any], p: str) -> Units:
    units = m.get("units", "gCO2eqPerKWh")
    if units == "gCO2eqPerKWh":
        return "gCO2eqPerKWh"
    if units == "lbsPerMWh":
        return "lbsPerMWh"
    raise CarbonConfigError(f"{p}.units: must be 'gCO2eqPerKWh' or 'lbsPerMWh', got {units!r}")


def _signal(m: Mapping[str, Any], p: str, units: Units) -> SignalKind:
    """Explicit ``signal``; by default lbs/MWh means a WattTime MOER source, i.e. marginal."""
    raw = m.get("signal")
    if raw is None:
        return SignalKind.MARGINAL if units == "lbsPerMWh" else SignalKind.AVERAGE
    try:
        return SignalKind(raw)
    except ValueError:
        raise CarbonConfigError(f"{p}.signal: must be 'average' or 'marginal', got {raw!r}") from None


def _trace_zone(tc: TraceConfig, zone: str, path: str) -> None:
    if zone not in tc.files:
        raise CarbonConfigError(
            f"{path}: trace provider {tc.name!r} has no file for zone {zone!r}; its zones: {', '.join(tc.files)}"
        )


def _kind(v: Any) -> str:
    return "null" if v is None else type(v).__name__
