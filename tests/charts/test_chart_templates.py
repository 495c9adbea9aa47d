"""The Helm chart rendered by the pinned helm binary (no cluster): lint, default and variant values, the
objects' security and RBAC, configuration, monitoring objects, alert rules and the dashboard."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from green_operator.api import manifests
from green_operator.carbon.metrics import CarbonMetrics
from green_operator.carbon.service import CarbonService
from green_operator.config import parse_config
from green_operator.metrics import OperatorMetrics
from harness.cluster import REPO
from tests.charts.chart import (
    CHART,
    CRDS,
    IMAGE_TRACES,
    Manifest,
    alert_rules,
    chart_args,
    dashboard,
    dashboard_targets,
    dashboard_variable_queries,
    find,
    grafana_to_promql,
    helm,
    one,
    operator_config,
    parse_label_values,
    render,
    with_local_traces,
)

MONITORING = {"serviceMonitor": {"enabled": True}, "podMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}}
NAMESPACED = {"rbac": {"scope": "namespaced", "watchNamespaces": ["team-a", "team-b"]}}
VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "monitoring": MONITORING,
    "namespaced": {**NAMESPACED, **MONITORING},
    "namespaced-release-only": {"rbac": {"scope": "namespaced"}},
    "secrets": {
        "providerSecrets": {
            "env": [{"name": "ELECTRICITYMAPS_TOKEN", "secretName": "carbon-providers", "key": "emaps"}],
            "files": [{"secretName": "watttime", "mountPath": "/var/run/secrets/watttime"}],
        }
    },
    "existing-config-and-sa": {
        "existingConfigMap": "my-config",
        "serviceAccount": {"create": False, "name": "my-sa"},
        "rbac": {"create": False},
        "dashboard": {"enabled": False},
    },
}
NAMESPACED_RULES = {
    ("greentraining.io", "greentrainingjobs"): {"get", "list", "watch"},
    ("greentraining.io", "greentrainingjobs/status"): {"get", "patch"},
    ("batch", "jobs"): {"get", "list", "watch", "create", "patch", "delete"},
    ("", "pods"): {"list", "patch"},
    ("", "services"): {"get", "create"},
    ("", "events"): {"create", "patch"},
}
# Capacity is counted cluster-wide (every job's and GPU pod's GPUs), in every RBAC mode.
CLUSTER_READ = {
    ("", "nodes"): {"get", "list", "watch"},
    ("", "pods"): {"get", "list", "watch"},
    ("greentraining.io", "greentrainingjobs"): {"get", "list", "watch"},
    ("apiextensions.k8s.io", "customresourcedefinitions"): {"get", "list", "watch"},
}


def _rules(role: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                out.setdefault((group, resource), set()).update(rule["verbs"])
    return out


def _operator_roles(objs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """The roles bound to the operator's ServiceAccount (not those aggregated into users' roles)."""
    bound = {b["roleRef"]["name"] for b in find(objs, "ClusterRoleBinding") + find(objs, "RoleBinding")}
    return [r for r in find(objs, kind) if r["metadata"]["name"] in bound]


def _operator_only(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The operator's objects: the node agent's (tests/charts/test_node_agent_chart.py) left out."""
    return [o for o in objs if o["metadata"]["labels"].get("app.kubernetes.io/component") != "node-agent"]


def _container(objs: list[dict[str, Any]]) -> dict[str, Any]:
    (container,) = one(objs, "Deployment")["spec"]["template"]["spec"]["containers"]
    result: dict[str, Any] = container
    return result


