"""Burst benchmark: 1,000 GreenTrainingJobs created at once against the local control plane.

Prints: time until every job has a decision (its child Job created and a phase in status),
p50/p99 create-to-decision latency, the operator's peak RSS, the CPU the operator and the
apiserver spent, how long the operator then works on moving deferred jobs aside for the jobs
planned late during the burst (and how many it saved), and, in the same run, the time to create
1,000 plain suspended Jobs with the same client and concurrency (the raw API cost), with the
ratio between the two. Needs `make cluster-up`; run with `make bench` or
`.venv/bin/python benchmarks/operator_burst.py [--jobs 1000] [--concurrency 16]`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

from kubernetes import client, config, watch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.cluster import kubeconfig, kubectl  # noqa: E402
from tests.support.operator import OperatorProcess  # noqa: E402
from tests.support.waiting import wait_for  # noqa: E402

GROUP, VERSION, PLURAL = "greentraining.io", "v1alpha1", "greentrainingjobs"


def gtj(name: str, i: int) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "GreenTrainingJob",
        "metadata": {"name": name},
        "spec": {
            "estimatedDuration": f"{1 + i % 4}h",
            "schedule": {"maxDelay": f"{4 + i % 20}h"},
            "template": {
                "spec": {
                    "containers": [
                        {"name": "t", "image": "example.invalid/t:1", "resources": {"limits": {"nvidia.com/gpu": 1}}}
                    ]
                }
            },
        },
    }


def plain_job(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "suspend": True,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {"name": "t", "image": "example.invalid/t:1", "resources": {"limits": {"nvidia.com/gpu": "1"}}}
                    ],
                }
            },
        },
    }


def create_all(fn: Any, items: list[Any], concurrency: int) -> tuple[float, dict[str, float]]:
    created: dict[str, float] = {}
    lock = threading.Lock()

    def one(item: Any) -> None:
        name, body = item
        fn(body)
        with lock:
            created[name] = time.monotonic()

    t0 = time.monotonic()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, items))
    return time.monotonic() - t0, created


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def apiserver_pid() -> int | None:
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if b"kube-apiserver" in (proc / "cmdline").read_bytes().split(b"\0")[0]:
                    return int(proc.name)
            except OSError:
                continue
    return None


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def at_risk(custom: client.CustomObjectsApi, ns: str) -> int:
    listed = cast(dict[str, Any], custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL))
    items = listed["items"]
    return sum(
        any(
            c.get("type") == "DeadlineAtRisk" and c.get("status") == "True"
            for c in (o.get("status") or {}).get("conditions") or []
        )
        for o in items
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--timeout", type=float, default=600)
    args = ap.parse_args()

    config.load_kube_config(str(kubeconfig()))
    cfg = client.Configuration.get_default_copy()
    cfg.connection_pool_maxsize = args.concurrency
    api = client.ApiClient(cfg)
    core, batch, custom = client.CoreV1Api(api), client.BatchV1Api(api), client.CustomObjectsApi(api)
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))

    ns = f"bench-{uuid.uuid4().hex[:6]}"
    raw_ns = f"{ns}-raw"
    for n in (ns, raw_ns):
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=n)))
    wait_for(lambda: core.read_namespaced_service_account("default", raw_ns), timeout=60, message="namespace")
    tmp = Path(tempfile.mkdtemp(prefix="green-bench-"))
    op = OperatorProcess(REPO / "examples" / "operator-config.yaml", ns, tmp / "operator.log").start()
    decided: dict[str, float] = {}
    stop = threading.Event()

    def watch_decisions() -> None:
        w = watch.Watch()
        while not stop.is_set():
            for ev in w.stream(custom.list_namespaced_custom_object, GROUP, VERSION, ns, PLURAL, timeout_seconds=5):
                obj = ev["object"]
                phase = (obj.get("status") or {}).get("phase")
                name = obj["metadata"]["name"]
                if phase in ("Deferred", "Running", "Succeeded", "Failed") and name not in decided:
                    decided[name] = time.monotonic()
                if stop.is_set():
                    break

    watcher = threading.Thread(target=watch_decisions, daemon=True)
    watcher.start()
    time.sleep(1.0)  # let the watch establish before the burst
    try:
        names = [f"gtj-{i:05d}" for i in range(args.jobs)]
        assert op.proc is not None
        op_pid, api_pid = op.proc.pid, apiserver_pid()

        def api_cpu_now() -> float:
            return cpu_seconds(api_pid) if api_pid else 0.0

        op_cpu0, api_cpu0 = cpu_seconds(op_pid), api_cpu_now()
        t_start = time.monotonic()
        create_seconds, created = create_all(
            lambda body: custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, body),
            [(n, gtj(n, i)) for i, n in enumerate(names)],
            args.concurrency,
        )
        wait_for(
            lambda: len(decided) >= args.jobs,
            timeout=args.timeout,
            interval=0.5,
            message=lambda: f"decisions ({len(decided)}/{args.jobs})",
        )
        total = max(decided.values()) - t_start
        latencies = [decided[n] - created[n] for n in names]
        jobs = batch.list_namespaced_job(ns).items
        op_cpu = cpu_seconds(op_pid) - op_cpu0
        api_cpu = api_cpu_now() - api_cpu0
        rss_decided = peak_rss_mib(op_pid)
        late_at_decision = at_risk(custom, ns)
        # After the burst, jobs planned late try moving deferred jobs aside: wait until the
        # operator is idle again (under 2% of a core over a second).
        t_decided = time.monotonic()
        settle_cpu0 = last = cpu_seconds(op_pid)
        while time.monotonic() - t_decided < args.timeout:
            time.sleep(1.0)  # a sampling interval, not a wait for a condition
            cpu = cpu_seconds(op_pid)
            if cpu - last < 0.02:
                break
            last = cpu
        settle_seconds = time.monotonic() - t_decided - 1.0
        settle_cpu = last - settle_cpu0
        late_after = at_risk(custom, ns)
        rss = peak_rss_mib(op_pid)
        api_cpu1 = api_cpu_now()

        raw_seconds, _ = create_all(
            lambda body: batch.create_namespaced_job(raw_ns, body),
            [(f"job-{i:05d}", plain_job(f"job-{i:05d}")) for i in range(args.jobs)],
            args.concurrency,
        )
        raw_api_cpu = api_cpu_now() - api_cpu1
    finally:
        stop.set()
        op.stop()
        for n in (ns, raw_ns):
            core.delete_namespace(n, propagation_policy="Background")

    print(f"operator burst: {args.jobs} GreenTrainingJobs, {args.concurrency} concurrent creators")
    print(f"  creating the GreenTrainingJobs took      {create_seconds:7.2f} s")
    print(f"  until every job had a decision            {total:7.2f} s")
    print(
        f"  create-to-decision latency  p50 {statistics.median(latencies) * 1000:7.0f} ms   "
        f"p99 {pct(latencies, 0.99) * 1000:7.0f} ms   max {max(latencies) * 1000:7.0f} ms"
    )
    print(f"  child Jobs created                        {len(jobs):7d}")
    print(f"  operator peak RSS                         {rss:7.1f} MiB ({rss_decided:.1f} MiB when all had decisions)")
    print(
        f"  CPU during the burst: operator {op_cpu:6.1f} s, kube-apiserver {api_cpu:6.1f} s "
        f"(raw Jobs: kube-apiserver {raw_api_cpu:5.1f} s)"
    )
    print(
        f"  then moving deferred jobs aside for late ones: {settle_seconds:5.1f} s, operator CPU {settle_cpu:5.1f} s; "
        f"deadlines at risk {late_at_decision} -> {late_after}"
    )
    print(f"  raw creation of {args.jobs} plain Jobs          {raw_seconds:7.2f} s")
    print(f"  ratio (time to all decisions / raw)       {total / raw_seconds:7.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
