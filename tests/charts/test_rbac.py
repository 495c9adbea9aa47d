"""The chart's RBAC is enough and no more: the real operator, authenticated as the chart's ServiceAccount,
runs GreenTrainingJobs to the end, while Secrets and everything it has no business with are refused."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import pytest
import yaml

from harness.cluster import REPO, kubectl
from harness.operator import operator
from harness.waiting import wait_for
from tests.charts import jobs
from tests.charts.chart import operator_config, render, render_text, token_kubeconfig, with_local_traces

pytestmark = pytest.mark.integration

PROVIDER_SECRET = "carbon-providers"
REPORT_SCHEMA = REPO / "trainer-image" / "src" / "green_trainer" / "schema" / "report-v1.schema.json"
# Log lines that mean a call was refused (kopf warns and carries on for scanning and events).
REFUSALS = ("forbidden", "403", "not enough permissions", "failed to post an event")


@dataclass(frozen=True)
class Installed:
    scope: str
    namespace: str
    service_account: str
    kubeconfig: Path
    values: dict[str, object]

    @property
    def user(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"


def _values(scope: str, namespace: str) -> dict[str, object]:
    env = [{"name": "ELECTRICITYMAPS_TOKEN", "secretName": PROVIDER_SECRET, "key": "token", "optional": True}]
    values: dict[str, object] = {"providerSecrets": {"env": env}}
    if scope == "namespaced":
        values["rbac"] = {"scope": "namespaced", "watchNamespaces": [namespace]}
    return values


@contextmanager
def _install(scope: str, namespace: str, workdir: Path) -> Iterator[Installed]:
    """The chart's ServiceAccount and RBAC (and nothing else) applied to the cluster, plus a provider Secret."""
    release = f"rbac-{uuid.uuid4().hex[:6]}"
    values = _values(scope, namespace)
    rbac = render_text(
        values,
        release=release,
        namespace=namespace,
        extra=[
            "--show-only",
            "templates/rbac.yaml",
            "--show-only",
            "templates/serviceaccount.yaml",
            "--show-only",
            "templates/leader-election.yaml",
        ],
    )
    kubectl("create", "secret", "generic", PROVIDER_SECRET, "-n", namespace, "--from-literal=token=not-a-real-token")
    kubectl("apply", "-f", "-", input=rbac)
    try:
        sa = f"{release}-green-training-operator"
        yield Installed(scope, namespace, sa, token_kubeconfig(namespace, sa, workdir / "sa.kubeconfig"), values)
    finally:
        kubectl("delete", "--ignore-not-found", "--wait=false", "-f", "-", input=rbac, check=False)


@pytest.fixture(params=["namespaced", "cluster"])
def installed(
    request: pytest.FixtureRequest, namespace: str, greentraining_crd: None, tmp_path: Path
) -> Iterator[Installed]:
    with _install(request.param, namespace, tmp_path) as inst:
        yield inst


@pytest.fixture
def installed_namespaced(namespace: str, greentraining_crd: None, tmp_path: Path) -> Iterator[Installed]:
    with _install("namespaced", namespace, tmp_path) as inst:
        yield inst


