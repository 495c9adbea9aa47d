"""Prometheus metrics for one training pod, served from the sampler's latest snapshot.

Names follow DESIGN section 9: `greentraining_` prefix, base units, counters end in `_total`. The
workload's labels are dcgm-exporter's legacy `pod_namespace`, `pod_name`, `container_name` plus the
GreenTrainingJob as `greentraining_job`: none clashes with the `job`, `namespace`, `pod` and `instance`
labels Prometheus puts on every target, so no honorLabels is needed. Per-GPU series add dcgm-exporter's
`Hostname` (the node), `gpu`, `UUID` and `modelName`, so they join DCGM_FI_DEV_POWER_USAGE (W) and
DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION (mJ), and the node agent's series.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from green_trainer.power_limit import PowerLimitOutcome
from green_trainer.sampler import Snapshot

log = logging.getLogger(__name__)

JOB_LABELS = ("pod_namespace", "pod_name", "container_name", "greentraining_job")
GPU_LABELS = (*JOB_LABELS, "Hostname", "gpu", "UUID", "modelName")


@dataclass(frozen=True)
class Identity:
    namespace: str
    job: str
    pod: str
    region: str
    container: str = ""
    node: str = ""

    @property
    def values(self) -> list[str]:
        return [self.namespace, self.pod, self.container, self.job]


def metric_families(
    snapshot: Snapshot, identity: Identity, limit: PowerLimitOutcome, carbon_source: str
) -> list[Metric]:
    """The exposition for one snapshot (pure; the collector calls it on every scrape)."""
    job = identity.values
    power = GaugeMetricFamily("greentraining_gpu_power_watts", "GPU power draw (NVML).", labels=GPU_LABELS)
    gpu_energy = CounterMetricFamily(
        "greentraining_gpu_energy_joules_total",
        "GPU energy since the wrapper started, by the meter that measured it.",
        labels=(*GPU_LABELS, "meter"),
    )
    gpu_limit = GaugeMetricFamily(
        "greentraining_gpu_power_limit_watts", "GPU power limit in force (NVML).", labels=GPU_LABELS
    )
    utilization = GaugeMetricFamily(
        "greentraining_gpu_utilization_ratio", "GPU busy fraction, 0-1 (NVML).", labels=GPU_LABELS
    )
    for gpu in snapshot.gpus:
        labels = [*job, identity.node, str(gpu.index), gpu.uuid, gpu.model]
        gpu_energy.add_metric([*labels, gpu.meter.value], gpu.energy_joules)
        if gpu.power_watts is not None:
            power.add_metric(labels, gpu.power_watts)
        if gpu.power_limit_watts is not None:
            gpu_limit.add_metric(labels, gpu.power_limit_watts)
        if gpu.utilization_ratio is not None:
            utilization.add_metric(labels, gpu.utilization_ratio)

    energy = CounterMetricFamily(
        "greentraining_energy_joules_total",
        "Energy of this pod since the wrapper started, by meter (nvml|nvml_power_integration|rapl|estimate).",
        labels=(*JOB_LABELS, "meter"),
    )
    for meter, joules in snapshot.energy_by_meter.items():
        energy.add_metric([*job, meter.value], joules)

    families: list[Metric] = [power, gpu_energy, gpu_limit, utilization, energy]
    for name, value, what in (
        ("samples", snapshot.progress.samples, "Training samples"),
        ("steps", snapshot.progress.steps, "Optimizer steps"),
        ("tokens", snapshot.progress.tokens, "Training tokens"),
    ):
        family = CounterMetricFamily(
            f"greentraining_training_{name}_total",
            f"{what} reported by the training process (green_trainer.progress).",
            labels=JOB_LABELS,
        )
        family.add_metric(job, value)
        families.append(family)

    per_sample = GaugeMetricFamily(
        "greentraining_energy_per_sample_joules",
        "Energy so far divided by samples so far; meter names the weakest meter in the sum.",
        labels=(*JOB_LABELS, "meter"),
    )
    if snapshot.energy_per_sample_joules is not None:
        per_sample.add_metric([*job, snapshot.meter.value], snapshot.energy_per_sample_joules)
    intensity = GaugeMetricFamily(
        "greentraining_carbon_intensity_grams_per_kwh",
        "Grid carbon intensity the operator supplied, gCO2eq/kWh (source: env|file).",
        labels=(*JOB_LABELS, "region", "source"),
    )
    if snapshot.carbon_intensity is not None:
        intensity.add_metric([*job, identity.region, carbon_source], snapshot.carbon_intensity)
    emissions = CounterMetricFamily(
        "greentraining_emissions_grams_total",
        "Emissions of the metered energy, gCO2eq, at the intensity in force when it was used.",
        labels=(*JOB_LABELS, "meter"),
    )
    for meter, grams in snapshot.emissions_grams_by_meter.items():
        emissions.add_metric([*job, meter.value], grams)
    applied = GaugeMetricFamily(
        "greentraining_power_limit_applied",
        "1 when the requested GPU power limit is in force; reason says why not (or Clamped).",
        labels=(*JOB_LABELS, "reason"),
    )
    applied.add_metric([*job, limit.code.value], 1.0 if limit.applied else 0.0)
    requested = GaugeMetricFamily(
        "greentraining_power_limit_requested_watts",
        "GPU power limit the operator asked for (GREEN_GPU_POWER_LIMIT_WATTS).",
        labels=JOB_LABELS,
    )
    if limit.requested_watts is not None:
        requested.add_metric(job, limit.requested_watts)
    families += [per_sample, intensity, emissions, applied, requested]
    return families


class SnapshotCollector(Collector):
    def __init__(
        self,
        snapshot: Callable[[], Snapshot],
        identity: Identity,
        limit: Callable[[], PowerLimitOutcome],
        carbon_source: Callable[[], str],
    ) -> None:
        self._snapshot = snapshot
        self._identity = identity
        self._limit = limit
        self._carbon_source = carbon_source

    def collect(self) -> Iterable[Metric]:
        return metric_families(self._snapshot(), self._identity, self._limit(), self._carbon_source())


class MetricsServer:
    """The /metrics endpoint on its own registry (no process/platform collectors of the wrapper)."""

    def __init__(self, collector: Collector, port: int, address: str) -> None:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(collector)
        self._server: WSGIServer
        self._thread: threading.Thread
        self._server, self._thread = start_http_server(port, addr=address, registry=registry)
        self.port: int = self._server.server_port

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
