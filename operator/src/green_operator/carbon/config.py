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

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field, WithJsonSchema

from green_operator.times import parse_duration

from . import registry
from .plugin import CarbonConfigError, Hint, ProviderConfig, Schema, kind, mapping, validate
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


_MAX_PLAUSIBLE_G_PER_KWH = 2000.0


# -- schemas (the chart's values.schema.json is generated from these and the providers' schemas) -----

DURATION_PATTERN = r"^\s*((\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h))+\s*$"


def _check_duration(v: str | None) -> str | None:
    if v is not None:
        parse_duration(v)  # ValueError: "'10 minutes' is not a duration; write it like ..."
    return v


DurationText = Annotated[
    str | None,
    AfterValidator(_check_duration),
    Hint("expected a duration string like '30s', '10m' or '1h30m'"),
    WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN}),
]


class CarbonSettingsSchema(Schema):
    """The ``carbon`` block: cache and retry settings of the carbon service."""

    cache_ttl: DurationText = Field(None, alias="cacheTTL", description="reuse a live answer this long, e.g. 10m")
    stale_after: DurationText = Field(None, alias="staleAfter", description="an answer older than this is stale")
    request_timeout: DurationText = Field(None, alias="requestTimeout", description="HTTP request timeout, e.g. 10s")
    forecast_horizon: DurationText = Field(None, alias="forecastHorizon", description="fetch forecasts this far ahead")
    retry_backoff: DurationText = Field(None, alias="retryBackoff", description="first wait after a failure")
    max_retry_backoff: DurationText = Field(None, alias="maxRetryBackoff", description="longest wait after failures")
    max_retries: Annotated[int | None, Field(ge=0, le=10), Hint("expected a whole number 0..10")] = Field(
        None, alias="maxRetries", description="immediate retries of one request after a connection failure or 5xx"
    )


class FallbackTraceSchema(Schema):
    provider: str = Field(description="a provider of type trace")
    zone: str | int = Field(description="one of that trace provider's zones")


class RegionCarbonSchema(Schema):
    """A region's ``carbon`` block."""

    provider: Annotated[str | None, Hint("expected the name of a provider under 'providers'")] = Field(
        None, description="name of a configured provider"
    )
    zone: str | int | None = Field(None, description="the provider's grid zone, e.g. FI, CAISO_NORTH, 13")
    fallback_trace: FallbackTraceSchema | None = Field(None, alias="fallbackTrace")
    static_grams_per_kwh: Annotated[
        float | None,
        Field(gt=0, le=_MAX_PLAUSIBLE_G_PER_KWH),
        Hint(f"expected the region's annual average in gCO2eq/kWh (0 < value <= {_MAX_PLAUSIBLE_G_PER_KWH:g})"),
    ] = Field(None, alias="staticGramsPerKwh", description="the region's annual average in gCO2eq/kWh")


