"""`green-operator` command habits: --version, -o json|yaml (with --json kept), loud subcommand import
failures, and `plan --from-cluster`'s ConfigMap parsing and kubeconfig choice."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from green_operator import __version__
from green_operator.cli import main as cli
from green_operator.cli import plan as plan_command
from green_operator.config import ConfigError
from harness.cluster import REPO

CONFIG = REPO / "examples" / "operator-config.yaml"
JOB = REPO / "examples" / "jobs" / "finetune-resnet.yaml"
PLAN = ["plan", "-f", str(JOB), "--config", str(CONFIG)]


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"green-operator {cli.version()}"
    assert cli.version() == __version__


def test_plan_output_formats(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([*PLAN, "-o", "json"]) == 0
    as_json = json.loads(capsys.readouterr().out)
    assert cli.main([*PLAN, "--json"]) == 0
    assert json.loads(capsys.readouterr().out).keys() == as_json.keys()
    assert cli.main([*PLAN, "-o", "yaml"]) == 0
    as_yaml = yaml.safe_load(capsys.readouterr().out)
    assert as_yaml.keys() == as_json.keys()
    assert as_yaml["region"] == as_json["region"]
    assert cli.main([*PLAN, "--format", "text"]) == 0
    assert capsys.readouterr().out.startswith("job:")


def test_output_flag_rejects_unknown_formats(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main([*PLAN, "-o", "xml"])
    assert "invalid choice: 'xml'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main([*PLAN, "-o", "yaml", "--json"])


@pytest.mark.parametrize("command", ["simulate", "report"])
def test_every_json_command_takes_o(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main([command, "--help"])
    out = capsys.readouterr().out
    assert "-o {text,json,yaml}" in out
    assert "--json" in out


def test_a_subcommand_that_fails_to_import_is_an_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "broken_green_subcommand.py").write_text("import a_dependency_that_is_not_installed\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(cli, "_SUBCOMMANDS", (*cli._SUBCOMMANDS, "broken_green_subcommand"))
    assert cli.main(["plan", "--help"]) == 1
    err = capsys.readouterr().err
    assert "broken_green_subcommand" in err
    assert "a_dependency_that_is_not_installed" in err
    monkeypatch.setattr(cli, "_SUBCOMMANDS", ("green_operator.no_such_command",))
    assert cli.main(["--help"]) == 1
    assert "green_operator.no_such_command" in capsys.readouterr().err
    sys.modules.pop("broken_green_subcommand", None)


def _configmap(text: str) -> dict[str, object]:
    return {"kind": "ConfigMap", "metadata": {"name": "gto-config"}, "data": {"config.yaml": text}}


def test_plan_reads_the_configuration_from_a_configmap_object() -> None:
    cfg = plan_command.config_from_configmap(_configmap(CONFIG.read_text()), "ConfigMap ops/gto-config")
    assert cfg.region_names == ("europe-west2", "europe-west3", "europe-west9", "us-west2")
    assert cfg.source == "ConfigMap ops/gto-config config.yaml"


def test_a_configmap_without_the_key_or_with_a_bad_config_is_refused_by_name() -> None:
    with pytest.raises(ConfigError, match=r"ConfigMap ops/x: has no data key 'config.yaml'"):
        plan_command.config_from_configmap({"data": {"other": "x"}}, "ConfigMap ops/x")
    with pytest.raises(ConfigError, match=r"regions must be a non-empty list"):
        plan_command.config_from_configmap(_configmap("regions: []\n"), "ConfigMap ops/x")
    with pytest.raises(ConfigError, match=r"is not valid YAML"):
        plan_command.config_from_configmap(_configmap("regions: [\n"), "ConfigMap ops/x")


KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://%s:6443"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u, namespace: ops}}]
current-context: x
"""


def test_the_kubeconfig_comes_first_then_in_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = tmp_path / "env-kubeconfig"
    env.write_text(KUBECONFIG % "from-env")
    flag = tmp_path / "flag-kubeconfig"
    flag.write_text(KUBECONFIG % "from-flag")
    monkeypatch.setenv("KUBECONFIG", str(env))
    assert plan_command.client_config(None).configuration.host == "https://from-env:6443"
    assert plan_command.client_config(str(flag)).configuration.host == "https://from-flag:6443"


def test_plan_from_cluster_without_credentials_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cli.main(["plan", "-f", str(JOB), "--from-cluster", "--namespace", "ops"]) == 2
    assert "green-operator plan:" in capsys.readouterr().err


def test_the_package_runs_as_a_module() -> None:
    """`python -m green_operator.cli` is what hack/demo.sh runs: it must stay the command."""
    import subprocess

    done = subprocess.run(
        [sys.executable, "-m", "green_operator.cli", "--version"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("green-operator ")
