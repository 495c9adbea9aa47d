"""The rendezvous contract of multi-pod jobs: the headless Service, the pods' subdomain and environment;
and the proof that the environment works: two torchrun processes (CPU, gloo) that get only what a pod
gets, with the master's address pointed at localhost (no cluster DNS here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from green_operator.api.manifests import build_job, build_rendezvous_service, owner_reference
from green_operator.api.rendezvous import INDEX_ANNOTATION, MASTER_PORT, host_name_fits, master_address
from harness.processes import free_port

POD: dict[str, Any] = {"spec": {"containers": [{"name": "train", "image": "img"}, {"name": "side", "image": "s"}]}}


def multi(parallelism: int = 4, template: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
    return build_job(
        gtj_name="ddp",
        gtj_uid="uid-1",
        namespace="ml",
        template=template or POD,
        parallelism=parallelism,
        backoff_limit=0,
        region="europe-west3",
        node_selector={"topology.kubernetes.io/region": "europe-west3"},
        tolerations=[],
        power_limit_watts=None,
        intensity=50.0,
        suspend=False,
        metrics_port=9402,
        **kw,
    )


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env") or []}


def test_a_multi_pod_job_is_indexed_with_a_subdomain_and_the_torchrun_environment_in_every_container() -> None:
    job = multi()
    assert job["spec"]["completionMode"] == "Indexed"
    assert job["spec"]["completions"] == job["spec"]["parallelism"] == 4
    pod = job["spec"]["template"]["spec"]
    assert pod["subdomain"] == "ddp"
    assert "hostname" not in pod  # the Job controller names each host ddp-<index>
    for container in pod["containers"]:
        env = env_of(container)
        assert env["PET_NNODES"]["value"] == "4"
        assert (
            env["PET_NODE_RANK"]["valueFrom"]["fieldRef"]["fieldPath"] == f"metadata.annotations['{INDEX_ANNOTATION}']"
        )
        assert env["PET_MASTER_ADDR"]["value"] == env["MASTER_ADDR"]["value"] == "ddp-0.ddp.ml.svc"
        assert env["PET_MASTER_PORT"]["value"] == env["MASTER_PORT"]["value"] == str(MASTER_PORT)
        assert "RANK" not in env
        assert "WORLD_SIZE" not in env


def test_a_single_pod_job_gets_no_rendezvous() -> None:
    job = multi(parallelism=1)
    pod = job["spec"]["template"]["spec"]
    assert "subdomain" not in pod
    assert "completionMode" not in job["spec"]
    assert "PET_NNODES" not in env_of(pod["containers"][0])


def test_a_pods_own_rendezvous_values_are_kept() -> None:
    own = [{"name": "MASTER_PORT", "value": "23456"}, {"name": "PET_NNODES", "value": "1:4"}]
    template = {"spec": {"containers": [{"name": "train", "image": "img", "env": own}]}}
    env = env_of(multi(template=template)["spec"]["template"]["spec"]["containers"][0])
    assert env["MASTER_PORT"]["value"] == "23456"
    assert env["PET_NNODES"]["value"] == "1:4"
    assert env["PET_MASTER_PORT"]["value"] == str(MASTER_PORT)
    assert [e["name"] for e in env.values()].count("MASTER_PORT") == 1


def test_the_headless_service_selects_the_pods_publishes_unready_ones_and_goes_with_its_owner() -> None:
    svc = build_rendezvous_service(gtj_name="ddp", gtj_uid="uid-1", namespace="ml", labels={"team": "vision"})
    assert svc["metadata"]["name"] == "ddp"
    assert svc["metadata"]["namespace"] == "ml"
    assert svc["metadata"]["ownerReferences"] == [owner_reference("ddp", "uid-1")]
    assert svc["metadata"]["labels"]["team"] == "vision"
    assert svc["spec"] == {
        "clusterIP": "None",
        "selector": {"greentraining.io/job": "ddp"},
        "publishNotReadyAddresses": True,
    }
    pod_labels = multi()["spec"]["template"]["metadata"]["labels"]
    assert all(pod_labels[k] == v for k, v in svc["spec"]["selector"].items())


def test_the_host_name_of_the_last_index_must_fit_a_dns_label() -> None:
    assert host_name_fits("a" * 61, 10)  # a...a-9: 63
    assert not host_name_fits("a" * 61, 11)  # a...a-10: 64
    with pytest.raises(ValueError, match="host name"):
        build_job(**{**_args(), "gtj_name": "a" * 62, "parallelism": 2})
    assert master_address("ddp", "ml") == "ddp-0.ddp.ml.svc"


def _args() -> dict[str, Any]:
    return {
        "gtj_uid": "u",
        "namespace": "ml",
        "template": POD,
        "backoff_limit": 0,
        "region": "r",
        "node_selector": {},
        "tolerations": [],
        "power_limit_watts": None,
        "intensity": 1.0,
        "suspend": True,
        "metrics_port": 0,
    }


WORKER = """
import json, os, sys
import torch
import torch.distributed as dist
dist.init_process_group("gloo")
t = torch.tensor([float(dist.get_rank() + 1)])
dist.all_reduce(t)
out = {"rank": dist.get_rank(), "world": dist.get_world_size(), "sum": t.item(), "local": os.environ["LOCAL_RANK"]}
with open(os.path.join(sys.argv[1], f"rank{dist.get_rank()}.json"), "w") as f:
    json.dump(out, f)
dist.destroy_process_group()
"""


def pod_environment(container: dict[str, Any], index: int, port: int) -> dict[str, str]:
    """What the kubelet would put in the pod at `index`, with the master's DNS name (no cluster DNS
    here) and port (another run may hold 29500) pointed at this machine."""
    env: dict[str, str] = {}
    for e in container["env"]:
        if "value" in e:
            env[e["name"]] = e["value"]
        elif e["valueFrom"].get("fieldRef", {}).get("fieldPath") == f"metadata.annotations['{INDEX_ANNOTATION}']":
            env[e["name"]] = str(index)
    env.update(PET_MASTER_ADDR="127.0.0.1", MASTER_ADDR="127.0.0.1", PET_MASTER_PORT=str(port), MASTER_PORT=str(port))
    return env


def test_two_torchrun_nodes_rendezvous_with_the_injected_environment_on_cpu_gloo(tmp_path: Path) -> None:
    container = multi(parallelism=2)["spec"]["template"]["spec"]["containers"][0]
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    port = free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PET_", "MASTER_", "RANK", "WORLD_SIZE"))}
    # The pod's command line names no node count, rank or address: torchrun reads them from PET_*.
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=1", str(script), str(tmp_path)]
    procs = [
        subprocess.Popen(
            cmd,
            env={**base, **pod_environment(container, i, port), "OMP_NUM_THREADS": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for i in range(2)
    ]
    outputs = [p.communicate(timeout=240)[0].decode(errors="replace") for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n---\n".join(outputs)
    results = sorted((json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)), key=lambda x: x["rank"])
    assert results == [
        {"rank": 0, "world": 2, "sum": 3.0, "local": "0"},
        {"rank": 1, "world": 2, "sum": 3.0, "local": "0"},
    ]
