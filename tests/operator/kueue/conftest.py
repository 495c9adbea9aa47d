"""Fixtures of the Kueue tier: real Kueue and JobSet, started once per session beside the shared
control plane (the rest of the suite is unaffected: only labelled namespaces go through them)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.cluster import ClusterInfo
from tests.support.kueue import Queues, kueue_namespace, start_kueue


@pytest.fixture(scope="session")
def kueue(cluster: ClusterInfo) -> Iterator[float]:
    """Kueue v0.17.0 + JobSet v0.11.1 running; the value is how long `hack/kueue.sh up` took."""
    yield from start_kueue()


@pytest.fixture
def kueue_ns(kueue: float, crd: None) -> Iterator[str]:
    yield from kueue_namespace()


@pytest.fixture
def queues(kueue_ns: str) -> Iterator[Queues]:
    q = Queues(kueue_ns)
    yield q
    q.teardown()
