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


# -- GPUs beyond nvidia.com/gpu, multi-pod names, the Job fields, labels -------------------------


def _containers(*limits: dict[str, Any]) -> dict[str, Any]:
    return {"spec": {"containers": [{"name": f"c{i}", "resources": {"limits": lim}} for i, lim in enumerate(limits)]}}


def test_amd_gpus_count_as_whole_gpus() -> None:
    assert gpus_in_template(_containers({"amd.com/gpu": 2}, {"nvidia.com/gpu": 1})) == 3
    assert parsed(template=_containers({"amd.com/gpu": 8})).gpus == 8


def test_mig_instances_are_refused_naming_the_resource_and_the_fix() -> None:
    out = parse_spec(body(template=_containers({"nvidia.com/mig-1g.5gb": 1})), REGIONS)
    assert isinstance(out, list)
    (problem,) = out
    assert problem.field == "spec.template.spec.containers[].resources.limits"
    assert "nvidia.com/mig-1g.5gb" in problem.message
    assert "nvidia.com/gpu" in problem.message


def _problems(b: dict[str, Any]) -> list[SpecProblem]:
    out = parse_spec(b, REGIONS)
    assert isinstance(out, list), out
    return out


def test_a_multi_pod_job_needs_a_host_name_friendly_name_and_no_hostname() -> None:
    ok = body(parallelism=10)
    ok["metadata"]["name"] = "a" * 61  # a...a-9 is 63 characters
    assert isinstance(parse_spec(ok, REGIONS), TrainingJobSpec)
    long = body(parallelism=11)
    long["metadata"]["name"] = "a" * 61
    assert [p.field for p in _problems(long)] == ["metadata.name"]
    dotted = body(parallelism=2)
    dotted["metadata"]["name"] = "my.job"
    assert "starts with a letter" in _problems(dotted)[0].message
    single = body()
    single["metadata"]["name"] = "my.job"  # no Service, no host names: any object name
    assert isinstance(parse_spec(single, REGIONS), TrainingJobSpec)
    template = _containers({"nvidia.com/gpu": 1})
    template["spec"]["hostname"] = "trainer"
    assert [p.field for p in _problems(body(parallelism=2, template=template))] == ["spec.template.spec.hostname"]


def test_job_fields_are_parsed_and_checked_as_the_crd_does() -> None:
    s = parsed(parallelism=4, job={"ttlSecondsAfterFinished": 60, "backoffLimitPerIndex": 1, "maxFailedIndexes": 2})
    assert s.job.ttl_seconds_after_finished == 60
    assert s.job.per_index
    fields = [p.field for p in _problems(body(parallelism=2, job={"maxFailedIndexes": 3}))]
    assert fields == ["spec.job.maxFailedIndexes", "spec.job.maxFailedIndexes"]
    fail_index = {
        "podFailurePolicy": {"rules": [{"action": "FailIndex", "onExitCodes": {"operator": "In", "values": [3]}}]}
    }
    assert [p.field for p in _problems(body(job=fail_index))] == ["spec.job.podFailurePolicy"]
    assert [p.field for p in _problems(body(job={"activeDeadlineSeconds": 0}))] == ["spec.job.activeDeadlineSeconds"]


def test_an_active_deadline_shorter_than_the_estimate_is_refused() -> None:
    (problem,) = _problems(body(estimatedDuration="2h", job={"activeDeadlineSeconds": 3600}))
    assert problem.field == "spec.estimatedDuration"
    assert "activeDeadlineSeconds" in problem.message


@pytest.mark.parametrize(
    ("deadline", "requested", "allowed"),
    [(7200 * 1.05, 10.0, 5.0), (7200 * 1.5, 10.0, 10.0), (7200, 10.0, 0.0), (None, 10.0, 10.0)],
)
def test_an_active_deadline_caps_the_slowdown_an_auto_power_limit_may_cause(
    deadline: float | None, requested: float, allowed: float
) -> None:
    job = {"activeDeadlineSeconds": int(deadline)} if deadline else None
    s = parsed(estimatedDuration="2h", power={"policy": "Auto", "maxSlowdownPercent": requested}, job=job)
    assert s.power.max_slowdown_percent == pytest.approx(allowed)


def test_labels_and_annotations_are_filtered_for_the_child() -> None:
    b = body()
    b["metadata"]["labels"] = {"team": "nlp", "kueue.x-k8s.io/queue-name": "q", "greentraining.io/x": "1"}
    b["metadata"]["annotations"] = {"kubectl.kubernetes.io/last-applied-configuration": "{}", "note": "n"}
    s = parse_spec(b, REGIONS)
    assert isinstance(s, TrainingJobSpec)
    assert s.labels == {"team": "nlp"}
    assert s.annotations == {"note": "n"}
