"""Parse and default a GreenTrainingJob into typed values. Pure: errors are values, not exceptions.

The CRD's schema and CEL rules refuse most bad input at apply time; what they cannot see (a region
the operator does not know, a deadline already impossible, more GPUs than any region has) comes
back from here as `SpecProblem`s that the handlers turn into a False condition and an Event.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from green_operator.api.interruption import NEVER, Interruption, parse_interruption
from green_operator.planner import JobRequest, PowerPolicy, PowerRequest
from green_operator.times import parse_delay, parse_duration, parse_rfc3339

GPU_RESOURCE = "nvidia.com/gpu"
START_GRACE = timedelta(minutes=1)


@dataclass(frozen=True)
class SpecProblem:
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


@dataclass(frozen=True)
class TrainingJobSpec:
    namespace: str
    name: str
    uid: str
    generation: int
    created: datetime
    template: Mapping[str, Any]
    parallelism: int
    backoff_limit: int
    estimated_duration: timedelta
    deadline: datetime
    """When the training must have finished (maxDelay is turned into one: created + maxDelay + duration)."""
    regions: tuple[str, ...]
    power: PowerRequest
    gpus_per_pod: int
    interruption: Interruption = NEVER

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def gpus(self) -> int:
        return held_gpus(self.gpus_per_pod, self.parallelism)

    @property
    def latest_start(self) -> datetime:
        return self.deadline - self.estimated_duration

    def request(self, earliest_start: datetime, previous: Any = None) -> JobRequest:
        deadline = self.deadline
        if self.latest_start < earliest_start <= self.latest_start + START_GRACE:
            # The operator cannot act before it sees the object: a start within moments of the
            # latest start (`maxDelay: 0s` seen 2 s after creation) keeps the promise.
            deadline = earliest_start + self.estimated_duration
        return JobRequest(
            key=self.key,
            gpus=self.gpus,
            duration=self.estimated_duration,
            earliest_start=earliest_start,
            deadline=deadline,
            regions=self.regions,
            power=self.power,
            previous=previous,
        )


def held_gpus(gpus_per_pod: int, parallelism: int) -> int:
    """The one rule for what a job holds, in planning, bookings and the ledger: its pods' GPUs. A
    CPU-only pod still draws power and occupies a node; it is planned as one device."""
    return max(gpus_per_pod, 1) * max(parallelism, 1)


def body_gpus(body: Mapping[str, Any]) -> int | None:
    """`held_gpus` of a raw GreenTrainingJob (any namespace's, as the ledger sees them); None when
    its spec is too broken to say."""
    spec = body.get("spec") or {}
    try:
        return held_gpus(gpus_in_template(spec.get("template") or {}), int(spec.get("parallelism", 1)))
    except (TypeError, ValueError):
        return None


def gpus_in_template(template: Mapping[str, Any]) -> int:
    """GPUs one pod asks for: extended resources are set as limits (requests, if set, must equal them)."""
    total = 0
    for c in (template.get("spec") or {}).get("containers") or []:
        res = c.get("resources") or {}
        value = (res.get("limits") or {}).get(GPU_RESOURCE, (res.get("requests") or {}).get(GPU_RESOURCE, 0))
        total += int(value)
    return total


def parse_spec(
    body: Mapping[str, Any], known_regions: Sequence[str], *, check_regions: bool = True
) -> TrainingJobSpec | list[SpecProblem]:
    """`check_regions=False` accepts regions this operator does not know (a released job keeps
    running where it was placed after its region leaves the configuration)."""
    meta = body.get("metadata") or {}
    spec = body.get("spec") or {}
    problems: list[SpecProblem] = []

    created = parse_rfc3339(meta["creationTimestamp"])
    try:
        duration = parse_duration(str(spec.get("estimatedDuration", "")))
    except ValueError as exc:
        problems.append(SpecProblem("spec.estimatedDuration", str(exc)))
        duration = timedelta(0)

    schedule = spec.get("schedule") or {}
    deadline: datetime | None = None
    if "deadline" in schedule:
        try:
            deadline = parse_rfc3339(str(schedule["deadline"]))
        except ValueError as exc:
            problems.append(SpecProblem("spec.schedule.deadline", str(exc)))
    elif "maxDelay" in schedule:
        try:
            max_delay = parse_delay(str(schedule["maxDelay"]))
        except ValueError as exc:
            problems.append(SpecProblem("spec.schedule.maxDelay", str(exc)))
        else:
            deadline = created + max_delay + duration
    else:
        problems.append(SpecProblem("spec.schedule", "set exactly one of deadline or maxDelay"))

    wanted = tuple((spec.get("placement") or {}).get("regions") or ())
    unknown = [r for r in wanted if r not in known_regions] if check_regions else []
    if unknown:
        problems.append(
            SpecProblem(
                "spec.placement.regions",
                f"unknown region(s) {', '.join(unknown)}; this operator knows {', '.join(known_regions)}",
            )
        )
    regions = wanted or tuple(known_regions)

    power_raw = spec.get("power") or {}
    policy = PowerPolicy(power_raw.get("policy", "Auto"))
    power = PowerRequest(
        policy=policy,
        watts=float(power_raw["gpuPowerLimitWatts"]) if "gpuPowerLimitWatts" in power_raw else None,
        max_slowdown_percent=float(power_raw.get("maxSlowdownPercent", 10)),
    )

    template = spec.get("template") or {}
    try:
        gpus_per_pod = gpus_in_template(template)
    except (TypeError, ValueError):
        problems.append(
            SpecProblem(
                "spec.template.spec.containers[].resources.limits",
                f"{GPU_RESOURCE} must be a whole number of GPUs",
            )
        )
        gpus_per_pod = 0

    interruption = parse_interruption(spec.get("interruption"))
    if isinstance(interruption, list):
        problems += [SpecProblem(f, m) for f, m in interruption]
        interruption = NEVER

    if problems or deadline is None:
        return problems
    return TrainingJobSpec(
        namespace=meta["namespace"],
        name=meta["name"],
        uid=meta.get("uid", ""),
        generation=int(meta.get("generation", 1)),
        created=created,
        template=template,
        parallelism=int(spec.get("parallelism", 1)),
        backoff_limit=int(spec.get("backoffLimit", 0)),
        estimated_duration=duration,
        deadline=deadline,
        regions=regions,
        power=power,
        gpus_per_pod=gpus_per_pod,
        interruption=interruption,
    )
