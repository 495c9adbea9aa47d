"""Energy, emissions and savings of a finished job.

Pure arithmetic: reports -> energy; energy x intensity -> grams; the counterfactual. The front-end
fetches the intensity of the two windows `accounting_windows` names, and `settle` does the rest.

- Energy: the sum over pods (and over each pod's previous container attempt) of the trainer's
  report (its termination message). A pod without a report (OOMKilled, evicted, a trainer-less
  image), or whose report is refused (reports.py: too large, bad JSON, negative, NaN or absurd
  energy), is estimated as GPUs x power limit (or the default draw) x its runtime, and says so.
- Emissions: energy x the region's mean intensity over the actual run (history from the carbon
  service, with its usual fallbacks and labels).
- Baseline: the same energy at the baseline's place and time, i.e. where and when a carbon-blind
  scheduler would have run it (the planner's definition, recorded in status.plan at decision time).
- Saved = baseline - actual, reported as it is: negative when the plan did worse, never clipped.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from green_operator.accounting.reports import Refused, TrainerReport, max_joules, read_report
from green_operator.carbon.provider import ForecastResult
from green_operator.times import parse_rfc3339

if TYPE_CHECKING:
    from green_operator.metrics import OperatorMetrics

JOULES_PER_KWH = 3.6e6
ESTIMATE = "estimate"


@dataclass(frozen=True)
class PodEnergy:
    pod: str
    joules: float
    meter: str
    estimated: bool
    power_applied: bool | None = None
    power_reason: str = ""
    refused: str = ""
    """Why its report was refused (a reports.Refusal), when it was; its energy is then estimated."""


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
    def refusals(self) -> list[PodEnergy]:
        """Pod attempts whose trainer report was refused."""
        return [p for p in self.pods if p.refused]

    @property
    def kwh(self) -> float:
        return self.joules / JOULES_PER_KWH


def parse_report(message: str | None, limit_joules: float = math.inf) -> Mapping[str, Any] | None:
    """The trainer's report as a mapping, or None when there is none or it is refused (see reports)."""
    found = read_report(message, limit_joules)
    if not isinstance(found, TrainerReport):
        return None
    return {"energyJoules": found.joules, "meter": found.meter}


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


def pod_energy(pod: Mapping[str, Any], gpus_per_pod: int, estimate_watts: float) -> list[PodEnergy]:
    name = str((pod.get("metadata") or {}).get("name", ""))
    out: list[PodEnergy] = []
    for term in _terminations(pod):
        runtime = _runtime(term)
        seconds = runtime.total_seconds() if runtime is not None else None
        found = read_report(term.get("message"), max_joules(gpus_per_pod, seconds))
        if isinstance(found, TrainerReport):
            out.append(
                PodEnergy(
                    name,
                    found.joules,
                    found.meter,
                    estimated=found.meter == ESTIMATE,
                    power_applied=found.power_applied,
                    power_reason=found.power_reason,
                )
            )
        else:
            # No report, or one refused: GPUs x the power limit (or default draw) x the attempt's runtime.
            estimate = max(gpus_per_pod, 1) * estimate_watts * max(seconds or 0.0, 0.0)
            refused = found.reason.value if isinstance(found, Refused) else ""
            out.append(PodEnergy(name, estimate, ESTIMATE, True, refused=refused))
    # A pod with no ended container never ran its command (evicted while pending): nothing to count.
    return out


def total_energy(pods: Iterable[Mapping[str, Any]], gpus_per_pod: int, estimate_watts: float) -> EnergyTotal:
    parts = tuple(p for pod in pods for p in pod_energy(pod, gpus_per_pod, estimate_watts))
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
            est += f"; refused {len(refused)} trainer report(s): " + ", ".join(
                f"{p.pod} ({p.refused})" for p in refused
            )
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
        for p in self.energy.refusals:
            metrics.reports_refused.labels(namespace, p.refused).inc()


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
