"""While a job runs, its energy so far reaches status from the trainers' metrics in a real Prometheus;
when it ends, the exit reports replace the live figure."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from harness.operator import OperatorProcess
from harness.processes import VENV_BIN, free_port, running
from harness.waiting import wait_for
from tests.e2e.prometheus import Prometheus, Target, prometheus
from tests.support.gtjs import SLOT, create, gtj, status, traces_with_window
from tests.support.operator_config import make_config

pytestmark = pytest.mark.e2e

FAKE_GPU = Path(__file__).parent / "fake_gpu"
JOB = "live-train"
REGION = "europe-west9"


@pytest.fixture
def scraped_trainer(tmp_path: Path, namespace: str) -> Iterator[Prometheus]:
    port = free_port()
    env = {
        # This machine has no GPU: a simulated one at the NVML seam; then the tests' own path.
        "PYTHONPATH": os.pathsep.join(filter(None, [str(FAKE_GPU), os.environ.get("PYTHONPATH")])),
        "GREEN_POWERCAP_ROOT": str(tmp_path / "no-powercap"),
        "GREEN_METRICS_PORT": str(port),
        "GREEN_METRICS_ADDRESS": "127.0.0.1",
        "GREEN_JOB_NAME": JOB,
        "GREEN_JOB_NAMESPACE": namespace,
        "GREEN_POD_NAME": f"{JOB}-0",
        "GREEN_SAMPLE_INTERVAL_SECONDS": "0.2",
        "GREEN_REPORT_PATH": str(tmp_path / "report.json"),
        "OMP_NUM_THREADS": "1",
    }
    loop = "import time\nfrom green_trainer import progress\nwhile True:\n"
    loop += "    progress.report(samples=64, steps=1)\n    time.sleep(0.05)\n"
    cmd = [str(VENV_BIN / "green-trainer"), "run", "--", sys.executable, "-c", loop]
    with (
        running(cmd, tmp_path / "trainer.log", env=env),
        prometheus(tmp_path, [Target("green-trainers", port, {"namespace": namespace})], []) as prom,
    ):
        yield prom


def test_running_job_shows_live_energy_then_the_final_report(
    tmp_path: Path,
    namespace: str,
    crd: None,
    scraped_trainer: Prometheus,
) -> None:
    now = datetime.now(UTC)
    traces = traces_with_window(now, low_from=-timedelta(minutes=2), low_for=timedelta(minutes=20), clean_region=REGION)
    config = make_config(
        tmp_path,
        traces,
        slot=SLOT,
        horizon=timedelta(minutes=10),
        extra={"prometheus": {"url": scraped_trainer.url, "interval": "1s"}},
    )
    op = OperatorProcess(config, namespace, tmp_path / "operator.log").start()
    try:
        report = '{"v":1,"meter":"nvml","energyJoules":5000.0,"exitCode":0}'
        create(
            namespace,
            gtj(
                JOB,
                duration="20s",
                max_delay="0s",
                regions=[REGION],
                annotations={
                    "pod-complete.stage.kwok.x-k8s.io/delay": "25s",
                    "kwok.greentraining.io/termination-message": report,
                },
            ),
        )

        def live() -> dict[str, Any] | None:
            st = status(namespace, JOB)
            energy = st.get("energy") or {}
            return st if st.get("phase") == "Running" and energy.get("live") and energy["joules"] > 0 else None

        st = wait_for(live, timeout=60, message="live energy in status while the job runs")
        assert st["energy"]["source"] == "nvml"
        scraped = sum(
            float(s["value"][1])
            for s in scraped_trainer.query(
                f'greentraining_energy_joules_total{{pod_namespace="{namespace}", greentraining_job="{JOB}"}}'
            )
        )
        assert 0 < st["energy"]["joules"] <= scraped + 1e-6  # a reading taken before this query

        def finished() -> dict[str, Any] | None:
            s = status(namespace, JOB)
            return s if s.get("phase") == "Succeeded" else None

        done = wait_for(finished, timeout=90, message="the job to finish")
        assert done["energy"]["live"] is False
        assert done["energy"]["joules"] == pytest.approx(5000.0)  # the exit report, not the live reading
    finally:
        op.stop()
