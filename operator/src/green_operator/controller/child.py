"""The child Job's manifest for a job's plan: the user's template, shaped by its interruption
block, placed in the plan's region at the plan's power limit. Pure."""

from __future__ import annotations

from typing import Any

from green_operator.api.interruption import interruption_pod_changes
from green_operator.api.manifests import build_job
from green_operator.api.spec import TrainingJobSpec
from green_operator.planner import PowerPolicy

from .observed import Observed, template_hash


def child_manifest(
    o: Observed,
    spec: TrainingJobSpec,
    region_name: str,
    power_limit_watts: float | None,
    intensity: float,
    suspend: bool,
) -> dict[str, Any]:
    region = o.settings.regions[region_name]
    return build_job(
        gtj_name=spec.name,
        gtj_uid=spec.uid,
        namespace=spec.namespace,
        template=interruption_pod_changes(spec.template, spec.interruption),
        parallelism=spec.parallelism,
        backoff_limit=spec.backoff_limit,
        region=region_name,
        node_selector=region.node_selector,
        tolerations=region.tolerations,
        power_limit_watts=power_limit_watts,
        intensity=intensity,
        suspend=suspend,
        metrics_port=o.settings.metrics_port,
        # Granted whenever the policy may set a limit: a re-plan can change the limit of a waiting
        # Job, but not its containers' security context.
        grant_power_capability=o.settings.grant_power_limit_capability and spec.power.policy is not PowerPolicy.NONE,
        template_hash=child_digest(spec),
        job_fields=spec.job,
        labels=spec.labels,
        annotations=spec.annotations,
    )


def child_digest(spec: TrainingJobSpec) -> str:
    """What the child is built from: the pod template, and (when set) the pod count and the Job
    fields, so an edit to either rebuilds a child that never started. A single-pod job without Job
    fields keeps the plain template digest older children carry."""
    extra: dict[str, Any] = {}
    if spec.parallelism > 1:
        extra["parallelism"] = spec.parallelism
    if spec.job.at_creation():
        extra["job"] = spec.job.at_creation()
    return template_hash({"template": spec.template, **extra} if extra else spec.template)
