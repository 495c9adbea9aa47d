"""`hack/multicluster.sh down` after an `up` killed half-way (a test timeout, a Ctrl-C): every process of
every cluster is stopped by its recorded pid and no port stays held."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from harness.multicluster import SCRIPT, multicluster_sh, port_free, processes_under
from harness.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.multicluster]


def planned_ports(root: Path) -> set[int]:
    """The control planes' ports (planned before any starts) and the Kueues' (picked as each starts)."""
    ports: set[int] = set()
    for path in [*root.glob("*/ports.in"), *root.glob("*/kueue/ports.env")]:
        ports |= {int(line.partition("=")[2]) for line in path.read_text().split()}
    return ports


def test_down_after_an_interrupted_up_leaves_no_process_and_no_port(tmp_path: Path) -> None:
    root = tmp_path / "mc"
    up = subprocess.Popen(
        ["bash", str(SCRIPT), "up"],
        # One worker is enough to interrupt several clusters half-way, and starts quicker.
        env={**os.environ, "GREEN_MULTICLUSTER": str(root), "GREEN_MC_WORKERS": "worker-a=europe-west3"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        # Interrupted once a cluster's Kueue is starting: the others are somewhere in their start.
        wait_for(lambda: any(root.glob("*/kueue/kueue.pid")), timeout=240, message="a Kueue to start in the stack")
    finally:
        os.killpg(up.pid, signal.SIGKILL)
        up.wait(timeout=10)
    left = processes_under(root)
    assert left, "the interrupted up left nothing running: the test would prove nothing"
    ports = planned_ports(root)

    multicluster_sh("down", root, timeout=180)

    assert processes_under(root) == []
    # A killed multi-threaded process may hold its sockets a moment after it stops being listed.
    wait_for(
        lambda: all(port_free(p) for p in ports),
        timeout=10,
        message=lambda: f"the stack's ports to be free (held: {[p for p in sorted(ports) if not port_free(p)]})",
    )
    multicluster_sh("down", root, timeout=60)  # a second down finds nothing to do and succeeds
