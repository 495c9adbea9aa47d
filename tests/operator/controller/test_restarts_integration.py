"""The components around the operator crash and come back in the middle of a burst: the local
control plane SIGKILLs kube-apiserver, or etcd, and starts it again with the same data. The
operator's watches resume, jobs created before and after are all decided, none gets two children,
and every plan still starts by its latest start."""

from __future__ import annotations

import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from harness.cluster import REPO
from harness.waiting import wait_for
from tests.support.gtjs import (
    DECIDED,
    GROUP,
    PLURAL,
    SLOT,
    VERSION,
    children_once_created,
    gtj,
    statuses,
    traces_with_window,
)
from tests.support.operator_config import make_config

pytestmark = pytest.mark.integration


def decided(namespace: str, names: list[str]) -> bool:
    st = statuses(namespace)
    return all(st.get(n, {}).get("phase") in DECIDED for n in names)


def submit(namespace: str, names: list[str]) -> None:
    api = client.CustomObjectsApi()
    docs = [gtj(n, duration="2m", max_delay=f"{1 + i % 3}m") for i, n in enumerate(names)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda d: api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, d), docs))


def restart(component: str) -> float:
    started = time.monotonic()
    result = subprocess.run(
        ["bash", str(REPO / "hack" / "cluster.sh"), "restart", component, "--kill"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return time.monotonic() - started


@pytest.mark.parametrize("component", ["kube-apiserver", "etcd"])
def test_the_operator_rides_out_a_crash_of_the_control_plane_mid_burst(
    component: str, tmp_path: Path, namespace: str, operator_factory: Any
) -> None:
    now = datetime.now(UTC)
    # us-west2 is clean from 40 s on: some jobs run now, some wait for it. 18 two-minute jobs fit
    # the cluster's 56 GPUs with room for other tests' leftovers, so every plan can keep its promise.
    traces = traces_with_window(
        now, low_from=timedelta(seconds=40), low_for=timedelta(minutes=5), clean_region="us-west2"
    )
    op = operator_factory(make_config(tmp_path, traces, slot=SLOT, horizon=timedelta(minutes=10)))
    before = [f"before-{i:02d}" for i in range(12)]
    submit(namespace, before)
    wait_for(
        lambda: sum(s.get("phase") in DECIDED for s in statuses(namespace).values()) >= 3,
        timeout=60,
        message=lambda: f"the first decisions\n{op.tail()}",
    )
    down = restart(component)
    back = time.monotonic()
    after = [f"after-{i:02d}" for i in range(6)]
    submit(namespace, after)
    wait_for(lambda: decided(namespace, before + after), timeout=120, message=lambda: f"every job\n{op.tail()}")
    recovered = time.monotonic() - back
    print(f"\n{component} SIGKILLed and back in {down:.1f}s; all 18 jobs decided {recovered:.1f}s later")
    assert op.alive(), f"the operator died:\n{op.tail()}"
    st = statuses(namespace)
    for name, s in st.items():
        # The promise: never planned past the latest start.
        assert s["plannedStart"] <= s["latestStart"], (name, s)
    children = children_once_created(namespace, before + after)
    assert {n: c for n, c in children.items() if len(c) != 1} == {}
    released = {n for n, s in st.items() if s.get("phase") in ("Starting", "Running", "Succeeded", "Failed")}
    assert released, "the jobs that run now must have been released"
    assert released <= set(children), f"released without a child: {released - set(children)}"
