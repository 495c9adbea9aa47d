"""Energy of a running job, read from the trainers' metrics in Prometheus (when one is configured).

The trainers export `greentraining_energy_joules_total{namespace, job, pod, meter}` (job = the
GreenTrainingJob's name); the operator sums it per meter while the job runs, so status shows energy
before the job ends. The final figures always come from the trainers' exit reports. Pure: the
controller's driver does the HTTP (`energy_query`, then `parse_energy` on the answer).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

METRIC = "greentraining_energy_joules_total"


@dataclass(frozen=True)
class LiveEnergy:
    joules: float
    meter: str


def energy_query(namespace: str, job: str) -> str:
    # Label values are quoted PromQL strings: escape backslashes and quotes.
    def q(v: str) -> str:
        return v.replace("\\", "\\\\").replace('"', '\\"')

    return f'sum by (meter) ({METRIC}{{namespace="{q(namespace)}", job="{q(job)}"}})'


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
