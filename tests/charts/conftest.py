"""Cluster fixtures of the chart tests: the CRDs the chart's objects need on the local control plane."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.cluster import ClusterInfo, apply_crds, kubectl
from harness.waiting import wait_for

PROMETHEUS_OPERATOR_CRDS = Path(__file__).parent / "fixtures" / "prometheus-operator-crds"


@pytest.fixture(scope="session")
def greentraining_crd(cluster: ClusterInfo) -> None:
    apply_crds()


@pytest.fixture(scope="session")
def monitoring_crds(cluster: ClusterInfo) -> None:
    """The Prometheus Operator's CRDs (vendored, see the fixture's README), left installed: inert."""
    kubectl("apply", "--server-side", "--field-manager=green-tests", "-f", str(PROMETHEUS_OPERATOR_CRDS))
    for plural in ("servicemonitors", "podmonitors", "prometheusrules"):
        wait_for(
            lambda p=plural: kubectl(
                "get", "crd", f"{p}.monitoring.coreos.com", "-o",
                "jsonpath={.status.conditions[?(@.type=='Established')].status}", check=False,
            ).stdout == "True",
            timeout=60,
            message=f"the {plural} CRD to be established",
        )  # fmt: skip
