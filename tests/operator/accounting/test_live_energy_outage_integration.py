"""Prometheus is down while a job runs: status says so in a condition, nothing blocks, and the job
ends with the energy of its trainer's report."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from harness.processes import free_port
from harness.waiting import wait_for
from tests.support.gtjs import SLOT, condition, create, gtj, status, traces_with_window
from tests.support.operator_config import make_config

pytestmark = pytest.mark.integration


def test_a_dead_prometheus_is_a_condition_and_the_job_finishes(
    tmp_path: Path, namespace: str, operator_factory: Any
) -> None:
    now = datetime.now(UTC)
    traces = traces_with_window(
        now, low_from=-timedelta(minutes=2), low_for=timedelta(minutes=20), clean_region="us-west2"
    )
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    extra = {"prometheus": {"url": dead, "interval": "1s"}}
    op = operator_factory(make_config(tmp_path, traces, slot=SLOT, horizon=timedelta(minutes=10), extra=extra))
    report = '{"v":1,"meter":"nvml","energyJoules":4200.0,"exitCode":0}'
    annotations = {
        "pod-complete.stage.kwok.x-k8s.io/delay": "12s",
        "kwok.greentraining.io/termination-message": report,
    }
    create(namespace, gtj("job", duration="20s", max_delay="0s", regions=["us-west2"], annotations=annotations))

    def degraded() -> dict[str, Any] | None:
        st = status(namespace, "job")
        c = condition(st, "LiveEnergyAvailable")
        return c if st.get("phase") == "Running" and c and c["status"] == "False" else None

    c = wait_for(degraded, timeout=60, message=lambda: f"the LiveEnergyAvailable condition\n{op.tail()}")
    assert c["reason"] == "PrometheusUnavailable"
    assert dead in c["message"]
    done = wait_for(
        lambda: (s := status(namespace, "job")) and s.get("phase") == "Succeeded" and s,
        timeout=60,
        message=lambda: f"the job to finish\n{op.tail()}",
    )
    assert done["energy"]["joules"] == pytest.approx(4200.0)
    assert done["energy"]["live"] is False
