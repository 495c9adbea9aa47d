"""GreenTrainingJobs for the integration and end-to-end tiers, and reading them back.

kwok plays the kubelet: a Job's pod ends about 2 s after it starts; the pod annotations
kwok.greentraining.io/exit-code and kwok.greentraining.io/termination-message (hack/kwok/stages.yaml)
make it fail or leave a trainer report for the operator to account.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import yaml

from harness.cluster import kubectl
from harness.waiting import wait_for

EXIT_CODE = "kwok.greentraining.io/exit-code"
TERMINATION_MESSAGE = "kwok.greentraining.io/termination-message"
RUN_FOR = "pod-complete.stage.kwok.x-k8s.io/delay"
"""How long kwok keeps a Job's pod running (default 2s)."""


def gtj(
    name: str,
    *,
    duration: str = "10m",
    max_delay: str | None = "0s",
    deadline: str | None = None,
    regions: list[str] | None = None,
    annotations: Mapping[str, str] | None = None,
    parallelism: int = 1,
) -> dict[str, Any]:
    schedule = {"deadline": deadline} if deadline else {"maxDelay": max_delay}
    spec: dict[str, Any] = {
        "parallelism": parallelism,
        "estimatedDuration": duration,
        "schedule": schedule,
        "template": {
            "metadata": {"annotations": dict(annotations or {})},
            "spec": {"containers": [{"name": "train", "image": "example.invalid/train:1"}]},
        },
    }
    if regions:
        spec["placement"] = {"regions": regions}
    return {
        "apiVersion": "greentraining.io/v1alpha1",
        "kind": "GreenTrainingJob",
        "metadata": {"name": name},
        "spec": spec,
    }


def create(namespace: str, *docs: Mapping[str, Any]) -> None:
    kubectl("-n", namespace, "create", "-f", "-", input=yaml.safe_dump_all([dict(d) for d in docs]))


def get(namespace: str, name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(kubectl("-n", namespace, "get", "greentrainingjob", name, "-o", "json").stdout)
    return doc


def status(namespace: str, name: str) -> dict[str, Any]:
    result: dict[str, Any] = get(namespace, name).get("status") or {}
    return result


def wait_phase(namespace: str, name: str, phase: str | set[str], timeout: float = 60) -> dict[str, Any]:
    """The status once the phase is ``phase`` (or one of them)."""
    phases = {phase} if isinstance(phase, str) else phase

    def reached() -> dict[str, Any] | None:
        s = status(namespace, name)
        return s if s.get("phase") in phases else None

    return wait_for(
        reached,
        timeout=timeout,
        message=lambda: f"{namespace}/{name} to be {phase} (status: {status(namespace, name)})",
    )


def condition(s: Mapping[str, Any], ctype: str) -> dict[str, Any] | None:
    return next((dict(c) for c in s.get("conditions") or [] if c.get("type") == ctype), None)


def trainer_report(energy_joules: float, meter: str = "nvml", seconds: float = 600.0) -> str:
    """A trainer exit report (trainer-image/src/green_trainer/schema/report-v1.schema.json)."""
    return json.dumps(
        {
            "v": 1,
            "meter": meter,
            "energyJoules": energy_joules,
            "gpus": [],
            "powerLimit": {
                "requestedWatts": None,
                "appliedWatts": None,
                "applied": False,
                "code": "NotRequested",
                "reason": "",
                "restored": None,
            },
            "start": "2026-01-01T00:00:00Z",
            "end": "2026-01-01T00:10:00Z",
            "durationSeconds": seconds,
            "samples": 1000,
            "steps": 10,
            "tokens": 0,
            "exitCode": 0,
            "carbon": {"gramsPerKwh": None, "grams": None},
            "trainer": "0.1.0",
        },
        separators=(",", ":"),
    )
