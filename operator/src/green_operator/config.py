"""Operator configuration: regions (where jobs may run), the planner's knobs and defaults.

Read from one YAML file (the Helm chart mounts it from a ConfigMap) and validated at start-up:
every error names the field path and the fix, and the operator refuses to start on any of them.
The carbon parts (`providers`, `carbon`, `regions[].carbon`) are parsed by the carbon package.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from .carbon.config import DNS_LABEL, CarbonConfig, CarbonConfigError, parse_carbon_config, read_regions
from .planner import PlannerSettings, power_profile
from .regions import RegionConfig
from .times import parse_duration

REGION_LABEL = "topology.kubernetes.io/region"


class ConfigError(ValueError):
    """The configuration cannot work; the message names the field and how to fix it."""


@dataclass(frozen=True)
class OperatorConfig:
    regions: tuple[RegionConfig, ...]
    carbon: CarbonConfig
    planner: PlannerSettings = field(default_factory=PlannerSettings)
    replan_interval: timedelta = timedelta(minutes=10)
    """How often deferred jobs are re-planned on fresh forecasts (receding horizon)."""
    forecast_refresh: timedelta = timedelta(minutes=1)
    """How long one region's sampled forecast is reused across jobs before asking the carbon service."""
    metrics_port: int = 8080
    trainer_metrics_port: int = 9402
    watch_namespaces: tuple[str, ...] = ()
    """Empty: all namespaces (cluster-wide)."""
    grant_power_limit_capability: bool = False
    """Run the training container's wrapper as root with CAP_SYS_ADMIN so it can set the power limit."""
    prometheus_url: str | None = None
    """Where the trainers' metrics are scraped; running jobs then show live energy in status."""
    live_energy_interval: timedelta = timedelta(minutes=1)
    source: str = field(default="<defaults>", compare=False)

    def region(self, name: str) -> RegionConfig | None:
        return next((r for r in self.regions if r.name == name), None)

    @property
    def region_names(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.regions)


def load_config(path: str | Path) -> OperatorConfig:
    p = Path(path)
    try:
        doc = yaml.safe_load(p.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read the operator configuration {p}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p} is not valid YAML: {exc}") from exc
    if not isinstance(doc, Mapping):
        raise ConfigError(f"{p}: the configuration must be a mapping with at least `regions`")
    return parse_config(doc, base_dir=p.parent, source=str(p))


def parse_config(doc: Mapping[str, Any], base_dir: str | Path = ".", source: str = "<inline>") -> OperatorConfig:
    known = {"regions", "providers", "carbon", "planner", "operator", "prometheus"}
    unknown = sorted(set(doc) - known)
    if unknown:
        raise ConfigError(f"unknown top-level key(s) {unknown}; expected some of {sorted(known)}")
    try:
        carbon = parse_carbon_config(doc, base_dir=base_dir)
    except CarbonConfigError as exc:
        raise ConfigError(str(exc)) from exc
    regions = _regions(doc.get("regions"))
    planner, replan, refresh = _planner(doc.get("planner") or {})
    op = _mapping(doc.get("operator") or {}, "operator")
    _known(op, "operator", ("metricsPort", "trainerMetricsPort", "watchNamespaces", "grantPowerLimitCapability"))
    grant = op.get("grantPowerLimitCapability", False)
    if not isinstance(grant, bool):
        raise ConfigError("operator.grantPowerLimitCapability must be true or false")
    watch = op.get("watchNamespaces") or []
    if not isinstance(watch, list) or not all(isinstance(n, str) and DNS_LABEL.match(n) for n in watch):
        raise ConfigError("operator.watchNamespaces must be a list of namespace names (empty = all namespaces)")
    prom = _mapping(doc.get("prometheus") or {}, "prometheus")
    _known(prom, "prometheus", ("url", "interval"))
    prom_url = prom.get("url")
    if prom_url is not None and (not isinstance(prom_url, str) or not prom_url.startswith(("http://", "https://"))):
        raise ConfigError("prometheus.url must be an http(s) URL such as http://prometheus-operated.monitoring:9090")
    try:
        live_interval = parse_duration(str(prom.get("interval", "1m")))
    except ValueError as exc:
        raise ConfigError(f"prometheus.interval: {exc}") from exc
    return OperatorConfig(
        regions=regions,
        carbon=carbon,
        planner=planner,
        replan_interval=replan,
        forecast_refresh=refresh,
        metrics_port=_port(op.get("metricsPort", 8080), "operator.metricsPort"),
        trainer_metrics_port=_port(op.get("trainerMetricsPort", 9402), "operator.trainerMetricsPort"),
        watch_namespaces=tuple(watch),
        grant_power_limit_capability=grant,
        prometheus_url=prom_url,
        live_energy_interval=live_interval,
        source=source,
    )


