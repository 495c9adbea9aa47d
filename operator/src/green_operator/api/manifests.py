"""Pure builders for the objects the operator creates. Plain dicts in, plain dicts out.

The child Job carries its region, power limit and carbon intensity as pod-template annotations and
passes them to the trainer through the downward API. Kubernetes lets a suspended Job that never
started change its pod template's scheduling directives, labels and annotations, so a re-plan moves
a deferred job to another region or limit without recreating it.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from .job_fields import JobFields
from .rendezvous import build_service, host_name_fits, rendezvous_env

GROUP = "greentraining.io"
VERSION = "v1alpha1"
PLURAL = "greentrainingjobs"
KIND = "GreenTrainingJob"

MANAGED_BY = "green-training-operator"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_JOB = f"{GROUP}/job"
ANN_REGION = f"{GROUP}/region"
ANN_POWER_LIMIT = f"{GROUP}/gpu-power-limit-watts"
ANN_INTENSITY = f"{GROUP}/carbon-intensity"
ANN_TEMPLATE_HASH = f"{GROUP}/template-hash"
"""On the child Job: the digest of the user's pod template it was built from."""

TRAINER_METRICS_PORT_NAME = "green-metrics"
_MAX_NAME = 63  # Job names become the pods' job-name label value.


def job_name(gtj_name: str) -> str:
    """Deterministic child Job name: the resource's own name, shortened with a hash when too long."""
    if len(gtj_name) <= _MAX_NAME:
        return gtj_name
    digest = hashlib.sha256(gtj_name.encode()).hexdigest()[:10]
    return f"{gtj_name[: _MAX_NAME - 11].rstrip('-.')}-{digest}"


