"""Files of the local MultiKueue stack (hack/multicluster.sh): the plan (stack.json, nodes files,
ports), then, once the clusters run, the workers' inline kubeconfigs and each cluster's Kueue objects.

    stack.py plan <root> <dispatcher> <lost timeout> <namespace> <queue> <worker=region>...
    stack.py objects <root>

Everything it writes lives under <root>; stack.json describes the stack for tests, benchmarks and the
operator (harness/multicluster.py reads it).
"""

from __future__ import annotations

import base64
import json
import socket
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import yaml

HACK = Path(__file__).resolve().parents[1]
NODES = HACK / "cluster" / "nodes.yaml"
OPERATOR_CONFIG = HACK.parent / "examples" / "operator-config.yaml"
KUEUE = "kueue.x-k8s.io/v1beta2"
NS_LABEL = "greentraining.io/kueue"
PORT_VARS = ("ETCD_PORT", "ETCD_PEER_PORT", "API_PORT", "KCM_PORT", "SCHED_PORT", "KWOK_PORT")
# Names of the Kueue objects: fixed, so tests and the operator's configuration can name them.
MANAGER_CLUSTER_QUEUE = "green-dispatch"
WORKER_CLUSTER_QUEUE = "green-worker"
ADMISSION_CHECK = "green-multikueue"
MULTIKUEUE_CONFIG = "green-multikueue"
MANAGER_FLAVOR = "multikueue"


def die(message: str) -> None:
    sys.exit(f"multicluster: error: {message}")


def free_ports(n: int) -> list[int]:
    """n distinct free ports, held together while picked so the clusters starting in parallel never
    get the same one (hack/cluster.sh's own pick checks one port at a time)."""
    with ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]


def grid_zones() -> dict[str, str]:
    """Region -> grid zone, as the example operator configuration maps them (for stack.json)."""
    try:
        config = yaml.safe_load(OPERATOR_CONFIG.read_text())
        return {r["name"]: r["carbon"]["zone"] for r in config["regions"]}
    except (OSError, KeyError, TypeError):
        return {}


def plan(root: Path, dispatcher: str, lost_timeout: str, namespace: str, queue: str, workers: list[str]) -> None:
    regions = {r["name"]: r for r in yaml.safe_load(NODES.read_text())["regions"]}
    pairs: list[tuple[str, str]] = []
    for spec in workers:
        name, sep, region = spec.partition("=")
        if not sep or not name or not region:
            die(f"GREEN_MC_WORKERS: '{spec}' is not <cluster>=<region> (e.g. worker-a=europe-west3)")
        if region not in regions:
            die(f"GREEN_MC_WORKERS: region '{region}' of {name} is not in {NODES} (one of: {', '.join(regions)})")
        if name == "manager" or name in {n for n, _ in pairs}:
            die(f"GREEN_MC_WORKERS: cluster name '{name}' is used twice (or is 'manager')")
        pairs.append((name, region))
    if len(pairs) < 1:
        die("GREEN_MC_WORKERS names no worker")
    zones = grid_zones()
    ports = iter(free_ports(len(PORT_VARS) * (len(pairs) + 1)))
    root.mkdir(parents=True, exist_ok=True)
    (root / "kubeconfigs").mkdir(exist_ok=True)

    def cluster(name: str, region_names: list[str]) -> dict[str, Any]:
        state = root / name
        state.mkdir(exist_ok=True)
        nodes = {"regions": [regions[r] for r in region_names]}
        (state / "nodes.yaml").write_text(yaml.safe_dump(nodes, sort_keys=False))
        (state / "ports.in").write_text("".join(f"GREEN_{v}={next(ports)}\n" for v in PORT_VARS))
        return {"name": name, "state": str(state), "adminKubeconfig": str(state / "kubeconfig")}

    workers_out = []
    for name, region in pairs:
        r = regions[region]
        workers_out.append(
            {
                **cluster(name, [region]),
                "region": region,
                "gridZone": zones.get(region),
                "gpus": int(r["nodes"]) * int(r["gpusPerNode"]),
                "gpuProduct": r["gpuProduct"],
                "kubeconfig": str(root / "kubeconfigs" / f"{name}.kubeconfig"),
                "secret": f"{name}-kubeconfig",
                "clusterQueue": WORKER_CLUSTER_QUEUE,
            }
        )
    stack = {
        "root": str(root),
        "dispatcherName": dispatcher,
        "workerLostTimeout": lost_timeout,
        "namespace": namespace,
        "localQueue": queue,
        "namespaceLabel": {NS_LABEL: "enabled"},
        "manager": {
            **cluster("manager", []),
            "clusterQueue": MANAGER_CLUSTER_QUEUE,
            "admissionCheck": ADMISSION_CHECK,
            "multiKueueConfig": MULTIKUEUE_CONFIG,
            "secretNamespace": "kueue-system",
        },
        "workers": workers_out,
    }
    (root / "stack.json").write_text(json.dumps(stack, indent=2) + "\n")


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def inline_kubeconfig(state: Path, name: str) -> str:
    """The cluster's admin credentials with the certificates inline: MultiKueue refuses kubeconfigs
    that name files, and the file can be mounted into the operator as it is."""
    ports = dict(line.split("=", 1) for line in (state / "ports.env").read_text().split())
    pki = state / "pki"
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": name,
                    "cluster": {
                        "server": f"https://127.0.0.1:{ports['API_PORT']}",
                        "certificate-authority-data": _b64(pki / "ca.crt"),
                    },
                }
            ],
            "users": [
                {
                    "name": f"{name}-admin",
                    "user": {
                        "client-certificate-data": _b64(pki / "admin.crt"),
                        "client-key-data": _b64(pki / "admin.key"),
                    },
                }
            ],
            "contexts": [{"name": name, "context": {"cluster": name, "user": f"{name}-admin"}}],
            "current-context": name,
        },
        sort_keys=False,
    )


