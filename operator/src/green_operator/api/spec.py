"""Parse and default a GreenTrainingJob into typed values. Pure: errors are values, not exceptions.

The CRD's schema and CEL rules refuse most bad input at apply time; what they cannot see (a region
the operator does not know, a deadline already impossible, more GPUs than any region has) comes
back from here as `SpecProblem`s that the handlers turn into a False condition and an Event.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from green_operator.api.interruption import NEVER, Interruption, parse_interruption
from green_operator.planner import JobRequest, PowerPolicy, PowerRequest
from green_operator.times import format_duration, parse_delay, parse_duration, parse_rfc3339

from .job_fields import JobFields, parse_job_fields
from .manifests import job_name
from .propagation import propagated
from .rendezvous import MAX_HOST_LABEL, host_name_fits

GPU_RESOURCE = "nvidia.com/gpu"
GPU_RESOURCES = (GPU_RESOURCE, "amd.com/gpu")
"""Whole physical GPUs, counted alike in jobs and in nodes' capacity (docs/design/distributed-training.md)."""
MIG_PREFIX = "nvidia.com/mig-"
"""MIG instances are refused: a power limit and NVML's energy counter belong to the physical GPU,
which MIG shares among pods."""
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
    job: JobFields = field(default_factory=JobFields)
    """The batch/v1 Job fields passed through (spec.job)."""
    labels: Mapping[str, str] = field(default_factory=dict)
    """The GreenTrainingJob's labels that reach the child and its pods (api.propagation)."""
    annotations: Mapping[str, str] = field(default_factory=dict)
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
        limits, requests = res.get("limits") or {}, res.get("requests") or {}
        for resource in GPU_RESOURCES:
            total += int(limits.get(resource, requests.get(resource, 0)))
    return total


def mig_resources(template: Mapping[str, Any]) -> list[str]:
    """The MIG resources a pod template asks for (refused)."""
    found: set[str] = set()
    for c in (template.get("spec") or {}).get("containers") or []:
        res = c.get("resources") or {}
        for part in (res.get("limits") or {}, res.get("requests") or {}):
            found.update(k for k in part if str(k).startswith(MIG_PREFIX))
    return sorted(found)


def _distributed_problems(name: str, template: Mapping[str, Any], parallelism: int) -> list[SpecProblem]:
    """What rendezvous needs of a multi-pod job (the CRD refuses the same at apply time)."""
    if parallelism <= 1:
        return []
    problems: list[SpecProblem] = []
    child = job_name(name)
    if child != name or not host_name_fits(child, parallelism) or not _DNS_1035.match(name):
        problems.append(
            SpecProblem(
                "metadata.name",
                f"a multi-pod job's pods are hosts <name>-<index> behind a Service <name>: use a name of lowercase "
                f"letters, digits and '-' that starts with a letter, with <name>-{parallelism - 1} at most "
                f"{MAX_HOST_LABEL} characters",
            )
        )
    if (template.get("spec") or {}).get("hostname"):
        problems.append(
            SpecProblem(
                "spec.template.spec.hostname",
                "a multi-pod job's pods are named <name>-<index> by the Indexed Job: remove hostname",
            )
        )
    return problems


_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def _capped_for_deadline(power: PowerRequest, estimated: timedelta, deadline: timedelta | None) -> PowerRequest:
    """An Auto power limit may not stretch the run past the Job's activeDeadlineSeconds (Kubernetes
    would kill it): the slowdown it may cause is capped to what the deadline leaves."""
    if deadline is None or power.policy is not PowerPolicy.AUTO or estimated <= timedelta(0):
        return power
    room = max((deadline / estimated - 1.0) * 100.0, 0.0)
    if room >= power.max_slowdown_percent:
        return power
    return PowerRequest(policy=power.policy, watts=power.watts, max_slowdown_percent=room)


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
                f"{' and '.join(GPU_RESOURCES)} must be whole numbers of GPUs",
            )
        )
        gpus_per_pod = 0
    mig = mig_resources(template)
    if mig:
        problems.append(
            SpecProblem(
                "spec.template.spec.containers[].resources.limits",
                f"MIG instances ({', '.join(mig)}) are not supported: a GPU power limit and its energy meter "
                f"belong to the whole physical GPU, which MIG shares with other pods; request whole GPUs "
                f"({GPU_RESOURCE}) instead",
            )
        )

    parallelism = int(spec.get("parallelism", 1))
    problems += _distributed_problems(str(meta.get("name", "")), template, parallelism)
    job_fields, job_problems = parse_job_fields(spec.get("job"), parallelism)
    problems += [SpecProblem(f, m) for f, m in job_problems]
    active_deadline = job_fields.active_deadline
    if active_deadline is not None and duration > active_deadline:
        problems.append(
            SpecProblem(
                "spec.estimatedDuration",
                f"{format_duration(duration)} is longer than spec.job.activeDeadlineSeconds "
                f"({job_fields.active_deadline_seconds}s): Kubernetes would stop the Job before it ends; "
                "raise activeDeadlineSeconds or shorten estimatedDuration",
            )
        )
    power = _capped_for_deadline(power, duration, active_deadline)

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
        parallelism=parallelism,
        backoff_limit=int(spec.get("backoffLimit", 0)),
        estimated_duration=duration,
        deadline=deadline,
        regions=regions,
        power=power,
        gpus_per_pod=gpus_per_pod,
        job=job_fields,
        labels=propagated(meta.get("labels")),
        annotations=propagated(meta.get("annotations")),
        interruption=interruption,
    )
