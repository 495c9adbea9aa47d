"""`green-operator report` against the real control plane.

GreenTrainingJobs are created in the test's namespace and given the status the operator would write
(through the status subresource, so the CRD's schema prunes anything it does not know); no operator
runs. The report runs as a subprocess, as a user would run it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.cluster import REPO, ClusterInfo, kubectl
from tests.support.operator_config import TraceGrid, make_config

pytestmark = pytest.mark.integration

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _t(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _manifest(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "greentraining.io/v1alpha1",
        "kind": "GreenTrainingJob",
        "metadata": {"name": name},
        "spec": {
            "estimatedDuration": "30m",
            "schedule": {"maxDelay": "2h"},
            "template": {"spec": {"containers": [{"name": "train", "image": "example.invalid/train:1"}]}},
        },
    }


def _results(kwh: float, intensity: float, baseline_intensity: float, meter: str, estimated: int) -> dict[str, Any]:
    grams, baseline = kwh * intensity, kwh * baseline_intensity
    return {
        "energy": {"joules": kwh * 3.6e6, "kilowattHours": f"{kwh:.3f}", "source": meter, "estimatedPods": estimated},
        "emissions": {
            "grams": grams,
            "kilograms": f"{grams / 1000:.3f}",
            "baselineGrams": baseline,
            "savedGrams": baseline - grams,
            "savedPercent": f"{100 * (baseline - grams) / baseline:.1f}%",
            "intensity": intensity,
        },
    }


def _plan(
    region: str, intensity: float, baseline: float, baseline_start: datetime, decided: datetime
) -> dict[str, Any]:
    return {
        "intensityForecast": intensity,
        "baselineIntensity": baseline,
        "baselineRegion": region,
        "baselineStart": _t(baseline_start),
        "expectedGrams": intensity * 0.5,
        "baselineGrams": baseline * 0.5,
        "expectedDuration": "30m",
        "provider": "traces",
        "dataSource": "live",
        "decidedAt": _t(decided),
        "reason": "test plan",
    }


def _risk(status: str, now: datetime) -> list[dict[str, Any]]:
    return [
        {
            "type": "DeadlineAtRisk",
            "status": status,
            "reason": "StartedAfterLatestStart" if status == "True" else "DeadlineFeasible",
            "message": "test",
            "lastTransitionTime": _t(now),
        }
    ]


def statuses(now: datetime) -> dict[str, dict[str, Any]]:
    """What the operator would have written for five jobs around ``now``."""
    h = timedelta(hours=1)
    m = timedelta(minutes=1)
    return {
        "saved": {
            "phase": "Succeeded",
            "region": "europe-west3",
            "jobName": "saved",
            "plannedStart": _t(now - 50 * m),
            "latestStart": _t(now + h),
            "startTime": _t(now - 50 * m),
            "completionTime": _t(now - 20 * m),
            "plan": _plan("europe-west3", 100.0, 300.0, now - 80 * m, now - 80 * m),
            "conditions": _risk("False", now),
            **_results(2.0, 100.0, 300.0, "nvml", 0),
        },
        "worse": {
            "phase": "Succeeded",
            "region": "europe-west9",
            "jobName": "worse",
            "plannedStart": _t(now - 70 * m),
            "latestStart": _t(now + h),
            "startTime": _t(now - 70 * m),
            "completionTime": _t(now - 40 * m),
            "plan": _plan("europe-west9", 90.0, 120.0, now - 75 * m, now - 75 * m),
            "conditions": _risk("False", now),
            **_results(1.0, 150.0, 120.0, "nvml", 0),
        },
        "failed": {
            "phase": "Failed",
            "region": "us-west2",
            "jobName": "failed",
            "plannedStart": _t(now - 30 * m),
            "latestStart": _t(now - 35 * m),
            "startTime": _t(now - 30 * m),
            "completionTime": _t(now - 15 * m),
            "plan": _plan("us-west2", 200.0, 300.0, now - 40 * m, now - 40 * m),
            "conditions": _risk("True", now),
            **_results(0.5, 200.0, 300.0, "estimate", 1),
        },
        "running": {
            "phase": "Running",
            "region": "europe-west3",
            "jobName": "running",
            "plannedStart": _t(now - 10 * m),
            "latestStart": _t(now + h),
            "startTime": _t(now - 10 * m),
            "plan": _plan("europe-west3", 80.0, 200.0, now - 10 * m, now - 10 * m),
            "conditions": _risk("False", now),
        },
        "waiting": {
            "phase": "Deferred",
            "region": "europe-west3",
            "jobName": "waiting",
            "plannedStart": _t(now + 20 * m),
            "latestStart": _t(now + h),
            "plan": _plan("europe-west3", 60.0, 200.0, now - 5 * m, now - 5 * m),
            "conditions": _risk("False", now),
        },
    }


@pytest.fixture
def jobs(crd: None, namespace: str) -> dict[str, dict[str, Any]]:
    now = datetime.now(UTC).replace(microsecond=0)
    wanted = statuses(now)
    docs = [_manifest(name) for name in wanted]
    kubectl("create", "-n", namespace, "-f", "-", input=yaml.safe_dump_all(docs))
    for name, status in wanted.items():
        kubectl(
            "patch", "greentrainingjob", name, "-n", namespace,
            "--subresource=status", "--type=merge", "-p", json.dumps({"status": status}),
        )  # fmt: skip
    # The status subresource kept what we wrote (the schema knows every field).
    stored = json.loads(kubectl("get", "greentrainingjobs", "-n", namespace, "-o", "json").stdout)["items"]
    assert {o["metadata"]["name"]: o["status"]["phase"] for o in stored} == {n: s["phase"] for n, s in wanted.items()}
    return wanted


def report(cluster: ClusterInfo, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "green_operator.cli.main", "report", "--kubeconfig", str(cluster.kubeconfig), *args]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120, check=False)


def test_report_rows_totals_and_chart(
    cluster: ClusterInfo, namespace: str, jobs: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    step = timedelta(minutes=1)
    start = now - timedelta(hours=2)
    grid = TraceGrid(start=start, step=step)
    n = int(timedelta(hours=4) / step)
    grid.values["europe-west3"] = [150.0 + (i % 60) for i in range(n)]
    grid.values["europe-west9"] = [60.0 + (i % 30) for i in range(n)]
    # us-west2's trace stops 40 minutes ago: the service fills the rest from the static factor,
    # and the chart must say so.
    grid.values["us-west2"] = [250.0] * int(timedelta(minutes=80) / step)
    config = make_config(tmp_path, grid, slot=timedelta(minutes=5), horizon=timedelta(hours=2))
    chart = tmp_path / "report.png"

    done = report(
        cluster, "--namespace", namespace, "--since", "1h", "--config", str(config), "--output", str(chart), "--json"
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    rows = {r["name"]: r for r in doc["rows"]}
    assert set(rows) == set(jobs)
    assert all(r["namespace"] == namespace for r in rows.values())
    assert rows["worse"]["savedGrams"] == pytest.approx(120.0 - 150.0)
    assert rows["worse"]["savedPercent"] == pytest.approx(-25.0)
    assert rows["failed"]["meter"] == "estimate"
    assert rows["failed"]["estimatedPods"] == 1
    assert rows["failed"]["deadlineAtRisk"] is True
    assert rows["running"]["inTotals"] is False
    assert rows["running"]["emissionsGrams"] is None
    assert rows["waiting"]["phase"] == "Deferred"
    assert rows["waiting"]["startTime"] is None
    assert rows["saved"]["durationSeconds"] == 30 * 60

    finished = [s for s in jobs.values() if "emissions" in s]
    totals = doc["totals"]
    assert totals["jobs"] == 5
    assert totals["jobsWithResults"] == 3
    assert totals["energyKWh"] == pytest.approx(sum(s["energy"]["joules"] for s in finished) / 3.6e6)
    grams = sum(s["emissions"]["grams"] for s in finished)
    baseline = sum(s["emissions"]["baselineGrams"] for s in finished)
    assert totals["emissionsGrams"] == pytest.approx(grams)
    assert totals["baselineGrams"] == pytest.approx(baseline)
    assert totals["savedGrams"] == pytest.approx(baseline - grams)
    assert totals["savedPercent"] == pytest.approx(100 * (baseline - grams) / baseline)
    assert totals["deadlineAtRisk"] == 1

    assert doc["chart"]["intensity"] == "carbon-service"
    assert doc["chart"]["regions"] == ["europe-west3", "europe-west9", "us-west2"]
    assert list(doc["chart"]["fallbackSources"]) == ["us-west2"]
    raw = chart.read_bytes()
    assert raw[:8] == PNG_SIGNATURE
    assert len(raw) > 30_000


def test_report_since_and_table(
    cluster: ClusterInfo, namespace: str, jobs: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    later = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    done = report(cluster, "--namespace", namespace, "--since", later, "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["rows"] == []
    assert doc["totals"]["jobs"] == 0

    chart = tmp_path / "status-only.png"
    done = report(cluster, "--namespace", namespace, "--output", str(chart))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"GreenTrainingJobs in namespace {namespace}: 5")
    lines = done.stdout.splitlines()
    assert {line.split()[1] for line in lines[2:7]} == set(jobs)
    total = next(line for line in lines if line.startswith("TOTAL"))
    assert "3/5 jobs" in total
    assert "No carbon configuration given" in done.stdout
    assert chart.read_bytes()[:8] == PNG_SIGNATURE
