"""Operator configuration: regions (where jobs may run), the planner's knobs and defaults.

Read from one YAML file (the Helm chart mounts it from a ConfigMap) and validated at start-up:
every error names the field path and the fix, and the operator refuses to start on any of them.
The carbon parts (`providers`, `carbon`, `regions[].carbon`) are parsed by the carbon package.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import Field, StringConstraints

from green_operator.carbon.config import (
    DNS_LABEL,
    CarbonConfig,
    CarbonConfigError,
    DurationText,
    RegionCarbonSchema,
    parse_carbon_config,
    read_regions,
)
from green_operator.carbon.plugin import Hint, S, Schema, mapping, validate
from green_operator.kueue.admission import KueueSettings
from green_operator.kueue.dispatch import MultiKueueSettings
from green_operator.planner import PlannerSettings, power_profile
from green_operator.planner.joint import JointSettings
from green_operator.regions import RegionConfig
from green_operator.times import parse_duration

REGION_LABEL = "topology.kubernetes.io/region"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"


class ConfigError(ValueError):
    """The configuration cannot work; the message names the field and how to fix it."""


@dataclass(frozen=True)
class WorkerConfig:
    cluster: str
    """The MultiKueueCluster's name in the manager."""
    region: str
    """The configured region (its grid zone and carbon data) the worker's nodes are in."""
    kubeconfig: Path
    """Credentials for reading the worker's nodes and pods, mounted into the operator."""


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
    kueue_enabled: bool = False
    """Serve Kueue AdmissionChecks whose controllerName is greentraining.io/carbon."""
    kueue: KueueSettings = field(default_factory=KueueSettings)
    multikueue_enabled: bool = False
    """Act as MultiKueue's external dispatcher (Kueue's multiKueue.dispatcherName set to ours)."""
    multikueue: MultiKueueSettings = field(default_factory=MultiKueueSettings)
    workers: tuple[WorkerConfig, ...] = ()
    """The worker clusters, one region each."""
    joint: JointSettings | None = None
    """The periodic joint re-plan of all deferred jobs (every replan_interval); None: off, the
    default (docs/design/planner-joint.md: under tight capacity it cost late jobs on every paired
    workload measured)."""
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


# -- schemas (the chart's values.schema.json `config` part is generated from these and the carbon ones)

Fraction = Annotated[float | None, Field(ge=0, lt=1)]
Port = Annotated[int | None, Field(ge=0, le=65535), Hint("must be a TCP port number (0 disables)", inline=True)]


class RegionSchema(Schema):
    """One entry of ``regions`` (its ``carbon`` block is read by the carbon configuration)."""

    name: Annotated[str, StringConstraints(pattern=DNS_LABEL.pattern)] = Field(
        description="the nodes' region label value, a DNS label such as europe-west3"
    )
    node_selector: Annotated[
        dict[str, str] | None, Hint("must map label names to string values", inline=True, got=False)
    ] = Field(None, alias="nodeSelector", description="default: topology.kubernetes.io/region=<name>")
    tolerations: Annotated[
        list[dict[str, Any]] | None, Hint("must be a list of Kubernetes tolerations", inline=True, got=False)
    ] = Field(None, description="added to the job's pods in this region")
    gpu_model: Annotated[str | None, Hint("must be a string such as H100", inline=True, got=False)] = Field(
        None, alias="gpuModel", description="the region's GPU model, e.g. H100"
    )
    carbon: RegionCarbonSchema | None = Field(None, description="where the region's carbon data comes from")


