"""End to end: a real Prometheus scrapes the real operator (running GreenTrainingJobs on the local control
plane) and a real `green-trainer run` of the reference training script; every query on the chart's
Grafana dashboard and every alert rule of its PrometheusRule is evaluated against it and returns data.

The alert conditions are made true for real: a job whose pod exits 1 (GreenTrainingJobFailed), a job
whose deadline is shorter than its estimated duration (GreenTrainingJobDeadlineAtRisk), and a region
whose live provider points at a closed port, so it plans on its fallback trace (ProviderDataStale).
This machine has no GPU: the trainer meets a simulated one at its NVML seam (tests/e2e/fake_gpu), so
the per-GPU panels are fed by the wrapper's real NVML code path.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import tempfile
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from green_operator.accounting.live_energy import energy_query, parse_energy
from green_operator.metrics import PHASES
from green_trainer.fake_nvml import FakeNvmlFile, FileGpu, gpu_uuid
from harness.cluster import ClusterInfo, apply_crds, kubeconfig, kubectl
from harness.operator import operator
from harness.processes import VENV_BIN, free_port, http_get, running
from harness.waiting import wait_for
from tests.charts import jobs
from tests.charts.chart import (
    CHART,
    alert_rules,
    dashboard,
    dashboard_targets,
    dashboard_variable_queries,
    grafana_to_promql,
    one,
    operator_config,
    parse_label_values,
    render,
    with_local_traces,
)
from tests.e2e.prometheus import Prometheus, Target, finite, prometheus, values_of
from tests.trainer.node_agent.cluster import AgentProcess, chart_rbac, create_pod, kubelet

pytestmark = pytest.mark.e2e

FAKE_GPU = Path(__file__).parent / "fake_gpu"
REGION = "europe-west3"  # where the finished jobs run: the $region the dashboard is checked with
STALE_REGION = "europe-west2"  # its live provider is unreachable
TRAINER_JOB = "e2e-trainer"
RATE_INTERVAL = "30s"
# The dashboard's time range: longer than this Prometheus has run, so its totals cover the whole test.
TIME_RANGE = "1h"
DASHBOARD = json.loads((CHART / "dashboards" / "green-training.json").read_text())
PANEL_IDS = [p for p, _ in dashboard_targets(DASHBOARD)]
POD_GPU_ENERGY = "greentraining_pod_gpu_energy_joules_total"
NODE_GPU_WATTS = 300.0  # what the node agent's fake GPU draws
ALERTS = ("GreenTrainingProviderDataStale", "GreenTrainingJobDeadlineAtRisk", "GreenTrainingJobFailed")


@dataclass(frozen=True)
class Stack:
    prom: Prometheus
    namespace: str
    dashboard: dict[str, Any]
    alerts: dict[str, dict[str, Any]]
    report: dict[str, Any]
    """The real trainer's exit report that the "done" job's pod handed over."""

    def variables(self) -> dict[str, str]:
        return {"namespace": self.namespace, "job": TRAINER_JOB, "region": REGION}

    def promql(self, expr: str) -> str:
        return grafana_to_promql(expr, self.variables(), rate_interval=RATE_INTERVAL, time_range=TIME_RANGE)


def _values() -> dict[str, Any]:
    """Chart values: monitoring on, and one region whose live provider cannot be reached."""
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    regions = [dict(r) for r in defaults["config"]["regions"]]
    for r in regions:
        if r["name"] == STALE_REGION:
            r["carbon"] = {
                "provider": "unreachable",
                "zone": "uksouth",
                "fallbackTrace": {"provider": "europe-traces", "zone": "GB"},
            }
    closed = free_port()  # nothing listens there: every call is refused at once
    return {
        "serviceMonitor": {"enabled": True},
        "podMonitor": {"enabled": True},
        "prometheusRule": {"enabled": True},
        "config": {
            "providers": {"unreachable": {"type": "carbonawaresdk", "baseUrl": f"http://127.0.0.1:{closed}"}},
            "regions": regions,
        },
    }


def _trainer_env(workdir: Path, port: int) -> dict[str, str]:
    return {
        # The simulated GPU first; then whatever the tests run with (a worktree's sources).
        "PYTHONPATH": os.pathsep.join(filter(None, [str(FAKE_GPU), os.environ.get("PYTHONPATH")])),
        "GREEN_DISABLE_NVML": "",
        "GREEN_POWERCAP_ROOT": str(workdir / "no-powercap"),
        "GREEN_METRICS_PORT": str(port),
        "GREEN_METRICS_ADDRESS": "127.0.0.1",
        "GREEN_JOB_NAME": TRAINER_JOB,
        "GREEN_POD_NAME": f"{TRAINER_JOB}-0",
        "GREEN_CONTAINER_NAME": "train",
        "GREEN_NODE_NAME": "gpu-node-0",
        "GREEN_REGION": REGION,
        "GREEN_CARBON_INTENSITY": "250",
        "GREEN_GPU_POWER_LIMIT_WATTS": "280",
        "GREEN_SAMPLE_INTERVAL_SECONDS": "0.2",
        "GREEN_CHILD_GRACE_SECONDS": "5",
        "OMP_NUM_THREADS": "1",
    }


def _short_trainer_report(workdir: Path, namespace: str) -> str:
    """A real trainer report: `green-trainer run` of a tiny loop on the simulated GPU, for kwok to hand over."""
    report = workdir / "termination-log"
    env = {
        **_trainer_env(workdir, 0),
        "GREEN_JOB_NAMESPACE": namespace,
        "GREEN_REPORT_PATH": str(report),
        "GREEN_GPU_POWER_LIMIT_WATTS": "",
    }
    loop = "import time\nfrom green_trainer import progress\nfor _ in range(5):\n"
    loop += "    progress.report(samples=64, steps=1)\n    time.sleep(0.1)\n"
    cmd = [str(VENV_BIN / "green-trainer"), "run", "--", sys.executable, "-c", loop]
    with running(cmd, workdir / "short-trainer.log", env=env) as proc:
        proc.process.wait(timeout=60)
        assert proc.process.returncode == 0, proc.log()
    text = report.read_text()
    assert json.loads(text)["meter"] == "nvml"
    return text


def _scraped(prom: Prometheus, expr: str) -> list[dict[str, Any]] | None:
    series = prom.query(expr)
    return series or None


@contextmanager
def _node_agent(namespace: str, workdir: Path) -> Iterator[AgentProcess]:
    """The node agent (as the chart's ServiceAccount) on a kwok node where the trainer's pod holds one GPU."""
    node = sorted(kubectl("get", "nodes", "-o", "jsonpath={.items[*].metadata.name}").stdout.split())[0]
    short = Path(tempfile.mkdtemp(prefix="gna-"))  # a unix socket path must stay short
    pod = f"{TRAINER_JOB}-0"
    try:
        with chart_rbac(namespace, workdir) as rbac, kubelet(short / "kubelet.sock") as k:
            gpus = FakeNvmlFile(workdir / "node-nvml.json").create(
                [FileGpu(uuid=gpu_uuid(0), power_mw=round(NODE_GPU_WATTS * 1000))]
            )
            create_pod(namespace, pod, node, "280", job=TRAINER_JOB)
            k.set_pod(namespace, pod, {"train": {"nvidia.com/gpu": [gpu_uuid(0)]}})
            agent = AgentProcess(
                rbac, node, short / "kubelet.sock", gpus, workdir / "node-state.json", workdir / "node-agent.log"
            )
            try:
                yield agent.start()
            finally:
                agent.stop()
    finally:
        shutil.rmtree(short, ignore_errors=True)


@pytest.fixture(scope="module")
def stack(cluster: ClusterInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("e2e")
    ns = f"e2e-{uuid.uuid4().hex[:8]}"
    apply_crds()
    kubectl("create", "namespace", ns)
    try:
        with ExitStack() as stack:
            objs = render(_values(), release="gto", namespace="green-system")
            rule = one(objs, "PrometheusRule")
            config = with_local_traces(operator_config(objs))
            op = stack.enter_context(operator(config, kubeconfig(), ns, workdir))
            trainer_port = free_port()
            train = [
                str(VENV_BIN / "green-trainer"), "run", "--", sys.executable, "-m", "green_trainer.reference_train",
                "--threads", "1", "--samples", "4480", "--batch-size", "64", "--epochs", "100000",
                "--patience", "0", "--tokens-per-sample", "16", "--device", "cpu",
            ]  # fmt: skip
            trainer = stack.enter_context(
                running(
                    train,
                    workdir / "trainer.log",
                    env={
                        **_trainer_env(workdir, trainer_port),
                        "GREEN_JOB_NAMESPACE": ns,
                        "GREEN_REPORT_PATH": str(workdir / "trainer-report"),
                    },
                )
            )
            agent = stack.enter_context(_node_agent(ns, workdir))
            targets = [
                Target(
                    "gto-green-training-operator",
                    op.metrics_port,
                    {"namespace": "green-system", "pod": "gto-green-training-operator-0", "service": "gto"},
                    honor_labels=True,
                ),
                Target(
                    "green-trainers", trainer_port, {"namespace": ns, "pod": f"{TRAINER_JOB}-0", "container": "train"}
                ),
                Target(
                    "green-node-agents",
                    agent.port,
                    {"namespace": "green-system", "pod": "gto-green-training-operator-node-agent-x"},
                ),
            ]
            prom = stack.enter_context(prometheus(workdir, targets, rule["spec"]["groups"]))
            # The decision counters' zeros are scraped before any decision, so increase() sees them.
            wait_for(
                lambda: _scraped(prom, 'greentraining_decisions_total{deadline_at_risk="true"} == 0'),
                timeout=30,
                message="Prometheus to scrape the operator",
            )
            report = _short_trainer_report(workdir, ns)
            deadline = (datetime.now(UTC) + timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
            jobs.create(
                ns,
                jobs.gtj("done", regions=[REGION], annotations={jobs.TERMINATION_MESSAGE: report}),
                jobs.gtj("fails", regions=[REGION], annotations={jobs.EXIT_CODE: "1"}),
                jobs.gtj("at-risk", duration="2h", max_delay=None, deadline=deadline),
                # Deferred to a cleaner window, or (if now is the cleanest) running for a while.
                jobs.gtj("later", duration="1h", max_delay="24h", annotations={jobs.RUN_FOR: "600s"}),
            )
            jobs.wait_phase(ns, "done", "Succeeded")
            jobs.wait_phase(ns, "fails", "Failed")
            jobs.wait_phase(ns, "at-risk", "Succeeded")
            jobs.wait_phase(ns, "later", {"Deferred", "Running"})
            wait_for(
                lambda: _scraped(
                    prom, f'greentraining_jobs_finished_total{{namespace="{ns}", phase="Succeeded"}} == 2'
                ),
                timeout=30,
                message="Prometheus to scrape the finished jobs",
            )
            wait_for(
                lambda: (
                    trainer.alive()
                    and _scraped(
                        prom, f'rate(greentraining_training_samples_total{{pod_namespace="{ns}"}}[{RATE_INTERVAL}]) > 0'
                    )
                ),
                timeout=90,
                message=lambda: f"the trainer's samples in Prometheus\n{trainer.log()[-2000:]}",
            )
            wait_for(
                lambda: _scraped(prom, f'rate({POD_GPU_ENERGY}{{pod_namespace="{ns}"}}[{RATE_INTERVAL}]) > 0'),
                timeout=60,
                message=lambda: f"the node agent's pod energy in Prometheus\n{agent.log()[-2000:]}",
            )
            yield Stack(prom, ns, dashboard(objs), {r["alert"]: r for r in alert_rules(objs)}, json.loads(report))
    finally:
        kubectl("delete", "namespace", ns, "--wait=false", check=False)


# -- the dashboard --------------------------------------------------------------------------------


@pytest.mark.parametrize(("panel", "expr"), dashboard_targets(DASHBOARD), ids=PANEL_IDS)
def test_every_dashboard_query_returns_data(stack: Stack, panel: str, expr: str) -> None:
    assert (panel, expr) in dashboard_targets(stack.dashboard), "the chart ships this query"
    promql = stack.promql(expr)

    def data() -> list[dict[str, Any]] | None:
        series = stack.prom.query(promql)
        return series if finite(series) else None

    series = wait_for(data, timeout=20, message=lambda: f"data for {panel}: {promql}\n-> {stack.prom.query(promql)}")
    assert series


def test_every_dashboard_variable_lists_the_real_values(stack: Stack) -> None:
    queries = dashboard_variable_queries(stack.dashboard)
    assert set(queries) == {"namespace", "job", "region"}
    for name, query in queries.items():
        selector, label = parse_label_values(query)
        values = stack.prom.label_values(label, stack.promql(selector))
        assert stack.variables()[name] in values, f"${name}: {values}"


def _one_value(stack: Stack, title: str) -> float:
    panel = next(p for p in stack.dashboard["panels"] if p["title"] == title)
    (series,) = stack.prom.query(stack.promql(panel["targets"][0]["expr"]))
    return float(series["value"][1])


def _agree(actual: Callable[[], dict[str, float]], expected: dict[str, float], what: str, tol: float = 0.0) -> None:
    """Poll until Prometheus shows what the API already says: the operator updates its metrics just after
    it writes status, and Prometheus scrapes once a second."""
    seen: dict[str, float] = {}

    def close() -> bool:
        seen.clear()
        seen.update(actual())
        return seen.keys() == expected.keys() and all(
            math.isclose(seen[k], v, abs_tol=tol) for k, v in expected.items()
        )

    wait_for(close, timeout=30, message=lambda: f"{what}: Prometheus shows {seen}, the resources say {expected}")


def test_the_savings_panels_agree_with_the_jobs_status(stack: Stack) -> None:
    statuses = [jobs.status(stack.namespace, name) for name in ("done", "fails", "at-risk")]
    finished = [s for s in statuses if s.get("region") == REGION]
    assert len(finished) >= 2
    expected = {
        "Emissions of finished jobs": sum(s["emissions"]["grams"] for s in finished),
        "Saved against running immediately": sum(s["emissions"]["savedGrams"] for s in finished),
        "Energy of finished jobs": sum(s["energy"]["joules"] for s in finished) / 1000,
    }
    assert expected["Emissions of finished jobs"] > 0
    scale = {"Energy of finished jobs": 3.6e6 / 1000}  # the panel shows kWh; compared in kJ
    # Status figures are rounded to the milligram and the millijoule, per job.
    _agree(
        lambda: {t: _one_value(stack, t) * scale.get(t, 1.0) for t in expected},
        expected,
        "the savings stats",
        tol=0.005,
    )
    # The "done" job's energy is the real trainer report kwok handed over.
    assert jobs.status(stack.namespace, "done")["energy"]["source"] == "nvml"


def test_the_trainer_report_reaches_status_events_and_metrics(stack: Stack) -> None:
    """Issue 8's loop closed end to end: a real `green-trainer run` measured and reported; its report
    went through the pod's termination message to the operator, which accounted it."""
    report = stack.report
    st = jobs.status(stack.namespace, "done")
    assert st["energy"]["joules"] == pytest.approx(report["energyJoules"], abs=1e-3)
    assert st["energy"]["source"] == report["meter"] == "nvml"
    assert st["energy"]["estimatedPods"] == 0
    kwh = report["energyJoules"] / 3.6e6
    assert st["emissions"]["grams"] == pytest.approx(kwh * st["emissions"]["intensity"], rel=1e-3, abs=1e-3)
    assert st["emissions"]["savedGrams"] == pytest.approx(
        st["emissions"]["baselineGrams"] - st["emissions"]["grams"], abs=2e-3
    )
    events = json.loads(
        kubectl(
            "-n", stack.namespace, "get", "events", "--field-selector", "involvedObject.name=done", "-o", "json"
        ).stdout
    )["items"]
    summary = next(e["message"] for e in events if e["reason"] == "JobSucceeded")
    assert f"{kwh:.3f} kWh (nvml)" in summary
    metric = f'greentraining_job_energy_joules_total{{namespace="{stack.namespace}", meter="nvml"}}'
    _agree(
        lambda: {"joules": sum(float(x["value"][1]) for x in stack.prom.query(metric))},
        {"joules": report["energyJoules"]},
        "the operator's energy counter",
        tol=0.01,
    )


def test_jobs_by_phase_counts_the_jobs(stack: Stack) -> None:
    panel = next(p for p in stack.dashboard["panels"] if p["title"] == "Jobs by phase")
    phases = Counter(jobs.status(stack.namespace, n)["phase"] for n in ("done", "fails", "at-risk", "later"))
    assert phases["Succeeded"] == 2
    assert phases["Failed"] == 1
    _agree(
        lambda: {s["metric"]["phase"]: float(s["value"][1]) for s in stack.prom.query(panel["targets"][0]["expr"])},
        {p: float(phases[p]) for p in PHASES},
        "jobs by phase",
    )


def test_operator_and_trainer_emissions_are_separate_metrics(stack: Stack) -> None:
    """The operator accounts finished jobs (greentraining_job_emissions_grams_total, by region); the
    trainers meter live (greentraining_emissions_grams_total, by meter): two names, no collision."""
    ns = stack.namespace
    operator_series = stack.prom.query(f'greentraining_job_emissions_grams_total{{namespace="{ns}"}}')
    trainer_series = stack.prom.query(f'greentraining_emissions_grams_total{{pod_namespace="{ns}"}}')
    assert operator_series
    assert trainer_series
    assert {s["metric"]["job"] for s in operator_series} == {"gto-green-training-operator"}
    assert all("region" in s["metric"] for s in operator_series)
    assert {s["metric"]["greentraining_job"] for s in trainer_series} == {TRAINER_JOB}
    # The target's own labels stay the target's: no clash, no honorLabels, no exported_* renames.
    assert {s["metric"]["job"] for s in trainer_series} == {"green-trainers"}
    assert {s["metric"]["namespace"] for s in trainer_series} == {ns}
    assert not [k for s in trainer_series for k in s["metric"] if k.startswith("exported_")]
    assert {s["metric"]["meter"] for s in trainer_series} == {"nvml"}


def test_the_gpu_panels_show_the_limit_the_trainer_applied(stack: Stack) -> None:
    ns = stack.namespace
    limit = values_of(stack.prom.query(f'greentraining_gpu_power_limit_watts{{pod_namespace="{ns}"}}'))
    applied = stack.prom.query(f'greentraining_power_limit_applied{{pod_namespace="{ns}"}}')
    assert limit == [280.0]
    assert [(s["metric"]["reason"], float(s["value"][1])) for s in applied] == [("Applied", 1.0)]
    pod_power = next(e for p, e in dashboard_targets(stack.dashboard) if p == "Pod power / A")
    # A window the trainer has run through entirely (rate() divides by the whole window).
    power = values_of(stack.prom.query(grafana_to_promql(pod_power, stack.variables(), rate_interval="5s")))
    # The simulated board draws 310 W, capped at the 280 W limit; its energy counter integrates that.
    assert power
    assert power[0] == pytest.approx(280.0, rel=0.1)


def test_the_node_agent_meters_the_pod_and_applies_its_limit(stack: Stack) -> None:
    """Any image: the node agent's per-pod energy, scraped without honorLabels, joins on UUID and names the job."""
    ns = stack.namespace
    (series,) = stack.prom.query(f'greentraining_pod_gpu_energy_joules_total{{pod_namespace="{ns}"}}')
    labels = series["metric"]
    assert labels["greentraining_job"] == TRAINER_JOB
    assert (labels["pod_name"], labels["UUID"]) == (f"{TRAINER_JOB}-0", gpu_uuid(0))
    assert labels["job"] == "green-node-agents"  # the target's own label, untouched
    power = values_of(stack.prom.query(f'rate(greentraining_pod_gpu_energy_joules_total{{pod_namespace="{ns}"}}[5s])'))
    assert power[0] == pytest.approx(NODE_GPU_WATTS, rel=0.15)
    applied = stack.prom.query(f'greentraining_node_power_limit_applied{{pod_namespace="{ns}"}}')
    assert [(s["metric"]["reason"], float(s["value"][1])) for s in applied] == [("Applied", 1.0)]
    # The operator's live query: the trainer's figure where a trainer reports, never the agent's on top.
    result = stack.prom.query(energy_query(ns, TRAINER_JOB))
    live = parse_energy({"status": "success", "data": {"result": result}})
    assert live is not None
    assert live.meter == "nvml"


# -- the alerts -------------------------------------------------------------------------------------


@pytest.mark.parametrize("alert", ALERTS)
def test_every_alert_condition_is_true(stack: Stack, alert: str) -> None:
    assert set(stack.alerts) == set(ALERTS)
    expr = stack.alerts[alert]["expr"]
    series = wait_for(lambda: stack.prom.query(expr) or None, timeout=20, message=f"{alert} to hold: {expr}")
    labels = [s["metric"] for s in series]
    if alert == "GreenTrainingProviderDataStale":
        assert labels == [{"region": STALE_REGION}]
        assert values_of(series) == [math.inf]  # no live answer since the operator started
    elif alert == "GreenTrainingJobFailed":
        assert {"namespace": stack.namespace} in labels
        failed = next(s for s in series if s["metric"] == {"namespace": stack.namespace})
        assert float(failed["value"][1]) == 1
    else:
        assert values_of(series)[0] >= 1


def test_prometheus_loaded_the_rules_and_raised_the_alerts(stack: Stack) -> None:
    groups = stack.prom.api("rules")["groups"]
    rules = {r["name"]: r for g in groups for r in g["rules"]}
    assert set(rules) == set(ALERTS)
    for name, rule in rules.items():
        assert rule["health"] == "ok", f"{name}: {rule.get('lastError')}"

    def active() -> dict[str, str] | None:
        states = {a["labels"]["alertname"]: a["state"] for a in stack.prom.api("alerts")["alerts"]}
        return states if set(states) == set(ALERTS) else None

    states = wait_for(active, timeout=20, message="every alert pending or firing")
    # Fires at once (for: 0m), or waits out its `for` (10m) as pending.
    assert states == {
        "GreenTrainingJobFailed": "firing",
        "GreenTrainingJobDeadlineAtRisk": "firing",
        "GreenTrainingProviderDataStale": "pending",
    }
    assert http_get(f"{stack.prom.url}/-/healthy")