def test_the_operator_does_its_whole_job_as_the_charts_service_account(
    installed_namespaced: Installed, tmp_path: Path
) -> None:
    """In the namespaced scope: the control plane is shared, so the operator under test always watches just
    its namespace, which is that mode (kopf then lists namespaces; a cluster-scope operator watches
    cluster-wide and does not). The cluster scope's ClusterRole holds the same rules as the Role
    (test_chart_templates), and its grants are checked below."""
    installed = installed_namespaced
    ns = installed.namespace
    assert kubectl("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}", kubeconfig_path=installed.kubeconfig)
    report = jobs.trainer_report(36_000.0)  # 0.01 kWh: within what 1 GPU can draw in the 60 s slack
    jsonschema.validate(yaml.safe_load(report), yaml.safe_load(REPORT_SCHEMA.read_text()))
    config = with_local_traces(operator_config(render(installed.values, namespace=ns)))
    # With leader election, as the chart runs it: the Lease's Role is part of what is tested.
    elect = ["--leader-elect", f"--leader-election-namespace={ns}", f"--leader-election-id={installed.service_account}"]
    with operator(config, installed.kubeconfig, ns, tmp_path, args=elect) as op:
        wait_for(lambda: "leading: lease" in op.log(), timeout=30, message=lambda: f"the lease\n{op.tail()}")
        jobs.create(
            ns,
            jobs.gtj("train", regions=["europe-west3"], annotations={jobs.TERMINATION_MESSAGE: report}),
            # Deferred to a cleaner window, or (if now is the cleanest) running for a minute.
            jobs.gtj("later", duration="1h", max_delay="24h", annotations={jobs.RUN_FOR: "60s"}),
            # Two pods: the headless Service for their rendezvous (services create).
            jobs.gtj("pair", regions=["europe-west3"], parallelism=2),
        )
        done = jobs.wait_phase(ns, "train", "Succeeded")
        # Planned (greentrainingjobs get/watch, nodes index), Job created and watched (batch jobs),
        # pods listed for the report, status patched: the energy is the trainer's report.
        assert done["region"] == "europe-west3"
        assert done["energy"]["joules"] == pytest.approx(36_000.0)
        assert done["energy"]["source"] == "nvml"
        assert done["emissions"]["grams"] > 0
        job = yaml.safe_load(kubectl("-n", ns, "get", "job", done["jobName"], "-o", "yaml").stdout)
        assert job["status"]["succeeded"] == 1
        jobs.wait_phase(ns, "pair", "Succeeded")
        service = yaml.safe_load(kubectl("-n", ns, "get", "service", "pair", "-o", "yaml").stdout)
        assert service["spec"]["clusterIP"] == "None"
        # The operator writes only status: no finalizer, no annotations on the resource itself.
        jobs.wait_phase(ns, "later", {"Deferred", "Running"})
        later = jobs.get(ns, "later")
        assert not later["metadata"].get("finalizers")
        assert not [a for a in later["metadata"].get("annotations") or {} if "kopf" in a or "greentraining" in a]
        # Events were posted (events create).
        events = yaml.safe_load(
            kubectl("-n", ns, "get", "events", "--field-selector", "involvedObject.name=train", "-o", "yaml").stdout
        )["items"]
        assert "JobSucceeded" in {e["reason"] for e in events}
        # Deleting it: nothing holds it back; its Job goes with it (owner reference).
        kubectl("-n", ns, "delete", "greentrainingjob", "later", "--wait=false")

        def gone() -> bool:
            return not kubectl("-n", ns, "get", "greentrainingjobs", "-o", "name").stdout.count("later")

        wait_for(gone, timeout=30, message="the job to be deleted")
        log = op.log()
    refused = [line for line in log.splitlines() if any(r in line.lower() for r in REFUSALS)]
    assert not refused, "the operator was refused calls:\n" + "\n".join(refused)


def _can(installed: Installed, *args: str, namespace: str | None = None) -> bool:
    ns = ["--all-namespaces"] if namespace == "*" else ["-n", namespace or installed.namespace]
    result = kubectl("auth", "can-i", *args, *ns, f"--as={installed.user}", check=False)
    assert result.stdout.strip() in {"yes", "no"}, result.stdout + result.stderr
    return result.stdout.strip() == "yes"