class PlannerSchema(Schema):
    """The planner's knobs; durations like 15m, 48h."""

    slot: DurationText = Field(None, description="planning grid step, e.g. 15m")
    horizon: DurationText = Field(None, description="how far ahead plans look, e.g. 48h")
    replan_interval: DurationText = Field(
        None,
        alias="replanInterval",
        description="re-plan each deferred job this often (at a second of it fixed per job)",
    )
    forecast_refresh: DurationText = Field(None, alias="forecastRefresh", description="reuse a region's forecast")
    default_gpu_watts: Annotated[
        float | None, Field(gt=0), Hint("must be a positive number of watts, e.g. 300", inline=True, got=False)
    ] = Field(None, alias="defaultGpuWatts", description="draw per GPU when a job does not say")
    hysteresis: Annotated[Fraction, Hint("must be a fraction in [0, 1), e.g. 0.05", inline=True, got=False)] = Field(
        None, description="fraction of emissions a new plan must save before a deferred job moves"
    )
    reserve_fraction: Annotated[
        Fraction,
        Hint("must be a fraction in [0, 1), e.g. 0.2 (0 turns the reserve off)", inline=True, got=False),
    ] = Field(None, alias="reserveFraction", description="GPUs kept for jobs that cannot wait")
    reserve_ramp: DurationText = Field(None, alias="reserveRamp", description="how the reserve ramps, e.g. 2h")
    extrapolation: DurationText = Field(
        None, description="how far past the horizon plans may look on extrapolated intensity, e.g. 48h (unset: off)"
    )
    joint_replan_budget: DurationText = Field(
        None, alias="jointReplanBudget", description="time per periodic joint re-plan of deferred jobs, e.g. 3s"
    )
    joint_replan_max_moves: Annotated[
        int | None, Field(ge=0), Hint("must be a whole number >= 0, e.g. 100", inline=True, got=False)
    ] = Field(
        None,
        alias="jointReplanMaxMoves",
        description="deferred jobs one joint re-plan may move (unset or 0: no joint re-plan; e.g. 100)",
    )
    reference_gpu_model: Annotated[str | None, Hint("must be a GPU model such as H100", inline=True)] = Field(
        None, alias="referenceGpuModel", description="the GPU that jobs' estimatedDuration is given for"
    )


class OperatorSchema(Schema):
    metrics_port: Port = Field(None, alias="metricsPort", description="the operator's metrics port")
    trainer_metrics_port: Port = Field(None, alias="trainerMetricsPort", description="the trainer pods' metrics port")
    watch_namespaces: Annotated[
        list[Annotated[str, StringConstraints(pattern=DNS_LABEL.pattern)]] | None,
        Hint("must be a list of namespace names (empty = all namespaces)", inline=True, got=False),
    ] = Field(None, alias="watchNamespaces", description="empty: all namespaces")
    grant_power_limit_capability: Annotated[bool | None, Hint("must be true or false", inline=True, got=False)] = Field(
        None, alias="grantPowerLimitCapability", description="let the trainer wrapper set the GPU power limit"
    )


class PrometheusSchema(Schema):
    url: Annotated[
        str | None,
        StringConstraints(pattern=r"^https?://"),
        Hint("must be an http(s) URL such as http://prometheus-operated.monitoring:9090", inline=True, got=False),
    ] = Field(None, description="where the trainers' metrics are scraped")
    interval: DurationText = Field(None, description="how often running jobs' energy is read, e.g. 1m")


class KueueSchema(Schema):
    enabled: Annotated[bool | None, Hint("must be true or false", inline=True, got=False)] = Field(
        None, description="run the carbon AdmissionCheck controller (controllerName greentraining.io/carbon)"
    )
    pending_window: DurationText = Field(
        None, alias="pendingWindow", description="hold Kueue quota only this long before a planned start, e.g. 5m"
    )
    max_hold: DurationText = Field(
        None, alias="maxHold", description="the longest a held workload stays inactive before a re-plan, e.g. 1h"
    )


