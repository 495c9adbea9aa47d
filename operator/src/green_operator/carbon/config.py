"""The carbon part of the operator configuration: providers, cache/retry settings, per-region sources.

``parse_carbon_config`` reads only the top-level keys ``providers``, ``carbon`` and ``regions`` (and
inside each region only ``name`` and ``carbon``); everything else belongs to other parts of the
operator and is ignored here. Every error names the offending field path and says how to fix it.
Parsing is pure: trace files are read when the service is built (``CarbonService.from_config``).

Each provider type's fields are parsed by its own module (``registry.py`` lists them); this module
reads the shared ``carbon`` settings and the regions' ``carbon`` blocks.

Secrets are configured by reference (``tokenEnv``/``tokenFile`` ...) and never read here, so these
objects can be logged or repr()'d safely.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from . import registry
from .plugin import CarbonConfigError, ProviderConfig, duration, kind, known, mapping
from .static_factors import StaticFactor, default_static_factor
from .trace_provider import TraceConfig, trace_zone

__all__ = [
    "CarbonConfig",
    "CarbonConfigError",
    "CarbonSettings",
    "ProviderConfig",
    "RegionCarbonConfig",
    "TraceRef",
    "parse_carbon_config",
]


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
        raise CarbonConfigError(f"<root>: expected a mapping (YAML object), got {kind(doc)}")
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    settings = _parse_settings(doc.get("carbon"), "carbon")
    providers = _parse_providers(doc.get("providers"), "providers", base)
    regions = _parse_regions(doc.get("regions"), "regions", providers)
    return CarbonConfig(providers, regions, settings)


def _parse_settings(raw: Any, path: str) -> CarbonSettings:
    if raw is None:
        return CarbonSettings()
    m = mapping(raw, path)
    known(m, path, (*_SETTINGS_KEYS, "maxRetries"))
    values: dict[str, Any] = {}
    for key, attr in _SETTINGS_KEYS.items():
        if key in m:
            values[attr] = duration(m[key], f"{path}.{key}")
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
    m = mapping(raw, path)
    out: dict[str, ProviderConfig] = {}
    for name, body in m.items():
        p = f"{path}.{name}"
        if not isinstance(name, str) or not name.strip():
            raise CarbonConfigError(f"{path}: provider names must be non-empty strings, got {name!r}")
        pm = mapping(body, p)
        ptype = registry.provider_type(pm.get("type"))
        if ptype is None:
            raise CarbonConfigError(
                f"{p}.type: unknown provider type {pm.get('type')!r}; known: {', '.join(registry.provider_types())}"
            )
        out[name] = ptype.parse(name, pm, p, base)
    return out


def _parse_regions(raw: Any, path: str, providers: Mapping[str, ProviderConfig]) -> tuple[RegionCarbonConfig, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise CarbonConfigError(f"{path}: expected a list of regions, got {kind(raw)}")
    seen: set[str] = set()
    out: list[RegionCarbonConfig] = []
    for i, item in enumerate(raw):
        p = f"{path}[{i}]"
        rm = mapping(item, p)
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
    m = mapping(raw, p)
    known(m, p, _REGION_CARBON_KEYS)
    provider = m.get("provider")
    zone_raw = m.get("zone")
    zone = None if zone_raw is None else str(zone_raw).strip()
    static_zone = zone
    if provider is not None:
        if not isinstance(provider, str) or provider not in providers:
            names = ", ".join(sorted(providers)) or "(none configured under providers)"
            raise CarbonConfigError(
                f"{p}.provider: unknown provider {provider!r}; known: {names}. "
                "Define it under 'providers' or fix the name"
            )
        ptype = registry.type_of(providers[provider])
        if not zone:
            raise CarbonConfigError(
                f"{p}.zone: required when provider is set; the provider's grid zone, e.g. {ptype.zone_example}"
            )
        static_zone = ptype.static_zone(providers[provider], zone, f"{p}.zone")
    elif zone_raw is not None and not zone:
        raise CarbonConfigError(f"{p}.zone: must not be empty")
    fallback = None
    if "fallbackTrace" in m:
        fm = mapping(m["fallbackTrace"], f"{p}.fallbackTrace")
        known(fm, f"{p}.fallbackTrace", ("provider", "zone"))
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
        trace_zone(tcfg, str(tzone), f"{p}.fallbackTrace.zone")
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