# -- lint and render --------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_helm_lint_passes_strictly(variant: str) -> None:
    args, stdin = chart_args(VARIANTS[variant])
    result = helm("lint", "--strict", str(CHART), *args, input=stdin, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_variant_renders_labelled_objects_in_the_release_namespace(variant: str) -> None:
    objs = render(VARIANTS[variant], namespace="ml-platform")
    assert objs
    cluster_scoped = {"ClusterRole", "ClusterRoleBinding"}
    for obj in objs:
        meta = obj["metadata"]
        assert meta["labels"]["app.kubernetes.io/instance"] == "gto"
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "Helm"
        if obj["kind"] in cluster_scoped:
            assert "namespace" not in meta
        elif obj["kind"] not in {"Role", "RoleBinding"}:
            assert meta["namespace"] == "ml-platform", obj["kind"]


def test_the_default_install_is_the_operator_and_its_dashboard_without_prometheus_operator_objects() -> None:
    kinds = sorted(o["kind"] for o in render())
    assert kinds == sorted(
        [
            "ClusterRole",
            "ClusterRole",
            "ClusterRole",  # aggregated into edit and admin
            "ClusterRole",  # aggregated into view
            "ClusterRoleBinding",
            "ClusterRoleBinding",
            "ConfigMap",
            "ConfigMap",
            "Deployment",
            "PodDisruptionBudget",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount",
            # The GPU node agent (nodeAgent.enabled, on by default): tests/charts/test_node_agent_chart.py.
            "DaemonSet",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
        ]
    )


def test_the_chart_carries_an_identical_copy_of_every_crd() -> None:
    sources = {p.name: p.read_text() for p in CRDS.glob("*.yaml")}
    copies = {p.name: p.read_text() for p in (CHART / "crds").glob("*.yaml")}
    assert sources
    assert copies.keys() == sources.keys()
    for name, text in sources.items():
        assert copies[name] == text, f"charts/.../crds/{name} drifted from crds/{name}: run `make crd`"


# -- the Deployment ---------------------------------------------------------------------------------


def test_the_deployment_runs_hardened_replicas_with_a_liveness_probe() -> None:
    objs = _operator_only(render())
    deployment = one(objs, "Deployment")
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    container = _container(objs)
    assert spec["replicas"] == 2
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert "privileged" not in sc
    probe = container["livenessProbe"]["httpGet"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert probe == {"path": "/healthz", "port": "health"}
    assert f"--liveness=http://0.0.0.0:{ports['health']}/healthz" in container["args"]
    assert "readinessProbe" not in container  # kopf's health is liveness only (DESIGN section 6)
    # A read-only root filesystem still gets a scratch /tmp.
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert container["image"] == "ghcr.io/green-training/operator:0.1.0"
    assert pod["serviceAccountName"] == one(objs, "ServiceAccount")["metadata"]["name"]


def test_the_configuration_is_mounted_from_the_configmap_and_a_change_rolls_the_pod() -> None:
    objs = render()
    container = _container(objs)
    pod = one(objs, "Deployment")["spec"]["template"]
    config_map = one(objs, "ConfigMap", "gto-green-training-operator-config")
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == "/etc/green-operator")
    assert volumes[mount["name"]]["configMap"]["name"] == config_map["metadata"]["name"]
    assert "--config=/etc/green-operator/config.yaml" in container["args"]
    changed = render({"config": {"planner": {"slot": "30m"}}})
    before = pod["metadata"]["annotations"]["checksum/config"]
    after = one(changed, "Deployment")["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
    assert before != after


def test_image_digest_wins_over_the_tag() -> None:
    digest = "sha256:" + "a" * 64
    container = _container(render({"image": {"tag": "9.9.9", "digest": digest}}))
    assert container["image"] == f"ghcr.io/green-training/operator@{digest}"
    assert _container(render({"image": {"tag": "9.9.9"}}))["image"] == "ghcr.io/green-training/operator:9.9.9"


def test_the_metrics_port_is_one_value_for_config_container_service_and_flag() -> None:
    objs = render({"metrics": {"port": 9091}})
    container = _container(objs)
    service = one(objs, "Service")
    assert operator_config(objs)["operator"]["metricsPort"] == 9091
    assert {"name": "metrics", "containerPort": 9091, "protocol": "TCP"} in container["ports"]
    assert "--metrics-port=9091" in container["args"]
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"
    assert service["spec"]["selector"] == one(objs, "Deployment")["spec"]["selector"]["matchLabels"]


def test_provider_credentials_are_secret_references_never_values() -> None:
    objs = render(VARIANTS["secrets"])
    container = _container(objs)
    pod = one(objs, "Deployment")["spec"]["template"]["spec"]
    assert not find(objs, "Secret")
    assert [e for e in container["env"] if e["name"] != "POD_NAME"] == [
        {
            "name": "ELECTRICITYMAPS_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": "carbon-providers", "key": "emaps"}},
        }
    ]
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == "/var/run/secrets/watttime")
    assert mount["readOnly"] is True
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert volume["secret"]["secretName"] == "watttime"


def test_an_existing_configmap_and_serviceaccount_are_used_as_they_are() -> None:
    objs = _operator_only(render(VARIANTS["existing-config-and-sa"]))
    pod = one(objs, "Deployment")["spec"]["template"]["spec"]
    assert not find(objs, "ConfigMap")
    assert not find(objs, "ServiceAccount")
    assert not find(objs, "ClusterRole")
    assert pod["serviceAccountName"] == "my-sa"
    assert {"name": "config", "configMap": {"name": "my-config"}} in pod["volumes"]


# -- RBAC -------------------------------------------------------------------------------------------


