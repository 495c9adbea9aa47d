"""Namespace users reach GreenTrainingJobs through Kubernetes' default roles (the real apiserver and its
ClusterRole aggregation controller): bound to `edit` a user creates, changes and deletes them but not
their status; bound to `view` a user reads them and creates nothing. Users are impersonated (--as)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import yaml

from harness.cluster import kubectl
from harness.waiting import wait_for
from tests.charts import jobs
from tests.charts.chart import render_text

pytestmark = pytest.mark.integration


@pytest.fixture
def aggregated() -> Iterator[str]:
    """The chart's aggregated ClusterRoles, applied, with their rules folded into edit and view."""
    release = f"roles-{uuid.uuid4().hex[:6]}"
    text = render_text({}, release=release, extra=["--show-only", "templates/aggregate-roles.yaml"])
    kubectl("apply", "-f", "-", input=text)

    def folded() -> bool:
        rules = {
            role: yaml.safe_load(kubectl("get", "clusterrole", role, "-o", "yaml").stdout).get("rules") or []
            for role in ("edit", "view", "admin")
        }
        return all(
            any("greentrainingjobs" in r.get("resources", []) for r in rules[role])
            for role in ("edit", "view", "admin")
        )

    try:
        wait_for(folded, timeout=30, message="the aggregation controller to fold the rules into edit, admin and view")
        yield release
    finally:
        kubectl("delete", "--ignore-not-found", "-f", "-", input=text, check=False)


def _bind(namespace: str, user: str, role: str) -> None:
    kubectl("-n", namespace, "create", "rolebinding", f"{user}-{role}", f"--clusterrole={role}", f"--user={user}")


def _as(user: str, namespace: str, *args: str) -> tuple[int, str]:
    done = kubectl("-n", namespace, "--as", user, *args, check=False)
    return done.returncode, done.stdout + done.stderr


def test_edit_users_submit_jobs_and_view_users_only_read_them(
    aggregated: str, namespace: str, greentraining_crd: None
) -> None:
    _bind(namespace, "alice", "edit")
    _bind(namespace, "bob", "view")
    manifest = yaml.safe_dump(jobs.gtj("from-alice"))

    done = kubectl("-n", namespace, "--as", "alice", "create", "-f", "-", input=manifest, check=False)
    assert done.returncode == 0, done.stderr
    rc, out = _as("alice", namespace, "annotate", "gtj", "from-alice", "team=ml")
    assert rc == 0, out
    # The status is the operator's: not even edit may write it.
    rc, out = _as("alice", namespace, "auth", "can-i", "patch", "greentrainingjobs", "--subresource=status")
    assert out.strip() == "no"

    rc, out = _as("bob", namespace, "get", "gtj", "from-alice", "-o", "name")
    assert (rc, out.strip()) == (0, "greentrainingjob.greentraining.io/from-alice")
    rc, out = _as("bob", namespace, "get", "gtj")
    assert rc == 0, out
    refused = kubectl(
        "-n", namespace, "--as", "bob", "create", "-f", "-", input=yaml.safe_dump(jobs.gtj("from-bob")), check=False
    )
    assert refused.returncode != 0
    assert "forbidden" in refused.stderr
    assert 'User "bob" cannot create resource "greentrainingjobs"' in refused.stderr
    rc, out = _as("bob", namespace, "delete", "gtj", "from-alice")
    assert rc != 0
    assert "forbidden" in out

    # Bindings are per namespace: alice's edit does not reach another one.
    rc, out = _as("alice", "default", "auth", "can-i", "create", "greentrainingjobs")
    assert out.strip() == "no"
    rc, out = _as("alice", namespace, "delete", "gtj", "from-alice")
    assert rc == 0, out
