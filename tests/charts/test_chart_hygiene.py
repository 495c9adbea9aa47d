"""Chart hygiene, rendered with the pinned helm (no cluster): aggregated user roles, the egress
NetworkPolicy, the chart as a subchart (`global`), a runbook for every alert."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import yaml

from harness.cluster import REPO
from tests.charts.chart import CHART, alert_rules, find, helm, one, render

MONITORING = {"prometheusRule": {"enabled": True}}
RUNBOOKS = REPO / "docs" / "runbooks.md"
AGGREGATE = "rbac.authorization.k8s.io/aggregate-to-"


def _rules(role: dict[str, Any]) -> dict[str, set[str]]:
    return {res: set(rule["verbs"]) for rule in role["rules"] for res in rule["resources"]}


# -- users' roles ---------------------------------------------------------------------------------


def test_edit_and_view_users_get_greentrainingjobs_through_aggregation() -> None:
    roles = {r["metadata"]["name"]: r for r in find(render(), "ClusterRole")}
    edit, view = roles["gto-green-training-operator-edit"], roles["gto-green-training-operator-view"]
    labels = {k for k, v in edit["metadata"]["labels"].items() if k.startswith(AGGREGATE) and v == "true"}
    assert labels == {AGGREGATE + "edit", AGGREGATE + "admin"}
    assert _rules(edit) == {"greentrainingjobs": {"create", "delete", "deletecollection", "patch", "update"}}
    assert view["metadata"]["labels"][AGGREGATE + "view"] == "true"
    assert _rules(view) == {
        "greentrainingjobs": {"get", "list", "watch"},
        "greentrainingjobs/status": {"get", "list", "watch"},
    }
    # Nothing binds them: Kubernetes' aggregation controller copies their rules into edit/admin/view.
    bound = {b["roleRef"]["name"] for b in find(render(), "ClusterRoleBinding")}
    assert not bound & {edit["metadata"]["name"], view["metadata"]["name"]}


def test_aggregation_can_be_turned_off() -> None:
    names = [r["metadata"]["name"] for r in find(render({"rbac": {"aggregateToDefaultRoles": False}}), "ClusterRole")]
    assert not [n for n in names if n.endswith(("-edit", "-view"))]


# -- egress NetworkPolicy -------------------------------------------------------------------------

EGRESS = {
    "networkPolicy": {
        "enabled": True,
        "apiServer": {"cidrs": ["10.96.0.1/32", "192.168.1.10/32"]},
        "providers": {"cidrs": ["203.0.113.0/24"]},
        "prometheus": {"cidrs": ["10.0.5.0/24"], "ports": [9090, 443]},
    }
}


def test_the_network_policy_is_off_by_default() -> None:
    assert not find(render(), "NetworkPolicy")


def test_the_network_policy_allows_dns_the_apiserver_providers_and_prometheus_only() -> None:
    objs = render(EGRESS, namespace="green")
    policy = one(objs, "NetworkPolicy")
    spec = policy["spec"]
    assert policy["metadata"]["namespace"] == "green"
    assert spec["policyTypes"] == ["Egress"]
    pod_labels = one(objs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert spec["podSelector"]["matchLabels"].items() <= pod_labels.items()
    dns, *peers = spec["egress"]
    assert dns["to"] == [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}]
    assert {(p["protocol"], p["port"]) for p in dns["ports"]} == {("UDP", 53), ("TCP", 53)}
    got = [([t["ipBlock"]["cidr"] for t in r["to"]], sorted(p["port"] for p in r["ports"])) for r in peers]
    assert got == [
        (["10.96.0.1/32", "192.168.1.10/32"], [443, 6443]),
        (["203.0.113.0/24"], [443]),
        (["10.0.5.0/24"], [443, 9090]),
    ]
    assert all(p["protocol"] == "TCP" for r in peers for p in r["ports"])


def test_a_peer_without_cidrs_is_not_reachable_and_extra_rules_are_appended() -> None:
    extra = {"to": [{"ipBlock": {"cidr": "198.51.100.7/32"}}], "ports": [{"protocol": "TCP", "port": 3128}]}
    values = {"networkPolicy": {"enabled": True, "apiServer": {"cidrs": ["10.96.0.1/32"]}, "extraEgress": [extra]}}
    egress = one(render(values), "NetworkPolicy")["spec"]["egress"]
    assert [r["to"][0].get("ipBlock", {}).get("cidr") for r in egress] == [None, "10.96.0.1/32", "198.51.100.7/32"]


def test_the_network_policy_refuses_to_cut_the_operator_off_the_apiserver() -> None:
    result = helm("template", "gto", str(CHART), "--set", "networkPolicy.enabled=true", check=False)
    assert result.returncode != 0
    assert "networkPolicy.enabled needs networkPolicy.apiServer.cidrs" in result.stderr
    bad = helm(
        "template", "gto", str(CHART), "--set", "networkPolicy.providers.cidrs={api.electricitymaps.com}", check=False
    )
    assert bad.returncode != 0
    assert "/networkPolicy/providers/cidrs/0" in bad.stderr


# -- as a subchart ------------------------------------------------------------------------------------


def test_global_values_are_accepted() -> None:
    result = helm(
        "template", "gto", str(CHART), "--set", "global.imageRegistry=registry.example", "--set", "global.x=1"
    )
    assert "kind: Deployment" in result.stdout


def test_the_chart_renders_as_a_subchart_of_a_parent_with_globals(tmp_path: Path) -> None:
    parent = tmp_path / "platform"
    (parent / "charts").mkdir(parents=True)
    shutil.copytree(CHART, parent / "charts" / CHART.name)
    (parent / "Chart.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v2",
                "name": "platform",
                "version": "1.0.0",
                "dependencies": [{"name": CHART.name, "version": "0.1.0"}],
            }
        )
    )
    (parent / "values.yaml").write_text(
        yaml.safe_dump(
            {"global": {"imageRegistry": "registry.example", "labels": {"team": "ml"}}, CHART.name: {"verbose": True}}
        )
    )
    out = helm("template", "platform", str(parent), "--namespace", "ml").stdout
    objs = [o for o in yaml.safe_load_all(out) if o]
    deployment = one(objs, "Deployment")
    assert deployment["metadata"]["namespace"] == "ml"
    assert "--verbose" in deployment["spec"]["template"]["spec"]["containers"][0]["args"]


def test_the_schema_generator_always_accepts_global(tmp_path: Path) -> None:
    """`global` comes from hack/gen_config_schema.py, so regenerating the schema keeps it."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["additionalProperties"] is False
    assert schema["properties"]["global"]["type"] == "object"
    del schema["properties"]["global"]
    generator = REPO / "hack" / "gen_config_schema.py"
    sys.path.insert(0, str(generator.parent))
    try:
        import gen_config_schema
    finally:
        sys.path.remove(str(generator.parent))
    regenerated = json.loads(gen_config_schema.generate(json.dumps(schema)))
    assert regenerated["properties"]["global"]["type"] == "object"


