"""Hand-made GreenTrainingJobs, shaped as the operator writes them, for the report's unit tests.

Figures are chosen so the expected results are easy to check by hand: 3.6e6 J = 1 kWh, and each
job's grams = kWh x its intensity.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

NOW = datetime(2026, 5, 10, 12, 0, tzinfo=UTC)


def gtj(name: str, status: dict[str, Any] | None, *, namespace: str = "ml", created: str) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "greentraining.io/v1alpha1",
        "kind": "GreenTrainingJob",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"uid-{namespace}-{name}",
            "creationTimestamp": created,
        },
        "spec": {"estimatedDuration": "2h", "schedule": {"maxDelay": "12h"}},
    }
    if status is not None:
        obj["status"] = status
    return obj


def plan(
    intensity: float, baseline: float, *, start: str, region: str, duration: str = "2h", source: str = "live"
) -> dict[str, Any]:
    return {
        "intensityForecast": intensity,
        "baselineIntensity": baseline,
        "baselineRegion": region,
        "baselineStart": start,
        "expectedGrams": intensity * 2,
        "baselineGrams": baseline * 2,
        "expectedDuration": duration,
        "provider": "emaps" if source == "live" else "traces",
        "dataSource": source,
        "decidedAt": start,
        "reason": "test plan",
    }


def risk(value: str) -> list[dict[str, Any]]:
    return [
        {
            "type": "DeadlineAtRisk",
            "status": value,
            "reason": "DeadlineInfeasible" if value == "True" else "DeadlineFeasible",
            "message": "m",
            "lastTransitionTime": "2026-05-10T06:00:00Z",
        }
    ]


def succeeded_saving() -> dict[str, Any]:
    """2 kWh at 100 g/kWh against a 300 g/kWh baseline: 200 g emitted, 600 g baseline, 400 g saved."""
    return gtj(
        "good",
        {
            "phase": "Succeeded",
            "region": "europe-west3",
            "plannedStart": "2026-05-10T08:00:00Z",
            "latestStart": "2026-05-10T16:00:00Z",
            "startTime": "2026-05-10T08:00:00Z",
            "completionTime": "2026-05-10T10:00:00Z",
            "plan": plan(110.0, 300.0, start="2026-05-10T06:00:00Z", region="europe-west3"),
            "energy": {"joules": 7.2e6, "kilowattHours": "2.000", "source": "nvml", "estimatedPods": 0},
            "emissions": {
                "grams": 200.0,
                "kilograms": "0.200",
                "baselineGrams": 600.0,
                "savedGrams": 400.0,
                "savedPercent": "66.7%",
                "intensity": 100.0,
            },
            "conditions": risk("False"),
        },
        created="2026-05-10T06:00:00Z",
    )


def succeeded_worse() -> dict[str, Any]:
    """1 kWh at 150 g/kWh against a 120 g/kWh baseline in another region: saved -30 g (-25%)."""
    return gtj(
        "worse",
        {
            "phase": "Succeeded",
            "region": "europe-west9",
            "plannedStart": "2026-05-10T07:00:00Z",
            "latestStart": "2026-05-10T15:00:00Z",
            "startTime": "2026-05-10T07:00:00Z",
            "completionTime": "2026-05-10T08:00:00Z",
            "plan": plan(
                90.0, 120.0, start="2026-05-10T06:30:00Z", region="europe-west3", duration="1h", source="trace"
            ),
            "energy": {"joules": 3.6e6, "kilowattHours": "1.000", "source": "nvml", "estimatedPods": 0},
            "emissions": {
                "grams": 150.0,
                "kilograms": "0.150",
                "baselineGrams": 120.0,
                "savedGrams": -30.0,
                "savedPercent": "-25.0%",
                "intensity": 150.0,
            },
        },
        created="2026-05-10T06:30:00Z",
    )


def running() -> dict[str, Any]:
    return gtj(
        "running",
        {
            "phase": "Running",
            "region": "europe-west3",
            "plannedStart": "2026-05-10T11:00:00Z",
            "latestStart": "2026-05-10T18:00:00Z",
            "startTime": "2026-05-10T11:00:00Z",
            "plan": plan(80.0, 200.0, start="2026-05-10T09:00:00Z", region="europe-west3"),
            "conditions": risk("False"),
        },
        created="2026-05-10T09:00:00Z",
    )


def failed_estimated() -> dict[str, Any]:
    """Failed after 30 min; its pod had no trainer report, so 0.5 kWh were estimated. Deadline at risk."""
    return gtj(
        "failed",
        {
            "phase": "Failed",
            "region": "us-west2",
            "plannedStart": "2026-05-10T09:00:00Z",
            "latestStart": "2026-05-10T09:00:00Z",
            "startTime": "2026-05-10T09:00:00Z",
            "completionTime": "2026-05-10T09:30:00Z",
            "plan": plan(200.0, 300.0, start="2026-05-10T08:30:00Z", region="us-west2"),
            "energy": {"joules": 1.8e6, "kilowattHours": "0.500", "source": "estimate", "estimatedPods": 1},
            "emissions": {
                "grams": 100.0,
                "kilograms": "0.100",
                "baselineGrams": 150.0,
                "savedGrams": 50.0,
                "savedPercent": "33.3%",
                "intensity": 200.0,
            },
            "conditions": risk("True"),
        },
        created="2026-05-10T08:30:00Z",
    )


def deferred() -> dict[str, Any]:
    return gtj(
        "deferred",
        {
            "phase": "Deferred",
            "region": "europe-west9",
            "plannedStart": "2026-05-10T14:00:00Z",
            "latestStart": "2026-05-10T20:00:00Z",
            "plan": plan(60.0, 140.0, start="2026-05-10T11:30:00Z", region="europe-west9"),
            "conditions": risk("False"),
        },
        created="2026-05-10T11:30:00Z",
    )


def pending() -> dict[str, Any]:
    return gtj("pending", None, created="2026-05-10T11:59:00Z")


def all_jobs() -> list[dict[str, Any]]:
    return [succeeded_saving(), succeeded_worse(), running(), failed_estimated(), deferred(), pending()]
