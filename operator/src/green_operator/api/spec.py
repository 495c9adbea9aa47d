"""Parse and default a GreenTrainingJob into typed values. Pure: errors are values, not exceptions.

The CRD's schema and CEL rules refuse most bad input at apply time; what they cannot see (a region
the operator does not know, a deadline already impossible, more GPUs than any region has) comes
back from here as `SpecProblem`s that the handlers turn into a False condition and an Event.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

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
    except (TypeError, ValueError, AttributeError):
        return None


def gpus_in_template(template: Mapping[str, Any]) -> int:
    """GPUs one pod asks for: extended resources are set as limits (requests, if set, must equal them).
    Raises ValueError (or TypeError) for a count that is not a whole number of at least zero."""
    total = 0
    for c in (template.get("spec") or {}).get("containers") or []:
        res = c.get("resources") or {}
        value = (res.get("limits") or {}).get(GPU_RESOURCE, (res.get("requests") or {}).get(GPU_RESOURCE, 0))
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise TypeError(f"{value!r} is not a whole number")
        count = int(value)
        if count < 0:
            raise ValueError(f"{value!r} is negative")
        total += count
    return total


MAX_SPAN = timedelta(days=3660)
"""The longest estimatedDuration or maxDelay taken (ten years): beyond it, date arithmetic overflows."""
MAX_INT32 = 2**31 - 1


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
    parallelism = _count(spec.get("parallelism", 1), "spec.parallelism", 1, problems)
    backoff_limit = _count(spec.get("backoffLimit", 0), "spec.backoffLimit", 0, problems)

    template = _mapping(spec.get("template"), "spec.template", problems)
    try:
        gpus_per_pod = gpus_in_template(template)
    except (TypeError, ValueError, AttributeError, OverflowError):
        problems.append(
            SpecProblem(
                "spec.template.spec.containers[].resources.limits",
                f"{GPU_RESOURCE} must be a whole number of GPUs",
            )
        )
        gpus_per_pod = 0

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