# -- runbooks -------------------------------------------------------------------------------------------


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes."""
    headings = re.findall(r"^#{1,6} +(.+?) *$", markdown, flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-") for h in headings}


def test_every_alert_has_a_runbook_url_whose_section_exists() -> None:
    rules = alert_rules(render(MONITORING))
    assert len(rules) == 3
    anchors = _anchors(RUNBOOKS.read_text())
    base = yaml.safe_load((CHART / "values.yaml").read_text())["prometheusRule"]["runbookBaseUrl"]
    assert base.endswith("docs/runbooks.md")
    for rule in rules:
        url = rule["annotations"]["runbook_url"]
        page, anchor = url.split("#")
        assert page == base
        assert anchor == rule["alert"].lower()
        assert anchor in anchors, f"docs/runbooks.md has no section for {rule['alert']}"


def test_the_runbook_base_url_is_configurable() -> None:
    rules = alert_rules(render({"prometheusRule": {"enabled": True, "runbookBaseUrl": "https://wiki.example/gto"}}))
    assert {r["annotations"]["runbook_url"] for r in rules} == {
        f"https://wiki.example/gto#{r['alert'].lower()}" for r in rules
    }


def test_the_anchor_reader_matches_githubs_rules() -> None:
    assert _anchors("# Runbooks\n## GreenTrainingJobFailed\ntext\n### A: b c\n") == {
        "runbooks",
        "greentrainingjobfailed",
        "a-b-c",
    }
