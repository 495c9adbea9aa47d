"""Energy, emissions and savings arithmetic: reports summed over pods and attempts, estimates for
pods without one, savings reported as they are."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from green_operator.accounting.reports import Refusal, Refused, TrainerReport, max_joules, read_report
from green_operator.accounting.settle import Accounting, EnergyTotal, parse_report, reportless_pods, total_energy
from green_operator.metrics import OperatorMetrics


def report(joules: float, meter: str = "nvml", applied: bool | None = True) -> str:
    doc: dict[str, Any] = {"v": 1, "meter": meter, "energyJoules": joules, "exitCode": 0}
    if applied is not None:
        doc["powerLimit"] = {"applied": applied, "reason": None if applied else "no permission"}
    return json.dumps(doc)


def pod(name: str, *terms: dict[str, Any], last: dict[str, Any] | None = None) -> dict[str, Any]:
    statuses = []
    for t in terms:
        cs: dict[str, Any] = {"name": "train", "state": {"terminated": t}}
        if last is not None:
            cs["lastState"] = {"terminated": last}
        statuses.append(cs)
    return {"metadata": {"name": name}, "status": {"containerStatuses": statuses}}


def term(message: str | None = None, seconds: int = 3600) -> dict[str, Any]:
    t: dict[str, Any] = {
        "startedAt": "2026-11-25T10:00:00Z",
        "finishedAt": f"2026-11-25T{10 + seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}Z",
        "exitCode": 0,
    }
    if message is not None:
        t["message"] = message
    return t


def test_reports_are_summed_over_pods_and_restarted_attempts() -> None:
    pods = [
        pod("p-0", term(report(1000.0)), last=term(report(250.0))),
        pod("p-1", term(report(500.0))),
    ]
    e = total_energy(pods, gpus_per_pod=4, estimate_watts=300)
    assert e.joules == pytest.approx(1750.0)
    assert e.meter == "nvml"
    assert e.estimated_pods == 0
    assert e.power_applied is True


def test_a_pod_without_report_is_estimated_and_labelled() -> None:
    pods = [pod("p-0", term(report(7200.0))), pod("oom", term("OOMKilled", seconds=1800))]
    e = total_energy(pods, gpus_per_pod=2, estimate_watts=300)
    assert e.joules == pytest.approx(7200.0 + 2 * 300 * 1800)
    assert e.meter == "mixed(estimate,nvml)"
    assert e.estimated_pods == 1


def test_never_started_pods_count_nothing() -> None:
    e = total_energy([{"metadata": {"name": "x"}, "status": {"phase": "Pending"}}], 1, 300)
    assert e.joules == 0
    assert e.meter == "none"


def test_power_limit_not_applied_is_reported() -> None:
    e = total_energy([pod("p", term(report(10.0, applied=False)))], 1, 300)
    assert e.power_applied is False
    assert e.power_reason == "no permission"


@pytest.mark.parametrize("message", [None, "", "not json", '{"exit":"other program"}'])
def test_non_reports_are_ignored(message: str | None) -> None:
    assert parse_report(message) is None
    assert read_report(message, 1e9) is None


@pytest.mark.parametrize(
    ("message", "refusal"),
    [
        ("{" * 5000, Refusal.TOO_LARGE),
        ('{"v":1,"energyJoules":' + " " * 4096 + "1}", Refusal.TOO_LARGE),
        ('{"v":1,"energyJoules":1', Refusal.INVALID_JSON),
        ('{"a":' + "[" * 4000, Refusal.INVALID_JSON),
        ("{" + '"a":' + "[" * 1500 + "]" * 1500 + "}", Refusal.INVALID_JSON),  # deeper than the JSON decoder recurses
        ('{"v":1}', Refusal.INVALID_ENERGY),
        ('{"energyJoules":"lots"}', Refusal.INVALID_ENERGY),
        ('{"energyJoules":true}', Refusal.INVALID_ENERGY),
        ('{"energyJoules":null}', Refusal.INVALID_ENERGY),
        ('{"energyJoules":-1}', Refusal.NEGATIVE_ENERGY),
        ('{"energyJoules":NaN}', Refusal.NON_FINITE_ENERGY),
        ('{"energyJoules":Infinity}', Refusal.NON_FINITE_ENERGY),
        ('{"energyJoules":1e999}', Refusal.NON_FINITE_ENERGY),
        ('{"energyJoules":' + "9" * 400 + "}", Refusal.NON_FINITE_ENERGY),  # float() overflows
        ('{"energyJoules":1e12}', Refusal.ABSURD_ENERGY),
    ],
)
def test_bad_reports_are_refused_with_a_reason(message: str, refusal: Refusal) -> None:
    limit = max_joules(gpus=8, wall_seconds=3600)
    found = read_report(message, limit)
    assert isinstance(found, Refused)
    assert found.reason is refusal
    assert found.detail
    assert parse_report(message, limit) is None


def test_absurd_means_more_than_2kw_per_gpu_over_the_wall_time() -> None:
    limit = max_joules(gpus=4, wall_seconds=3600)
    assert limit == 4 * 2000 * (3600 + 60)
    assert isinstance(read_report(report(limit), limit), TrainerReport)
    assert isinstance(read_report(report(limit * 1.01), limit), Refused)
    # No GPU: the trainer meters the CPU; one GPU's worth bounds it. No timestamps: a week.
    assert max_joules(gpus=0, wall_seconds=0) == 2000 * 60
    assert max_joules(gpus=1, wall_seconds=None) == 2000 * (7 * 86400 + 60)


def test_a_refused_report_is_estimated_counted_and_labelled() -> None:
    absurd = report(1e15)  # 4 GPUs for an hour: at most 4 x 2 kW x 3660 s = 29 MJ
    pods = [pod("ok", term(report(1000.0))), pod("liar", term(absurd)), pod("huge", term("x" * 5000))]
    e = total_energy(pods, gpus_per_pod=4, estimate_watts=300)
    assert e.refusals == [("liar", "AbsurdEnergy"), ("huge", "TooLarge")]
    assert e.joules == pytest.approx(1000.0 + 2 * 4 * 300 * 3600)
    assert e.estimated_pods == 2
    acc = Accounting(e, intensity=100.0, baseline_intensity=200.0)
    assert acc.status_fields()["energy"]["refusedReports"] == 2
    assert "refused 2 trainer report(s): liar (AbsurdEnergy), huge (TooLarge)" in acc.summary("Succeeded")
    registry = CollectorRegistry()
    acc.record_metrics(OperatorMetrics(registry), "ns", "north")
    refused = {
        s.labels["reason"]: s.value
        for f in registry.collect()
        for s in f.samples
        if s.name == "greentraining_trainer_reports_refused_total"
    }
    assert refused == {"AbsurdEnergy": 1.0, "TooLarge": 1.0}


def test_report_fields_are_sanitised() -> None:
    doc = {"energyJoules": 5, "meter": "m" * 200, "powerLimit": {"applied": "yes", "reason": "r" * 1000}}
    found = read_report(json.dumps(doc), 1e9)
    assert found == TrainerReport(5.0, "unknown", None, "r" * 300)


def energy(joules: float) -> EnergyTotal:
    return EnergyTotal(joules, "nvml", 0, None, "")


def test_savings_can_be_negative_and_are_not_clipped() -> None:
    a = Accounting(energy(3.6e6), intensity=300.0, baseline_intensity=200.0)
    assert a.grams == pytest.approx(300.0)
    assert a.baseline_grams == pytest.approx(200.0)
    assert a.saved_grams == pytest.approx(-100.0)
    assert a.saved_percent == pytest.approx(-50.0)
    fields = a.status_fields()
    assert fields["emissions"]["savedGrams"] == pytest.approx(-100.0)
    assert fields["emissions"]["savedPercent"] == "-50.0%"
    assert fields["energy"]["kilowattHours"] == "1.000"


def test_no_energy_means_no_percentage() -> None:
    a = Accounting(energy(0.0), intensity=300.0, baseline_intensity=200.0)
    assert a.saved_percent is None
    assert a.status_fields()["emissions"]["savedPercent"] == "n/a"


@given(
    joules=st.floats(min_value=0, max_value=1e12),
    actual=st.floats(min_value=0, max_value=2000),
    baseline=st.floats(min_value=0, max_value=2000),
)
def test_emissions_arithmetic_is_consistent(joules: float, actual: float, baseline: float) -> None:
    a = Accounting(energy(joules), intensity=actual, baseline_intensity=baseline)
    assert a.grams == pytest.approx(joules / 3.6e6 * actual)
    assert a.baseline_grams - a.saved_grams == pytest.approx(a.grams, rel=1e-9, abs=1e-6)
    assert (a.saved_grams > 0) == (a.baseline_grams > a.grams)


def test_a_refused_report_is_the_node_agents_to_measure_and_stays_labelled() -> None:
    liar = pod("liar", term(report(1e15)))
    assert reportless_pods([pod("ok", term(report(10.0))), liar], gpus_per_pod=4) == ["liar"]
    e = total_energy([liar], gpus_per_pod=4, estimate_watts=300, measured={"liar": 5000.0})
    assert (e.joules, e.meter, e.estimated_pods) == (5000.0, "node-agent", 0)
    assert e.refusals == [("liar", "AbsurdEnergy")]