def work_roles(objs: list[Manifest]) -> list[Manifest]:
    """Roles and bindings for the jobs' namespaces; the leader-election pair is tested on its own."""
    return [o for o in objs if not o["metadata"]["name"].endswith("-leader-election")]


def test_cluster_scope_grants_exactly_the_operators_calls() -> None:
    objs = _operator_only(render())
    roles = {r["metadata"]["name"]: _rules(r) for r in _operator_roles(objs, "ClusterRole")}
    assert roles == {
        "gto-green-training-operator": NAMESPACED_RULES,
        "gto-green-training-operator-cluster-read": CLUSTER_READ,
    }
    assert not work_roles(find(objs, "Role"))
    sa = one(objs, "ServiceAccount")["metadata"]
    for binding in find(objs, "ClusterRoleBinding"):
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa["name"], "namespace": sa["namespace"]}]
        assert binding["roleRef"]["name"] in roles


def test_namespaced_scope_grants_the_work_only_in_the_watched_namespaces() -> None:
    objs = _operator_only(render(NAMESPACED))
    roles = work_roles(find(objs, "Role"))
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    assert all(_rules(r) == NAMESPACED_RULES for r in roles)
    bindings = work_roles(find(objs, "RoleBinding"))
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
    (cluster_role,) = _operator_roles(objs, "ClusterRole")
    # kopf lists and watches namespaces when it watches a set of them.
    assert _rules(cluster_role) == {**CLUSTER_READ, ("", "namespaces"): {"get", "list", "watch"}}
    container = _container(objs)
    assert [a for a in container["args"] if a.startswith("--namespace=")] == [
        "--namespace=team-a",
        "--namespace=team-b",
    ]
    assert operator_config(objs)["operator"]["watchNamespaces"] == ["team-a", "team-b"]


def test_namespaced_scope_defaults_to_the_release_namespace() -> None:
    objs = render({"rbac": {"scope": "namespaced"}}, namespace="ml-platform")
    assert [r["metadata"]["namespace"] for r in work_roles(find(objs, "Role"))] == ["ml-platform"]
    assert operator_config(objs)["operator"]["watchNamespaces"] == ["ml-platform"]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_no_variant_grants_secrets_wildcards_deletes_or_escalation(variant: str) -> None:
    objs = render(VARIANTS[variant])
    for role in _operator_roles(objs, "ClusterRole") + _operator_roles(objs, "Role"):
        for rule in role["rules"]:
            assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"]
            assert not {"deletecollection", "update", "escalate", "bind", "impersonate"} & set(rule["verbs"])
            # The one delete: a deferred job's never-started child Job, rebuilt after a template edit.
            if "delete" in rule["verbs"]:
                assert (rule["apiGroups"], rule["resources"]) == (["batch"], ["jobs"])
            assert not {"secrets", "configmaps", "roles", "rolebindings", "pods/exec"} & set(rule["resources"])


# -- the operator configuration -----------------------------------------------------------------------


def test_the_default_configuration_is_valid_and_its_traces_are_in_the_image() -> None:
    config = operator_config(render())
    parsed = parse_config(config)
    assert parsed.metrics_port == 8080
    assert parsed.watch_namespaces == ()
    # Every trace the default names is one the image copies (data/carbon -> /opt/green/data/carbon).
    files = [Path(f) for p in config["providers"].values() for f in p.get("files", {}).values()]
    assert files
    for f in files:
        assert f.parent == Path(IMAGE_TRACES)
        assert (REPO / "data" / "carbon" / f.name).is_file()
    # And the traces load: the carbon service reads every file when it is built.
    local = parse_config(with_local_traces(config))
    service = CarbonService.from_config(local.carbon, metrics=CarbonMetrics(CollectorRegistry()))
    assert sorted(service.regions()) == sorted(parsed.region_names)


def test_the_default_regions_are_the_local_clusters_and_the_config_is_the_demos() -> None:
    config = operator_config(render())
    nodes = yaml.safe_load((REPO / "hack" / "cluster" / "nodes.yaml").read_text())
    assert [r["name"] for r in config["regions"]] == [r["name"] for r in nodes["regions"]]
    demo = yaml.safe_load((REPO / "examples" / "operator-config.yaml").read_text())
    for provider in [*config["providers"].values(), *demo["providers"].values()]:
        provider["files"] = {zone: Path(f).name for zone, f in provider["files"].items()}
    for key in ("providers", "carbon", "regions", "planner"):
        assert config[key] == demo[key], f"the chart's default config.{key} differs from examples/operator-config.yaml"


