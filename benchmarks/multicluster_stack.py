"""The local MultiKueue stack (hack/multicluster.sh): how long it takes to start and stop, its memory,
and what one Job's trip through MultiKueue costs in time.

Prints: `up` and `down` seconds; each cluster's processes' resident memory (RSS) and the total; for one
batch Job submitted to the manager: submission to quota reserved, nomination (written as an external
dispatcher writes it) to its pod running in the worker, and to the manager's Job Complete; and how long
after a worker's kube-apiserver is killed its MultiKueueCluster turns Active=False. No figure is
asserted. Starts its own stack in a temporary directory (or --root) and always stops it.

    .venv/bin/python benchmarks/multicluster_stack.py [--root DIR]
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kubernetes import client  # noqa: E402

from harness.multicluster import (  # noqa: E402
    Stack,
    condition_status,
    custom,
    dispatch,
    multicluster_sh,
    rss_bytes,
    workload_of,
)
from harness.waiting import wait_for  # noqa: E402

MIB = 1024 * 1024


def job(name: str, queue: str) -> dict[str, object]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": {"kueue.x-k8s.io/queue-name": queue}},
        "spec": {
            "suspend": True,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "train",
                            "image": "example.invalid/train:1",
                            "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"nvidia.com/gpu": "1"}},
                        }
                    ],
                }
            },
        },
    }


def one_job(stack: Stack) -> None:
    ns, target = stack.namespace, stack.workers[-1]
    batch = client.BatchV1Api(stack.manager.api())
    t0 = time.monotonic()
    batch.create_namespaced_job(ns, job("bench", stack.local_queue))

    def pending() -> dict[str, object] | None:
        wl = workload_of(stack.manager, ns, "bench")
        checks = {c["name"]: c["state"] for c in ((wl or {}).get("status") or {}).get("admissionChecks") or []}
        return wl if checks.get(stack.admission_check) == "Pending" else None

    wait_for(pending, timeout=60, message="the manager's Workload to reserve quota")
    reserved = time.monotonic() - t0
    t1 = time.monotonic()
    dispatch(stack.manager, ns, "bench", target.name)
    pods = client.CoreV1Api(target.api())
    wait_for(
        lambda: any(p.status.phase in ("Running", "Succeeded") for p in pods.list_namespaced_pod(ns).items),
        timeout=60,
        interval=0.05,
        message=f"the pod to run in {target.name}",
    )
    running = time.monotonic() - t1

    def complete() -> bool:
        conds = batch.read_namespaced_job_status("bench", ns).status.conditions or []
        return any(c.type == "Complete" and c.status == "True" for c in conds)

    wait_for(complete, timeout=90, interval=0.05, message="the manager's Job to complete")
    done = time.monotonic() - t1
    print(f"one Job: submission to quota reserved {reserved:.2f} s (no worker yet)")
    print(f"         nomination to pod running in {target.name} {running:.2f} s; to manager Job Complete {done:.2f} s")


def worker_lost(stack: Stack) -> None:
    worker = stack.workers[0]
    pid = int((worker.state / "pids" / "kube-apiserver.pid").read_text())
    t0 = time.monotonic()
    os.kill(pid, signal.SIGKILL)

    def inactive() -> bool:
        mkc = custom(stack.manager).get_cluster_custom_object(
            "kueue.x-k8s.io", "v1beta2", "multikueueclusters", worker.name
        )
        return condition_status(mkc, "Active") == "False"

    wait_for(inactive, timeout=stack.worker_lost_seconds() + 120, interval=0.1, message="Active=False")
    print(
        f"{worker.name}'s kube-apiserver killed: MultiKueueCluster Active=False after {time.monotonic() - t0:.1f} s "
        f"(workerLostTimeout {stack.worker_lost_timeout})"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, help="the stack's directory (default: a fresh temporary one)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="green-mc-") as tmp:
        root = args.root or Path(tmp) / "mc"
        try:
            took, _ = multicluster_sh("up", root)
            stack = Stack.load(root)
            print(f"up: {took:.1f} s ({len(stack.workers)} workers + manager, started in parallel)")
            total = 0
            for c in stack.clusters:
                rss = rss_bytes(c)
                total += sum(rss.values())
                parts = ", ".join(f"{k} {v / MIB:.0f}" for k, v in sorted(rss.items(), key=lambda kv: -kv[1]))
                print(f"  {c.name}: {sum(rss.values()) / MIB:.0f} MiB RSS ({parts})")
            print(f"  total: {total / MIB:.0f} MiB RSS")
            one_job(stack)
            worker_lost(stack)
        finally:
            took, _ = multicluster_sh("down", root, timeout=180)
            print(f"down: {took:.1f} s")


if __name__ == "__main__":
    main()
