"""`green-operator plan -f job.yaml`: print the decision the operator would take, creating nothing.

Uses the same parsing, carbon data, planner and reason text as the running operator. Capacity and
other jobs' reservations come from the cluster when it is reachable (`--kubeconfig`), or from
`--capacity REGION=GPUS` flags; with neither, each region is assumed to have room.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from green_operator.api.spec import TrainingJobSpec, gpus_in_template, parse_spec
from green_operator.api.status import reservation_from_status
from green_operator.cli.output import add_output_flags, dump, output_format
from green_operator.config import ConfigError, OperatorConfig, load_config, parse_config
from green_operator.planner import Decision, RegionForecast, Reservation, plan
from green_operator.planner.grid import slot_floor
from green_operator.regions import RegionCapacity, node_info, region_capacity, region_forecast
from green_operator.times import format_duration, rfc3339, utcnow

UNLIMITED_GPUS = 1_000_000
DEFAULT_CONFIGMAP = "green-training-operator-config"
"""The chart's ConfigMap for a release named green-training-operator (``gto.configMapName``)."""
CONFIG_KEY = "config.yaml"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("plan", help="print the decision the operator would take for a GreenTrainingJob")
    p.add_argument("-f", "--filename", required=True, help="GreenTrainingJob YAML ('-' for stdin)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", help="operator configuration YAML")
    source.add_argument(
        "--from-cluster",
        action="store_true",
        help="read the operator configuration from its ConfigMap in the cluster (kubeconfig: "
        "--kubeconfig, else KUBECONFIG, else in-cluster, else ~/.kube/config)",
    )
    p.add_argument(
        "--namespace", default=None, help="the operator's namespace (default: the kubeconfig context's namespace)"
    )
    p.add_argument(
        "--configmap",
        default=DEFAULT_CONFIGMAP,
        help=f"the operator's ConfigMap, as the chart names it (<release>-config; default {DEFAULT_CONFIGMAP})",
    )
    p.add_argument("--kubeconfig", default=None, help="read capacity and other jobs' plans from this cluster")
    p.add_argument("--capacity", action="append", default=[], metavar="REGION=GPUS", help="override capacity")
    add_output_flags(p, what="the decision")
    p.set_defaults(func=run)


@dataclass(frozen=True)
class Preview:
    spec: TrainingJobSpec
    decision: Decision
    now: datetime
    sources: Mapping[str, str]


def _load_job(filename: str) -> Mapping[str, Any]:
    text = sys.stdin.read() if filename == "-" else Path(filename).read_text()
    docs = [d for d in yaml.safe_load_all(text) if d]
    jobs = [d for d in docs if isinstance(d, Mapping) and d.get("kind") == "GreenTrainingJob"]
    if len(jobs) != 1:
        raise ValueError(f"{filename}: expected exactly one GreenTrainingJob, found {len(jobs)}")
    job = dict(jobs[0])
    meta = dict(job.get("metadata") or {})
    meta.setdefault("namespace", "default")
    meta.setdefault("creationTimestamp", rfc3339(utcnow()))
    job["metadata"] = meta
    return job


def _capacities(
    config: OperatorConfig, overrides: Sequence[str], cluster: tuple[list[Any], list[Reservation]] | None
) -> dict[str, RegionCapacity]:
    out: dict[str, RegionCapacity] = {}
    for region in config.regions:
        if cluster is not None:
            out[region.name] = region_capacity(region, cluster[0])
        else:
            out[region.name] = RegionCapacity(UNLIMITED_GPUS, region.gpu_model or "unknown")
    for item in overrides:
        name, _, gpus = item.partition("=")
        if name not in out or not gpus.isdigit():
            raise ValueError(f"--capacity {item!r}: expected REGION=GPUS with a configured region")
        out[name] = RegionCapacity(int(gpus), out[name].gpu_model)
    return out


def _cluster_state(kubeconfig: str | None) -> tuple[list[Any], list[Reservation]]:
    from green_operator.cli.kube import Kube, load_client_config

    kube = Kube(load_client_config(kubeconfig))
    nodes = [node_info(n) for n in kube._call("GET", "/api/v1/nodes").get("items", [])]
    reservations = []
    for obj in kube._call("GET", "/apis/greentraining.io/v1alpha1/greentrainingjobs").get("items", []):
        spec = obj.get("spec") or {}
        gpus = max(gpus_in_template(spec.get("template") or {}), 1) * int(spec.get("parallelism", 1))
        r = reservation_from_status(obj.get("status") or {}, gpus)
        if r is not None:
            reservations.append(r)
    return nodes, reservations


def preview(
    job: Mapping[str, Any],
    config: OperatorConfig,
    capacities: Mapping[str, RegionCapacity],
    reservations: Sequence[Reservation],
    now: datetime,
) -> Preview:
    from green_operator.carbon.service import CarbonService

    parsed = parse_spec(job, config.region_names)
    if isinstance(parsed, list):
        raise ValueError("; ".join(str(p) for p in parsed))
    carbon = CarbonService.from_config(config.carbon)
    try:
        settings = config.planner
        start = slot_floor(now, settings.slot)
        views: list[RegionForecast] = []
        sources: dict[str, str] = {}
        for region in parsed.regions:
            result = carbon.forecast(region, start, start + settings.horizon)
            views.append(region_forecast(region, capacities[region], result, start, settings.slot, settings.horizon))
            sources[region] = f"{result.source} ({result.provider})" + (f": {result.error}" if result.error else "")
    finally:
        carbon.close()
    decision = plan([parsed.request(now)], views, reservations, now, config.planner)[0]
    return Preview(parsed, decision, now, sources)


