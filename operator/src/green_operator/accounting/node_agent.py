"""Energy of pods without a trainer report, from the GPU node agent's metrics in Prometheus (pure).

The node agent (`green-trainer node-agent`, a DaemonSet) meters every pod's exclusive GPUs from NVML on
the node and exports `greentraining_pod_gpu_energy_joules_total{pod_namespace, pod_name, UUID, ...}`, for
any image. When a pod ends without the trainer's report, the operator takes that figure (meter
`node-agent`) instead of an estimate. Each series is a counter since the agent started on that node;
the largest value in the job's window is the pod's energy. An agent restart while the pod ran resets
its series, and the figure then covers only one side of the restart: an undercount, never a double count.
The controller's driver does the HTTP (`pod_energy_query`, then `parse_pod_energy` on the answer).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

METRIC = "greentraining_pod_gpu_energy_joules_total"
METER = "node-agent"


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def pod_energy_query(namespace: str, pods: Iterable[str], window_seconds: int) -> str:
    """Per pod: the sum over its GPUs (and containers) of each series' largest value in the window."""
    names = "|".join(re.escape(p) for p in sorted(set(pods)))
    selector = f'{METRIC}{{pod_namespace="{_quote(namespace)}", pod_name=~"{_quote(names)}"}}'
    return f"sum by (pod_name) (max_over_time({selector}[{max(int(window_seconds), 60)}s]))"


def parse_pod_energy(doc: Mapping[str, Any]) -> dict[str, float]:
    """pod name -> joules from a Prometheus /api/v1/query answer; {} when there is no data."""
    if doc.get("status") != "success":
        return {}
    out: dict[str, float] = {}
    for series in (doc.get("data") or {}).get("result") or []:
        try:
            name = str(series["metric"]["pod_name"])
            out[name] = float(series["value"][1])
        except (KeyError, IndexError, TypeError, ValueError):
            continue
    return out
