"""What each kind of write in a burst costs the apiserver, measured one kind at a time.

The burst benchmark (`operator_burst.py`) gives the apiserver's CPU per decision as a whole; this
one explains it. With no operator running, it creates N objects (or patches N statuses) of one
kind, 16 at a time, and prints the apiserver's CPU per request (its /proc counters), kind by kind:
a GreenTrainingJob, its status written as the operator writes a first decision, the same status
patched again by one field, the operator's child Job, a plain suspended Job (the burst
benchmark's raw baseline; both Jobs also wake the Job controller, whose status write is counted),
and an Event. The status and the child are real ones: an operator decides three jobs first.
Needs `make cluster-up`:

    .venv/bin/python benchmarks/burst_request_costs.py [--n 300]
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from kubernetes import client, config

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.operator_burst import GROUP, PLURAL, VERSION, cpu_seconds, create_all, gtj, plain_job  # noqa: E402
from harness.cluster import apply_crds, component_pid, kubeconfig  # noqa: E402
from harness.operator import OperatorProcess  # noqa: E402
from harness.waiting import wait_for  # noqa: E402

SERVER_FIELDS = ("uid", "resourceVersion", "creationTimestamp", "managedFields", "generation", "ownerReferences")
JOB_LABELS = ("controller-uid", "batch.kubernetes.io/controller-uid", "job-name", "batch.kubernetes.io/job-name")


def decided_example(api: client.ApiClient, core: client.CoreV1Api) -> tuple[dict[str, Any], dict[str, Any]]:
    """A first decision's status and child Job, as the operator writes them."""
    custom, batch = client.CustomObjectsApi(api), client.BatchV1Api(api)
    ns = new_namespace(core)
    log = Path(tempfile.mkdtemp(prefix="green-costs-")) / "operator.log"
    op = OperatorProcess(REPO / "examples" / "operator-config.yaml", ns, log).start()
    try:
        for i in range(3):
            custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, gtj(f"g{i}", i + 7))

        def decided() -> dict[str, Any] | None:
            o = cast(dict[str, Any], custom.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "g0"))
            return o if (o.get("status") or {}).get("phase") else None

        status = wait_for(decided, timeout=60, message="a first decision")["status"]
        child = api.sanitize_for_serialization(batch.list_namespaced_job(ns).items[0])
    finally:
        op.stop()
        core.delete_namespace(ns)
    child.pop("status", None)
    for k in (*SERVER_FIELDS, "namespace", "name"):
        child["metadata"].pop(k, None)
    child["spec"].pop("selector", None)
    labels = child["spec"]["template"]["metadata"]["labels"]
    for k in JOB_LABELS:
        labels.pop(k, None)
    return status, child


def new_namespace(core: client.CoreV1Api) -> str:
    ns = f"costs-{uuid.uuid4().hex[:6]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    wait_for(lambda: core.read_namespaced_service_account("default", ns), timeout=60, message="the namespace")
    return ns


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=300)
    args = ap.parse_args()
    config.load_kube_config(str(kubeconfig()))
    cfg = client.Configuration.get_default_copy()
    cfg.connection_pool_maxsize = 16
    api = client.ApiClient(cfg)
    core, batch, custom = client.CoreV1Api(api), client.BatchV1Api(api), client.CustomObjectsApi(api)
    apply_crds()
    apiserver = component_pid("kube-apiserver")
    assert apiserver is not None, "no kube-apiserver of the local cluster is running (make cluster-up)"
    status, child = decided_example(api, core)
    ns = new_namespace(core)
    names = [f"g{i:05d}" for i in range(args.n)]
    rows: list[tuple[str, float]] = []

    def measure(label: str, call: Callable[[Any], object], items: list[tuple[str, Any]]) -> None:
        cpu0 = cpu_seconds(apiserver)
        create_all(call, items, 16)
        time.sleep(1.0)  # a sampling pause: the Job controller's reaction lands in this kind's figure
        rows.append((label, (cpu_seconds(apiserver) - cpu0) / len(items) * 1000))

    def child_named(name: str) -> dict[str, Any]:
        body = copy.deepcopy(child)
        body["metadata"]["name"] = name
        return body

    def event(name: str) -> dict[str, Any]:
        return {
            "metadata": {"generateName": "e-"},
            "involvedObject": {
                "kind": "GreenTrainingJob",
                "name": name,
                "namespace": ns,
                "apiVersion": f"{GROUP}/{VERSION}",
            },
            "reason": "WaitingForLowCarbonWindow",
            "message": str((status.get("plan") or {}).get("reason", "")),
            "type": "Normal",
            "source": {"component": "green-training-operator"},
        }

    try:
        measure(
            "create a GreenTrainingJob",
            lambda b: custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, b),
            [(x, gtj(x, i)) for i, x in enumerate(names)],
        )
        patch_status: Callable[[Any], object] = lambda p: custom.patch_namespaced_custom_object_status(  # noqa: E731
            GROUP, VERSION, ns, PLURAL, p[0], {"status": p[1]}
        )
        measure("write a first decision's status", patch_status, [(x, (x, status)) for x in names])
        small = {"plan": {"decidedAt": "2030-01-01T00:00:00Z"}}
        measure("patch that status by one field", patch_status, [(x, (x, small)) for x in names])
        measure(
            "create the child Job (+ Job controller)",
            lambda b: batch.create_namespaced_job(ns, b),
            [(x, child_named(f"{x}-child")) for x in names],
        )
        measure(
            "create a plain suspended Job (+ Job controller)",
            lambda b: batch.create_namespaced_job(ns, b),
            [(x, plain_job(f"{x}-plain")) for x in names],
        )
        measure("post an Event", lambda b: core.create_namespaced_event(ns, b), [(x, event(x)) for x in names])
    finally:
        core.delete_namespace(ns)
    print(f"apiserver CPU per request, {args.n} of each, 16 at a time (status {len(str(status))} characters):")
    for label, ms in rows:
        print(f"  {label:<48} {ms:6.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
