"""Kueue admission benchmark: 1,000 Kueue-managed Jobs submitted at once, with and without the carbon
AdmissionCheck, against the real Kueue v0.17.0 beside the local control plane.

Prints, in one run: how long Kueue alone takes to admit N Jobs (a ClusterQueue without checks); how
long until every one of N other Jobs has our check decided (Ready, or held with a plan) and until
all of them are admitted (a ClusterQueue with the carbon check, the operator running); the ratio;
the operator's and Kueue's peak RSS; how long `hack/kueue.sh up` took (the build is cached).
The Jobs ask for one GPU each on kwok nodes the benchmark adds (a region `bench-north` with room for
all of them, static carbon data: every plan starts now, so both runs end with N admissions).

Needs `make cluster-up` (Kueue is started here, cached build):
`.venv/bin/python benchmarks/kueue_admission.py [--jobs 1000] [--concurrency 16] [--timeout 900]`.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from harness.cluster import _hack_env, apply_crds, kubeconfig  # noqa: E402
from harness.operator import OperatorProcess  # noqa: E402
from harness.waiting import wait_for  # noqa: E402

KQ = ("kueue.x-k8s.io", "v1beta2")
REGION = "bench-north"
NS_LABEL = "greentraining.io/kueue"
NODES, GPUS_PER_NODE, PODS_PER_NODE = 12, 96, 110


def node(i: int, suffix: str) -> dict[str, Any]:
    name = f"bench-gpu-{suffix}-{i}"
    res = {"cpu": "96", "memory": "1024Gi", "pods": str(PODS_PER_NODE), "nvidia.com/gpu": str(GPUS_PER_NODE)}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/hostname": name,
                "type": "kwok",
                "topology.kubernetes.io/region": REGION,
                "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3",
            },
        },
        "spec": {},
        "status": {"allocatable": res, "capacity": res},
    }


def job(name: str, annotations: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": {"kueue.x-k8s.io/queue-name": "lq"}},
        "spec": {
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
                                "requests": {"cpu": "100m", "memory": "128Mi"},
                                "limits": {"nvidia.com/gpu": "1"},
                            },
                        }
                    ],
                },
            },
        },
    }


def queues(ns: str, cq: str, check: str | None, jobs: int, flavor_name: str) -> list[tuple[str, str]]:
    custom = client.CustomObjectsApi()
    made: list[tuple[str, str]] = []
    if check:
        body = {"apiVersion": "/".join(KQ), "kind": "AdmissionCheck", "metadata": {"name": check}}
        custom.create_cluster_custom_object(
            *KQ, "admissionchecks", {**body, "spec": {"controllerName": "greentraining.io/carbon"}}
        )
        made.append(("admissionchecks", check))
    spec: dict[str, Any] = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}},
        "resourceGroups": [
            {
                "coveredResources": ["cpu", "memory", "nvidia.com/gpu"],
                "flavors": [
                    {
                        "name": flavor_name,
                        "resources": [
                            {"name": "cpu", "nominalQuota": jobs},
                            {"name": "memory", "nominalQuota": f"{jobs}Gi"},
                            {"name": "nvidia.com/gpu", "nominalQuota": jobs},
                        ],
                    }
                ],
            }
        ],
    }
    if check:
        spec["admissionChecksStrategy"] = {"admissionChecks": [{"name": check}]}
    custom.create_cluster_custom_object(
        *KQ,
        "clusterqueues",
        {"apiVersion": "/".join(KQ), "kind": "ClusterQueue", "metadata": {"name": cq}, "spec": spec},
    )
    made.append(("clusterqueues", cq))
    custom.create_namespaced_custom_object(
        *KQ,
        ns,
        "localqueues",
        {"apiVersion": "/".join(KQ), "kind": "LocalQueue", "metadata": {"name": "lq"}, "spec": {"clusterQueue": cq}},
    )
    return made


def cq_active(name: str) -> bool:
    cq = client.CustomObjectsApi().get_cluster_custom_object(*KQ, "clusterqueues", name)
    return any(
        c["type"] == "Active" and c["status"] == "True" for c in (cq.get("status") or {}).get("conditions") or []
    )


def count(ns: str, pred: Callable[[dict[str, Any]], bool]) -> int:
    items = client.CustomObjectsApi().list_namespaced_custom_object(*KQ, ns, "workloads")["items"]
    return sum(1 for w in items if pred(w))


def admitted(w: dict[str, Any]) -> bool:
    return any(
        c["type"] == "Admitted" and c["status"] == "True" for c in (w.get("status") or {}).get("conditions") or []
    )


def finished(w: dict[str, Any]) -> bool:
    return any(
        c["type"] == "Finished" and c["status"] == "True" for c in (w.get("status") or {}).get("conditions") or []
    )


def decided(check: str) -> Callable[[dict[str, Any]], bool]:
    def pred(w: dict[str, Any]) -> bool:
        entry = next((c for c in (w.get("status") or {}).get("admissionChecks") or [] if c["name"] == check), None)
        planned = "greentraining.io/plan" in (w["metadata"].get("annotations") or {})
        return entry is not None and (entry["state"] == "Ready" or planned)

    return pred


def submit_and_wait(
    ns: str,
    n: int,
    annotations: dict[str, str],
    concurrency: int,
    timeout: float,
    done: Callable[[dict[str, Any]], bool],
) -> tuple[float, float]:
    """(seconds to create the N Jobs, seconds from the first create until `done` holds for all N)."""
    batch = client.BatchV1Api()
    t0 = time.monotonic()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(lambda i: batch.create_namespaced_job(ns, job(f"j-{i:04d}", annotations)), range(n)))
    created = time.monotonic() - t0
    wait_for(lambda: count(ns, done) >= n, timeout=timeout, interval=1.0, message=f"{n} workloads in {ns}")
    return created, time.monotonic() - t0


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--log", type=Path, default=None, help="keep the operator's log here")
    args = ap.parse_args()
    config.load_kube_config(str(kubeconfig()))
    t = time.monotonic()
    subprocess.run(["bash", str(REPO / "hack" / "kueue.sh"), "up"], check=True, capture_output=True, timeout=1800)
    kueue_up = time.monotonic() - t
    apply_crds()
    core, custom = client.CoreV1Api(), client.CustomObjectsApi()
    suffix = uuid.uuid4().hex[:6]
    alone_ns, carbon_ns = f"bench-alone-{suffix}", f"bench-carbon-{suffix}"
    check = f"bench-carbon-{suffix}"
    flavor_name = f"{REGION}-{suffix}"
    made: list[tuple[str, str]] = []
    nodes = [node(i, suffix) for i in range(NODES)]
    op: OperatorProcess | None = None
    with tempfile.TemporaryDirectory() as tmp:
        try:
            for n in nodes:
                core.create_node(n)
            for ns in (alone_ns, carbon_ns):
                core.create_namespace({"metadata": {"name": ns, "labels": {NS_LABEL: "enabled"}}})
            flavor = {
                "metadata": {"name": flavor_name},
                "spec": {"nodeLabels": {"topology.kubernetes.io/region": REGION}},
            }
            custom.create_cluster_custom_object(
                *KQ, "resourceflavors", {"apiVersion": "/".join(KQ), "kind": "ResourceFlavor", **flavor}
            )
            made.append(("resourceflavors", flavor_name))
            made += queues(alone_ns, f"bench-alone-{suffix}", None, args.jobs, flavor_name)
            made += queues(carbon_ns, f"bench-carbon-{suffix}", check, args.jobs, flavor_name)
            cfg = {
                "regions": [{"name": REGION, "carbon": {"staticGramsPerKwh": 200}}],
                "planner": {"slot": "5m", "horizon": "6h"},
                "kueue": {"enabled": True},
            }
            path = Path(tmp) / "config.yaml"
            path.write_text(yaml.safe_dump(cfg))
            op = OperatorProcess(path, carbon_ns, args.log or Path(tmp) / "operator.log").start()
            wait_for(lambda: cq_active(f"bench-carbon-{suffix}") and cq_active(f"bench-alone-{suffix}"), timeout=60)

            created_a, alone = submit_and_wait(alone_ns, args.jobs, {}, args.concurrency, args.timeout, admitted)
            # Let the first run's Jobs finish, so the second does not pay for its clean-up.
            wait_for(lambda: count(alone_ns, finished) >= args.jobs, timeout=args.timeout, interval=2.0)
            ann = {"greentraining.io/estimated-duration": "30m", "greentraining.io/max-delay": "6h"}
            created_c, first = submit_and_wait(
                carbon_ns, args.jobs, ann, args.concurrency, args.timeout, decided(check)
            )
            t_admit = time.monotonic()
            wait_for(lambda: count(carbon_ns, admitted) >= args.jobs, timeout=args.timeout, interval=1.0)
            all_admitted = first + (time.monotonic() - t_admit)
            assert op.running is not None
            op_rss = peak_rss_mib(op.running.process.pid)
            kueue_pid = int((Path(_hack_env("GREEN_STATE")) / "kueue" / "kueue.pid").read_text())
            kueue_rss = peak_rss_mib(kueue_pid)
        finally:
            if op is not None:
                op.stop()
            for ns in (alone_ns, carbon_ns):
                core.delete_namespace(ns, propagation_policy="Background")
            for plural, name in reversed(made):
                custom.delete_cluster_custom_object(*KQ, plural, name)
            for n in nodes:
                core.delete_node(n["metadata"]["name"])
    print(f"jobs: {args.jobs} (concurrency {args.concurrency}); hack/kueue.sh up: {kueue_up:.1f} s")
    print(f"Kueue alone: created in {created_a:.1f} s, all admitted after {alone:.1f} s")
    print(
        f"with the carbon check: created in {created_c:.1f} s, every check decided after {first:.1f} s, "
        f"all admitted after {all_admitted:.1f} s"
    )
    print(
        f"ratio (checks decided / Kueue alone admitted): {first / alone:.2f}; "
        f"(admitted with / without the check): {all_admitted / alone:.2f}"
    )
    print(f"peak RSS: operator {op_rss:.0f} MiB, Kueue manager {kueue_rss:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