def render(p: Preview) -> str:
    d = p.decision
    wait = d.start - p.now
    limit = "default" if d.power_limit_watts is None else f"{d.power_limit_watts:.0f} W per GPU"
    lines = [
        f"job:           {p.spec.key} ({p.spec.gpus} GPU(s), {format_duration(p.spec.estimated_duration)})",
        f"decision:      {d.reason}",
        f"region:        {d.region}",
        f"start:         {rfc3339(d.start)}"
        + (f" (in {format_duration(wait)})" if wait.total_seconds() >= 1 else " (now)"),
        f"latest start:  {rfc3339(p.spec.latest_start)}",
        f"power limit:   {limit}; expected duration {format_duration(d.expected_duration)}",
        f"intensity:     {d.forecast_intensity:.0f} gCO2eq/kWh forecast vs {d.baseline_intensity:.0f} now "
        f"in {d.baseline_region}",
        f"emissions:     {d.expected_grams / 1000:.2f} kg expected vs {d.baseline_grams / 1000:.2f} kg if run now",
        f"deadline risk: {'YES' if d.deadline_at_risk else 'no'}",
        "carbon data:   " + "; ".join(f"{r}: {s}" for r, s in p.sources.items()),
    ]
    return "\n".join(lines)


def as_json(p: Preview) -> dict[str, Any]:
    d = p.decision
    return {
        "job": p.spec.key,
        "region": d.region,
        "start": rfc3339(d.start),
        "latestStart": rfc3339(p.spec.latest_start),
        "powerLimitWatts": d.power_limit_watts,
        "expectedDuration": format_duration(d.expected_duration),
        "forecastIntensity": round(d.forecast_intensity, 2),
        "baselineIntensity": round(d.baseline_intensity, 2),
        "baselineRegion": d.baseline_region,
        "expectedGrams": round(d.expected_grams, 2),
        "baselineGrams": round(d.baseline_grams, 2),
        "deadlineAtRisk": d.deadline_at_risk,
        "reason": d.reason,
        "carbonData": dict(p.sources),
    }


def config_from_configmap(obj: Mapping[str, Any], source: str) -> OperatorConfig:
    """Parse the operator configuration held in a ConfigMap object (as the API returns it)."""
    data = obj.get("data") if isinstance(obj, Mapping) else None
    text = data.get(CONFIG_KEY) if isinstance(data, Mapping) else None
    if not isinstance(text, str):
        raise ConfigError(f"{source}: has no data key {CONFIG_KEY!r}; is this the operator's ConfigMap?")
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source} {CONFIG_KEY} is not valid YAML: {exc}") from exc
    if not isinstance(doc, Mapping):
        raise ConfigError(f"{source} {CONFIG_KEY}: the configuration must be a mapping with at least `regions`")
    return parse_config(doc, source=f"{source} {CONFIG_KEY}")


def client_config(kubeconfig: str | None) -> Any:
    """API client for a command-line user: --kubeconfig, else KUBECONFIG, else in-cluster, else ~/.kube/config."""
    from kubernetes import client
    from kubernetes import config as kconfig

    cfg = client.Configuration()
    # KUBECONFIG is read now, not when the kubernetes package was imported (it caches its default).
    explicit = kubeconfig or os.environ.get("KUBECONFIG")
    if explicit:
        kconfig.load_kube_config(config_file=explicit, client_configuration=cfg)  # type: ignore[no-untyped-call]
    else:
        try:
            kconfig.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
        except kconfig.ConfigException:
            kconfig.load_kube_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
    return client.ApiClient(cfg)


def fetch_configmap(kubeconfig: str | None, namespace: str, name: str) -> Mapping[str, Any]:
    from urllib.parse import quote

    from green_operator.cli.kube import Kube

    kube = Kube(client_config(kubeconfig))
    path = f"/api/v1/namespaces/{quote(namespace, safe='')}/configmaps/{quote(name, safe='')}"
    return kube._call("GET", path)


def _cluster_config(args: argparse.Namespace) -> OperatorConfig:
    from kubernetes.client.exceptions import ApiException
    from kubernetes.config import ConfigException
    from urllib3.exceptions import HTTPError

    from green_operator.cli.report import current_namespace

    namespace = args.namespace or current_namespace(args.kubeconfig)
    source = f"ConfigMap {namespace}/{args.configmap}"
    try:
        obj = fetch_configmap(args.kubeconfig, namespace, args.configmap)
    except ApiException as exc:
        hint = " (use --namespace/--configmap to name the operator's)" if exc.status == 404 else ""
        raise ConfigError(f"cannot read {source}: {exc.status} {exc.reason}{hint}") from exc
    except ConfigException as exc:
        raise ConfigError(f"no cluster credentials: {exc}") from exc
    except HTTPError as exc:
        raise ConfigError(f"cannot reach the cluster to read {source}: {exc}") from exc
    return config_from_configmap(obj, source)


def run(args: argparse.Namespace) -> int:
    try:
        config = _cluster_config(args) if getattr(args, "from_cluster", False) else load_config(args.config)
        job = _load_job(args.filename)
        cluster = _cluster_state(args.kubeconfig) if args.kubeconfig else None
        capacities = _capacities(config, args.capacity, cluster)
        result = preview(job, config, capacities, cluster[1] if cluster else [], utcnow())
    except (ConfigError, ValueError, OSError) as exc:
        print(f"green-operator plan: {exc}", file=sys.stderr)
        return 2
    fmt = output_format(args)
    if fmt == "text":
        print(render(result))
    else:
        dump(as_json(result), fmt, sys.stdout)
    return 0
