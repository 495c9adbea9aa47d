"""Real Kueue and JobSet beside the session's control plane (hack/kueue.sh), for the Kueue tier.

Kueue starts once per session (the first test that asks for it) and stops at the end. Only
namespaces labelled `greentraining.io/kueue=enabled` are managed by it and go through its webhooks,
so the rest of the suite on the same cluster never depends on it.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client

from harness.cluster import REPO

NS_LABEL = "greentraining.io/kueue"
KUEUE_GROUP, KUEUE_VERSION = "kueue.x-k8s.io", "v1beta2"
CONTROLLER_NAME = "greentraining.io/carbon"


def kueue_sh(command: str, timeout: float = 900) -> float:
    """Run hack/kueue.sh <command>; returns how long it took (the cold build is in `up`)."""
    t0 = time.monotonic()
    done = subprocess.run(
        ["bash", str(REPO / "hack" / "kueue.sh"), command], capture_output=True, text=True, timeout=timeout
    )
    if done.returncode != 0:
        raise AssertionError(f"hack/kueue.sh {command} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return time.monotonic() - t0


def start_kueue() -> Iterator[float]:
    took = kueue_sh("up")
    try:
        yield took
    finally:
        kueue_sh("down", timeout=120)


def kueue_namespace() -> Iterator[str]:
    name = f"k-{uuid.uuid4().hex[:10]}"
    core = client.CoreV1Api()
    core.create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels={"test": "true", NS_LABEL: "enabled"}))
    )
    try:
        yield name
    finally:
        core.delete_namespace(name, propagation_policy="Background")


def _custom() -> client.CustomObjectsApi:
    return client.CustomObjectsApi()


@dataclass
class Queues:
    """A ResourceFlavor per region, a ClusterQueue that uses our AdmissionCheck, a LocalQueue."""

    namespace: str
    suffix: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    created: list[tuple[str, str]] = field(default_factory=list)

    @property
    def check(self) -> str:
        return f"carbon-{self.suffix}"

    @property
    def cluster_queue(self) -> str:
        return f"cq-{self.suffix}"

    local_queue: str = "lq"

    def flavor(self, region: str) -> str:
        return f"{region}-{self.suffix}"

    def _create_cluster(self, plural: str, body: dict[str, Any]) -> None:
        _custom().create_cluster_custom_object(KUEUE_GROUP, KUEUE_VERSION, plural, body)
        self.created.append((plural, body["metadata"]["name"]))

    def setup(self, region: str, gpus: int, *, cpu: str = "100", memory: str = "1000Gi", checks: bool = True) -> None:
        self._create_cluster(
            "resourceflavors",
            {
                "apiVersion": f"{KUEUE_GROUP}/{KUEUE_VERSION}",
                "kind": "ResourceFlavor",
                "metadata": {"name": self.flavor(region)},
                "spec": {"nodeLabels": {"topology.kubernetes.io/region": region}},
            },
        )
        if checks:
            self._create_cluster(
                "admissionchecks",
                {
                    "apiVersion": f"{KUEUE_GROUP}/{KUEUE_VERSION}",
                    "kind": "AdmissionCheck",
                    "metadata": {"name": self.check},
                    "spec": {"controllerName": CONTROLLER_NAME},
                },
            )
        self._create_cluster(
            "clusterqueues",
            {
                "apiVersion": f"{KUEUE_GROUP}/{KUEUE_VERSION}",
                "kind": "ClusterQueue",
                "metadata": {"name": self.cluster_queue},
                "spec": {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": self.namespace}},
                    "resourceGroups": [
                        {
                            "coveredResources": ["cpu", "memory", "nvidia.com/gpu"],
                            "flavors": [
                                {
                                    "name": self.flavor(region),
                                    "resources": [
                                        {"name": "cpu", "nominalQuota": cpu},
                                        {"name": "memory", "nominalQuota": memory},
                                        {"name": "nvidia.com/gpu", "nominalQuota": gpus},
                                    ],
                                }
                            ],
                        }
                    ],
                    **({"admissionChecksStrategy": {"admissionChecks": [{"name": self.check}]}} if checks else {}),
                },
            },
        )
        _custom().create_namespaced_custom_object(
            KUEUE_GROUP,
            KUEUE_VERSION,
            self.namespace,
            "localqueues",
            {
                "apiVersion": f"{KUEUE_GROUP}/{KUEUE_VERSION}",
                "kind": "LocalQueue",
                "metadata": {"name": self.local_queue},
                "spec": {"clusterQueue": self.cluster_queue},
            },
        )

    def cluster_queue_active(self) -> bool:
        cq = _custom().get_cluster_custom_object(KUEUE_GROUP, KUEUE_VERSION, "clusterqueues", self.cluster_queue)
        conds = (cq.get("status") or {}).get("conditions") or []
        return any(c.get("type") == "Active" and c.get("status") == "True" for c in conds)

    def teardown(self) -> None:
        for plural, name in reversed(self.created):
            try:
                _custom().delete_cluster_custom_object(KUEUE_GROUP, KUEUE_VERSION, plural, name)
            except client.ApiException as exc:
                if exc.status != 404:
                    raise


def workloads(namespace: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = _custom().list_namespaced_custom_object(
        KUEUE_GROUP, KUEUE_VERSION, namespace, "workloads"
    )["items"]
    return items


def workload_of(namespace: str, owner: str) -> dict[str, Any] | None:
    """The Workload whose controller owner is named `owner` (a Job or JobSet)."""
    for wl in workloads(namespace):
        if any(o.get("name") == owner for o in wl["metadata"].get("ownerReferences") or []):
            return wl
    return None


def check_state(wl: dict[str, Any] | None, check: str) -> dict[str, Any] | None:
    if wl is None:
        return None
    return next((c for c in (wl.get("status") or {}).get("admissionChecks") or [] if c["name"] == check), None)


def condition(wl: dict[str, Any] | None, kind: str) -> bool:
    conds = ((wl or {}).get("status") or {}).get("conditions") or []
    return any(c.get("type") == kind and c.get("status") == "True" for c in conds)


def batch_job(
    name: str, queue: str, annotations: dict[str, str], *, gpus: int = 1, parallelism: int = 1
) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": {"kueue.x-k8s.io/queue-name": queue}},
        "spec": {
            "parallelism": parallelism,
            "completions": parallelism,
            "suspend": True,
            "template": {
                "metadata": {"annotations": annotations},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "train",
                            "image": "example.invalid/train:1",
                            "resources": {
                                "requests": {"cpu": "1", "memory": "1Gi"},
                                "limits": {"nvidia.com/gpu": str(gpus)},
                            },
                        }
                    ],
                },
            },
        },
    }


def jobset(name: str, queue: str, annotations: dict[str, str], *, gpus: int = 1) -> dict[str, Any]:
    job = {k: v for k, v in batch_job("x", queue, annotations, gpus=gpus)["spec"].items() if k != "suspend"}
    return {
        "apiVersion": "jobset.x-k8s.io/v1alpha2",
        "kind": "JobSet",
        "metadata": {"name": name, "labels": {"kueue.x-k8s.io/queue-name": queue}},
        "spec": {
            "suspend": True,
            "replicatedJobs": [{"name": "trainer", "replicas": 1, "template": {"spec": job}}],
        },
    }
