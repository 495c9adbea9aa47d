"""Fixtures of the multi-cluster tier: one local MultiKueue stack (a manager and two workers, each a
full control plane with Kueue) started for the tier's tests and stopped after the last one.

The stack's parent directory is $GREEN_MULTICLUSTER when set (then GREEN_MC_KEEP=1 keeps it running
after the tier, for a quick edit-and-rerun loop: `up` finds it healthy and returns at once), else a
fresh temporary directory.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from harness.multicluster import Stack, multicluster_sh
from tests.support.multicluster import stack_namespace


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    from pathlib import Path

    root = Path(os.environ["GREEN_MULTICLUSTER"]) if os.environ.get("GREEN_MULTICLUSTER") else None
    root = root or tmp_path_factory.mktemp("multicluster")
    try:
        multicluster_sh("up", root)
        yield Stack.load(root)
    finally:
        if os.environ.get("GREEN_MC_KEEP") != "1":
            multicluster_sh("down", root, timeout=180)


@pytest.fixture
def mc_namespace(stack: Stack) -> Iterator[str]:
    yield from stack_namespace(stack)
