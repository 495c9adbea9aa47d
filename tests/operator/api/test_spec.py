"""Parsing and defaulting a GreenTrainingJob: pure, with errors as values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from green_operator.api.spec import SpecProblem, TrainingJobSpec, gpus_in_template, parse_spec
from green_operator.planner import PowerPolicy

REGIONS = ("europe-west3", "europe-west9")
CREATED = "2026-11-25T10:00:00Z"


def body(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "estimatedDuration": "2h",
        "schedule": {"maxDelay": "6h"},
        "template": {"spec": {"containers": [{"name": "t", "resources": {"limits": {"nvidia.com/gpu": 2}}}]}},
    }
    base.update(spec)
    return {
        "metadata": {"name": "job", "namespace": "ml", "uid": "u-1", "generation": 3, "creationTimestamp": CREATED},
        "spec": base,
    }


def parsed(**spec: Any) -> TrainingJobSpec:
    out = parse_spec(body(**spec), REGIONS)
    assert isinstance(out, TrainingJobSpec), out
    return out


def test_defaults_and_max_delay_become_a_deadline() -> None:
    s = parsed()
    created = datetime(2026, 11, 25, 10, tzinfo=UTC)
    assert s.key == "ml/job"
    assert s.generation == 3
    assert s.estimated_duration == timedelta(hours=2)
    assert s.deadline == created + timedelta(hours=8)
    assert s.latest_start == created + timedelta(hours=6)
    assert s.regions == REGIONS
    assert s.power.policy is PowerPolicy.AUTO
    assert s.power.max_slowdown_percent == 10
    assert s.gpus_per_pod == 2
    assert s.gpus == 2


def test_deadline_parallelism_regions_and_fixed_power() -> None:
    s = parsed(
        schedule={"deadline": "2026-11-26T09:00:00+01:00"},
        parallelism=3,
        placement={"regions": ["europe-west9"]},
        power={"policy": "Fixed", "gpuPowerLimitWatts": 250},
    )
    assert s.deadline == datetime(2026, 11, 26, 8, tzinfo=UTC)
    assert s.gpus == 6
    assert s.regions == ("europe-west9",)
    assert s.power.policy is PowerPolicy.FIXED
    assert s.power.watts == 250


@pytest.mark.parametrize("delay", ["0s", "0m", "0h0m"])
def test_zero_max_delay_means_start_now(delay: str) -> None:
    s = parsed(schedule={"maxDelay": delay})
    assert s.latest_start == datetime(2026, 11, 25, 10, tzinfo=UTC)


def test_start_seen_moments_after_a_zero_delay_keeps_the_promise() -> None:
    s = parsed(schedule={"maxDelay": "0s"})
    seen = s.latest_start + timedelta(seconds=3)
    req = s.request(seen)
    assert req.deadline == seen + s.estimated_duration
    late = s.latest_start + timedelta(minutes=5)
    assert s.request(late).deadline == s.deadline  # truly late: the planner flags it


@pytest.mark.parametrize(
    ("spec", "field", "text"),
    [
        ({"placement": {"regions": ["mars-1"]}}, "spec.placement.regions", "unknown region(s) mars-1"),
        ({"estimatedDuration": "soon"}, "spec.estimatedDuration", "is not a duration"),
        ({"schedule": {"deadline": "tomorrow"}}, "spec.schedule.deadline", ""),
        ({"schedule": {"maxDelay": "a while"}}, "spec.schedule.maxDelay", "is not a duration"),
        ({"schedule": {}}, "spec.schedule", "exactly one of deadline or maxDelay"),
    ],
)
def test_problems_name_the_field(spec: dict[str, Any], field: str, text: str) -> None:
    out = parse_spec(body(**spec), REGIONS)
    assert isinstance(out, list)
    assert any(isinstance(p, SpecProblem) and p.field == field and text in p.message for p in out), out


def test_gpus_come_from_limits_then_requests_summed_over_containers() -> None:
    template = {
        "spec": {
            "containers": [
                {"resources": {"limits": {"nvidia.com/gpu": "2"}}},
                {"resources": {"requests": {"nvidia.com/gpu": 1}}},
                {"resources": {"limits": {"cpu": "4"}}},
            ]
        }
    }
    assert gpus_in_template(template) == 3
    assert gpus_in_template({}) == 0


def test_cpu_only_job_is_planned_as_one_device() -> None:
    s = parsed(template={"spec": {"containers": [{"name": "t"}]}})
    assert s.gpus == 1  # the one rule: a CPU-only pod is planned and booked as one device
    assert s.request(datetime(2026, 11, 25, 10, tzinfo=UTC)).gpus == 1
