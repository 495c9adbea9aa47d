"""Burst benchmark: 1,000 GreenTrainingJobs created at once against the local control plane.

Prints: time until every job has a decision (a phase in status; a deferred job's suspended child
may come after the burst's decisions, and is counted once the operator is idle),
p50/p99 create-to-decision latency, the operator's peak RSS, the CPU the operator and the
apiserver spent, how long the operator then works on moving deferred jobs aside for the jobs
planned late during the burst (and how many it saved), and, in the same run, the time to create
1,000 plain suspended Jobs with the same client and concurrency (the raw API cost), with the
ratio between the two; last, the same GreenTrainingJobs created with no operator running (the
floor the custom resource itself sets). Needs `make cluster-up`; run with `make bench` or
`.venv/bin/python benchmarks/operator_burst.py [--jobs 1000] [--concurrency 16] [--timeout 600]
[--trace-hour 12]`. The example configuration replays its traces on the wall clock, so which jobs
start at once (and the burst's load with them) changed with the hour a run was made at; the
benchmark runs the operator on that configuration with the traces shifted to show a fixed hour.
Prints the apiserver's own request counts per job (its /metrics), by verb and resource, for the
burst and for the moves after it. The watch that times decisions runs in a process of its own, so
the creating threads' hold on the GIL does not delay it; the latency by the objects' own clocks
(creationTimestamp to the first plan's decidedAt) is printed beside it. Every wait is bounded
(`--timeout` for the decisions, every API call by REQUEST_TIMEOUT): a run that cannot finish ends
with an error and exit status 1 instead of hanging.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import re
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, cast

import urllib3
import yaml
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from harness.cluster import apply_crds, component_pid, kubeconfig  # noqa: E402
from harness.operator import OperatorProcess  # noqa: E402
from harness.waiting import WaitTimeoutError, wait_for  # noqa: E402

GROUP, VERSION, PLURAL = "greentraining.io", "v1alpha1", "greentrainingjobs"
DECIDED_PHASES = ("Deferred", "Starting", "Running", "Succeeded", "Failed")
REQUEST_TIMEOUT = 30.0
"""Client-side limit on every API call: a connection that stalls fails instead of hanging the run."""
WATCH_SECONDS = 30
# The list must be read again: 410 Gone (the watch's version was compacted) or 504 "Too large resource
# version" (a freshly restarted apiserver's watch cache is behind the version it was asked for). A
# throttled or unavailable apiserver (429, 500, 503) is asked again too.
RELIST = {410, 429, 500, 503, 504}


class WatchError(RuntimeError):
    """The watch on the GreenTrainingJobs stopped on an error it cannot recover from."""


class DecisionWatch:
    """When each GreenTrainingJob first had a decision (a phase past Pending), from a list then a watch
    from the list's resourceVersion, so nothing between the two is missed. A watch that ends is resumed
    from the last version seen; one the apiserver refuses (RELIST) starts over from a fresh list. Any
    other error is kept in ``error`` and ends the thread: waiters check it instead of waiting forever.

    ``list_jobs()`` returns the list (items and metadata.resourceVersion); ``watch_jobs(rv)`` yields raw
    watch events from ``rv`` and raises ApiException on an error event or response.
    """

    def __init__(
        self,
        list_jobs: Callable[[], dict[str, Any]],
        watch_jobs: Callable[[str], Iterator[dict[str, Any]]],
        *,
        clock: Callable[[], float] = time.monotonic,
        retry_pause: float = 0.5,
    ) -> None:
        self._list_jobs = list_jobs
        self._watch_jobs = watch_jobs
        self._clock = clock
        self._retry_pause = retry_pause
        self.decided: dict[str, float] = {}
        self.server_seconds: dict[str, float] = {}
        """Per job, its first plan's decidedAt minus its creationTimestamp: the operator's side of
        the latency by the objects' own clocks (1-second resolution), free of this client's delays."""
        self.relists = 0
        self.resumes = 0
        self.error: BaseException | None = None
        self.listed = threading.Event()
        self.stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="decision-watch", daemon=True)

    def start(self) -> DecisionWatch:
        self._thread.start()
        return self

    def stop(self, timeout: float = WATCH_SECONDS + 15) -> None:
        self.stopped.set()
        self._thread.join(timeout)

    def check(self) -> None:
        err = self.error
        if err is not None:
            detail = f"HTTP {err.status} {err.reason}" if isinstance(err, ApiException) else repr(err)
            raise WatchError(f"the watch on GreenTrainingJobs failed: {detail}") from err

    def _record(self, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        status = obj.get("status") or {}
        if status.get("phase") in DECIDED_PHASES and name not in self.decided:
            self.decided[name] = self._clock()
            decided_at = (status.get("plan") or {}).get("decidedAt")
            created = obj["metadata"].get("creationTimestamp")
            if decided_at and created:
                self.server_seconds[name] = (_parse_time(decided_at) - _parse_time(created)).total_seconds()

    def _list(self) -> str:
        listed = self._list_jobs()
        for obj in listed["items"]:
            self._record(obj)
        self.listed.set()
        return str(listed["metadata"]["resourceVersion"])

    def _watch(self, rv: str) -> str:
        """Watch from ``rv`` until the server ends the watch; the last version seen."""
        for event in self._watch_jobs(rv):
            obj = event["object"]
            rv = obj["metadata"].get("resourceVersion") or rv
            if event["type"] in ("ADDED", "MODIFIED"):
                self._record(obj)
            if self.stopped.is_set():
                break
        return rv

    def _run(self) -> None:
        rv: str | None = None
        try:
            while not self.stopped.is_set():
                try:
                    if rv is None:
                        rv = self._list()
                    rv = self._watch(rv)
                except ApiException as exc:
                    if exc.status not in RELIST:
                        raise
                    rv = None
                    self.relists += 1
                    self.stopped.wait(self._retry_pause)
                except urllib3.exceptions.HTTPError:
                    # The connection dropped or stalled past its timeout: resume from the last version.
                    self.resumes += 1
                    self.stopped.wait(self._retry_pause)
        except BaseException as exc:  # kept for the waiter, which ends the run with it
            self.error = exc

    def wait_listed(self, timeout: float) -> None:
        wait_for(lambda: self.listed.is_set() or self.error is not None, timeout=timeout, message="the first list")
        self.check()

    def wait_decided(self, names: list[str], timeout: float) -> None:
        """Until every one of ``names`` has a decision; raises WatchError or WaitTimeoutError, never hangs."""
        wait_for(
            lambda: self.error is not None or all(n in self.decided for n in names),
            timeout=timeout,
            interval=0.5,
            message=lambda: (
                f"decisions ({len(self.decided)}/{len(names)}; {self.relists} re-lists, {self.resumes} resumed watches)"
            ),
        )
        self.check()


def job_watch(custom: client.CustomObjectsApi, ns: str) -> DecisionWatch:
    def list_jobs() -> dict[str, Any]:
        listed = custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, _request_timeout=REQUEST_TIMEOUT)
        return cast(dict[str, Any], listed)

    def watch_jobs(rv: str) -> Iterator[dict[str, Any]]:
        # timeout_seconds: the server ends the watch; _request_timeout: so does the client if it stalls.
        # The client's own retry after a 410 is off with timeout_seconds: DecisionWatch re-lists instead.
        w = watch.Watch()
        stream = w.stream(
            custom.list_namespaced_custom_object,
            GROUP,
            VERSION,
            ns,
            PLURAL,
            resource_version=rv,
            allow_watch_bookmarks=True,
            timeout_seconds=WATCH_SECONDS,
            _request_timeout=WATCH_SECONDS + 10,
        )
        for event in stream:
            yield {"type": event["type"], "object": event["raw_object"]}

    return DecisionWatch(list_jobs, watch_jobs)


class WatchProcess:
    """The decision watch in a process of its own: in this one, sixteen creating threads hold the
    GIL, and a watch event read late would count the benchmark's own delay as the operator's. The
    creators and the watch stamp time with the same system-wide monotonic clock."""

    def __init__(self, namespace: str) -> None:
        ctx = multiprocessing.get_context("fork")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_watch_child, args=(namespace, child), daemon=True)
        self.decided: dict[str, float] = {}
        self.server_seconds: dict[str, float] = {}

    def start(self) -> WatchProcess:
        self._proc.start()
        return self

    def _ask(self, request: tuple[Any, ...], timeout: float) -> Any:
        self._conn.send(request)
        if not self._conn.poll(timeout):
            raise WatchError(f"the watch process did not answer {request[0]!r} within {timeout:.0f} s")
        kind, value = self._conn.recv()
        if kind == "timeout":
            raise WaitTimeoutError(value)
        if kind == "error":
            raise WatchError(value)
        return value

    def wait_listed(self, timeout: float) -> None:
        self._ask(("listed", timeout), timeout + 30)

    def wait_decided(self, names: list[str], timeout: float) -> None:
        self._ask(("decided", names, timeout), timeout + 30)
        self.decided, self.server_seconds = self._ask(("result",), 30)

    def stop(self) -> None:
        with contextlib.suppress(OSError, WatchError):
            self._ask(("stop",), 30)
        self._proc.join(WATCH_SECONDS + 15)
        if self._proc.is_alive():
            self._proc.kill()


def _watch_child(namespace: str, conn: Connection) -> None:
    """Serves the parent's requests on ``conn`` while a DecisionWatch runs in a thread."""
    config.load_kube_config(str(kubeconfig()))
    watcher = job_watch(client.CustomObjectsApi(client.ApiClient()), namespace).start()
    while True:
        request = conn.recv()
        try:
            match request:
                case ("listed", timeout):
                    watcher.wait_listed(timeout)
                    conn.send(("ok", None))
                case ("decided", names, timeout):
                    watcher.wait_decided(names, timeout)
                    conn.send(("ok", None))
                case ("result",):
                    conn.send(("ok", (dict(watcher.decided), dict(watcher.server_seconds))))
                case _:
                    watcher.stop()
                    conn.send(("ok", None))
                    return
        except WaitTimeoutError as exc:
            conn.send(("timeout", str(exc)))
        except WatchError as exc:
            conn.send(("error", str(exc)))


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


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


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def at_risk(custom: client.CustomObjectsApi, ns: str) -> int:
    listed = cast(
        dict[str, Any],
        custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, _request_timeout=REQUEST_TIMEOUT),
    )
    items = listed["items"]
    return sum(
        any(
            c.get("type") == "DeadlineAtRisk" and c.get("status") == "True"
            for c in (o.get("status") or {}).get("conditions") or []
        )
        for o in items
    )


