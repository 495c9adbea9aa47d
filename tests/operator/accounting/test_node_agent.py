"""Pods without a trainer report take the node agent's measurement (meter node-agent), not an estimate."""

from __future__ import annotations

from typing import Any

import pytest

from green_operator.accounting.node_agent import parse_pod_energy, pod_energy_query
from green_operator.accounting.settle import reportless_pods, total_energy

REPORT = '{"v":1,"meter":"nvml","energyJoules":1000.0,"exitCode":0}'


def pod(name: str, *messages: str | None) -> dict[str, Any]:
    """A pod whose container ended once per message (the last is the current state)."""
    terms = [
        {"startedAt": "2026-01-01T00:00:00Z", "finishedAt": "2026-01-01T00:10:00Z", **({"message": m} if m else {})}
        for m in messages
    ]
    status: dict[str, Any] = {"state": {"terminated": terms[-1]}}
    if len(terms) > 1:
        status["lastState"] = {"terminated": terms[0]}
    return {"metadata": {"name": name}, "status": {"containerStatuses": [status]}}


def test_the_query_takes_each_series_peak_over_the_window_per_pod_and_escapes_names() -> None:
    q = pod_energy_query("ml", ["b-1", "a.0"], 3600)
    assert q == (
        "sum by (pod_name) (max_over_time(greentraining_pod_gpu_energy_joules_total"
        '{pod_namespace="ml", pod_name=~"a\\\\.0|b\\\\-1"}[3600s]))'
    )
    assert "[60s]" in pod_energy_query("ml", ["a"], 5)  # never a window shorter than a scrape or two


def test_answers_parse_by_pod_and_errors_mean_no_data() -> None:
    doc = {
        "status": "success",
        "data": {"result": [{"metric": {"pod_name": "a"}, "value": [1, "5400.5"]}, {"metric": {}, "value": [1, "9"]}]},
    }
    assert parse_pod_energy(doc) == {"a": 5400.5}
    assert parse_pod_energy({"status": "error"}) == {}


def test_reportless_pods_are_the_ones_the_agent_is_asked_about() -> None:
    assert reportless_pods([pod("a", REPORT), pod("b", None), pod("c", None, REPORT), {"metadata": {"name": "d"}}]) == [
        "b",
        "c",
    ]


def test_a_measured_reportless_pod_is_node_agent_energy_not_an_estimate() -> None:
    total = total_energy([pod("a", REPORT), pod("b", None)], gpus_per_pod=2, estimate_watts=300, measured={"b": 2500.0})
    assert total.joules == pytest.approx(3500.0)
    assert total.meter == "mixed(node-agent,nvml)"
    assert total.estimated_pods == 0


def test_without_a_measurement_the_estimate_stays_and_says_so() -> None:
    total = total_energy([pod("b", None)], gpus_per_pod=2, estimate_watts=300, measured={})
    assert total.joules == pytest.approx(2 * 300 * 600)
    assert (total.meter, total.estimated_pods) == ("estimate", 1)


def test_a_restarted_pod_counts_its_report_and_the_agents_remainder_once() -> None:
    # First attempt OOMKilled (no report), second reported 1000 J; the agent saw 1600 J over both.
    total = total_energy([pod("c", None, REPORT)], gpus_per_pod=1, estimate_watts=300, measured={"c": 1600.0})
    assert [(p.meter, p.joules) for p in total.pods] == [("nvml", 1000.0), ("node-agent", 600.0)]
    assert total.joules == pytest.approx(1600.0)


def test_a_wrapper_that_was_not_asked_for_a_limit_says_nothing_about_it() -> None:
    not_asked = (
        '{"v":1,"meter":"nvml","energyJoules":10.0,"exitCode":0,'
        '"powerLimit":{"requestedWatts":null,"applied":false,"code":"NotRequested","reason":"no limit requested"}}'
    )
    total = total_energy([pod("a", not_asked)], gpus_per_pod=1, estimate_watts=300)
    assert total.power_applied is None
    assert total.power_reason == ""