ALLOWED = [
    ("watch", "greentrainingjobs.greentraining.io"),
    ("patch", "greentrainingjobs.greentraining.io", "--subresource=status"),
    ("create", "jobs.batch"),
    ("patch", "jobs.batch"),
    ("delete", "jobs.batch"),
    ("list", "pods"),
    ("create", "services"),
    ("get", "services"),
    ("patch", "pods"),
    ("create", "events"),
    ("patch", "events"),
    ("list", "nodes"),
    ("watch", "customresourcedefinitions.apiextensions.k8s.io"),
]
# Read-only, in every namespace and both modes: the capacity ledger counts every job and GPU pod.
READ_EVERYWHERE = [
    (verb, resource) for verb in ("get", "list", "watch") for resource in ("greentrainingjobs.greentraining.io", "pods")
]
REFUSED = [
    ("get", "secrets"),
    ("list", "secrets"),
    ("watch", "secrets"),
    ("get", f"secrets/{PROVIDER_SECRET}"),
    ("create", "secrets"),
    ("get", "configmaps"),
    ("create", "configmaps"),
    ("create", "deployments.apps"),
    ("create", "pods"),
    ("delete", "pods"),
    ("create", "pods", "--subresource=exec"),
    ("update", "jobs.batch"),
    ("create", "greentrainingjobs.greentraining.io"),
    ("patch", "greentrainingjobs.greentraining.io"),
    ("delete", "greentrainingjobs.greentraining.io"),
    ("update", "greentrainingjobs.greentraining.io"),
    ("delete", "nodes"),
    ("patch", "nodes"),
    ("create", "namespaces"),
    ("delete", "customresourcedefinitions.apiextensions.k8s.io"),
    ("create", "serviceaccounts", "--subresource=token"),
    ("create", "roles.rbac.authorization.k8s.io"),
    ("create", "rolebindings.rbac.authorization.k8s.io"),
    ("create", "clusterrolebindings.rbac.authorization.k8s.io"),
    ("escalate", "clusterroles.rbac.authorization.k8s.io"),
    ("bind", "clusterroles.rbac.authorization.k8s.io"),
    ("impersonate", "users"),
    ("impersonate", "serviceaccounts"),
    ("delete", "events"),
    ("delete", "services"),
    ("patch", "services"),
    ("list", "services"),
]


def test_the_service_account_may_make_exactly_the_operators_calls(installed: Installed) -> None:
    allowed = [a for a in ALLOWED if not _can(installed, *a)]
    assert not allowed, f"{installed.scope}: should be allowed but is not: {allowed}"
    granted = [a for a in REFUSED if _can(installed, *a)]
    assert not granted, f"{installed.scope}: should be refused but is granted: {granted}"
    # No Secret anywhere, the provider's included: the kubelet injects it, the operator never reads it.
    assert not _can(installed, "list", "secrets", namespace="*")
    assert not _can(installed, "get", "secrets", namespace="kube-system")
    unread = [(a, ns) for a in READ_EVERYWHERE for ns in ("default", "*") if not _can(installed, *a, namespace=ns)]
    assert not unread, f"{installed.scope}: should read everywhere but does not: {unread}"
    writes_elsewhere = [
        _can(installed, "create", "jobs.batch", namespace="default"),
        _can(installed, "patch", "jobs.batch", namespace="default"),
        _can(installed, "patch", "greentrainingjobs.greentraining.io", "--subresource=status", namespace="default"),
        _can(installed, "create", "events", namespace="default"),
    ]
    if installed.scope == "namespaced":
        assert not any(writes_elsewhere)
        assert _can(installed, "watch", "namespaces")  # kopf's namespace discovery
    else:
        assert all(writes_elsewhere)
        assert not _can(installed, "watch", "namespaces")


def test_requests_made_with_the_token_are_refused(installed: Installed) -> None:
    """The same refusals on real requests with the ServiceAccount's token (writes as server dry-runs)."""
    ns = installed.namespace
    node = kubectl("get", "nodes", "-o", "jsonpath={.items[0].metadata.name}").stdout
    attempts = [
        ("get", "secret", PROVIDER_SECRET, "-n", ns),
        ("get", "secrets", "-n", ns),
        ("get", "secrets", "-n", "kube-system"),
        ("get", "configmaps", "-n", ns),
        ("create", "configmap", "x", "--from-literal=a=b", "-n", ns, "--dry-run=server"),
        ("create", "deployment", "x", "--image=example.invalid/x:1", "-n", ns, "--dry-run=server"),
        ("delete", "node", node, "--dry-run=server"),
        (
            "create",
            "clusterrolebinding",
            "x",
            "--clusterrole=cluster-admin",
            f"--user={installed.user}",
            "--dry-run=server",
        ),
    ]
    for args in attempts:
        result = kubectl(*args, kubeconfig_path=installed.kubeconfig, check=False)
        assert result.returncode != 0, f"{args} was allowed"
        assert "forbidden" in result.stderr.lower(), f"{args}: {result.stderr}"
    # And what it needs works with the same token.
    assert kubectl("get", "nodes", "-o", "name", kubeconfig_path=installed.kubeconfig).stdout.strip()
    assert kubectl("-n", ns, "get", "greentrainingjobs", kubeconfig_path=installed.kubeconfig).returncode == 0
