"""The GPU node agent's cost and latency: 8 fake GPUs, 16 pods (8 holding one GPU each with a power-limit
annotation, 8 without GPUs), the kubelet double over a real unix socket.

    .venv/bin/python benchmarks/node_agent.py [--interval 5] [--seconds 30] [--latency-interval 0.5]

Prints (1) the agent's CPU (percent of one core) and peak RSS over a steady run at the chart's poll
interval, in a process of its own; (2) one poll's work; (3) the time from a pod appearing in (or leaving)
PodResources to its GPU holding the new (or previous) limit, with a short interval. The fake NVML keeps its
GPUs in a locked JSON file (green_trainer.fake_nvml), so every NVML call here reads a file: a real GPU's
NVML calls are cheaper, and these figures bound the agent's own cost from above.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

from green_trainer.fake_nvml import FakeNvmlFile, FileGpu, FileNvml, gpu_uuid

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness.kubelet import FakeKubelet

GPUS = 8
PODS = 16
NAMESPACE = "bench"


def pods() -> dict[str, dict[str, dict[str, list[str]]]]:
    """Pod name -> its containers' devices: pods 0-7 hold GPU i; pods 8-15 hold none."""
    return {f"train-{i}": {"train": {"nvidia.com/gpu": [gpu_uuid(i)]} if i < GPUS else {}} for i in range(PODS)}


def _agent(nvml_path: str, socket: str, state: str, interval: float, seconds: float, out: str) -> None:
    """Child process: the agent's objects as `green-trainer node-agent` wires them, minus the API watch
    (a static pod list stands in), polling for `seconds`."""
    from green_trainer.node_agent.agent import NodeAgent
    from green_trainer.node_agent.apply import LimitApplier
    from green_trainer.node_agent.holdings import PodKey
    from green_trainer.node_agent.metrics import metric_families
    from green_trainer.node_agent.podresources import PodResourcesClient
    from green_trainer.node_agent.pods import PodInfo
    from green_trainer.node_agent.state import StateFile
    from green_trainer.nvml import open_gpus

    class StaticPods:
        def __init__(self) -> None:
            self.pods = {
                PodKey(NAMESPACE, name): PodInfo(PodKey(NAMESPACE, name), f"uid-{name}", "250", "bench", False)
                for name in pods()
            }

        def snapshot(self) -> dict[PodKey, PodInfo]:
            return self.pods

    nvml = FileNvml(Path(nvml_path))
    gpus, _ = open_gpus(nvml, None, None)
    applier = LimitApplier(nvml, {g.uuid: g.handle for g in gpus}, StateFile(Path(state)), read_only=False)
    client = PodResourcesClient(socket)
    agent = NodeAgent(nvml, gpus, client, StaticPods(), applier, hostname="bench-node")
    ticks: list[float] = []
    cpu0, wall0 = time.process_time(), time.monotonic()
    while time.monotonic() - wall0 < seconds:
        t = time.perf_counter()
        agent.tick()
        metric_families(agent.view())  # one scrape per poll (Prometheus scrapes every 15 s: fewer)
        ticks.append(time.perf_counter() - t)
        time.sleep(max(interval - (time.perf_counter() - t), 0.0))
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    Path(out).write_text(json.dumps({"cpu": cpu, "wall": wall, "rss_mib": rss_mib, "ticks": ticks}))
    client.close()


def _fake_gpus(path: Path) -> FakeNvmlFile:
    return FakeNvmlFile(path).create([FileGpu(uuid=gpu_uuid(i)) for i in range(GPUS)])


def steady(root: Path, interval: float, seconds: float) -> None:
    nvml = _fake_gpus(root / "nvml.json")
    kubelet = FakeKubelet(root / "s.sock").start()
    for name, devices in pods().items():
        kubelet.set_pod(NAMESPACE, name, devices)
    out = root / "steady.json"
    ctx = mp.get_context("spawn")
    args = (str(nvml.path), str(kubelet.socket_path), str(root / "state.json"), interval, seconds, str(out))
    child = ctx.Process(target=_agent, args=args)
    child.start()
    child.join()
    kubelet.stop()
    doc = json.loads(out.read_text())
    limited = sum(1 for g in nvml.gpus() if g.limit_mw == 250_000)
    head = f"steady: {GPUS} GPUs, {PODS} pods ({limited} GPUs limited to 250 W), poll every {interval:g} s"
    print(f"{head}, {doc['wall']:.0f} s")
    print(f"  CPU   {100 * doc['cpu'] / doc['wall']:.2f}% of one core (the polling loop, start-up excluded)")
    print(f"  RSS   {doc['rss_mib']:.1f} MiB peak")
    ticks = sorted(doc["ticks"][1:]) or doc["ticks"]
    median, worst = 1000 * statistics.median(ticks), 1000 * ticks[-1]
    print(f"  poll  median {median:.1f} ms, max {worst:.1f} ms (List + NVML + one metrics render)")


def latency(root: Path, interval: float, rounds: int) -> None:
    nvml = _fake_gpus(root / "lat-nvml.json")
    kubelet = FakeKubelet(root / "l.sock").start()
    out = root / "lat.json"
    ctx = mp.get_context("spawn")
    seconds = rounds * 2 * (interval * 6) + 5
    args = (str(nvml.path), str(kubelet.socket_path), str(root / "lat-state.json"), interval, seconds, str(out))
    child = ctx.Process(target=_agent, args=args)
    child.start()
    apply_s: list[float] = []
    restore_s: list[float] = []
    time.sleep(1.5)  # the child's start-up: interpreter, gRPC, NVML enumeration
    for _ in range(rounds):
        t = time.monotonic()
        kubelet.set_pod(NAMESPACE, "train-0", {"train": {"nvidia.com/gpu": [gpu_uuid(0)]}})
        while nvml.gpus()[0].limit_mw != 250_000:
            time.sleep(0.005)
        apply_s.append(time.monotonic() - t)
        t = time.monotonic()
        kubelet.remove_pod(NAMESPACE, "train-0")
        while nvml.gpus()[0].limit_mw != 700_000:
            time.sleep(0.005)
        restore_s.append(time.monotonic() - t)
    child.terminate()
    child.join()
    kubelet.stop()
    print(f"latency: poll every {interval:g} s, {rounds} rounds (expect about interval/2 + one poll)")
    print(f"  apply    median {1000 * statistics.median(apply_s):.0f} ms, max {1000 * max(apply_s):.0f} ms")
    print(f"  restore  median {1000 * statistics.median(restore_s):.0f} ms, max {1000 * max(restore_s):.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--interval", type=float, default=5.0, help="the steady run's poll interval (chart default)")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--latency-interval", type=float, default=0.5)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gna-") as directory:
        root = Path(directory)
        steady(root, args.interval, args.seconds)
        latency(root, args.latency_interval, args.rounds)


if __name__ == "__main__":
    main()
