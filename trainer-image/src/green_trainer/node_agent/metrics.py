"""The node agent's Prometheus metrics (pure exposition from an AgentView).

Labels join dcgm-exporter: `Hostname` (the node), `gpu` (NVML index), `UUID`, `modelName`. The workload
is named with dcgm-exporter's legacy pod labels `pod_namespace`, `pod_name`, `container_name` and the
GreenTrainingJob's name as `greentraining_job`: none clashes with the `job`, `namespace`, `pod` and
`instance` labels Prometheus puts on every target, so no honorLabels is needed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from green_trainer.meters import MeterName
from green_trainer.node_agent.apply import GpuOutcome
from green_trainer.node_agent.energy import PodGpuKey
from green_trainer.node_agent.holdings import Refused

GPU_LABELS = ("Hostname", "gpu", "UUID", "modelName")
POD_LABELS = ("pod_namespace", "pod_name", "container_name", "greentraining_job")


@dataclass(frozen=True)
class GpuView:
    index: int
    uuid: str
    model: str
    meter: MeterName
    energy_joules: float
    power_watts: float | None
    power_limit_watts: float | None


@dataclass(frozen=True)
class AgentView:
    hostname: str
    read_only: bool
    gpus: tuple[GpuView, ...] = ()
    pod_energy: dict[PodGpuKey, float] = field(default_factory=dict)
    outcomes: tuple[GpuOutcome, ...] = ()
    refused: tuple[Refused, ...] = ()
    bad_annotations: dict[tuple[str, str, str], int] = field(default_factory=dict)
    """(namespace, pod, job) -> how many distinct bad values the pod's annotation had."""
    polls: dict[str, int] = field(default_factory=dict)
    jobs: dict[tuple[str, str], str] = field(default_factory=dict)
    """(namespace, pod) -> greentraining_job, for the per-pod series."""


def metric_families(view: AgentView) -> list[Metric]:
    by_uuid = {g.uuid: g for g in view.gpus}

    def gpu_labels(uuid: str) -> list[str]:
        gpu = by_uuid.get(uuid)
        return [view.hostname, "" if gpu is None else str(gpu.index), uuid, "" if gpu is None else gpu.model]

    energy = CounterMetricFamily(
        "greentraining_node_gpu_energy_joules_total",
        "GPU energy since the node agent started, by meter (nvml|nvml_power_integration).",
        labels=(*GPU_LABELS, "meter"),
    )
    power = GaugeMetricFamily("greentraining_node_gpu_power_watts", "GPU power draw (NVML).", labels=GPU_LABELS)
    limit = GaugeMetricFamily(
        "greentraining_node_gpu_power_limit_watts", "GPU power limit in force (NVML).", labels=GPU_LABELS
    )
    for gpu in view.gpus:
        labels = gpu_labels(gpu.uuid)
        energy.add_metric([*labels, gpu.meter.value], gpu.energy_joules)
        if gpu.power_watts is not None:
            power.add_metric(labels, gpu.power_watts)
        if gpu.power_limit_watts is not None:
            limit.add_metric(labels, gpu.power_limit_watts)

    pod_energy = CounterMetricFamily(
        "greentraining_pod_gpu_energy_joules_total",
        "Energy of the GPUs a container held exclusively, while it held them (node agent).",
        labels=(*POD_LABELS, *GPU_LABELS, "meter"),
    )
    for key, joules in sorted(view.pod_energy.items(), key=lambda kv: (str(kv[0].holder.pod), kv[0].uuid)):
        pod = [key.holder.pod.namespace, key.holder.pod.name, key.holder.container, key.job]
        pod_energy.add_metric([*pod, *gpu_labels(key.uuid), key.meter.value], joules)

    applied = GaugeMetricFamily(
        "greentraining_node_power_limit_applied",
        "1 when the pod's power-limit annotation is in force on this GPU; reason says why not (or Clamped).",
        labels=(*POD_LABELS, *GPU_LABELS, "reason"),
    )
    requested = GaugeMetricFamily(
        "greentraining_node_power_limit_requested_watts",
        "The pod's power-limit annotation (greentraining.io/gpu-power-limit-watts).",
        labels=(*POD_LABELS, *GPU_LABELS),
    )
    for o in view.outcomes:
        pod = [o.holder.pod.namespace, o.holder.pod.name, o.holder.container, view.jobs.get(_key(o), "")]
        applied.add_metric([*pod, *gpu_labels(o.uuid), o.code], 1.0 if o.applied else 0.0)
        requested.add_metric([*pod, *gpu_labels(o.uuid)], o.requested_watts)

    refused = GaugeMetricFamily(
        "greentraining_node_refused_gpus",
        "Devices of a pod that get no limit and no per-pod energy: SharedGpu, MigInstance or UnknownDevice.",
        labels=("pod_namespace", "pod_name", "container_name", "Hostname", "device", "reason"),
    )
    for r in view.refused:
        h = r.holder
        refused.add_metric([h.pod.namespace, h.pod.name, h.container, view.hostname, r.device, r.reason.value], 1.0)

    bad = CounterMetricFamily(
        "greentraining_node_invalid_annotations_total",
        "Power-limit annotations refused as not a number of watts (each distinct value counted once).",
        labels=("pod_namespace", "pod_name", "greentraining_job", "Hostname"),
    )
    for (namespace, pod_name, job), count in sorted(view.bad_annotations.items()):
        bad.add_metric([namespace, pod_name, job, view.hostname], count)

    polls = CounterMetricFamily(
        "greentraining_node_agent_polls_total", "PodResources polls by outcome (ok|error).", labels=("outcome",)
    )
    for outcome, count in sorted(view.polls.items()):
        polls.add_metric([outcome], count)
    read_only = GaugeMetricFamily(
        "greentraining_node_agent_read_only", "1 when the agent makes no power-limit calls at all.", labels=()
    )
    read_only.add_metric([], 1.0 if view.read_only else 0.0)
    return [energy, power, limit, pod_energy, applied, requested, refused, bad, polls, read_only]


def _key(o: GpuOutcome) -> tuple[str, str]:
    return (o.holder.pod.namespace, o.holder.pod.name)


class AgentCollector(Collector):
    def __init__(self, view: Callable[[], AgentView]) -> None:
        self._view = view

    def collect(self) -> Iterable[Metric]:
        return metric_families(self._view())
