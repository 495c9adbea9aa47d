"""Shared fixtures. Integration tests share the one control plane of the session (make cluster-up)
and each get a fresh random namespace, deleted afterwards."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from harness.cluster import ClusterInfo, bin_dir, kubeconfig
from harness.multicluster import Stack, multicluster_sh

# Hypothesis profiles. `unit` (the default) keeps the unit tier quick: 50 cases for each fuzz test
# (tests with an explicit max_examples keep theirs). `fuzz` is the dedicated long run, 2000 cases each
# (`make fuzz`, which lifts the 300 s per-test timeout; about half an hour on 2 loaded cores), or
# HYPOTHESIS_PROFILE=fuzz. No deadline in either: this machine is shared and its timings vary.
settings.register_profile("unit", max_examples=50, deadline=None)
settings.register_profile("fuzz", max_examples=2000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "unit"))


@pytest.fixture(scope="session")
def cluster() -> ClusterInfo:
    from kubernetes import client, config

    path = kubeconfig()
    if not path.exists():
        pytest.fail(f"no kubeconfig at {path}: integration tests need the local control plane (make cluster-up)")
    config.load_kube_config(str(path))
    try:
        client.VersionApi().get_code(_request_timeout=5)
    except Exception as exc:
        pytest.fail(f"the local control plane at {path} does not answer ({exc}); run make cluster-up")
    return ClusterInfo(kubeconfig=path, bin_dir=bin_dir())


@pytest.fixture(scope="session")
def crd(cluster: ClusterInfo) -> None:
    """The GreenTrainingJob CRD from crds/, applied and established."""
    from harness.cluster import apply_crds

    apply_crds()


@pytest.fixture
def namespace(cluster: ClusterInfo) -> Iterator[str]:
    from kubernetes import client

    name = f"t-{uuid.uuid4().hex[:10]}"
    core = client.CoreV1Api()
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels={"test": "true"})))
    yield name
    core.delete_namespace(name, propagation_policy="Background")


@pytest.fixture
def operator_factory(tmp_path: Path, namespace: str, crd: None) -> Iterator[Any]:
    """Start `green-operator run` processes acting on the test's namespace; stopped after the test."""
    from harness.operator import OperatorProcess

    started: list[OperatorProcess] = []

    def start(config: Path, name: str = "operator") -> OperatorProcess:
        op = OperatorProcess(config, namespace, tmp_path / f"{name}.log").start()
        started.append(op)
        return op

    yield start
    for op in started:
        op.stop()


@pytest.fixture(scope="session")
def multicluster_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The local MultiKueue stack (hack/multicluster.sh: a manager and two workers, each a control plane
    with Kueue), started when a test first asks for it and stopped at the
    end of the session (`make test-multicluster` runs the tests marked `multicluster` in a session of
    their own). Its directory is $GREEN_MULTICLUSTER when set (then GREEN_MC_KEEP=1 leaves it running,
    for a quick edit-and-rerun loop: `up` finds it healthy and returns at once), else a temporary one."""
    env_root = os.environ.get("GREEN_MULTICLUSTER")
    root = Path(env_root) if env_root else tmp_path_factory.mktemp("multicluster")
    try:
        multicluster_sh("up", root)
        yield Stack.load(root)
    finally:
        if os.environ.get("GREEN_MC_KEEP") != "1":
            multicluster_sh("down", root, timeout=180)


@pytest.fixture
def mc_namespace(multicluster_stack: Stack) -> Iterator[str]:
    """A fresh Kueue-managed namespace with the stack's LocalQueue in the manager and every worker."""
    from tests.support.multicluster import stack_namespace

    yield from stack_namespace(multicluster_stack)
