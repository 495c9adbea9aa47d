"""The chart's RBAC with kueue.enabled is enough: the real operator, authenticated as the chart's
ServiceAccount (namespaced scope, leader election on), holds a Kueue Job, admits it, and settles it,
with no call refused."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from green_operator.kueue.accounting import ANN_RESULT
from harness.cluster import kubectl
from harness.operator import operator
from harness.waiting import wait_for
from tests.charts.chart import render_text, token_kubeconfig
from tests.operator.kueue.test_kueue_integration import (
    REGION,
    SLOT,
    annotations,
    create_job,
    job_running,
    planned,
    ready_queues,
    traces,
)
from tests.support.kueue import Queues, batch_job, workload_of
from tests.support.operator_config import make_config

pytestmark = pytest.mark.integration

REFUSALS = ("forbidden", "403", "not enough permissions", "failed to post an event", "could not")


def test_the_kueue_check_works_as_the_charts_service_account(tmp_path: Path, queues: Queues) -> None:
    ns = queues.namespace
    release = f"kq-{uuid.uuid4().hex[:6]}"
    values = {"kueue": {"enabled": True, "admissionCheck": {"create": False}}}
    values["rbac"] = {"scope": "namespaced", "watchNamespaces": [ns]}
    show = ["templates/rbac.yaml", "templates/serviceaccount.yaml", "templates/leader-election.yaml"]
    extra = [x for s in show for x in ("--show-only", s)]
    rbac = render_text(values, release=release, namespace=ns, extra=extra)
    assert "admissionchecks/status" in rbac
    kubectl("apply", "-f", "-", input=rbac)
    try:
        sa = f"{release}-green-training-operator"
        kc = token_kubeconfig(ns, sa, tmp_path / "sa.kubeconfig")
        config_path = make_config(
            tmp_path,
            traces(datetime.now(UTC), clean_from=timedelta(seconds=20)),
            slot=SLOT,
            horizon=timedelta(minutes=10),
            extra={"kueue": {"enabled": True, "pendingWindow": "6s"}},
        )
        config = yaml.safe_load(config_path.read_text())
        elect = ["--leader-elect", f"--leader-election-namespace={ns}", f"--leader-election-id={sa}"]
        with operator(config, kc, ns, tmp_path, args=elect) as op:
            ready_queues(queues, gpus=8)  # our AdmissionCheck made Active (admissionchecks/status)
            fast = {"pod-complete.stage.kwok.x-k8s.io/delay": "2s"}
            create_job(ns, batch_job("held", queues.local_queue, annotations(**fast)))
            plan = wait_for(lambda: planned(ns, "held"), timeout=30, message="a plan (workloads patch)")
            assert plan["region"] == REGION
            wait_for(lambda: job_running(ns, "held"), timeout=90, message="the Job admitted")
            wl = wait_for(
                lambda: (w := workload_of(ns, "held")) and ANN_RESULT in w["metadata"].get("annotations", {}) and w,
                timeout=60,
                message="its result (pods listed, workload patched)",
            )
            assert json.loads(wl["metadata"]["annotations"][ANN_RESULT])["phase"] == "Succeeded"
            events = yaml.safe_load(
                kubectl("-n", ns, "get", "events", "--field-selector", "involvedObject.name=held", "-o", "yaml").stdout
            )["items"]
            assert {"CarbonDeferred", "CarbonAccounted"} <= {e["reason"] for e in events}
            log = op.log()
        refused = [line for line in log.splitlines() if any(r in line.lower() for r in REFUSALS)]
        assert not refused, "the operator was refused calls:\n" + "\n".join(refused)
    finally:
        kubectl("delete", "--ignore-not-found", "--wait=false", "-f", "-", input=rbac, check=False)
