"""Access to the local control plane started by `make cluster-up` (hack/cluster.sh)."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _hack_env(var: str) -> str:
    out = subprocess.run(
        ["bash", "-c", f"source {REPO}/hack/env.sh && controlplane_bin_dir && echo ${var}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return out[0] if var == "BIN" else out[1]


@cache
def bin_dir() -> Path:
    return Path(os.environ.get("GREEN_BIN") or _hack_env("BIN"))


@cache
def kubeconfig() -> Path:
    return Path(os.environ.get("KUBECONFIG") or _hack_env("GREEN_KUBECONFIG"))


def component_pid(name: str) -> int | None:
    """The pid hack/cluster.sh recorded for a component of this cluster (the one KUBECONFIG names:
    its state directory holds both), or None when it does not run. Other clusters on the machine
    (a second GREEN_STATE) have their own."""
    try:
        pid = int((kubeconfig().parent / "pids" / f"{name}.pid").read_text())
    except (OSError, ValueError):
        return None
    return pid if Path(f"/proc/{pid}").exists() else None


def kubectl(
    *args: str, input: str | None = None, check: bool = True, kubeconfig_path: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    cmd = [str(bin_dir() / "kubectl"), "--kubeconfig", str(kubeconfig_path or kubeconfig()), *args]
    return subprocess.run(cmd, input=input, check=check, capture_output=True, text=True, timeout=timeout)


@dataclass(frozen=True)
class ClusterInfo:
    kubeconfig: Path
    bin_dir: Path


def apply_crds() -> None:
    """Apply crds/ (server-side; the repository's copy takes over fields others set) and wait until
    the GreenTrainingJob CRD is established. Polls: `kubectl wait` fails outright if it runs before
    the new CRD has any status."""
    from harness.waiting import wait_for

    result = kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"), check=False)
    assert result.returncode == 0, f"applying crds/ failed: {result.stderr}"
    wait_for(
        lambda: kubectl(
            "get", "crd", "greentrainingjobs.greentraining.io", "-o",
            "jsonpath={.status.conditions[?(@.type=='Established')].status}", check=False,
        ).stdout == "True",
        timeout=60,
        message="the GreenTrainingJob CRD to be established",
    )  # fmt: skip
