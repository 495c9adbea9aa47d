"""The operator's own metrics: decision outcomes are exclusive, deadline risk is a label of its own."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from green_operator.metrics import DECISION_OUTCOMES, JOINT_OUTCOMES, OperatorMetrics

DECISIONS = "greentraining_decisions_total"


def _decisions(registry: CollectorRegistry) -> dict[tuple[str, str], float]:
    """(outcome, deadline_at_risk) -> count, for every series the registry exports."""
    return {
        (s.labels["outcome"], s.labels["deadline_at_risk"]): s.value
        for family in registry.collect()
        for s in family.samples
        if s.name == DECISIONS
    }


def test_every_decision_series_exists_at_zero_before_the_first_decision() -> None:
    registry = CollectorRegistry()
    OperatorMetrics(registry)
    series = _decisions(registry)
    assert set(series) == {(o, r) for o in ("deferred", "started", "replanned") for r in ("true", "false")}
    assert set(series.values()) == {0.0}


def test_a_decision_at_risk_is_counted_once() -> None:
    registry = CollectorRegistry()
    metrics = OperatorMetrics(registry)
    metrics.record_decision("started", at_risk=True)
    metrics.record_decision("deferred", at_risk=False)
    metrics.record_decision("deferred", at_risk=False)
    series = _decisions(registry)
    # A sum over outcomes is the number of decisions: the risk is not an outcome of its own.
    assert sum(series.values()) == 3
    assert series[("started", "true")] == 1
    assert series[("deferred", "false")] == 2
    assert sum(v for (_, risk), v in series.items() if risk == "true") == 1
    assert "deadline_at_risk" not in DECISION_OUTCOMES


def test_an_unknown_outcome_is_refused() -> None:
    metrics = OperatorMetrics(CollectorRegistry())
    with pytest.raises(ValueError, match="unknown decision outcome 'deadline_at_risk'"):
        metrics.record_decision("deadline_at_risk", at_risk=True)


def test_joint_replans_are_counted_by_outcome_from_zero() -> None:
    registry = CollectorRegistry()
    m = OperatorMetrics(registry)

    def series() -> dict[str, float]:
        return {
            s.labels["outcome"]: s.value
            for family in registry.collect()
            for s in family.samples
            if s.name == "greentraining_joint_replan_total"
        }

    assert series() == dict.fromkeys(JOINT_OUTCOMES, 0.0)
    m.record_joint("improved", 3)
    assert series()["improved"] == 1.0
    assert registry.get_sample_value("greentraining_joint_replan_moves_total") == 3.0
    with pytest.raises(ValueError, match="joint re-plan outcome"):
        m.record_joint("lucky", 0)


def test_jobs_by_phase_and_at_risk_are_counted_when_scraped() -> None:
    registry = CollectorRegistry()
    metrics = OperatorMetrics(registry)
    phases = {"a": "Deferred", "b": "Deferred", "c": "Running"}
    at_risk = {"b"}
    metrics.track_jobs(lambda: list(phases.values()), lambda: len(at_risk & phases.keys()))

    def scraped() -> tuple[dict[str, float], float]:
        by_phase = {
            s.labels["phase"]: s.value for f in registry.collect() for s in f.samples if s.name == "greentraining_jobs"
        }
        risk = next(
            s.value for f in registry.collect() for s in f.samples if s.name == "greentraining_jobs_deadline_at_risk"
        )
        return by_phase, risk

    by_phase, risk = scraped()
    assert (by_phase["Deferred"], by_phase["Running"], by_phase["Pending"], risk) == (2, 1, 0, 1)
    phases["b"] = "Succeeded"  # no call to the metrics: the next scrape sees it
    at_risk.add("z")  # a job the operator no longer knows is not counted
    by_phase, risk = scraped()
    assert (by_phase["Deferred"], by_phase["Succeeded"], risk) == (1, 1, 1)