def schema_of(model: type[BaseModel]) -> dict[str, Any]:
    """``model``'s JSON schema as the chart uses it: YAML names, no titles, references inlined."""
    raw = model.model_json_schema(by_alias=True)
    defs = raw.pop("$defs", {})

    def clean(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return clean(defs[node["$ref"].rsplit("/", 1)[-1]])
            return {k: clean(v) for k, v in node.items() if k != "title"}
        if isinstance(node, list):
            return [clean(v) for v in node]
        return node

    out: dict[str, Any] = clean(raw)
    return out


def providers_schema() -> dict[str, Any]:
    """``providers``: a map of named providers, each validated by its registered type's schema."""
    types = registry.provider_types()
    rules = []
    for t in types:
        pt = registry.provider_type(t)
        if pt is not None and pt.schema is not None:
            rules.append({"if": {"properties": {"type": {"const": t}}}, "then": schema_of(pt.schema)})
    return {
        "type": "object",
        "description": "named carbon-intensity providers",
        "additionalProperties": {
            "type": "object",
            "properties": {"type": {"enum": list(types)}},
            "required": ["type"],
            "allOf": rules,
        },
    }


# -- parsing --------------------------------------------------------------------------------------


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
    v = validate(CarbonSettingsSchema, m, path)
    values: dict[str, Any] = {
        attr: parse_duration(text)
        for attr in ("cache_ttl", "stale_after", "request_timeout", "forecast_horizon", "retry_backoff",
                     "max_retry_backoff")
        if (text := getattr(v, attr)) is not None
    }  # fmt: skip
    if v.max_retries is not None:
        values["max_retries"] = v.max_retries
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


DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def read_regions(raw: Any, path: str = "regions", *, required: bool = False) -> list[tuple[str, Mapping[str, Any]]]:
    """The ``regions`` list as (name, entry) pairs: the one set of rules for region names, used by the
    carbon configuration and by the operator configuration (which reads the rest of each entry).
    ``required``: a missing or empty list is an error (the operator needs at least one region)."""
    if raw is None or (required and raw == []):
        if required:
            raise CarbonConfigError(
                f"{path} must be a non-empty list, e.g. `regions: [{{name: europe-west3, carbon: {{...}}}}]`"
            )
        return []
    if not isinstance(raw, list):
        raise CarbonConfigError(f"{path}: expected a list of regions, got {kind(raw)}")
    seen: set[str] = set()
    out: list[tuple[str, Mapping[str, Any]]] = []
    for i, item in enumerate(raw):
        p = f"{path}[{i}]"
        rm = mapping(item, p)
        name = rm.get("name")
        if not isinstance(name, str) or not name.strip():
            raise CarbonConfigError(f"{p}.name: required; the region's name, e.g. europe-north1")
        if not DNS_LABEL.match(name):
            raise CarbonConfigError(f"{p}.name must be a DNS label such as europe-west3, got {name!r}")
        if name in seen:
            raise CarbonConfigError(f"{p}.name: duplicate region {name!r}; region names must be unique")
        seen.add(name)
        out.append((name, rm))
    return out


def _parse_regions(raw: Any, path: str, providers: Mapping[str, ProviderConfig]) -> tuple[RegionCarbonConfig, ...]:
    return tuple(
        _parse_region_carbon(name, entry.get("carbon"), f"{path}[{i}].carbon", providers)
        for i, (name, entry) in enumerate(read_regions(raw, path))
    )


def _parse_region_carbon(region: str, raw: Any, p: str, providers: Mapping[str, ProviderConfig]) -> RegionCarbonConfig:
    if raw is None:
        return RegionCarbonConfig(region=region, static=default_static_factor(None, region))
    v = validate(RegionCarbonSchema, mapping(raw, p), p)
    provider = v.provider
    zone = None if v.zone is None else str(v.zone).strip()
    static_zone = zone
    if provider is not None:
        if provider not in providers:
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
    elif v.zone is not None and not zone:
        raise CarbonConfigError(f"{p}.zone: must not be empty")
    fallback = None
    if v.fallback_trace is not None:
        tname = v.fallback_trace.provider
        tcfg = providers.get(tname)
        if not isinstance(tcfg, TraceConfig):
            traces = ", ".join(sorted(n for n, c in providers.items() if isinstance(c, TraceConfig)))
            raise CarbonConfigError(
                f"{p}.fallbackTrace.provider: {tname!r} is not a provider of type trace; "
                f"trace providers: {traces or '(none configured)'}"
            )
        tzone = str(v.fallback_trace.zone)
        trace_zone(tcfg, tzone, f"{p}.fallbackTrace.zone")
        fallback = TraceRef(tcfg.name, tzone)
    if v.static_grams_per_kwh is not None:
        static = StaticFactor(float(v.static_grams_per_kwh), "configured staticGramsPerKwh")
    else:
        static = default_static_factor(static_zone, region)
    return RegionCarbonConfig(region, provider, zone, fallback, static)
