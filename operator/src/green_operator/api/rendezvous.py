"""Rendezvous for multi-pod jobs: the headless Service that gives each pod a stable DNS name, and the
environment torchrun (and plain torch.distributed) reads. Pure. Contract and sources:
docs/design/distributed-training.md.

An Indexed Job names each pod's host `<job>-<index>`; with `subdomain: <service>` and a headless
Service of that name selecting the pods, `<job>-<index>.<service>.<namespace>.svc` resolves to the pod,
before it is ready (`publishNotReadyAddresses`: rendezvous happens before any readiness). Index 0 is
the master. The variables follow the Kubeflow PyTorchJob: torchrun reads `PET_<ARG>` for each of its
arguments and sets RANK, WORLD_SIZE and LOCAL_RANK itself; MASTER_ADDR/MASTER_PORT serve code that
calls `init_process_group` without torchrun.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MASTER_PORT = 29500
"""torch.distributed's default port."""
INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
MAX_HOST_LABEL = 63
"""A host name label (RFC 1123): `<job>-<index>` must fit."""


def service_name(child_job_name: str) -> str:
    """The headless Service is named after the child Job (the CRD keeps that a DNS-1035 label)."""
    return child_job_name


def master_address(child_job_name: str, namespace: str) -> str:
    """Index 0's stable DNS name, relative to the cluster domain (resolved through the pods' search path)."""
    return f"{child_job_name}-0.{service_name(child_job_name)}.{namespace}.svc"


def host_name_fits(child_job_name: str, parallelism: int) -> bool:
    return len(f"{child_job_name}-{max(parallelism - 1, 0)}") <= MAX_HOST_LABEL


def rendezvous_env(child_job_name: str, namespace: str, parallelism: int) -> list[dict[str, Any]]:
    addr = master_address(child_job_name, namespace)
    port = str(MASTER_PORT)
    rank = {"valueFrom": {"fieldRef": {"fieldPath": f"metadata.annotations['{INDEX_ANNOTATION}']"}}}
    return [
        {"name": "PET_NNODES", "value": str(parallelism)},
        {"name": "PET_NODE_RANK", **rank},
        {"name": "PET_MASTER_ADDR", "value": addr},
        {"name": "PET_MASTER_PORT", "value": port},
        {"name": "MASTER_ADDR", "value": addr},
        {"name": "MASTER_PORT", "value": port},
    ]


def build_service(
    *,
    child_job_name: str,
    namespace: str,
    selector: Mapping[str, str],
    owner: Mapping[str, Any],
    labels: Mapping[str, str],
) -> dict[str, Any]:
    """The headless Service, owned by the GreenTrainingJob (garbage-collected with it)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": service_name(child_job_name),
            "namespace": namespace,
            "labels": dict(labels),
            "ownerReferences": [dict(owner)],
        },
        "spec": {
            "clusterIP": "None",
            "selector": dict(selector),
            "publishNotReadyAddresses": True,
        },
    }
