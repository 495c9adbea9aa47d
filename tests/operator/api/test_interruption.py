"""The spec.interruption block: defaults, problems naming the field, and the pod template it shapes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from green_operator.api.interruption import (
    CHECKPOINT_DIR_ENV,
    CHECKPOINT_VOLUME,
    NEVER,
    REPORT_FINALIZER,
    CheckpointVolume,
    Interruption,
    InterruptionPolicy,
    interruption_pod_changes,
    parse_interruption,
)
from green_operator.api.spec import TrainingJobSpec, parse_spec

TEMPLATE: dict[str, Any] = {
    "spec": {"containers": [{"name": "t", "env": [{"name": "A", "value": "1"}]}, {"name": "s"}]}
}


def test_absent_block_never_interrupts() -> None:
    assert parse_interruption(None) == NEVER
    assert not NEVER.interruptible


def test_checkpointed_with_defaults_and_volume() -> None:
    got = parse_interruption({"policy": "Checkpointed", "checkpointVolume": {"claimName": "ckpt"}})
    assert got == Interruption(
        InterruptionPolicy.CHECKPOINTED,
        timedelta(minutes=5),
        timedelta(hours=1),
        timedelta(minutes=5),
        0.0,
        CheckpointVolume("ckpt", "/checkpoints"),
    )
    assert isinstance(got, Interruption)
    assert got.interruptible


@pytest.mark.parametrize(
    ("raw", "field", "text"),
    [
        ({"policy": "Sometimes"}, "spec.interruption.policy", "Never or Checkpointed"),
        ({"minSegment": "5m", "resumeOverhead": "10m"}, "spec.interruption.minSegment", "longer than resumeOverhead"),
        ({"checkpointGracePeriod": "soon"}, "spec.interruption.checkpointGracePeriod", "such as 5m"),
        ({"resumeEnergyJoules": -1}, "spec.interruption.resumeEnergyJoules", "0 or more"),
        (
            {"checkpointVolume": {"claimName": "c", "mountPath": "rel"}},
            "spec.interruption.checkpointVolume.mountPath",
            "absolute",
        ),
    ],
)
def test_problems_name_the_field(raw: dict[str, Any], field: str, text: str) -> None:
    got = parse_interruption(raw)
    assert isinstance(got, list)
    assert any(f == field and text in m for f, m in got), got


def test_spec_carries_the_block_and_reports_its_problems() -> None:
    body: dict[str, Any] = {
        "metadata": {"name": "j", "namespace": "ml", "creationTimestamp": "2026-11-25T10:00:00Z"},
        "spec": {
            "estimatedDuration": "2h",
            "schedule": {"maxDelay": "6h"},
            "template": TEMPLATE,
            "interruption": {"policy": "Checkpointed", "minSegment": "30m"},
        },
    }
    s = parse_spec(body, ["r"])
    assert isinstance(s, TrainingJobSpec)
    assert s.interruption.min_segment == timedelta(minutes=30)
    body["spec"]["interruption"]["minSegment"] = "1m"
    problems = parse_spec(body, ["r"])
    assert isinstance(problems, list)
    assert problems[0].field == "spec.interruption.minSegment"


def test_pod_template_gets_grace_period_finalizer_volume_and_env() -> None:
    i = Interruption(InterruptionPolicy.CHECKPOINTED, timedelta(minutes=2), volume=CheckpointVolume("ckpt", "/ck"))
    pod = interruption_pod_changes(TEMPLATE, i)
    assert pod["spec"]["terminationGracePeriodSeconds"] == 120
    assert pod["metadata"]["finalizers"] == [REPORT_FINALIZER]
    assert pod["spec"]["volumes"] == [{"name": CHECKPOINT_VOLUME, "persistentVolumeClaim": {"claimName": "ckpt"}}]
    for c in pod["spec"]["containers"]:
        assert {"name": CHECKPOINT_VOLUME, "mountPath": "/ck"} in c["volumeMounts"]
        assert {"name": CHECKPOINT_DIR_ENV, "value": "/ck"} in c["env"]
    assert pod["spec"]["containers"][0]["env"][0] == {"name": "A", "value": "1"}
    assert "volumes" not in TEMPLATE["spec"]  # the input is not changed


def test_never_interrupted_template_is_left_alone() -> None:
    assert interruption_pod_changes(TEMPLATE, NEVER) == TEMPLATE
