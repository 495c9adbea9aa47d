"""What the planner needs to know about each region, derived from nodes and carbon data. Pure."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from green_operator.api.spec import GPU_RESOURCES
from green_operator.carbon.provider import ForecastResult
from green_operator.planner import RegionForecast

# Capacity counts whole physical GPUs, as jobs do (api.spec). MIG instances (`nvidia.com/mig-*`) are
# not capacity: jobs that ask for them are refused.
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
MIG_PRODUCT_MARK = "-MIG-"
"""GPU feature discovery's product label on a node whose MIG strategy `single` exposes MIG instances
as nvidia.com/gpu (e.g. A100-SXM4-40GB-MIG-1g.5gb): those are not whole GPUs either."""


@dataclass(frozen=True)
class RegionConfig:
    name: str
    node_selector: Mapping[str, str]
    """Labels a node must carry to belong to the region (default: the region label = name)."""
    tolerations: Sequence[Mapping[str, Any]] = ()
    gpu_model: str | None = None
    """Overrides the model read from the nodes' nvidia.com/gpu.product label."""


@dataclass(frozen=True)
class NodeInfo:
    name: str
    labels: Mapping[str, str]
    allocatable_gpus: int
    schedulable: bool = True


@dataclass(frozen=True)
class RegionCapacity:
    gpus: int
    gpu_model: str


def node_info(body: Mapping[str, object]) -> NodeInfo:
    """From a Node object (as kopf delivers it)."""
    meta = body.get("metadata") or {}
    status = body.get("status") or {}
    spec = body.get("spec") or {}
    assert isinstance(meta, Mapping)
    assert isinstance(status, Mapping)
    assert isinstance(spec, Mapping)
    alloc = status.get("allocatable") or {}
    assert isinstance(alloc, Mapping)
    labels = meta.get("labels") or {}
    assert isinstance(labels, Mapping)
    gpus = 0
    for resource in GPU_RESOURCES:
        with contextlib.suppress(ValueError):
            gpus += int(str(alloc.get(resource, "0")))
    if MIG_PRODUCT_MARK in str(labels.get(GPU_PRODUCT_LABEL, "")):
        gpus = 0
    return NodeInfo(str(meta.get("name")), dict(labels), gpus, not bool(spec.get("unschedulable")))


def region_capacity(region: RegionConfig, nodes: Iterable[NodeInfo]) -> RegionCapacity:
    """GPUs allocatable on the region's schedulable nodes, and their (most common) GPU model."""
    members = [n for n in nodes if n.schedulable and all(n.labels.get(k) == v for k, v in region.node_selector.items())]
    gpus = sum(n.allocatable_gpus for n in members)
    models = Counter(n.labels.get(GPU_PRODUCT_LABEL, "") for n in members if n.allocatable_gpus)
    model = region.gpu_model or (models.most_common(1)[0][0] if models else "")
    return RegionCapacity(gpus, model or "unknown")


def region_forecast(
    region: str,
    capacity: RegionCapacity,
    result: ForecastResult,
    slot_start: datetime,
    slot: timedelta,
    horizon: timedelta,
) -> RegionForecast:
    """Sample the carbon series onto the planner's slot grid.

    The carbon service guarantees coverage of the requested window (falling back to static factors
    where live data ends); should a gap remain, it is filled with the nearest earlier value and, at the
    very start, the series' mean, so the planner never sees a hole (and never a silent zero).
    """
    count = max(1, int(horizon / slot))
    raw = result.series.sample(slot_start, slot, count)
    known = [v for v in raw if v is not None]
    fill = sum(known) / len(known) if known else float("nan")
    values: list[float] = []
    for v in raw:
        if v is None:
            v = values[-1] if values else fill
        values.append(v)
    return RegionForecast(
        region=region,
        capacity_gpus=capacity.gpus,
        gpu_model=capacity.gpu_model,
        start=slot_start,
        intensity=values,
    )
