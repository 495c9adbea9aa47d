"""Parse and default a GreenTrainingJob into typed values. Pure: errors are values, not exceptions.

The CRD's schema and CEL rules refuse most bad input at apply time; what they cannot see (a region
the operator does not know, a deadline already impossible, more GPUs than any region has) comes
back from here as `SpecProblem`s that the handlers turn into a False condition and an Event.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
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
    spec = body.get("spec")
    if not isinstance(spec, Mapping):
        return None
    template = spec.get("template") or {}
    parallelism = spec.get("parallelism", 1)
    if not isinstance(template, Mapping) or isinstance(parallelism, bool) or not isinstance(parallelism, int):
        return None
    try:
        return held_gpus(gpus_in_template(template), parallelism)
    except (TypeError, ValueError, AttributeError, OverflowError):
        return None


def gpus_in_template(template: Mapping[str, Any]) -> int:
    """GPUs one pod asks for: extended resources are set as limits (requests, if set, must equal them)."""
    total = 0
    for c in (template.get("spec") or {}).get("containers") or []:
        res = c.get("resources") or {}
        limits, requests = res.get("limits") or {}, res.get("requests") or {}
        for resource in GPU_RESOURCES:
            total += _whole(limits.get(resource, requests.get(resource, 0)))
    return total


def _whole(value: Any) -> int:
    """A GPU count: a whole number of at least zero (int, "2", or 2.0); raises ValueError/TypeError."""
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise TypeError(f"{value!r} is not a whole number")
    count = int(value)
    if count < 0:
        raise ValueError(f"{value!r} is negative")
    return count


MAX_SPAN = timedelta(days=3660)
"""The longest estimatedDuration or maxDelay taken (ten years): beyond it, date arithmetic overflows."""
MAX_INT32 = 2**31 - 1


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
    running where it was placed after its region leaves the configuration).

    The apiserver checked the metadata; the spec is checked here field by field as well, since an
    object stored under an older schema (or written around it) may hold anything: never raises."""
    meta = body.get("metadata") or {}
    raw = body.get("spec")
    if not isinstance(raw, Mapping):
        return [SpecProblem("spec", "must be an object with estimatedDuration, schedule and template")]
    spec: Mapping[str, Any] = raw
    problems: list[SpecProblem] = []

    created = parse_rfc3339(meta["creationTimestamp"])
    duration = _span(spec.get("estimatedDuration", ""), "spec.estimatedDuration", problems, parse_duration)
    duration = duration or timedelta(0)

    schedule = _mapping(spec.get("schedule"), "spec.schedule", problems)
    deadline: datetime | None = None
    if "deadline" in schedule:
        try:
            deadline = parse_rfc3339(str(schedule["deadline"]))
        except (ValueError, OverflowError) as exc:
            problems.append(SpecProblem("spec.schedule.deadline", str(exc)))
    elif "maxDelay" in schedule:
        max_delay = _span(schedule["maxDelay"], "spec.schedule.maxDelay", problems, parse_delay)
        if max_delay is not None:
            deadline = created + max_delay + duration
    else:
        problems.append(SpecProblem("spec.schedule", "set exactly one of deadline or maxDelay"))

    placement = _mapping(spec.get("placement"), "spec.placement", problems)
    wanted_raw = placement.get("regions") or ()
    if not isinstance(wanted_raw, (list, tuple)) or not all(isinstance(r, str) for r in wanted_raw):
        problems.append(SpecProblem("spec.placement.regions", "must be a list of region names"))
        wanted_raw = ()
    wanted = tuple(wanted_raw)
    unknown = [r for r in wanted if r not in known_regions] if check_regions else []
    if unknown:
        problems.append(
            SpecProblem(
                "spec.placement.regions",
                f"unknown region(s) {', '.join(unknown)}; this operator knows {', '.join(known_regions)}",
            )
        )
    regions = wanted or tuple(known_regions)

    power = _power(_mapping(spec.get("power"), "spec.power", problems), problems)
    backoff_limit = _count(spec.get("backoffLimit", 0), "spec.backoffLimit", 0, problems)

    template = _mapping(spec.get("template"), "spec.template", problems)
    try:
        gpus_per_pod = gpus_in_template(template)
    except (TypeError, ValueError, AttributeError, OverflowError):
        problems.append(
            SpecProblem(
                "spec.template.spec.containers[].resources.limits",
                f"{' and '.join(GPU_RESOURCES)} must be whole numbers of GPUs",
            )
        )
        gpus_per_pod = 0
        template = {}  # too broken to read further: its problem is reported
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

    parallelism = _count(spec.get("parallelism", 1), "spec.parallelism", 1, problems)
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
        backoff_limit=backoff_limit,
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


def _mapping(value: Any, path: str, problems: list[SpecProblem]) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        problems.append(SpecProblem(path, f"must be an object, not {type(value).__name__}"))
        return {}
    return value


def _span(value: Any, path: str, problems: list[SpecProblem], parse: Callable[[str], timedelta]) -> timedelta | None:
    try:
        span = parse(str(value))
    except ValueError as exc:
        problems.append(SpecProblem(path, str(exc)))
        return None
    except OverflowError:
        span = MAX_SPAN + timedelta(days=1)
    if span > MAX_SPAN:
        problems.append(SpecProblem(path, f"{value!r} is longer than ten years; write a shorter duration"))
        return None
    return span


def _count(value: Any, path: str, least: int, problems: list[SpecProblem]) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not least <= value <= MAX_INT32:
        problems.append(SpecProblem(path, f"must be a whole number of at least {least}, not {value!r}"))
        return least
    return value


def _power(raw: Mapping[str, Any], problems: list[SpecProblem]) -> PowerRequest:
    try:
        policy = PowerPolicy(raw.get("policy", "Auto"))
    except ValueError:
        choices = ", ".join(p.value for p in PowerPolicy)
        problems.append(SpecProblem("spec.power.policy", f"must be one of {choices}, not {raw.get('policy')!r}"))
        policy = PowerPolicy.AUTO
    watts = raw.get("gpuPowerLimitWatts")
    if watts is not None and not (_number(watts) and 1 <= watts <= 2000):
        problems.append(SpecProblem("spec.power.gpuPowerLimitWatts", f"must be 1..2000 watts, not {watts!r}"))
        watts = None
    slowdown = raw.get("maxSlowdownPercent", 10)
    if not (_number(slowdown) and 0 <= slowdown <= 100):
        problems.append(SpecProblem("spec.power.maxSlowdownPercent", f"must be 0..100, not {slowdown!r}"))
        slowdown = 10
    return PowerRequest(
        policy=policy,
        watts=float(watts) if watts is not None else None,
        max_slowdown_percent=float(slowdown),
    )


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