def _regions(raw: Any) -> tuple[RegionConfig, ...]:
    try:
        entries = read_regions(raw, required=True)  # the same name rules as the carbon configuration
    except CarbonConfigError as exc:
        raise ConfigError(str(exc)) from exc
    out: list[RegionConfig] = []
    for i, (name, m) in enumerate(entries):
        path = f"regions[{i}]"
        _known(m, path, ("name", "nodeSelector", "tolerations", "gpuModel", "carbon"))
        selector = m.get("nodeSelector") or {REGION_LABEL: name}
        if not isinstance(selector, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in selector.items()
        ):
            raise ConfigError(f"{path}.nodeSelector must map label names to string values")
        tolerations = m.get("tolerations") or []
        if not isinstance(tolerations, list) or not all(isinstance(t, Mapping) for t in tolerations):
            raise ConfigError(f"{path}.tolerations must be a list of Kubernetes tolerations")
        model = m.get("gpuModel")
        if model is not None and not isinstance(model, str):
            raise ConfigError(f"{path}.gpuModel must be a string such as H100")
        out.append(RegionConfig(name, dict(selector), tuple(dict(t) for t in tolerations), model))
    return tuple(out)


def _planner(raw: Any) -> tuple[PlannerSettings, timedelta, timedelta]:
    m = _mapping(raw, "planner")
    _known(
        m,
        "planner",
        ("slot", "horizon", "replanInterval", "forecastRefresh", "defaultGpuWatts", "hysteresis", "reserveFraction",
         "reserveRamp", "referenceGpuModel"),
    )  # fmt: skip
    d = PlannerSettings()
    slot = _dur(m, "slot", d.slot)
    horizon = _dur(m, "horizon", d.horizon)
    if horizon < slot:
        raise ConfigError("planner.horizon must be at least one planner.slot long")
    watts = m.get("defaultGpuWatts", d.default_gpu_watts)
    if not isinstance(watts, int | float) or watts <= 0:
        raise ConfigError("planner.defaultGpuWatts must be a positive number of watts, e.g. 300")
    hyst = m.get("hysteresis", d.hysteresis_fraction)
    if not isinstance(hyst, int | float) or not 0 <= hyst < 1:
        raise ConfigError("planner.hysteresis must be a fraction in [0, 1), e.g. 0.05")
    reserve = m.get("reserveFraction", d.reserve_fraction)
    if not isinstance(reserve, int | float) or not 0 <= reserve < 1:
        raise ConfigError("planner.reserveFraction must be a fraction in [0, 1), e.g. 0.2 (0 turns the reserve off)")
    settings = PlannerSettings(
        slot=slot,
        horizon=horizon,
        default_gpu_watts=float(watts),
        hysteresis_fraction=float(hyst),
        reserve_fraction=float(reserve),
        reserve_ramp=_dur(m, "reserveRamp", d.reserve_ramp),
        reference_gpu_model=_reference_model(m.get("referenceGpuModel")),
    )
    return settings, _dur(m, "replanInterval", timedelta(minutes=10)), _dur(m, "forecastRefresh", timedelta(minutes=1))


def _reference_model(raw: Any) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str) or power_profile(raw) is None:
        raise ConfigError(
            f"planner.referenceGpuModel: {raw!r} is not a GPU model with a power profile; use one of "
            "H100, A100 or L4 (any NVML or nvidia.com/gpu.product spelling), or leave it out"
        )
    return raw


def _dur(m: Mapping[str, Any], key: str, default: timedelta) -> timedelta:
    if key not in m:
        return default
    try:
        return parse_duration(str(m[key]))
    except ValueError as exc:
        raise ConfigError(f"planner.{key}: {exc}") from exc


def _port(raw: Any, path: str) -> int:
    if not isinstance(raw, int) or not 0 <= raw <= 65535:
        raise ConfigError(f"{path} must be a TCP port number (0 disables), got {raw!r}")
    return raw


def _mapping(raw: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path} must be a mapping")
    return raw


def _known(m: Mapping[str, Any], path: str, allowed: Sequence[str]) -> None:
    unknown = sorted(set(m) - set(allowed))
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")
