"""`spec.job`: the batch/v1 Job fields a GreenTrainingJob passes through to its child, with the same
names and meaning. Pure: parsed into a value, problems returned as values.

Named fields rather than a whole Job template (docs/design/distributed-training.md): the operator owns
most of a JobSpec (suspend, parallelism, completions, completionMode, selector, managedBy, the pod
template's placement), so a template would mostly be fields to refuse.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

FIELD = "spec.job"


@dataclass(frozen=True)
class JobFields:
    ttl_seconds_after_finished: int | None = None
    """Set on the child only once the job is accounted (see `ttl_patch`), never at creation."""
    active_deadline_seconds: int | None = None
    pod_failure_policy: Mapping[str, Any] | None = None
    backoff_limit_per_index: int | None = None
    max_failed_indexes: int | None = None

    @property
    def active_deadline(self) -> timedelta | None:
        s = self.active_deadline_seconds
        return None if s is None else timedelta(seconds=s)

    @property
    def per_index(self) -> bool:
        """Per-index backoff needs an Indexed Job, whatever the parallelism."""
        return self.backoff_limit_per_index is not None

    def at_creation(self) -> dict[str, Any]:
        """The fields as they go into the child Job's spec when it is created."""
        out: dict[str, Any] = {}
        if self.active_deadline_seconds is not None:
            out["activeDeadlineSeconds"] = self.active_deadline_seconds
        if self.pod_failure_policy is not None:
            out["podFailurePolicy"] = dict(self.pod_failure_policy)
        if self.backoff_limit_per_index is not None:
            out["backoffLimitPerIndex"] = self.backoff_limit_per_index
        if self.max_failed_indexes is not None:
            out["maxFailedIndexes"] = self.max_failed_indexes
        return out

    def raw(self) -> dict[str, Any]:
        """Every field, as the spec wrote it (for the child's digest)."""
        out = self.at_creation()
        if self.ttl_seconds_after_finished is not None:
            out["ttlSecondsAfterFinished"] = self.ttl_seconds_after_finished
        return out


MAX_INT32 = 2**31 - 1
"""The largest value taken (the Job API's int32 fields; beyond it an activeDeadlineSeconds overflows)."""


def _int(raw: Mapping[str, Any], key: str, minimum: int, problems: list[tuple[str, str]]) -> int | None:
    if key not in raw or raw[key] is None:
        return None
    value = raw[key]
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= MAX_INT32:
        problems.append((f"{FIELD}.{key}", f"must be a whole number, at least {minimum} (at most {MAX_INT32})"))
        return None
    return value


def parse_job_fields(raw: Any, parallelism: int) -> tuple[JobFields, list[tuple[str, str]]]:
    """The fields and the (field, message) problems the CRD would have refused (objects stored before
    the CRD had its rules, or a CRD not installed from this chart)."""
    problems: list[tuple[str, str]] = []
    if raw is not None and not isinstance(raw, Mapping):
        problems.append((FIELD, f"must be an object of batch/v1 Job fields, not {type(raw).__name__}"))
    raw = raw if isinstance(raw, Mapping) else {}
    policy = raw.get("podFailurePolicy")
    if policy is not None and not (isinstance(policy, Mapping) and isinstance(policy.get("rules") or [], list)):
        problems.append(
            (f"{FIELD}.podFailurePolicy", "must be an object with a list of rules (batch/v1 PodFailurePolicy)")
        )
        policy = None
    fields = JobFields(
        ttl_seconds_after_finished=_int(raw, "ttlSecondsAfterFinished", 0, problems),
        active_deadline_seconds=_int(raw, "activeDeadlineSeconds", 1, problems),
        pod_failure_policy=policy,
        backoff_limit_per_index=_int(raw, "backoffLimitPerIndex", 0, problems),
        max_failed_indexes=_int(raw, "maxFailedIndexes", 0, problems),
    )
    if fields.max_failed_indexes is not None:
        if fields.backoff_limit_per_index is None:
            problems.append(
                (f"{FIELD}.maxFailedIndexes", "needs spec.job.backoffLimitPerIndex: set it, or remove maxFailedIndexes")
            )
        if fields.max_failed_indexes > parallelism:
            problems.append((f"{FIELD}.maxFailedIndexes", f"must be at most spec.parallelism ({parallelism})"))
    rules = (fields.pod_failure_policy or {}).get("rules") or []
    if (
        any(isinstance(r, Mapping) and r.get("action") == "FailIndex" for r in rules)
        and fields.backoff_limit_per_index is None
    ):
        problems.append(
            (
                f"{FIELD}.podFailurePolicy",
                "action FailIndex needs spec.job.backoffLimitPerIndex: set it, or use FailJob, Ignore or Count",
            )
        )
    return fields, problems


def ttl_patch(fields: JobFields) -> dict[str, Any] | None:
    """The merge patch that hands the finished, accounted child to the TTL controller (None: no TTL).
    The TTL counts from the Job's finish, so a prompt patch keeps the user's semantics exactly."""
    if fields.ttl_seconds_after_finished is None:
        return None
    return {"spec": {"ttlSecondsAfterFinished": fields.ttl_seconds_after_finished}}
