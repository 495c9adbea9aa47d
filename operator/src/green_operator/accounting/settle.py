"""Energy, emissions and savings of a finished job.

Pure arithmetic: reports -> energy; energy x intensity -> grams; the counterfactual. The front-end
fetches the intensity of the two windows `accounting_windows` names, and `settle` does the rest.

- Energy: the sum over pods (and over each pod's previous container attempt) of the trainer's
  report (its termination message). A pod without a report (OOMKilled, evicted, a trainer-less
  image) takes the GPU node agent's measurement of it (meter `node-agent`, node_agent.py) where
  Prometheus has one, else it is estimated as GPUs x power limit (or the default draw) x its
  runtime, and says so. A report that cannot be believed (reports.py: too large, bad JSON,
  negative, NaN or absurd energy) is refused, labelled, and its attempt counts as reportless.
- Emissions: energy x the region's mean intensity over the actual run (history from the carbon
  service, with its usual fallbacks and labels).
- Baseline: the same energy at the baseline's place and time, i.e. where and when a carbon-blind
  scheduler would have run it (the planner's definition, recorded in status.plan at decision time).
- Saved = baseline - actual, reported as it is: negative when the plan did worse, never clipped.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from green_operator.accounting.reports import Refused, TrainerReport, max_joules, read_report
from green_operator.carbon.provider import ForecastResult
from green_operator.times import parse_rfc3339

if TYPE_CHECKING:
    from green_operator.metrics import OperatorMetrics

JOULES_PER_KWH = 3.6e6
ESTIMATE = "estimate"
NODE_AGENT = "node-agent"  # the GPU node agent's per-pod measurement (node_agent.METER)


@dataclass(frozen=True)
class PodEnergy:
    pod: str
    joules: float
    meter: str
    estimated: bool
    power_applied: bool | None = None
    power_reason: str = ""
    refused: tuple[str, ...] = ()
    """Why its attempts' reports were refused (reports.Refusal values); they count as reportless."""


@dataclass(frozen=True)
class EnergyTotal:
    joules: float
    meter: str
    """The meter behind every figure, or "mixed(a,b)" when pods differ."""
    estimated_pods: int
    power_applied: bool | None
    power_reason: str
    pods: tuple[PodEnergy, ...] = field(default=())

    @property
    def refusals(self) -> list[tuple[str, str]]:
        """(pod, reason) for every attempt whose trainer report was refused."""
        return [(p.pod, reason) for p in self.pods for reason in p.refused]

    @property
    def kwh(self) -> float:
        return self.joules / JOULES_PER_KWH


def parse_report(message: str | None, limit_joules: float = math.inf) -> Mapping[str, Any] | None:
    """The trainer's report as a mapping, or None when there is none or it is refused (see reports)."""
    found = read_report(message, limit_joules)
    if not isinstance(found, TrainerReport):
        return None
    doc: dict[str, Any] = {"energyJoules": found.joules, "meter": found.meter}
    if found.progress is not None:
        doc["progress"] = {"fraction": found.progress}
    return doc