def owner_reference(gtj_name: str, gtj_uid: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "name": gtj_name,
        "uid": gtj_uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def placement_annotations(region: str, power_limit_watts: float | None, intensity: float) -> dict[str, str]:
    return {
        ANN_REGION: region,
        ANN_POWER_LIMIT: "" if power_limit_watts is None else str(round(power_limit_watts)),
        ANN_INTENSITY: f"{intensity:.1f}",
    }


def _annotation_env(name: str, annotation: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": f"metadata.annotations['{annotation}']"}}}


def power_limit_security_context(current: Mapping[str, Any]) -> dict[str, Any]:
    """The fallback where the GPU node agent cannot run: what the trainer wrapper needs to set the limit
    itself through NVML, CAP_SYS_ADMIN, which Kubernetes only grants to a root process. The wrapper starts
    the training as its image's unprivileged user (GREEN_CHILD_USER) and restores the limit on exit;
    SETUID/SETGID stay so it can. Opt-in per operator (`operator.grantPowerLimitCapability`): such a pod
    fails Pod Security `baseline` and `restricted`. With the node agent, leave it off."""
    sc = copy.deepcopy(dict(current))
    caps = sc.setdefault("capabilities", {})
    caps["add"] = sorted({*(caps.get("add") or []), "SYS_ADMIN", "SETUID", "SETGID"})
    sc["runAsUser"] = 0
    sc["runAsNonRoot"] = False
    return sc


def trainer_env(gtj_name: str, metrics_port: int, sets_power_limit: bool = False) -> list[dict[str, Any]]:
    """The trainer wrapper's contract (trainer-image/README.md). The GPU node agent sets the power limit
    from the pod's annotation; the wrapper gets it only in the capability fallback (`sets_power_limit`),
    since without CAP_SYS_ADMIN it could only report the limit as not applied."""
    limit = [_annotation_env("GREEN_GPU_POWER_LIMIT_WATTS", ANN_POWER_LIMIT)] if sets_power_limit else []
    return [
        {"name": "GREEN_JOB_NAME", "value": gtj_name},
        {"name": "GREEN_JOB_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "GREEN_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        # The Hostname label of per-GPU series: the node, as dcgm-exporter and the node agent name it.
        {"name": "GREEN_NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        _annotation_env("GREEN_REGION", ANN_REGION),
        *limit,
        _annotation_env("GREEN_CARBON_INTENSITY", ANN_INTENSITY),
        {"name": "GREEN_METRICS_PORT", "value": str(metrics_port)},
    ]


def _with_env(container: dict[str, Any], env: Sequence[Mapping[str, Any]]) -> None:
    """Append what the container does not set itself: a user's own value always wins."""
    own = {e.get("name") for e in container.get("env") or []}
    container["env"] = [*(container.get("env") or []), *(dict(e) for e in env if e["name"] not in own)]


def build_job(
    *,
    gtj_name: str,
    gtj_uid: str,
    namespace: str,
    template: Mapping[str, Any],
    parallelism: int,
    backoff_limit: int,
    region: str,
    node_selector: Mapping[str, str],
    tolerations: Sequence[Mapping[str, Any]],
    power_limit_watts: float | None,
    intensity: float,
    suspend: bool,
    metrics_port: int,
    grant_power_capability: bool = False,
    template_hash: str = "",
    job_fields: JobFields | None = None,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """`labels` and `annotations`: the GreenTrainingJob's, already filtered (api.propagation); on the
    pods the template's own win over them, and the operator's win over both."""
    name = job_name(gtj_name)
    fields = job_fields or JobFields()
    pod = copy.deepcopy(dict(template))
    meta = pod.setdefault("metadata", {})
    meta["labels"] = {**(labels or {}), **(meta.get("labels") or {}), LABEL_MANAGED_BY: MANAGED_BY, LABEL_JOB: name}
    meta["annotations"] = {
        **(annotations or {}),
        **(meta.get("annotations") or {}),
        **placement_annotations(region, power_limit_watts, intensity),
    }
    spec = pod.setdefault("spec", {})
    spec.setdefault("restartPolicy", "Never")
    # The region's selector wins over any region label the user set: the operator owns placement.
    spec["nodeSelector"] = {**(spec.get("nodeSelector") or {}), **node_selector}
    if tolerations:
        spec["tolerations"] = [*(spec.get("tolerations") or []), *map(dict, tolerations)]
    env = trainer_env(gtj_name, metrics_port, sets_power_limit=grant_power_capability)
    if parallelism > 1:
        if not host_name_fits(name, parallelism):
            raise ValueError(f"{name}-{parallelism - 1} is longer than a host name may be (63)")
        # The Indexed Job names each pod's host <job>-<index>; the subdomain makes it resolvable.
        spec["subdomain"] = name
        env = [*env, *rendezvous_env(name, namespace, parallelism)]
    for i, container in enumerate(spec.get("containers") or []):
        _with_env(container, [*env, {"name": "GREEN_CONTAINER_NAME", "value": str(container.get("name", ""))}])
        if i == 0 and grant_power_capability:
            container["securityContext"] = power_limit_security_context(container.get("securityContext") or {})
        ports = container.get("ports") or []
        if i == 0 and metrics_port and not any(p.get("containerPort") == metrics_port for p in ports):
            container["ports"] = [
                *ports,
                {"name": TRAINER_METRICS_PORT_NAME, "containerPort": metrics_port, "protocol": "TCP"},
            ]
    job_spec: dict[str, Any] = {
        "suspend": suspend,
        "parallelism": parallelism,
        "completions": parallelism,
        "template": pod,
        **fields.at_creation(),
    }
    if not fields.per_index:
        # With backoffLimitPerIndex, Kubernetes defaults the Job-wide limit to unlimited; 0 would
        # fail the whole Job at the first pod failure.
        job_spec["backoffLimit"] = backoff_limit
    if parallelism > 1 or fields.per_index:
        job_spec["completionMode"] = "Indexed"
    job_annotations = {**(annotations or {}), **({ANN_TEMPLATE_HASH: template_hash} if template_hash else {})}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {**(labels or {}), LABEL_MANAGED_BY: MANAGED_BY, LABEL_JOB: name},
            **({"annotations": job_annotations} if job_annotations else {}),
            "ownerReferences": [owner_reference(gtj_name, gtj_uid)],
        },
        "spec": job_spec,
    }


def build_rendezvous_service(
    *, gtj_name: str, gtj_uid: str, namespace: str, labels: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The headless Service of a multi-pod job: it selects the child's pods by the operator's label."""
    name = job_name(gtj_name)
    return build_service(
        child_job_name=name,
        namespace=namespace,
        selector={LABEL_JOB: name},
        owner=owner_reference(gtj_name, gtj_uid),
        labels={**(labels or {}), LABEL_MANAGED_BY: MANAGED_BY, LABEL_JOB: name},
    )


def placement_patch(
    *,
    node_selector: Mapping[str, str],
    previous_node_selector: Mapping[str, str],
    tolerations: Sequence[Mapping[str, Any]],
    user_template: Mapping[str, Any],
    region: str,
    power_limit_watts: float | None,
    intensity: float,
) -> dict[str, Any]:
    """Merge patch that moves a suspended, never-started Job to a new plan (mutable scheduling directives)."""
    user_spec = user_template.get("spec") or {}
    selector: dict[str, str | None] = {**(user_spec.get("nodeSelector") or {}), **node_selector}
    # A merge patch deletes map keys set to null: drop the old region's labels that no longer apply.
    for k in previous_node_selector:
        selector.setdefault(k, None)
    return {
        "spec": {
            "template": {
                "metadata": {"annotations": placement_annotations(region, power_limit_watts, intensity)},
                "spec": {
                    "nodeSelector": selector,
                    "tolerations": [*(user_spec.get("tolerations") or []), *map(dict, tolerations)] or None,
                },
            }
        }
    }
