"""Cluster fixtures of the chart tests: the CRDs the chart's objects need on the local control plane."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.charts.processes import apply_crds
from tests.support.cluster import ClusterInfo, kubectl

PROMETHEUS_OPERATOR_CRDS = Path(__file__).parent / "fixtures" / "prometheus-operator-crds"


@pytest.fixture(scope="session")
def greentraining_crd(cluster: ClusterInfo) -> None:
    apply_crds()


@pytest.fixture(scope="session")
def monitoring_crds(cluster: ClusterInfo) -> None:
    """The Prometheus Operator's CRDs (vendored, see the fixture's README), left installed: inert."""
    kubectl("apply", "--server-side", "--field-manager=green-tests", "-f", str(PROMETHEUS_OPERATOR_CRDS))
    for plural in ("servicemonitors", "podmonitors", "prometheusrules"):
        kubectl("wait", "--for=condition=Established", f"crd/{plural}.monitoring.coreos.com", "--timeout=30s")
