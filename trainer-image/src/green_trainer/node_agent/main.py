"""`green-trainer node-agent`: wires NVML, the kubelet's socket, the pod watch, the state file and
the metrics endpoint, then polls until SIGTERM. It restores no limit on exit: a restart (rollout) must
not lift running pods' limits; the next agent restores from the state file when their pods end."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from collections.abc import Mapping
from pathlib import Path
from types import FrameType

from green_trainer.exporter import MetricsServer
from green_trainer.node_agent.agent import NodeAgent
from green_trainer.node_agent.apply import LimitApplier
from green_trainer.node_agent.kubeapi import ApiAccess, ApiClient, PodWatcher
from green_trainer.node_agent.metrics import AgentCollector
from green_trainer.node_agent.podresources import PodResourcesClient
from green_trainer.node_agent.state import StateFile
from green_trainer.nvml import load_nvml, open_gpus

log = logging.getLogger(__name__)


def _access(args: argparse.Namespace, environ: Mapping[str, str]) -> ApiAccess:
    if args.api_server:
        if args.token_file is None or args.ca_file is None:
            raise ValueError("--api-server needs --token-file and --ca-file")
        return ApiAccess(args.api_server, args.token_file, args.ca_file)
    return ApiAccess.in_cluster(environ)


def run_node_agent(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    if not args.node_name:
        raise ValueError("--node-name (or $NODE_NAME, from the downward API's spec.nodeName) is required")
    if not args.interval > 0:
        raise ValueError(f"--interval must be above 0 seconds, got {args.interval}")
    nvml = load_nvml(environ)
    if nvml is None:
        raise RuntimeError("NVML is not available: the node agent needs the NVIDIA driver (NVIDIA_VISIBLE_DEVICES=all)")
    gpus, _ = open_gpus(nvml, None, None)  # every GPU of the node, not a container's share
    log.info("GPUs of node %s: %s", args.node_name, ", ".join(f"{g.index} {g.model} {g.uuid}" for g in gpus))
    state = None if args.read_only else StateFile(Path(args.state_file))
    if args.read_only:
        log.warning("read-only: no power limit will be set or restored")
    elif state is not None and state.entries:
        log.info("state file %s: %d GPU limit(s) to restore when their pods end", state.path, len(state.entries))
    applier = LimitApplier(nvml, {g.uuid: g.handle for g in gpus}, state, args.read_only)
    watcher = PodWatcher(ApiClient(_access(args, environ)), args.node_name).start()
    lister = PodResourcesClient(args.podresources_socket)
    agent = NodeAgent(nvml, gpus, lister, watcher, applier, hostname=args.node_name)
    server = MetricsServer(AgentCollector(agent.view), args.metrics_port, args.metrics_address)
    log.info("node agent on %s: metrics on port %d, polling every %g s", args.node_name, server.port, args.interval)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while True:
        try:
            agent.tick()
        except Exception:  # one bad poll must not end metering or restores
            log.exception("poll failed; trying again next interval")
        if stop.wait(args.interval):
            break
    log.info("stopping; changed limits stay recorded in the state file")
    watcher.stop()
    lister.close()
    server.close()
    return 0