class WorkerSchema(Schema):
    """One worker cluster of ``multiKueue.workers``."""

    cluster: Annotated[
        str,
        StringConstraints(pattern=DNS_SUBDOMAIN),
        Hint("must be a MultiKueueCluster name (a lowercase DNS subdomain such as worker-eu)", inline=True),
    ] = Field(description="the worker's MultiKueueCluster name in the manager cluster")
    region: Annotated[str, StringConstraints(pattern=DNS_LABEL.pattern)] = Field(
        description="the configured region (grid zone) whose GPUs the worker holds"
    )
    kubeconfig: Annotated[str, StringConstraints(min_length=1)] = Field(
        description="path of the worker's kubeconfig mounted into the operator (read nodes and pods there)"
    )


class MultiKueueSchema(Schema):
    enabled: Annotated[bool | None, Hint("must be true or false", inline=True, got=False)] = Field(
        None, description="act as MultiKueue's external dispatcher (set Kueue's multiKueue.dispatcherName to ours)"
    )
    worker_lost_timeout: DurationText = Field(
        None, alias="workerLostTimeout", description="Kueue's multiKueue.workerLostTimeout (keep them equal), e.g. 15m"
    )
    probe_interval: DurationText = Field(
        None, alias="probeInterval", description="how often each worker's free GPUs are read, e.g. 15s"
    )
    workers: Annotated[
        list[dict[str, Any]] | None,
        Hint("must be a list of {cluster, region, kubeconfig}", inline=True, got=False),
    ] = Field(None, description="the worker clusters, one region each")


def _validated(model: type[S], raw: Any, path: str) -> S:
    try:
        return validate(model, mapping(raw or {}, path), path, unknown="keys")
    except CarbonConfigError as exc:
        raise ConfigError(str(exc)) from None


def parse_config(doc: Mapping[str, Any], base_dir: str | Path = ".", source: str = "<inline>") -> OperatorConfig:
    known = {"regions", "providers", "carbon", "planner", "operator", "prometheus", "kueue", "multiKueue"}
    unknown = sorted(set(doc) - known)
    if unknown:
        raise ConfigError(f"unknown top-level key(s) {unknown}; expected some of {sorted(known)}")
    try:
        carbon = parse_carbon_config(doc, base_dir=base_dir)
    except CarbonConfigError as exc:
        raise ConfigError(str(exc)) from exc
    regions = _regions(doc.get("regions"))
    planner_schema = _validated(PlannerSchema, doc.get("planner"), "planner")
    planner, replan, refresh = _planner(planner_schema)
    op = _validated(OperatorSchema, doc.get("operator"), "operator")
    prom = _validated(PrometheusSchema, doc.get("prometheus"), "prometheus")
    kq = _validated(KueueSchema, doc.get("kueue"), "kueue")
    kd = KueueSettings()
    mk = _validated(MultiKueueSchema, doc.get("multiKueue"), "multiKueue")
    md = MultiKueueSettings()
    workers = _workers(mk, regions, Path(base_dir))
    return OperatorConfig(
        regions=regions,
        carbon=carbon,
        planner=planner,
        replan_interval=replan,
        forecast_refresh=refresh,
        metrics_port=8080 if op.metrics_port is None else op.metrics_port,
        trainer_metrics_port=9402 if op.trainer_metrics_port is None else op.trainer_metrics_port,
        watch_namespaces=tuple(op.watch_namespaces or ()),
        grant_power_limit_capability=bool(op.grant_power_limit_capability),
        prometheus_url=prom.url,
        live_energy_interval=_dur(prom.interval, timedelta(minutes=1)),
        kueue_enabled=bool(kq.enabled),
        joint=_joint(planner_schema),
        kueue=KueueSettings(
            pending_window=_dur(kq.pending_window, kd.pending_window), max_hold=_dur(kq.max_hold, kd.max_hold)
        ),
        multikueue_enabled=bool(mk.enabled),
        multikueue=MultiKueueSettings(
            worker_lost_timeout=_dur(mk.worker_lost_timeout, md.worker_lost_timeout),
            probe_interval=_dur(mk.probe_interval, md.probe_interval),
        ),
        workers=workers,
        source=source,
    )


