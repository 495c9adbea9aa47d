"""The stack's files, without starting it (unit tier): hack/multicluster/stack.py's plan (stack.json,
nodes, ports) and Kueue objects (inline kubeconfigs, the MultiKueue chain), and harness.multicluster's
reading of them."""

from __future__ import annotations

import base64
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from harness.cluster import REPO
from harness.multicluster import Stack, duration_seconds

STACK_PY = REPO / "hack" / "multicluster" / "stack.py"


def load_stack_py() -> ModuleType:
    spec = importlib.util.spec_from_file_location("multicluster_stack", STACK_PY)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def plan(root: Path, *workers: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(STACK_PY), "plan", str(root), "example.com/dispatcher", "30s", "jobs", "q", *workers],
        capture_output=True,
        text=True,
        timeout=60,
    )


def fake_cluster_files(state: Path, api_port: int) -> None:
    """What hack/cluster.sh leaves in a running cluster's state that the objects step reads."""
    (state / "pki").mkdir(parents=True)
    for name in ("ca.crt", "admin.crt", "admin.key"):
        (state / "pki" / name).write_text(f"PEM of {name}\n")
    (state / "ports.env").write_text(f"ETCD_PORT=1\nAPI_PORT={api_port}\n")


def test_the_plan_describes_a_manager_and_one_region_per_worker(tmp_path: Path) -> None:
    root = tmp_path / "mc"
    done = plan(root, "worker-a=europe-west3", "worker-b=europe-west9")
    assert done.returncode == 0, done.stderr
    stack = Stack.load(root)
    assert [w.name for w in stack.workers] == ["worker-a", "worker-b"]
    assert [(w.region, w.grid_zone, w.gpus) for w in stack.workers] == [
        ("europe-west3", "DE", 16),
        ("europe-west9", "FR", 16),
    ]
    assert stack.dispatcher_name == "example.com/dispatcher"
    assert stack.worker_lost_seconds() == 30
    for w in stack.workers:
        regions = yaml.safe_load((w.state / "nodes.yaml").read_text())["regions"]
        assert [r["name"] for r in regions] == [w.region]
    assert yaml.safe_load((root / "manager" / "nodes.yaml").read_text()) == {"regions": []}
    # The clusters start in parallel: no port is planned twice.
    ports = [
        line.partition("=")[2]
        for c in ("manager", "worker-a", "worker-b")
        for line in (root / c / "ports.in").read_text().split()
    ]
    assert len(ports) == 18
    assert len(set(ports)) == 18


@pytest.mark.parametrize(
    ("workers", "says"),
    [
        (["worker-a=mars-north1"], "region 'mars-north1' of worker-a is not in"),
        (["worker-a"], "'worker-a' is not <cluster>=<region>"),
        (["w=europe-west3", "w=europe-west9"], "cluster name 'w' is used twice"),
        (["manager=europe-west3"], "cluster name 'manager' is used twice (or is 'manager')"),
    ],
)
def test_a_bad_worker_list_is_refused_with_the_variable_to_fix(tmp_path: Path, workers: list[str], says: str) -> None:
    done = plan(tmp_path / "mc", *workers)
    assert done.returncode != 0
    assert "GREEN_MC_WORKERS" in done.stderr
    assert says in done.stderr
    assert not (tmp_path / "mc" / "stack.json").exists()


def test_the_objects_carry_inline_credentials_and_the_multikueue_chain(tmp_path: Path) -> None:
    root = tmp_path / "mc"
    assert plan(root, "worker-a=europe-west3", "worker-b=europe-west9").returncode == 0
    for port, name in ((7001, "manager"), (7002, "worker-a"), (7003, "worker-b")):
        fake_cluster_files(root / name, port)
    load_stack_py().objects(root)
    stack = Stack.load(root)

    kubeconfig = yaml.safe_load(stack.worker("worker-b").kubeconfig.read_text())
    cluster, user = kubeconfig["clusters"][0]["cluster"], kubeconfig["users"][0]["user"]
    assert cluster["server"] == "https://127.0.0.1:7003"
    assert base64.b64decode(cluster["certificate-authority-data"]) == b"PEM of ca.crt\n"
    assert set(user) == {"client-certificate-data", "client-key-data"}  # no file paths: MultiKueue refuses them
    assert oct(stack.worker("worker-b").kubeconfig.stat().st_mode & 0o777) == "0o600"

    manager = {
        (o["kind"], o["metadata"]["name"]): o
        for o in yaml.safe_load_all((root / "manager" / "objects.yaml").read_text())
    }
    secret = manager[("Secret", "worker-a-kubeconfig")]
    assert secret["metadata"]["namespace"] == "kueue-system"
    assert secret["stringData"]["kubeconfig"] == stack.worker("worker-a").kubeconfig.read_text()
    assert manager[("MultiKueueCluster", "worker-a")]["spec"]["clusterSource"]["kubeConfig"] == {
        "locationType": "Secret",
        "location": "worker-a-kubeconfig",
    }
    assert manager[("MultiKueueConfig", stack.multikueue_config)]["spec"]["clusters"] == ["worker-a", "worker-b"]
    check = manager[("AdmissionCheck", stack.admission_check)]["spec"]
    assert check["controllerName"] == "kueue.x-k8s.io/multikueue"
    assert check["parameters"]["name"] == stack.multikueue_config
    cq: dict[str, Any] = manager[("ClusterQueue", stack.manager_cluster_queue)]["spec"]
    assert cq["admissionChecksStrategy"] == {"admissionChecks": [{"name": stack.admission_check}]}
    assert cq["resourceGroups"][0]["flavors"][0]["resources"][2] == {"name": "nvidia.com/gpu", "nominalQuota": 32}
    assert manager[("LocalQueue", "q")]["metadata"]["namespace"] == "jobs"

    worker = {
        (o["kind"], o["metadata"]["name"]): o
        for o in yaml.safe_load_all((root / "worker-a" / "objects.yaml").read_text())
    }
    # The remote copy lands in the same namespace and LocalQueue name as in the manager.
    assert worker[("LocalQueue", "q")]["metadata"]["namespace"] == "jobs"
    assert worker[("ResourceFlavor", "europe-west3")]["spec"]["nodeLabels"] == {
        "topology.kubernetes.io/region": "europe-west3"
    }
    assert "admissionChecksStrategy" not in worker[("ClusterQueue", "green-worker")]["spec"]
    assert json.loads((root / "stack.json").read_text())["workers"][0]["clusterQueue"] == "green-worker"


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30), ("1m30s", 90), ("15m", 900), ("1h", 3600), ("0.5s", 0.5)])
def test_worker_lost_timeouts_read_as_go_durations(text: str, seconds: float) -> None:
    assert duration_seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "30", "thirty", "1d"])
def test_a_bad_worker_lost_timeout_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration like 30s"):
        duration_seconds(text)
