"""Reading a running job's energy from Prometheus: the query and the answer's parsing."""

from __future__ import annotations

from typing import Any

from green_operator.accounting.live_energy import LiveEnergy, energy_query, parse_energy
from green_operator.config import parse_config


def answer(*series: tuple[str, str]) -> dict[str, Any]:
    return {
        "status": "success",
        "data": {"resultType": "vector", "result": [{"metric": {"meter": m}, "value": [1.0, v]} for m, v in series]},
    }


def test_query_selects_the_job_by_namespace_and_name_and_escapes_quotes() -> None:
    trainers = 'sum by (meter) (greentraining_energy_joules_total{pod_namespace="ml", greentraining_job="resnet"})'
    agents = (
        'label_replace(sum(greentraining_pod_gpu_energy_joules_total{pod_namespace="ml", greentraining_job="resnet"}),'
        ' "meter", "node-agent", "", "")'
    )
    assert energy_query("ml", "resnet") == f"{trainers} or ({agents} unless on() {trainers})"
    assert 'greentraining_job="a\\"b"' in energy_query("ml", 'a"b')


def test_answers_sum_over_meters_and_empty_means_none() -> None:
    assert parse_energy(answer(("nvml", "1200.5"))) == LiveEnergy(1200.5, "nvml")
    assert parse_energy(answer(("nvml", "100"), ("estimate", "50"))) == LiveEnergy(150.0, "mixed(estimate,nvml)")
    assert parse_energy(answer()) is None
    assert parse_energy({"status": "error", "error": "bad query"}) is None
    assert parse_energy(answer(("nvml", "NaNx"))) is None


def test_prometheus_configuration() -> None:
    cfg = parse_config({"regions": [{"name": "r1"}], "prometheus": {"url": "http://prom:9090", "interval": "30s"}})
    assert cfg.prometheus_url == "http://prom:9090"
    assert cfg.live_energy_interval.total_seconds() == 30
    assert parse_config({"regions": [{"name": "r1"}]}).prometheus_url is None