def _workers(mk: MultiKueueSchema, regions: tuple[RegionConfig, ...], base_dir: Path) -> tuple[WorkerConfig, ...]:
    names = [r.name for r in regions]
    out: list[WorkerConfig] = []
    for i, raw in enumerate(mk.workers or ()):
        path = f"multiKueue.workers[{i}]"
        w = _validated(WorkerSchema, raw, path)
        if w.region not in names:
            raise ConfigError(f"{path}.region: {w.region!r} is not a configured region; use one of {names}")
        for other in out:
            if other.cluster == w.cluster:
                raise ConfigError(f"{path}.cluster: {w.cluster!r} is listed twice; list each worker once")
            if other.region == w.region:
                raise ConfigError(
                    f"{path}.region: {w.region!r} is already worker {other.cluster!r}'s; a region is one worker cluster"
                )
        kubeconfig = Path(w.kubeconfig)
        out.append(WorkerConfig(w.cluster, w.region, kubeconfig if kubeconfig.is_absolute() else base_dir / kubeconfig))
    if mk.enabled and not out:
        raise ConfigError(
            "multiKueue.workers: the dispatcher needs at least one worker; list {cluster, region, kubeconfig}"
        )
    return tuple(out)


def _regions(raw: Any) -> tuple[RegionConfig, ...]:
    try:
        entries = read_regions(raw, required=True)  # the same name rules as the carbon configuration
    except CarbonConfigError as exc:
        raise ConfigError(str(exc)) from exc
    out: list[RegionConfig] = []
    for i, (name, m) in enumerate(entries):
        v = _validated(RegionSchema, m, f"regions[{i}]")
        selector = v.node_selector or {REGION_LABEL: name}
        out.append(RegionConfig(name, dict(selector), tuple(dict(t) for t in v.tolerations or ()), v.gpu_model))
    return tuple(out)


def _planner(v: PlannerSchema) -> tuple[PlannerSettings, timedelta, timedelta]:
    d = PlannerSettings()
    slot = _dur(v.slot, d.slot)
    horizon = _dur(v.horizon, d.horizon)
    if horizon < slot:
        raise ConfigError("planner.horizon must be at least one planner.slot long")
    settings = PlannerSettings(
        slot=slot,
        horizon=horizon,
        default_gpu_watts=d.default_gpu_watts if v.default_gpu_watts is None else float(v.default_gpu_watts),
        hysteresis_fraction=d.hysteresis_fraction if v.hysteresis is None else float(v.hysteresis),
        reserve_fraction=d.reserve_fraction if v.reserve_fraction is None else float(v.reserve_fraction),
        reserve_ramp=_dur(v.reserve_ramp, d.reserve_ramp),
        extrapolation=_dur(v.extrapolation, d.extrapolation),
        reference_gpu_model=_reference_model(v.reference_gpu_model),
    )
    return settings, _dur(v.replan_interval, timedelta(minutes=10)), _dur(v.forecast_refresh, timedelta(minutes=1))


def _joint(v: PlannerSchema) -> JointSettings | None:
    d = JointSettings()
    moves = v.joint_replan_max_moves or 0  # off unless set (e.g. 100)
    if moves == 0:
        return None
    return JointSettings(budget=_dur(v.joint_replan_budget, d.budget), max_moves=moves)


def _reference_model(raw: str | None) -> str | None:
    if raw is None:
        return None
    if power_profile(raw) is None:
        raise ConfigError(
            f"planner.referenceGpuModel: {raw!r} is not a GPU model with a power profile; use one of "
            "H100, A100 or L4 (any NVML or nvidia.com/gpu.product spelling), or leave it out"
        )
    return raw


def _dur(text: str | None, default: timedelta) -> timedelta:
    """An already validated duration (DurationText), or the default."""
    return default if text is None else parse_duration(text)
