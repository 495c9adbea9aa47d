"""What the agent needs to know of a pod from the API, and the power-limit annotation's parsing (pure).

PodResources gives pod names and namespaces only, so the annotation, the job label and the pod's UID
come from a watch of the node's pods (kubeapi.PodWatcher) and are parsed here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from green_trainer.node_agent.holdings import PodKey

POWER_LIMIT_ANNOTATION = "greentraining.io/gpu-power-limit-watts"
JOB_LABEL = "greentraining.io/job"
MAX_WATTS = 10_000.0  # far above any GPU's range: a larger figure is a typo, not a request
TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})


@dataclass(frozen=True)
class PodInfo:
    key: PodKey
    uid: str
    power_limit: str | None
    """The annotation's raw value; None when the pod has none (the agent then sets no limit)."""
    job: str
    terminal: bool


def pod_info(obj: Mapping[str, Any]) -> PodInfo:
    meta = obj.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    labels = meta.get("labels") or {}
    phase = (obj.get("status") or {}).get("phase", "")
    return PodInfo(
        key=PodKey(str(meta.get("namespace", "")), str(meta.get("name", ""))),
        uid=str(meta.get("uid", "")),
        power_limit=annotations.get(POWER_LIMIT_ANNOTATION),
        job=str(labels.get(JOB_LABEL, "")),
        terminal=phase in TERMINAL_PHASES,
    )


@dataclass(frozen=True)
class Requested:
    watts: float | None
    error: str = ""


def parse_power_limit(value: str | None) -> Requested:
    """The annotation's watts; empty means no limit (the operator writes "" for policy None)."""
    if value is None or not value.strip():
        return Requested(None)
    try:
        watts = float(value.strip())
    except ValueError:
        watts = math.nan
    if not math.isfinite(watts) or not 0 < watts <= MAX_WATTS:
        return Requested(
            None,
            f"annotation {POWER_LIMIT_ANNOTATION}={value!r} is not a power in watts between 0 and {MAX_WATTS:g};"
            " write a number such as '250', or leave it empty for no limit",
        )
    return Requested(watts)