def request_counts(api: client.ApiClient) -> Counter[str]:
    """The apiserver's own count of requests served, by verb and resource (from its /metrics)."""
    method, url, headers, body, post = api.param_serialize("GET", "/metrics", auth_settings=["BearerToken"])
    resp = api.call_api(method, url, headers, body, post, _request_timeout=REQUEST_TIMEOUT)
    text = resp.read().decode()
    counts: Counter[str] = Counter()
    for line in text.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}", 1)[0]))
        if not labels.get("resource") or labels.get("verb") == "WATCH":
            continue
        sub = f"/{labels['subresource']}" if labels.get("subresource") else ""
        counts[f"{labels['verb']} {labels['resource']}{sub}"] += int(float(line.rsplit(" ", 1)[1]))
    return counts


def requests_line(before: Counter[str], after: Counter[str], per: int) -> str:
    delta = after - before
    top = ", ".join(f"{k} {v / per:.2f}" for k, v in delta.most_common(8))
    return f"{sum(delta.values()) / per:.2f} per job ({top})"


def operator_config(tmp: Path, trace_hour: str, now: datetime | None = None) -> Path:
    """The example configuration, its replayed traces anchored so that now shows ``trace_hour``
    of each trace's first replayed day (whole hours: the minutes stay the clock's, so rows and
    planning slots line up as they do on the wall clock). Which jobs start at once, and which wait,
    depends on the hour the traces show, and with it the burst's load."""
    example = REPO / "examples" / "operator-config.yaml"
    if trace_hour == "now":
        return example
    doc = yaml.safe_load(example.read_text())
    shift = timedelta(hours=int(trace_hour) - (now or datetime.now(UTC)).hour)
    for provider in doc["providers"].values():
        if provider.get("type") == "trace":
            provider["files"] = {z: str((example.parent / f).resolve()) for z, f in provider["files"].items()}
            if provider.get("shift") == "toNow":
                anchor = datetime.fromisoformat(str(provider["anchor"]).replace("Z", "+00:00"))
                provider["anchor"] = (anchor + shift).isoformat()
    path = tmp / "operator-config.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument(
        "--trace-hour",
        default="12",
        help="the hour (0-23) of the traces' first replayed day shown at the burst's start, so that runs at any "
        "time of day see the same forecasts; 'now' replays on the wall clock as the example configuration does "
        "(default: %(default)s)",
    )
    args = ap.parse_args()

    config.load_kube_config(str(kubeconfig()))
    cfg = client.Configuration.get_default_copy()
    cfg.connection_pool_maxsize = args.concurrency
    api = client.ApiClient(cfg)
    core, batch, custom = client.CoreV1Api(api), client.BatchV1Api(api), client.CustomObjectsApi(api)
    apply_crds()

    ns = f"bench-{uuid.uuid4().hex[:6]}"
    raw_ns = f"{ns}-raw"
    for n in (ns, raw_ns):
        core.create_namespace(
            client.V1Namespace(metadata=client.V1ObjectMeta(name=n)), _request_timeout=REQUEST_TIMEOUT
        )
    wait_for(
        lambda: core.read_namespaced_service_account("default", raw_ns, _request_timeout=REQUEST_TIMEOUT),
        timeout=60,
        message="namespace",
    )
    tmp = Path(tempfile.mkdtemp(prefix="green-bench-"))
    op = OperatorProcess(operator_config(tmp, args.trace_hour), ns, tmp / "operator.log").start()
    watcher = WatchProcess(ns).start()
    try:
        # Listed before the burst, and watched from that list's version: no decision is missed.
        watcher.wait_listed(timeout=60)
        names = [f"gtj-{i:05d}" for i in range(args.jobs)]
        op_pid, api_pid = op.pid, component_pid("kube-apiserver")

        def api_cpu_now() -> float:
            return cpu_seconds(api_pid) if api_pid else 0.0

        op_cpu0, api_cpu0 = cpu_seconds(op_pid), api_cpu_now()
        requests0 = request_counts(api)
        t_start = time.monotonic()
        create_seconds, created = create_all(
            lambda body: custom.create_namespaced_custom_object(
                GROUP, VERSION, ns, PLURAL, body, _request_timeout=REQUEST_TIMEOUT
            ),
            [(n, gtj(n, i)) for i, n in enumerate(names)],
            args.concurrency,
        )
        watcher.wait_decided(names, timeout=args.timeout)
        decided = dict(watcher.decided)
        total = max(decided[n] for n in names) - t_start
        latencies = [decided[n] - created[n] for n in names]
        jobs = batch.list_namespaced_job(ns, _request_timeout=REQUEST_TIMEOUT).items
        op_cpu = cpu_seconds(op_pid) - op_cpu0
        api_cpu = api_cpu_now() - api_cpu0
        rss_decided = peak_rss_mib(op_pid)
        requests1 = request_counts(api)
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
        requests2 = request_counts(api)
        jobs_settled = batch.list_namespaced_job(ns, _request_timeout=REQUEST_TIMEOUT).items
        settle_api_cpu = api_cpu_now() - api_cpu0 - api_cpu
        events = Counter(
            f"{(e.source.component if e.source else None) or e.reporting_component}/{e.reason}"
            for e in core.list_namespaced_event(ns, _request_timeout=REQUEST_TIMEOUT).items
        )
        rss = peak_rss_mib(op_pid)
        api_cpu1 = api_cpu_now()

        raw_seconds, _ = create_all(
            lambda body: batch.create_namespaced_job(raw_ns, body, _request_timeout=REQUEST_TIMEOUT),
            [(f"job-{i:05d}", plain_job(f"job-{i:05d}")) for i in range(args.jobs)],
            args.concurrency,
        )
        raw_api_cpu = api_cpu_now() - api_cpu1
        # The floor: the same GreenTrainingJobs created with no operator running (the custom
        # resource's own cost at the apiserver: schema and CEL validation, unstructured objects).
        watcher.stop()
        op.stop()
        floor_seconds, _ = create_all(
            lambda body: custom.create_namespaced_custom_object(
                GROUP, VERSION, raw_ns, PLURAL, body, _request_timeout=REQUEST_TIMEOUT
            ),
            [(f"floor-{i:05d}", gtj(f"floor-{i:05d}", i)) for i in range(args.jobs)],
            args.concurrency,
        )
    finally:
        watcher.stop()
        op.stop()
        for n in (ns, raw_ns):
            core.delete_namespace(n, propagation_policy="Background", _request_timeout=REQUEST_TIMEOUT)

    print(f"operator burst: {args.jobs} GreenTrainingJobs, {args.concurrency} concurrent creators")
    print(f"  creating the GreenTrainingJobs took      {create_seconds:7.2f} s")
    print(f"  until every job had a decision            {total:7.2f} s")
    print(
        f"  create-to-decision latency  p50 {statistics.median(latencies) * 1000:7.0f} ms   "
        f"p99 {pct(latencies, 0.99) * 1000:7.0f} ms   max {max(latencies) * 1000:7.0f} ms"
    )
    by_creation = [decided[n] - created[n] for n in sorted(names, key=lambda n: created[n])]
    tenth = max(len(by_creation) // 10, 1)
    deciles = [statistics.median(by_creation[i : i + tenth]) for i in range(0, len(by_creation), tenth)]
    print(f"  median latency by tenth of the creations, ms: {' '.join(f'{d * 1000:.0f}' for d in deciles)}")
    server = list(watcher.server_seconds.values())
    if server:
        print(
            f"  the same by the objects' clocks (creationTimestamp to plan.decidedAt, 1 s resolution): "
            f"mean {statistics.mean(server):.1f} s, p99 {pct(server, 0.99):.0f} s"
        )
    print(f"  child Jobs when all had decisions         {len(jobs):7d} (once idle: {len(jobs_settled)})")
    print(f"  operator peak RSS                         {rss:7.1f} MiB ({rss_decided:.1f} MiB when all had decisions)")
    print(
        f"  CPU during the burst: operator {op_cpu:6.1f} s, kube-apiserver {api_cpu:6.1f} s "
        f"(raw Jobs: kube-apiserver {raw_api_cpu:5.1f} s)"
    )
    print(
        f"  then moving deferred jobs aside for late ones, and the deferred jobs' children: {settle_seconds:5.1f} s, "
        f"operator CPU {settle_cpu:5.1f} s, kube-apiserver {settle_api_cpu:5.1f} s; "
        f"deadlines at risk {late_at_decision} -> {late_after}"
    )
    print(f"  apiserver requests until all decided: {requests_line(requests0, requests1, args.jobs)}")
    print(f"  apiserver requests while moving aside: {requests_line(requests1, requests2, args.jobs)}")
    print(f"  Events in the namespace by source/reason: {', '.join(f'{k} {v}' for k, v in events.most_common(8))}")
    print(f"  raw creation of {args.jobs} plain Jobs          {raw_seconds:7.2f} s")
    print(f"  ratio (time to all decisions / raw)       {total / raw_seconds:7.2f}x")
    print(
        f"  the same GreenTrainingJobs created with no operator running: {floor_seconds:5.2f} s, "
        f"{floor_seconds / raw_seconds:.2f}x the raw Jobs"
    )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (WaitTimeoutError, WatchError) as exc:
        print(f"operator_burst: {exc}", file=sys.stderr)
        sys.exit(1)
