"""Energy of a running job, read from the trainers' metrics in Prometheus (when one is configured).

The trainers export `greentraining_energy_joules_total{pod_namespace, greentraining_job, pod_name, meter}`;
the operator sums it per meter while the job runs, so status shows energy before the job ends. Where
no trainer runs (a user's own image), the GPU node agent's per-pod series stand in, as meter
`node-agent`. The final figures come from the trainers' exit reports, or the node agent's. Pure: the
controller's driver does the HTTP (`energy_query`, then `parse_energy` on the answer).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

METRIC = "greentraining_energy_joules_total"
NODE_AGENT_METRIC = "greentraining_pod_gpu_energy_joules_total"


@dataclass(frozen=True)
class LiveEnergy:
    joules: float
    meter: str


def energy_query(namespace: str, job: str) -> str:
    # Label values are quoted PromQL strings: escape backslashes and quotes.
    def q(v: str) -> str:
        return v.replace("\\", "\\\\").replace('"', '\\"')

    selector = f'{{pod_namespace="{q(namespace)}", greentraining_job="{q(job)}"}}'
    trainers = f"sum by (meter) ({METRIC}{selector})"
    agents = f'label_replace(sum({NODE_AGENT_METRIC}{selector}), "meter", "node-agent", "", "")'
    # The node agents' figure only where no trainer reports: never both for one job.
    return f"{trainers} or ({agents} unless on() {trainers})"


def parse_energy(doc: Mapping[str, Any]) -> LiveEnergy | None:
    """From a Prometheus /api/v1/query answer; None when there is no data (yet)."""
    if doc.get("status") != "success":
        return None
    result = (doc.get("data") or {}).get("result") or []
    total = 0.0
    meters: list[str] = []
    for series in result:
        try:
            total += float(series["value"][1])
        except (KeyError, IndexError, TypeError, ValueError):
            continue
        meters.append(str((series.get("metric") or {}).get("meter", "unknown")))
    if not meters:
        return None
    meter = meters[0] if len(set(meters)) == 1 else f"mixed({','.join(sorted(set(meters)))})"
    return LiveEnergy(total, meter)