def test_the_stale_data_threshold_matches_the_carbon_stale_after() -> None:
    objs = render(MONITORING)
    parsed = parse_config(operator_config(objs))
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    threshold = values["prometheusRule"]["providerDataStale"]["thresholdSeconds"]
    assert threshold == parsed.carbon.settings.stale_after.total_seconds()
    (stale,) = [r for r in alert_rules(objs) if r["alert"] == "GreenTrainingProviderDataStale"]
    assert "> 7200" in stale["expr"]


# -- Prometheus Operator objects ---------------------------------------------------------------------


def test_monitoring_objects_are_gated_one_by_one() -> None:
    kinds = {"serviceMonitor": "ServiceMonitor", "podMonitor": "PodMonitor", "prometheusRule": "PrometheusRule"}
    for key, kind in kinds.items():
        assert not find(render(), kind)
        only = render({key: {"enabled": True}})
        assert len(find(only, kind)) == 1
        others = {"ServiceMonitor", "PodMonitor", "PrometheusRule"} - {kind}
        assert not [o for o in only if o["kind"] in others]


def test_the_service_monitor_scrapes_the_operator_service_keeping_its_labels() -> None:
    objs = render({"serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}}})
    monitor = one(objs, "ServiceMonitor")
    service = one(objs, "Service")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["green-system"]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == service["spec"]["ports"][0]["name"]
    assert endpoint["honorLabels"] is True


def test_the_pod_monitor_scrapes_the_pods_the_operator_creates() -> None:
    pod_monitor = one(render(MONITORING), "PodMonitor")
    assert pod_monitor["spec"]["selector"] == {"matchLabels": {manifests.LABEL_MANAGED_BY: manifests.MANAGED_BY}}
    assert pod_monitor["spec"]["namespaceSelector"] == {"any": True}
    (endpoint,) = pod_monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] == manifests.TRAINER_METRICS_PORT_NAME
    # The trainers' labels (pod_namespace, pod_name, greentraining_job, UUID...) clash with no target label.
    assert endpoint["honorLabels"] is False
    namespaced = one(render({**NAMESPACED, **MONITORING}), "PodMonitor")
    assert namespaced["spec"]["namespaceSelector"] == {"matchNames": ["team-a", "team-b"]}
    # The operator's own pod must not look like a training pod.
    pod_labels = one(render(), "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert pod_labels.get(manifests.LABEL_MANAGED_BY) != manifests.MANAGED_BY


def _promtool_check(groups: list[dict[str, Any]], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": groups}))
    promtool = shutil.which("promtool")
    assert promtool, "promtool not found: it comes with Debian's prometheus package (make prometheus)"
    return subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)


def test_the_alert_rules_pass_promtool(tmp_path: Path) -> None:
    rule = one(render(MONITORING), "PrometheusRule")
    result = _promtool_check(rule["spec"]["groups"], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    names = [r["alert"] for r in alert_rules(render(MONITORING))]
    assert names == ["GreenTrainingProviderDataStale", "GreenTrainingJobDeadlineAtRisk", "GreenTrainingJobFailed"]
    for r in alert_rules(render(MONITORING)):
        assert r["labels"]["severity"] == "warning"
        assert r["annotations"]["summary"]
        assert r["annotations"]["description"]


def test_alerts_and_panels_select_only_decision_series_the_operator_exports() -> None:
    """Outcomes are exclusive; whether a decision put the deadline at risk is a label of its own."""
    registry = CollectorRegistry()
    OperatorMetrics(registry)
    exported = {
        (k, v)
        for family in registry.collect()
        for sample in family.samples
        if sample.name == "greentraining_decisions_total"
        for k, v in sample.labels.items()
    }
    exprs = [r["expr"] for r in alert_rules(render(MONITORING))]
    exprs += [e for _, e in dashboard_targets(json.loads(DASHBOARD_FILE.read_text()))]
    selected = {
        pair
        for e in exprs
        for labels in re.findall(r"greentraining_decisions_total\{([^}]*)\}", e)
        for pair in re.findall(r'(\w+)="([^"]*)"', labels)
    }
    assert ("deadline_at_risk", "true") in selected
    assert selected <= exported


def test_alerts_can_be_switched_off_and_tuned() -> None:
    objs = render(
        {
            "prometheusRule": {
                "enabled": True,
                "deadlineAtRisk": {"enabled": False},
                "jobFailed": {"window": "1h", "for": "5m", "severity": "critical"},
                "additionalLabels": {"team": "ml"},
            }
        }
    )
    rules = {r["alert"]: r for r in alert_rules(objs)}
    assert set(rules) == {"GreenTrainingProviderDataStale", "GreenTrainingJobFailed"}
    failed = rules["GreenTrainingJobFailed"]
    assert "[1h]" in failed["expr"]
    assert "offset 1h" in failed["expr"]
    assert failed["for"] == "5m"
    assert failed["labels"] == {"severity": "critical", "team": "ml"}


def test_regions_without_a_live_provider_are_never_reported_stale() -> None:
    regions = [
        {"name": "europe-west3", "carbon": {"provider": "europe-traces", "zone": "DE"}},
        {"name": "asia-east1", "carbon": {"staticGramsPerKwh": 500}},
        {"name": "asia-east2"},
    ]
    objs = render({**MONITORING, "config": {"regions": regions}})
    (stale,) = [r for r in alert_rules(objs) if r["alert"] == "GreenTrainingProviderDataStale"]
    assert 'region!~"asia-east1|asia-east2"' in stale["expr"]
    default = next(r for r in alert_rules(render(MONITORING)) if r["alert"] == "GreenTrainingProviderDataStale")
    assert "region!~" not in default["expr"]


# -- the dashboard ----------------------------------------------------------------------------------

DASHBOARD_FILE = CHART / "dashboards" / "green-training.json"


def test_the_dashboard_ships_as_a_sidecar_configmap_identical_to_its_source() -> None:
    objs = render({"dashboard": {"annotations": {"grafana_folder": "Green"}, "namespace": "monitoring"}})
    cm = one(objs, "ConfigMap", "gto-green-training-operator-dashboard")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["annotations"] == {"grafana_folder": "Green"}
    assert cm["metadata"]["namespace"] == "monitoring"
    assert dashboard(objs) == json.loads(DASHBOARD_FILE.read_text())
    assert not find(render({"dashboard": {"enabled": False}}), "ConfigMap", "gto-green-training-operator-dashboard")


def test_every_panel_queries_the_chosen_prometheus_and_fits_the_grid() -> None:
    dash = json.loads(DASHBOARD_FILE.read_text())
    assert dash["uid"] == "green-training"
    variables = [v["name"] for v in dash["templating"]["list"]]
    assert variables == ["datasource", "namespace", "job", "region"]
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for p in dash["panels"]:
        grid = p["gridPos"]
        assert grid["x"] + grid["w"] <= 24, p["title"]
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p["targets"], f"panel {p['title']!r} has no query"
        assert p["description"], p["title"]
        for t in p["targets"]:
            assert t["datasource"] == p["datasource"]
            assert t["expr"].strip()


def _metric_names(expr: str) -> set[str]:
    expr = re.sub(r"\b(by|without)\s*\([^)]*\)", "", expr)  # grouping labels are not metric names
    return set(re.findall(r"\b(greentraining_[a-z_]+?)(?:_bucket)?\b(?=\s*[{\[)])", expr))


def test_every_operator_metric_on_the_dashboard_exists() -> None:
    registry = CollectorRegistry()
    OperatorMetrics(registry)
    CarbonMetrics(registry)
    # Family names as PromQL sees them (labelled families have no samples until first used).
    operator_names = {f"{m.name}_total" if m.type == "counter" else m.name for m in registry.collect()}
    dash = json.loads(DASHBOARD_FILE.read_text())
    used = {n for _, expr in dashboard_targets(dash) for n in _metric_names(expr)}
    trainer_prefixes = (
        "greentraining_gpu_",
        "greentraining_training_",
        "greentraining_power_limit_",
        "greentraining_pod_gpu_",  # the node agent's
        "greentraining_node_",
    )
    trainer_names = {
        "greentraining_energy_joules_total",
        "greentraining_energy_per_sample_joules",
        "greentraining_carbon_intensity_grams_per_kwh",
        "greentraining_emissions_grams_total",  # trainers
        "greentraining_job_emissions_grams_total",  # operator
    }
    operator_used = {n for n in used if not n.startswith(trainer_prefixes) and n not in trainer_names}
    assert operator_used
    missing = operator_used - operator_names
    assert not missing, f"dashboard queries metrics the operator does not export: {sorted(missing)}"
    # Every operator metric family the design lists has a panel.
    for wanted in (
        "greentraining_jobs",
        "greentraining_reconcile_duration_seconds",
        "greentraining_deferral_seconds",
        "greentraining_provider_requests_total",
        "greentraining_provider_errors_total",
        "greentraining_provider_data_age_seconds",
        "greentraining_emissions_saved_grams_total",
    ):
        assert any(wanted in expr for _, expr in dashboard_targets(dash)), wanted


def test_every_dashboard_query_and_variable_is_valid_promql(tmp_path: Path) -> None:
    """promtool parses each query (variables filled in) as a recording rule: a syntax error fails here."""
    dash = json.loads(DASHBOARD_FILE.read_text())
    targets = dashboard_targets(dash)
    assert len(targets) >= 25
    rules = [{"record": f"dashboard:query_{i}", "expr": grafana_to_promql(expr)} for i, (_, expr) in enumerate(targets)]
    for name, query in dashboard_variable_queries(dash).items():
        selector, _ = parse_label_values(query)
        rules.append({"record": f"dashboard:variable_{name}", "expr": grafana_to_promql(selector)})
    result = _promtool_check([{"name": "dashboard", "rules": rules}], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


# A counter's raw value restarts at zero with the process that exports it. It may be read only over
# a range: by these functions, or by last_over_time when that is guarded to series born inside the
# range (`last_over_time(c[r]) unless present_over_time(c[r] offset r)`), whose value is all increase.
_COUNTER_READERS = {"rate", "irate", "increase", "present_over_time"}
_COUNTER = re.compile(r"\b[a-zA-Z_:][a-zA-Z0-9_:]*_total\b")


def _skip_labels(expr: str, i: int) -> int:
    """Index just after the label matchers `{...}` starting at ``i`` (quoted values may hold braces)."""
    if i >= len(expr) or expr[i] != "{":
        return i
    quoted = False
    while i < len(expr):
        c = expr[i]
        if c == "\\" and quoted:
            i += 2
            continue
        if c == '"':
            quoted = not quoted
        elif c == "}" and not quoted:
            return i + 1
        i += 1
    return i


def _enclosing_call(expr: str, i: int) -> tuple[str, int]:
    """Name of the function whose parentheses enclose position ``i`` ("" if none), and its ')' index.
    (Label values holding parentheses would confuse it; the dashboard's use regexes without them.)"""
    depth = 0
    for j in range(i - 1, -1, -1):
        depth += {")": 1, "(": -1}.get(expr[j], 0)
        if depth < 0:
            name = re.search(r"([a-z_]*)\s*$", expr[:j])
            depth = 0
            for k in range(j, len(expr)):
                depth += {"(": 1, ")": -1}.get(expr[k], 0)
                if depth == 0:
                    return (name.group(1) if name else ""), k
            break
    return "", len(expr)


def bare_counters(expr: str) -> list[str]:
    """The counters ``expr`` shows as raw values (which drop whenever the exporting process restarts)."""
    bare: list[str] = []
    for m in _COUNTER.finditer(expr):
        end = _skip_labels(expr, m.end())
        selector = expr[m.start() : end]
        fn, close = _enclosing_call(expr, m.start())
        ranged = expr[end:].lstrip().startswith("[")
        guarded = fn == "last_over_time" and re.match(
            r"\s*unless\s+present_over_time\(\s*" + re.escape(selector) + r"\s*\[", expr[close + 1 :]
        )
        if not ranged or not (fn in _COUNTER_READERS or guarded):
            bare.append(selector)
    return bare


def test_no_dashboard_panel_shows_a_bare_counter() -> None:
    dash = json.loads(DASHBOARD_FILE.read_text())
    shown = {panel: bare_counters(expr) for panel, expr in dashboard_targets(dash)}
    assert {p: b for p, b in shown.items() if b} == {}
    assert any("$__range" in expr for _, expr in dashboard_targets(dash))
    # The check does catch a raw counter, however it is dressed up.
    assert bare_counters('sum(greentraining_x_total{a="}"})') == ['greentraining_x_total{a="}"}']
    assert bare_counters("greentraining_x_total offset 1h") == ["greentraining_x_total"]
    assert bare_counters("max_over_time(greentraining_x_total[1h])") == ["greentraining_x_total"]
    assert bare_counters("last_over_time(greentraining_x_total[1h])") == ["greentraining_x_total"]
    assert bare_counters("last_over_time(a_total[1h]) unless present_over_time(b_total[1h] offset 1h)") == ["a_total"]
    assert bare_counters('sum by (le) (rate(greentraining_x_total{a="b"}[5m]))') == []


def _panel_expr(dash: dict[str, Any], title: str) -> str:
    (expr,) = [e for p, e in dashboard_targets(dash) if p.startswith(f"{title} / ")]
    return expr


def test_dashboard_totals_survive_a_restart_and_count_every_instance(tmp_path: Path) -> None:
    """promtool evaluates the totals over a one-hour range [1h, 2h] scraped every minute. Series by
    namespace: ml's old operator pod counted 10 g before the range and died at 1h31m (restart); its
    successor's series is born at 1h31m already at 4 (a job finished before the first scrape), then 7;
    ml2's series (a second instance) goes 5 -> 8 inside the range, resets (container restart) and counts
    2 more. In the range: 0 + 7 + (3 + 2) = 12 g. The raw sum at 2h would be 9."""
    dash = json.loads(DASHBOARD_FILE.read_text())
    metric = "greentraining_job_emissions_grams_total"
    series = {
        '{instance="old", namespace="ml", region="r"}': "0x29 10x60 stale",
        '{instance="new", namespace="ml", region="r"}': "_x91 4x13 7x15",
        '{instance="other", namespace="ml2", region="r"}': "5x79 8x19 0x9 2x10",
    }
    checks = {
        "Emissions of finished jobs": [{"labels": "{}", "value": 12}],
        "Emissions of finished jobs by region": [{"labels": '{region="r"}', "value": 12}],
    }
    tests = {
        "interval": "1m",
        "input_series": [{"series": metric + labels, "values": values} for labels, values in series.items()],
        "promql_expr_test": [
            {"expr": grafana_to_promql(_panel_expr(dash, title), time_range="1h"), "eval_time": "2h", "exp_samples": s}
            for title, s in checks.items()
        ]
        # The data does tell the two apart: the raw counters' sum dropped with the restart.
        + [{"expr": f"sum({metric})", "eval_time": "2h", "exp_samples": [{"labels": "{}", "value": 9}]}],
    }
    path = tmp_path / "test.yaml"
    path.write_text(yaml.safe_dump({"rule_files": [], "evaluation_interval": "1m", "tests": [tests]}))
    promtool = shutil.which("promtool")
    assert promtool, "promtool not found: it comes with Debian's prometheus package (make prometheus)"
    result = subprocess.run(
        [promtool, "test", "rules", path.name], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr


# -- values.yaml and its schema -------------------------------------------------------------------------


def _documented(lines: list[str], start: int, indent: int) -> list[str]:
    """Keys under the mapping starting after line ``start`` at ``indent`` that lack documentation.

    A key is documented by a comment right above it; an undocumented key is fine when it is a
    mapping whose own keys are each documented (field by field).
    """
    missing: list[str] = []
    i = start
    while i < len(lines):
        line = lines[i]
        m = re.match(r"^( *)([A-Za-z_][\w.-]*):(?: (.*))?$", line)
        if not line.strip() or line.lstrip().startswith("#"):
            i += 1
            continue
        current = len(line) - len(line.lstrip())
        if current < indent:
            break
        if current > indent or not m:
            i += 1
            continue
        key, rest = m.group(2), (m.group(3) or "").strip()
        above = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        if not above.lstrip().startswith("#"):
            if rest and not rest.startswith("#"):
                missing.append(key)
            else:
                child_indent = next(
                    (len(x) - len(x.lstrip()) for x in lines[i + 1 :] if x.strip() and not x.lstrip().startswith("#")),
                    0,
                )
                if child_indent <= indent:
                    missing.append(key)
                else:
                    missing += [f"{key}.{k}" for k in _documented(lines, i + 1, child_indent)]
        i += 1
    return missing


def test_values_yaml_is_documented_field_by_field() -> None:
    lines = (CHART / "values.yaml").read_text().splitlines()
    assert _documented(lines, 0, 0) == []
    # The checker does catch an undocumented field.
    assert _documented(["a:", "  # -- fine", "  b: 1", "  c: 2"], 0, 0) == ["a.c"]


def test_the_schema_covers_every_value_and_refuses_mistakes() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert set(schema["properties"]) == set(values)
    for args, message in (
        (["--set", "rbac.scope=everything"], "/rbac/scope"),
        (["--set", "serviceMonitor.enable=true"], "additional properties 'enable' not allowed"),
        (["--set", "serviceAccount.create=false"], "serviceAccount.name: name an existing ServiceAccount"),
        (["--set", "config.regions=null"], "regions"),
        (["--set", "image.digest=latest"], "/image/digest"),
        # The chart owns these two: metrics.port and rbac.
        (["--set", "config.operator.metricsPort=1234"], "additional properties 'metricsPort' not allowed"),
        (["--set", "config.operator.watchNamespaces={a}"], "additional properties 'watchNamespaces' not allowed"),
    ):
        result = helm("template", "gto", str(CHART), *args, check=False)
        assert result.returncode != 0, args
        assert message in result.stderr, result.stderr


# -- high availability -------------------------------------------------------------------------------


def test_replicas_elect_a_leader_on_a_lease_only_they_may_write() -> None:
    objs = render(namespace="green-system")
    args = _container(objs)["args"]
    assert "--leader-elect" in args
    assert "--leader-election-id=gto-green-training-operator" in args
    assert "--leader-election-namespace=green-system" in args
    assert {"--lease-duration=15", "--renew-deadline=10", "--retry-period=2"} <= set(args)
    env = {e["name"]: e for e in _container(objs)["env"]}
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    role = one(objs, "Role", "gto-green-training-operator-leader-election")
    assert role["metadata"]["namespace"] == "green-system"
    assert role["rules"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": ["gto-green-training-operator"],
            "verbs": ["get", "patch"],
        },
    ]
    binding = one(objs, "RoleBinding", "gto-green-training-operator-leader-election")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    pdb = one(objs, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == one(objs, "Deployment")["spec"]["selector"]["matchLabels"]


def test_a_single_replica_without_leader_election_is_recreated_and_has_no_budget() -> None:
    objs = render({"replicaCount": 1, "leaderElection": {"enabled": False}})
    deployment = one(objs, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert not [a for a in _container(objs)["args"] if a.startswith("--leader")]
    assert not find(objs, "PodDisruptionBudget")
    assert not [r for r in find(objs, "Role") if r["metadata"]["name"].endswith("-leader-election")]


def test_several_replicas_without_leader_election_are_refused() -> None:
    args, stdin = chart_args({"replicaCount": 3, "leaderElection": {"enabled": False}})
    result = helm("template", "gto", str(CHART), *args, input=stdin, check=False)
    assert result.returncode != 0
    assert "replicaCount > 1 needs leaderElection.enabled: true" in result.stderr


MULTIKUEUE_VALUES = {
    "config": {
        "regions": [{"name": "europe-west3"}, {"name": "europe-west9"}],
        "multiKueue": {"workerLostTimeout": "15m"},
    },
    "multiKueue": {
        "enabled": True,
        "workers": [
            {"cluster": "worker-de", "region": "europe-west3", "secretName": "worker-de-kubeconfig"},
            {"cluster": "worker-fr", "region": "europe-west9", "secretName": "worker-fr-kubeconfig", "key": "config"},
        ],
    },
}


def test_multikueue_workers_kubeconfig_secrets_are_mounted_where_the_config_points() -> None:
    rendered = render(MULTIKUEUE_VALUES)
    cfg = parse_config(operator_config(rendered))
    assert cfg.multikueue_enabled
    assert cfg.multikueue.worker_lost_timeout.total_seconds() == 900
    paths = {w.cluster: str(w.kubeconfig) for w in cfg.workers}
    assert paths == {
        "worker-de": "/etc/green-operator-workers/worker-de/kubeconfig",
        "worker-fr": "/etc/green-operator-workers/worker-fr/config",
    }
    pod = one(rendered, "Deployment")["spec"]["template"]["spec"]
    mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    for i, (cluster, secret, key) in enumerate(
        [("worker-de", "worker-de-kubeconfig", "kubeconfig"), ("worker-fr", "worker-fr-kubeconfig", "config")]
    ):
        name = f"worker-kubeconfig-{i}"
        assert mounts[name] + "/" + volumes[name]["secret"]["items"][0]["path"] == paths[cluster]
        assert volumes[name]["secret"]["secretName"] == secret
        assert volumes[name]["secret"]["items"][0]["key"] == key


def test_multikueue_rbac_reads_its_objects_and_patches_jobsets() -> None:
    rendered = render(MULTIKUEUE_VALUES)
    rules = [r for m in find(rendered, "ClusterRole") for r in m.get("rules") or []]
    read = {res for r in rules if "watch" in r["verbs"] for res in r["resources"]}
    assert {"multikueueclusters", "multikueueconfigs", "admissionchecks", "workloads"} <= read
    assert any("jobsets" in r["resources"] and "patch" in r["verbs"] for r in rules)
    off = [r for m in find(render(), "ClusterRole") for r in m.get("rules") or []]
    assert not any("multikueueclusters" in r["resources"] for r in off)


def test_the_multikueue_example_values_render_a_dispatcher_for_two_regions() -> None:
    values = yaml.safe_load((REPO / "examples" / "multikueue" / "values.yaml").read_text())
    cfg = parse_config(operator_config(render(values)))
    assert cfg.multikueue_enabled
    assert [(w.cluster, w.region) for w in cfg.workers] == [
        ("worker-de", "europe-west3"),
        ("worker-fr", "europe-west9"),
    ]
    for doc in ("manager.yaml", "worker.yaml", "job.yaml", "kueue-manager-config.yaml"):
        assert list(yaml.safe_load_all((REPO / "examples" / "multikueue" / doc).read_text()))