def _terminations(pod: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Every ended container attempt of the pod: current state and the one before (restarts)."""
    out: list[Mapping[str, Any]] = []
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        for key in ("lastState", "state"):
            term = (cs.get(key) or {}).get("terminated")
            if term:
                out.append(term)
    return out


def _runtime(term: Mapping[str, Any]) -> timedelta | None:
    """The attempt's wall time from the kubelet's timestamps; None without them."""
    try:
        return parse_rfc3339(term["finishedAt"]) - parse_rfc3339(term["startedAt"])
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def _read(term: Mapping[str, Any], gpus_per_pod: int) -> TrainerReport | Refused | None:
    runtime = _runtime(term)
    return read_report(term.get("message"), max_joules(gpus_per_pod, runtime.total_seconds() if runtime else None))


def reportless_pods(pods: Iterable[Mapping[str, Any]], gpus_per_pod: int = 0) -> list[str]:
    """Pods with an ended container attempt that left no trainer report, or one refused: the node
    agent's to measure. `gpus_per_pod` bounds believable energy (0: as for one GPU, the strictest)."""
    return [
        str((pod.get("metadata") or {}).get("name", ""))
        for pod in pods
        if any(not isinstance(_read(t, gpus_per_pod), TrainerReport) for t in _terminations(pod))
    ]


def _reported(name: str, report: TrainerReport) -> PodEnergy:
    return PodEnergy(
        name,
        report.joules,
        report.meter,
        estimated=report.meter == ESTIMATE,
        power_applied=report.power_applied,
        power_reason=report.power_reason,
    )


def pod_energy(
    pod: Mapping[str, Any], gpus_per_pod: int, estimate_watts: float, measured: float | None = None
) -> list[PodEnergy]:
    """The pod's attempts; `measured` is the node agent's figure for the whole pod, when there is one."""
    name = str((pod.get("metadata") or {}).get("name", ""))
    reported: list[PodEnergy] = []
    reportless: list[Mapping[str, Any]] = []
    refused: list[str] = []
    for term in _terminations(pod):
        found = _read(term, gpus_per_pod)
        if isinstance(found, TrainerReport):
            reported.append(_reported(name, found))
            continue
        reportless.append(term)
        if isinstance(found, Refused):
            refused.append(found.reason.value)
    if not reportless:
        # A pod with no ended container never ran its command (evicted while pending): nothing to count.
        return reported
    labels = tuple(refused)
    if measured is not None:
        # The agent measured every attempt; the reports cover some: the rest is the reportless ones'.
        rest = max(measured - sum(p.joules for p in reported), 0.0)
        return [*reported, PodEnergy(name, rest, NODE_AGENT, False, refused=labels)]
    watts = max(gpus_per_pod, 1) * estimate_watts
    estimates = [PodEnergy(name, watts * _seconds(t), ESTIMATE, True) for t in reportless]
    estimates[0] = replace(estimates[0], refused=labels)
    return [*reported, *estimates]


def _seconds(term: Mapping[str, Any]) -> float:
    runtime = _runtime(term)
    return max(runtime.total_seconds(), 0.0) if runtime is not None else 0.0


def total_energy(
    pods: Iterable[Mapping[str, Any]],
    gpus_per_pod: int,
    estimate_watts: float,
    measured: Mapping[str, float] | None = None,
) -> EnergyTotal:
    """`measured`: the node agent's joules by pod name (node_agent.parse_pod_energy), for reportless pods."""
    got = measured or {}
    parts = tuple(
        p
        for pod in pods
        for p in pod_energy(
            pod, gpus_per_pod, estimate_watts, got.get(str((pod.get("metadata") or {}).get("name", "")))
        )
    )
    meters = sorted({p.meter for p in parts})
    meter = meters[0] if len(meters) == 1 else (f"mixed({','.join(meters)})" if meters else "none")
    applied = [p.power_applied for p in parts if p.power_applied is not None]
    reasons = sorted({p.power_reason for p in parts if p.power_reason})
    return EnergyTotal(
        joules=sum(p.joules for p in parts),
        meter=meter,
        estimated_pods=sum(1 for p in parts if p.estimated and p.meter == ESTIMATE),
        power_applied=(all(applied) if applied else None),
        power_reason="; ".join(reasons),
        pods=parts,
    )


@dataclass(frozen=True)
class Accounting:
    energy: EnergyTotal
    intensity: float
    """Mean gCO2eq/kWh over the actual run."""
    baseline_intensity: float
    """Mean gCO2eq/kWh over the baseline's window."""
    intensity_note: str = ""

    @property
    def grams(self) -> float:
        return self.energy.kwh * self.intensity

    @property
    def baseline_grams(self) -> float:
        return self.energy.kwh * self.baseline_intensity

    @property
    def saved_grams(self) -> float:
        return self.baseline_grams - self.grams

    @property
    def saved_percent(self) -> float | None:
        return None if self.baseline_grams <= 0 else 100.0 * self.saved_grams / self.baseline_grams

    def status_fields(self) -> dict[str, Any]:
        e = self.energy
        saved_pct = self.saved_percent
        out: dict[str, Any] = {
            "energy": {
                "joules": round(e.joules, 3),
                "kilowattHours": f"{e.kwh:.3f}",
                "source": e.meter,
                "estimatedPods": e.estimated_pods,
                "refusedReports": len(e.refusals),
                "live": False,
            },
            "emissions": {
                "grams": round(self.grams, 3),
                "kilograms": f"{self.grams / 1000:.3f}",
                "baselineGrams": round(self.baseline_grams, 3),
                "savedGrams": round(self.saved_grams, 3),
                "savedPercent": "n/a" if saved_pct is None else f"{saved_pct:.1f}%",
                "intensity": round(self.intensity, 2),
            },
        }
        if e.power_applied is not None:
            out["power"] = {"applied": e.power_applied, "reason": e.power_reason or None}
        return out

    def summary(self, phase: str) -> str:
        pct = self.saved_percent
        saved = "n/a" if pct is None else f"{self.saved_grams:.1f} g ({pct:.1f}%)"
        est = f", {self.energy.estimated_pods} pod(s) estimated" if self.energy.estimated_pods else ""
        refused = self.energy.refusals
        if refused:
            est += f"; refused {len(refused)} trainer report(s): " + ", ".join(f"{pod} ({why})" for pod, why in refused)
        return (
            f"{phase}: used {self.energy.kwh:.3f} kWh ({self.energy.meter}{est}), emitted {self.grams:.1f} g CO2eq "
            f"at {self.intensity:.0f} g/kWh; saved {saved} against running immediately"
        )

    def record_metrics(self, metrics: OperatorMetrics, namespace: str, region: str) -> None:
        metrics.emitted_grams.labels(namespace, region).inc(max(self.grams, 0.0))
        if self.saved_grams >= 0:
            metrics.saved_grams.labels(namespace, region).inc(self.saved_grams)
        else:
            metrics.excess_grams.labels(namespace, region).inc(-self.saved_grams)
        metrics.energy_joules.labels(namespace, region, self.energy.meter).inc(max(self.energy.joules, 0.0))
        for _, reason in self.energy.refusals:
            metrics.reports_refused.labels(namespace, reason).inc()


@dataclass(frozen=True)
class Window:
    """An intensity window to fetch: history when it is over, else the forecast."""

    region: str
    start: datetime
    end: datetime
    history: bool


@dataclass(frozen=True)
class AccountingWindows:
    actual: Window
    baseline: Window


def accounting_windows(
    status: Mapping[str, Any],
    started: datetime | None,
    completed: datetime | None,
    default_region: str,
    now: datetime,
) -> AccountingWindows:
    """Where and when the run happened, and where and when the baseline would have run it."""
    start = started or (parse_rfc3339(status["startTime"]) if status.get("startTime") else now)
    end = max(completed or now, start + timedelta(seconds=1))
    plan = status.get("plan") or {}
    region = status.get("region") or default_region
    b_region = plan.get("baselineRegion") or region
    b_start = parse_rfc3339(plan["baselineStart"]) if plan.get("baselineStart") else start
    b_end = b_start + (end - start)
    return AccountingWindows(Window(region, start, end, True), Window(b_region, b_start, b_end, b_end <= now))


def settle(
    status: Mapping[str, Any],
    energy: EnergyTotal,
    windows: AccountingWindows,
    actual: ForecastResult,
    baseline: ForecastResult,
) -> Accounting:
    """Energy x the intensity over the run, and over the baseline's window. Pure."""
    plan = status.get("plan") or {}
    a, b = windows.actual, windows.baseline
    intensity = actual.series.mean(a.start, a.end)
    b_intensity = baseline.series.mean(b.start, b.end)
    note = "; ".join(f"{r.region}: {r.source} data from {r.provider}" for r in (actual, baseline) if r.degraded)
    return Accounting(
        energy=energy,
        intensity=float(intensity if intensity is not None else plan.get("intensityForecast", 0.0)),
        baseline_intensity=float(b_intensity if b_intensity is not None else plan.get("baselineIntensity", 0.0)),
        intensity_note=note,
    )
