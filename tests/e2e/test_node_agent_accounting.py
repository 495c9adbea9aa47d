"""Any image gets measured energy: a job whose pod leaves no trainer report is accounted from the GPU
node agent's per-pod energy in a real Prometheus (meter `node-agent`), and the limit the operator put
on the pod reaches exactly that pod's GPU through the agent and is restored when the pod ends."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from green_trainer.fake_nvml import FakeNvmlFile, FileGpu, gpu_uuid
from harness.cluster import kubectl
from harness.kubelet import FakeKubelet
from harness.operator import OperatorProcess
from harness.waiting import wait_for
from tests.e2e.prometheus import Prometheus, Target, prometheus
from tests.support.gtjs import SLOT, create, gtj, pods_of, status, traces_with_window
from tests.support.operator_config import make_config
from tests.trainer.node_agent.cluster import AgentProcess, chart_rbac, kubelet

pytestmark = pytest.mark.e2e

JOB = "any-image"
REGION = "europe-west9"
GPU_WATTS = 400.0
RUN_SECONDS = 12


@pytest.fixture
def node() -> str:
    selector = f"topology.kubernetes.io/region={REGION}"
    names = kubectl("get", "nodes", "-l", selector, "-o", "jsonpath={.items[*].metadata.name}").stdout.split()
    assert names, f"no node in {REGION}"
    return sorted(names)[0]


@pytest.fixture
def watched(namespace: str, node: str, tmp_path: Path) -> Iterator[tuple[AgentProcess, FakeKubelet, Prometheus]]:
    short = Path(tempfile.mkdtemp(prefix="gna-"))
    gpus = FakeNvmlFile(tmp_path / "nvml.json").create([FileGpu(uuid=gpu_uuid(0), power_mw=round(GPU_WATTS * 1000))])
    try:
        with chart_rbac(namespace, tmp_path) as rbac, kubelet(short / "kubelet.sock") as k:
            agent = AgentProcess(rbac, node, short / "kubelet.sock", gpus, tmp_path / "state.json", tmp_path / "a.log")
            agent.start()
            try:
                with prometheus(tmp_path, [Target("green-node-agents", agent.port, {"namespace": "gto"})], []) as prom:
                    yield agent, k, prom
            finally:
                agent.stop()
    finally:
        shutil.rmtree(short, ignore_errors=True)


def test_a_reportless_pod_is_accounted_from_the_node_agent(
    tmp_path: Path, namespace: str, node: str, crd: None, watched: tuple[AgentProcess, FakeKubelet, Prometheus]
) -> None:
    agent, k, prom = watched
    now = datetime.now(UTC)
    traces = traces_with_window(now, low_from=-timedelta(minutes=2), low_for=timedelta(minutes=20), clean_region=REGION)
    config = make_config(
        tmp_path,
        traces,
        slot=SLOT,
        horizon=timedelta(minutes=10),
        extra={"prometheus": {"url": prom.url, "interval": "1s"}},
    )
    body = gtj(
        JOB,
        duration="20s",
        max_delay="0s",
        regions=[REGION],
        power={"policy": "Fixed", "gpuPowerLimitWatts": 250},
        annotations={"pod-complete.stage.kwok.x-k8s.io/delay": f"{RUN_SECONDS}s"},  # no termination message
    )
    body["spec"]["template"]["spec"]["nodeSelector"] = {"kubernetes.io/hostname": node}
    op = OperatorProcess(config, namespace, tmp_path / "operator.log").start()
    try:
        create(namespace, body)
        # The kubelet allocates the pod one GPU as soon as it exists.
        # Created, then bound by the scheduler: wait for the binding, not just the pod.
        pod = wait_for(
            lambda: next((p for p in pods_of(namespace, JOB) if p.spec.node_name), None),
            timeout=60,
            message="the job's pod, scheduled",
        )
        assert pod.spec.node_name == node
        k.set_pod(namespace, pod.metadata.name, {"train": {"nvidia.com/gpu": [gpu_uuid(0)]}})
        wait_for(lambda: agent.nvml.gpus()[0].limit_mw == 250_000, timeout=30, message=agent.log)

        def live() -> dict[str, Any] | None:
            energy = status(namespace, JOB).get("energy") or {}
            return energy if energy.get("live") and energy.get("joules", 0) > 0 else None

        # While it runs, status shows the agent's figure: no trainer reports for this image.
        assert wait_for(live, timeout=RUN_SECONDS, message="live energy from the node agent")["source"] == "node-agent"

        def finished() -> dict[str, Any] | None:
            s = status(namespace, JOB)
            return s if s.get("phase") == "Succeeded" else None

        done = wait_for(finished, timeout=120, message=lambda: f"the job to finish\n{op.log()[-3000:]}")
    finally:
        op.stop()
    energy = done["energy"]
    assert energy["source"] == "node-agent"
    assert energy["estimatedPods"] == 0
    # The fake GPU draws 400 W while the pod holds it: a few seconds at least, never more than it ran.
    assert GPU_WATTS * 3 <= energy["joules"] <= GPU_WATTS * (RUN_SECONDS + 5)
    # The pod ended: the agent put the GPU back to where it was.
    wait_for(lambda: agent.nvml.gpus()[0].limit_mw == 700_000, timeout=30, message=agent.log)
    assert agent.nvml.gpus()[0].set_calls == [250_000, 700_000]