def queue_objects(namespace: str, queue: str, cluster_queue: str) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": namespace, "labels": {NS_LABEL: "enabled"}},
        },
        {
            "apiVersion": KUEUE,
            "kind": "LocalQueue",
            "metadata": {"name": queue, "namespace": namespace},
            "spec": {"clusterQueue": cluster_queue},
        },
    ]


def cluster_queue(name: str, flavor: str, gpus: int, checks: list[str]) -> dict[str, Any]:
    spec: dict[str, Any] = {
        # Any namespace labelled for Kueue may use it: tests bring their own namespaces.
        "namespaceSelector": {"matchLabels": {NS_LABEL: "enabled"}},
        "resourceGroups": [
            {
                "coveredResources": ["cpu", "memory", "nvidia.com/gpu"],
                "flavors": [
                    {
                        "name": flavor,
                        "resources": [
                            {"name": "cpu", "nominalQuota": "1000"},
                            {"name": "memory", "nominalQuota": "10000Gi"},
                            {"name": "nvidia.com/gpu", "nominalQuota": gpus},
                        ],
                    }
                ],
            }
        ],
    }
    if checks:
        spec["admissionChecksStrategy"] = {"admissionChecks": [{"name": c} for c in checks]}
    return {"apiVersion": KUEUE, "kind": "ClusterQueue", "metadata": {"name": name}, "spec": spec}


def worker_objects(stack: dict[str, Any], worker: dict[str, Any]) -> list[dict[str, Any]]:
    flavor = {
        "apiVersion": KUEUE,
        "kind": "ResourceFlavor",
        "metadata": {"name": worker["region"]},
        "spec": {"nodeLabels": {"topology.kubernetes.io/region": worker["region"]}},
    }
    return [
        flavor,
        cluster_queue(WORKER_CLUSTER_QUEUE, worker["region"], worker["gpus"], []),
        *queue_objects(stack["namespace"], stack["localQueue"], WORKER_CLUSTER_QUEUE),
    ]


def manager_objects(stack: dict[str, Any]) -> list[dict[str, Any]]:
    workers = stack["workers"]
    objs: list[dict[str, Any]] = []
    for w in workers:
        objs.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": w["secret"], "namespace": "kueue-system"},
                "stringData": {"kubeconfig": Path(w["kubeconfig"]).read_text()},
            }
        )
        objs.append(
            {
                "apiVersion": KUEUE,
                "kind": "MultiKueueCluster",
                "metadata": {"name": w["name"]},
                "spec": {"clusterSource": {"kubeConfig": {"locationType": "Secret", "location": w["secret"]}}},
            }
        )
    objs += [
        {
            "apiVersion": KUEUE,
            "kind": "MultiKueueConfig",
            "metadata": {"name": MULTIKUEUE_CONFIG},
            "spec": {"clusters": [w["name"] for w in workers]},
        },
        {
            "apiVersion": KUEUE,
            "kind": "AdmissionCheck",
            "metadata": {"name": ADMISSION_CHECK},
            "spec": {
                "controllerName": "kueue.x-k8s.io/multikueue",
                "parameters": {"apiGroup": "kueue.x-k8s.io", "kind": "MultiKueueConfig", "name": MULTIKUEUE_CONFIG},
            },
        },
        {"apiVersion": KUEUE, "kind": "ResourceFlavor", "metadata": {"name": MANAGER_FLAVOR}, "spec": {}},
        # The manager's quota is the workers' together: it only holds workloads until a worker admits them.
        cluster_queue(MANAGER_CLUSTER_QUEUE, MANAGER_FLAVOR, sum(w["gpus"] for w in workers), [ADMISSION_CHECK]),
        *queue_objects(stack["namespace"], stack["localQueue"], MANAGER_CLUSTER_QUEUE),
    ]
    return objs


def objects(root: Path) -> None:
    stack = json.loads((root / "stack.json").read_text())
    for w in stack["workers"]:
        path = Path(w["kubeconfig"])
        path.write_text(inline_kubeconfig(Path(w["state"]), w["name"]))
        path.chmod(0o600)
        (Path(w["state"]) / "objects.yaml").write_text(yaml.safe_dump_all(worker_objects(stack, w), sort_keys=False))
    manager = Path(stack["manager"]["state"]) / "objects.yaml"
    manager.write_text(yaml.safe_dump_all(manager_objects(stack), sort_keys=False))
    manager.chmod(0o600)


def main(argv: list[str]) -> None:
    if len(argv) >= 7 and argv[0] == "plan":
        plan(Path(argv[1]), argv[2], argv[3], argv[4], argv[5], argv[6:])
    elif len(argv) == 2 and argv[0] == "objects":
        objects(Path(argv[1]))
    else:
        die(f"usage: {sys.argv[0]} plan <root> <dispatcher> <timeout> <ns> <queue> <worker=region>... | objects <root>")


if __name__ == "__main__":
    main(sys.argv[1:])
