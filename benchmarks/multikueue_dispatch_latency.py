"""MultiKueue dispatch benchmark: N Jobs submitted at once to the manager of the local multi-cluster
stack (hack/multicluster.sh: a manager and two workers, each a real control plane with Kueue v0.17.0),
with the operator as MultiKueue's external dispatcher.

The dispatch decision is the first of: a nomination (a worker now: the power annotation on the manager
Job, then the nomination apply) or a plan that holds it (a later start, when the workers are full).
Prints, per workload and over all of them (p50 / p95 / max): submission -> quota reserved in the manager
(Kueue's part), quota reserved -> decided (the dispatcher's part), submission -> decided; the wall
time until all N are decided, how many went where and how many were held, and the operator's peak RSS.

Static carbon data make one worker's region cleaner; each Job is planned as one GPU for 10 minutes,
so once both workers' GPUs are booked the rest are held for later (the manager's quota is never the
limit: the Jobs request CPU only).

`.venv/bin/python benchmarks/multikueue_dispatch_latency.py [--jobs 200] [--root DIR] [--keep]`: starts the stack
under DIR (default $GREEN_MULTICLUSTER or a temporary directory; `up` returns at once when it runs) and
stops it at the end unless --keep.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, watch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from harness.multicluster import Stack, Worker, multicluster_sh  # noqa: E402
from harness.operator import OperatorProcess  # noqa: E402
from harness.waiting import wait_for  # noqa: E402

KQ = ("kueue.x-k8s.io", "v1beta2")


def namespace_everywhere(stack: Stack) -> str:
    name = f"bench-{uuid.uuid4().hex[:8]}"
    for c in stack.clusters:
        client.CoreV1Api(c.api()).create_namespace(
            client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=dict(stack.namespace_label)))
        )
        cq = c.cluster_queue if isinstance(c, Worker) else stack.manager_cluster_queue
        client.CustomObjectsApi(c.api()).create_namespaced_custom_object(
            *KQ,
            name,
            "localqueues",
            {
                "apiVersion": "/".join(KQ),
                "kind": "LocalQueue",
                "metadata": {"name": stack.local_queue},
                "spec": {"clusterQueue": cq},
            },
        )
    return name


def job(name: str, queue: str) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": {"kueue.x-k8s.io/queue-name": queue}},
        "spec": {
            "suspend": True,
            "template": {
                "metadata": {
                    "annotations": {
                        "greentraining.io/estimated-duration": "10m",
                        "greentraining.io/max-delay": "1h",
                        "pod-complete.stage.kwok.x-k8s.io/delay": "1s",
                    }
                },
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "train",
                            "image": "example.invalid/train:1",
                            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                        }
                    ],
                },
            },
        },
    }


def operator_config(stack: Stack, workdir: Path) -> Path:
    clean = stack.workers[-1]
    doc = {
        "regions": [
            {"name": w.region, "carbon": {"staticGramsPerKwh": 50.0 if w is clean else 400.0}} for w in stack.workers
        ],
        "kueue": {"pendingWindow": "6s"},
        "multiKueue": {
            "enabled": True,
            "workerLostTimeout": stack.worker_lost_timeout,
            "probeInterval": "2s",
            "workers": [
                {"cluster": w.name, "region": w.region, "kubeconfig": str(w.kubeconfig)} for w in stack.workers
            ],
        },
    }
    path = workdir / "operator-config.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def line(label: str, values: list[float]) -> str:
    return f"  {label:<34} p50 {pct(values, 0.5):6.2f} s   p95 {pct(values, 0.95):6.2f} s   max {max(values):6.2f} s"


def rss_mib(pid: int) -> float:
    for text in Path(f"/proc/{pid}/status").read_text().splitlines():
        if text.startswith("VmHWM:"):
            return int(text.split()[1]) / 1024
    return float("nan")


def run(stack: Stack, n: int, workdir: Path) -> None:
    stack.manager.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    ns = namespace_everywhere(stack)
    op = OperatorProcess(
        operator_config(stack, workdir), ns, workdir / "operator.log", kubeconfig_path=stack.manager.admin_kubeconfig
    ).start()
    submitted: dict[str, float] = {}
    reserved: dict[str, float] = {}
    decided: dict[str, float] = {}
    nominated: dict[str, float] = {}
    where: dict[str, str] = {}
    lock = threading.Lock()
    stop = threading.Event()

    def follow() -> None:
        api = client.CustomObjectsApi(stack.manager.api())
        w = watch.Watch()
        while not stop.is_set():
            for ev in w.stream(api.list_namespaced_custom_object, *KQ, ns, "workloads", timeout_seconds=5):
                obj = ev["object"]
                owner = next((o["name"] for o in obj["metadata"].get("ownerReferences") or []), None)
                st = obj.get("status") or {}
                now = time.monotonic()
                with lock:
                    if owner is None:
                        continue
                    conds = st.get("conditions") or []
                    if owner not in reserved and any(
                        c["type"] == "QuotaReserved" and c["status"] == "True" for c in conds
                    ):
                        reserved[owner] = now
                    target = st.get("clusterName") or (st.get("nominatedClusterNames") or [None])[0]
                    planned = "greentraining.io/plan" in (obj["metadata"].get("annotations") or {})
                    if (target or planned) and owner not in decided:
                        decided[owner] = now  # the plan is written just before the nomination
                    if target and owner not in nominated:
                        nominated[owner] = now
                        where[owner] = target
                    elif (obj.get("spec") or {}).get("active") is False and owner not in nominated:
                        where[owner] = "held"

    follower = threading.Thread(target=follow, daemon=True)
    follower.start()
    try:
        batch = client.BatchV1Api(stack.manager.api())
        names = [f"j-{i:04d}" for i in range(n)]
        t0 = time.monotonic()

        def submit(name: str) -> None:
            batch.create_namespaced_job(ns, job(name, stack.local_queue))
            with lock:
                submitted[name] = time.monotonic()

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(submit, names))
        submit_done = time.monotonic() - t0
        wait_for(lambda: len(decided) >= n, timeout=900, interval=0.5, message=lambda: f"{len(decided)}/{n} decided")
        wall = time.monotonic() - t0
        # A nomination lands just after its plan: wait until each one is nominated or held.
        wait_for(lambda: len(where) >= n, timeout=300, interval=0.5, message=lambda: f"{len(where)}/{n} placed")
        with lock:
            kueue = [reserved[k] - submitted[k] for k in names if k in reserved]
            ours = [max(decided[k] - reserved[k], 0.0) for k in names if k in reserved]
            total = [decided[k] - submitted[k] for k in names]
            sent = [nominated[k] - submitted[k] for k in names if k in nominated]
            places: dict[str, int] = {}
            for k in names:
                places[where.get(k, "?")] = places.get(where.get(k, "?"), 0) + 1
        print(f"MultiKueue dispatch: {n} Jobs submitted to the manager in {submit_done:.1f} s (16 threads)")
        print(line("submitted -> quota reserved (Kueue)", kueue))
        print(line("reserved -> decided (dispatcher)", ours))
        print(line("submitted -> decided", total))
        if sent:
            print(line(f"submitted -> nominated ({len(sent)} of them)", sent))
        print(f"  all {n} decided after {wall:.1f} s ({n / wall:.1f} workloads/s): {places}")
        print(f"  operator peak RSS {rss_mib(op.pid):.0f} MiB")
    finally:
        stop.set()
        op.stop()
        for c in stack.clusters:
            client.CoreV1Api(c.api()).delete_namespace(ns, propagation_policy="Background")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=200)
    ap.add_argument("--root", type=Path, default=None, help="the stack's directory (default: a temporary one)")
    ap.add_argument("--keep", action="store_true", help="leave the stack running")
    args = ap.parse_args()
    root = args.root or (Path(os.environ["GREEN_MULTICLUSTER"]) if os.environ.get("GREEN_MULTICLUSTER") else None)
    with tempfile.TemporaryDirectory(prefix="mk-bench-") as tmp:
        root = root or Path(tmp) / "stack"
        took, _ = multicluster_sh("up", root)
        print(f"hack/multicluster.sh up: {took:.0f} s (it returns at once when the stack runs)")
        try:
            run(Stack.load(root), args.jobs, Path(tmp))
        finally:
            if not args.keep:
                multicluster_sh("down", root, timeout=180)
    return 0


if __name__ == "__main__":
    sys.exit(main())
