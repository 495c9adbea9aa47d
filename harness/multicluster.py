"""The local MultiKueue stack (hack/multicluster.sh): a manager cluster and worker clusters, one region
each. Starts and stops it, and reads its description (stack.json) into clients for each cluster.

    with running_stack(root) as stack:          # `up`, then always `down`
        batch = client.BatchV1Api(stack.manager.api())
        stack.worker("worker-a").region          # "europe-west3"
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from harness.cluster import REPO, kubectl

SCRIPT = REPO / "hack" / "multicluster.sh"
KUEUE_GROUP, KUEUE_VERSION = "kueue.x-k8s.io", "v1beta2"
APPLY_PATCH = "application/apply-patch+yaml"
ADMISSION_FIELD_MANAGER = "kueue-admission"
"""Kueue applies a Workload's whole admission status under this field manager; a nomination must too."""


def default_root() -> Path:
    """$GREEN_MULTICLUSTER, else the script's default (under $GREEN_CACHE)."""
    if os.environ.get("GREEN_MULTICLUSTER"):
        return Path(os.environ["GREEN_MULTICLUSTER"])
    cache = os.environ.get("GREEN_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "green-training"
    )
    return Path(cache) / "multicluster"


@dataclass(frozen=True)
class Cluster:
    name: str
    state: Path
    """The cluster's GREEN_STATE (pids/, logs/, ports.env, kueue/)."""
    admin_kubeconfig: Path

    @cached_property
    def _api(self) -> Any:
        from kubernetes import config

        return config.new_client_from_config(config_file=str(self.admin_kubeconfig))

    def api(self) -> Any:
        """A kubernetes.client.ApiClient for this cluster (admin), shared by the calls on it."""
        return self._api

    def kubectl(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return kubectl(*args, check=check, kubeconfig_path=self.admin_kubeconfig, timeout=timeout)

    def ports(self) -> dict[str, int]:
        """The control plane's ports (hack/cluster.sh's ports.env) and Kueue's, when they run."""
        ports: dict[str, int] = {}
        for path in (self.state / "ports.env", self.state / "kueue" / "ports.env"):
            if path.exists():
                for line in path.read_text().split():
                    key, _, value = line.partition("=")
                    ports[key] = int(value)
        return ports


@dataclass(frozen=True)
class Worker(Cluster):
    region: str
    grid_zone: str | None
    gpus: int
    gpu_product: str
    kubeconfig: Path
    """Credentials inline, for MultiKueue's Secret and for mounting into the operator."""
    secret: str
    """The kubeconfig Secret's name in the manager's kueue-system."""
    cluster_queue: str


@dataclass(frozen=True)
class Stack:
    root: Path
    dispatcher_name: str
    worker_lost_timeout: str
    namespace: str
    """A namespace with the LocalQueue in every cluster (tests usually bring their own)."""
    local_queue: str
    namespace_label: Mapping[str, str]
    """The label that makes a namespace Kueue-managed (and selected by every ClusterQueue)."""
    manager: Cluster
    manager_cluster_queue: str
    admission_check: str
    multikueue_config: str
    workers: tuple[Worker, ...]

    @classmethod
    def load(cls, root: Path) -> Stack:
        path = root / "stack.json"
        if not path.exists():
            raise FileNotFoundError(f"no stack at {root} (no stack.json): run hack/multicluster.sh up")
        d = json.loads(path.read_text())
        m = d["manager"]
        return cls(
            root=root,
            dispatcher_name=d["dispatcherName"],
            worker_lost_timeout=d["workerLostTimeout"],
            namespace=d["namespace"],
            local_queue=d["localQueue"],
            namespace_label=d["namespaceLabel"],
            manager=Cluster(m["name"], Path(m["state"]), Path(m["adminKubeconfig"])),
            manager_cluster_queue=m["clusterQueue"],
            admission_check=m["admissionCheck"],
            multikueue_config=m["multiKueueConfig"],
            workers=tuple(
                Worker(
                    w["name"],
                    Path(w["state"]),
                    Path(w["adminKubeconfig"]),
                    region=w["region"],
                    grid_zone=w.get("gridZone"),
                    gpus=int(w["gpus"]),
                    gpu_product=w["gpuProduct"],
                    kubeconfig=Path(w["kubeconfig"]),
                    secret=w["secret"],
                    cluster_queue=w["clusterQueue"],
                )
                for w in d["workers"]
            ),
        )

    def worker(self, name: str) -> Worker:
        for w in self.workers:
            if w.name == name:
                return w
        raise KeyError(f"no worker cluster {name!r} (workers: {[w.name for w in self.workers]})")

    @property
    def clusters(self) -> tuple[Cluster, ...]:
        return (self.manager, *self.workers)

    def worker_lost_seconds(self) -> float:
        return duration_seconds(self.worker_lost_timeout)

    def up_seconds(self) -> float | None:
        path = self.root / "up.seconds"
        return float(path.read_text()) if path.exists() else None


def duration_seconds(text: str) -> float:
    """A Go duration of hours, minutes and seconds ("30s", "1m30s") in seconds."""
    parts = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?", text)
    if not text or parts is None:
        raise ValueError(f"workerLostTimeout {text!r} is not a duration like 30s or 1m30s")
    h, m, s = (float(p or 0) for p in parts.groups())
    return h * 3600 + m * 60 + s


def multicluster_sh(
    command: str, root: Path, env: Mapping[str, str] | None = None, timeout: float = 900
) -> tuple[float, str]:
    """Run hack/multicluster.sh <command> for the stack at ``root``; (seconds taken, stdout)."""
    t0 = time.monotonic()
    done = subprocess.run(
        ["bash", str(SCRIPT), command],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {}), "GREEN_MULTICLUSTER": str(root)},
    )
    if done.returncode != 0:
        raise AssertionError(f"hack/multicluster.sh {command} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return time.monotonic() - t0, done.stdout


@contextmanager
def running_stack(root: Path | None = None, env: Mapping[str, str] | None = None) -> Iterator[Stack]:
    """The stack for the duration of the block: `up`, then `down` whatever happens (a failed `up` too)."""
    root = root or default_root()
    try:
        multicluster_sh("up", root, env)
        yield Stack.load(root)
    finally:
        multicluster_sh("down", root, env, timeout=180)


def processes_under(root: Path) -> list[tuple[int, str]]:
    """Processes whose command line names a path under ``root``: every component of the stack does
    (data dirs, certificates, kubeconfigs, configs), so none left means nothing leaked."""
    needle = str(root).rstrip("/") + "/"
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if needle in cmdline and state != "Z":
            found.append((int(entry.name), cmdline[:200]))
    return found


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def rss_bytes(cluster: Cluster) -> dict[str, int]:
    """Resident memory of each running process of the cluster (its control plane and Kueue/JobSet),
    by the pids hack/cluster.sh and hack/kueue.sh recorded."""
    out: dict[str, int] = {}
    for pidfile in [*cluster.state.glob("pids/*.pid"), *cluster.state.glob("kueue/*.pid")]:
        try:
            status = Path(f"/proc/{int(pidfile.read_text())}/status").read_text()
        except (OSError, ValueError):
            continue
        kib = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
        out[pidfile.stem] = kib * 1024
    return out


# -- Kueue objects through a cluster's client ----------------------------------------------------


def custom(cluster: Cluster) -> Any:
    """A kubernetes.client.CustomObjectsApi on this cluster."""
    from kubernetes import client

    return client.CustomObjectsApi(cluster.api())


def workloads(cluster: Cluster, namespace: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = custom(cluster).list_namespaced_custom_object(
        KUEUE_GROUP, KUEUE_VERSION, namespace, "workloads"
    )["items"]
    return items


def workload_of(cluster: Cluster, namespace: str, owner: str) -> dict[str, Any] | None:
    for wl in workloads(cluster, namespace):
        if any(o.get("name") == owner for o in wl["metadata"].get("ownerReferences") or []):
            return wl
    return None


def nominate(cluster: Cluster, wl: dict[str, Any], workers: list[str]) -> dict[str, Any]:
    """Write status.nominatedClusterNames as Kueue's own external-dispatcher test does
    (test/integration/multikueue/dispatcher_test.go, workload.PatchAdmissionStatus): the whole
    admission status as read, with its resourceVersion, server-side applied to the status as
    `kueue-admission`. A stale read fails with 409 Conflict: read again and retry."""
    meta = wl["metadata"]
    body = {
        "apiVersion": f"{KUEUE_GROUP}/{KUEUE_VERSION}",
        "kind": "Workload",
        "metadata": {"name": meta["name"], "namespace": meta["namespace"], "resourceVersion": meta["resourceVersion"]},
        "status": {**wl["status"], "nominatedClusterNames": workers},
    }
    result: dict[str, Any] = custom(cluster).patch_namespaced_custom_object_status(
        KUEUE_GROUP,
        KUEUE_VERSION,
        meta["namespace"],
        "workloads",
        meta["name"],
        body,
        field_manager=ADMISSION_FIELD_MANAGER,
        force=True,
        _content_type=APPLY_PATCH,
    )
    return result


def condition_status(obj: dict[str, Any] | None, kind: str) -> str | None:
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == kind:
            return str(c.get("status"))
    return None


def dispatch(cluster: Cluster, namespace: str, owner: str, worker: str, timeout: float = 60) -> dict[str, Any]:
    """Nominate ``worker`` for the Workload of ``owner`` until MultiKueue takes it (``status.clusterName``
    set); returns that Workload. A nomination can be lost: in the seconds after quota reservation Kueue
    applies the admission status again as `kueue-admission`, from an object read before ours, and the
    field goes (2 of 7 tries on the local stack, force or not). Neither field set means it was lost,
    since Kueue sets clusterName and clears the nomination in one write: nominate again."""
    from harness.waiting import wait_for

    def taken() -> dict[str, Any] | None:
        wl = workload_of(cluster, namespace, owner)
        if wl is None:
            return None
        status = wl.get("status") or {}
        if status.get("clusterName"):
            return wl
        if not status.get("nominatedClusterNames"):
            nominate(cluster, wl, [worker])  # a stale read gets 409: the next round reads again
        return None

    return wait_for(taken, timeout=timeout, interval=0.5, message=f"MultiKueue to take {owner} to {worker}")
