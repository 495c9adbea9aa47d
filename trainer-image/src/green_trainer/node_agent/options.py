"""The node agent's command-line options (kept apart so `green-trainer run` does not import gRPC)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

DEFAULT_SOCKET = "/var/lib/kubelet/pod-resources/kubelet.sock"
DEFAULT_STATE = "/var/lib/green-training/node-agent/state.json"
DEFAULT_PORT = 9403


def add_arguments(parser: argparse.ArgumentParser) -> None:
    env = os.environ.get
    parser.add_argument("--node-name", default=env("NODE_NAME", ""), help="this node (default: $NODE_NAME)")
    parser.add_argument("--podresources-socket", default=DEFAULT_SOCKET, help="the kubelet's PodResources socket")
    parser.add_argument("--state-file", default=DEFAULT_STATE, help="hostPath file of the limits to restore")
    parser.add_argument("--metrics-port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--metrics-address", default="0.0.0.0")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between polls")
    parser.add_argument("--read-only", action="store_true", help="meter only: make no power-limit call at all")
    parser.add_argument("--api-server", help="API server URL (default: in-cluster)")
    parser.add_argument("--token-file", type=Path, help="bearer token file (default: the ServiceAccount's)")
    parser.add_argument("--ca-file", type=Path, help="API server CA (default: the ServiceAccount's)")
