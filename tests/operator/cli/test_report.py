"""`green-operator report` wiring: arguments, errors and exit codes, output; the API is replaced at its
one seam (`_list_jobs`) so these run without a cluster (the integration test covers the real one)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from green_operator.cli import report as report_command
from green_operator.cli.main import main
from tests.operator.reporting import samples as s
from tests.support.operator_config import write_trace


@pytest.fixture
def jobs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str | None, str | None]]:
    """Serve the sample jobs instead of an API server; records (kubeconfig, namespace) of each call."""
    calls: list[tuple[str | None, str | None]] = []

    def fake(kubeconfig: str | None, namespace: str | None) -> list[dict[str, Any]]:
        calls.append((kubeconfig, namespace))
        return s.all_jobs()

    monkeypatch.setattr(report_command, "_list_jobs", fake)
    monkeypatch.setattr(report_command, "utcnow", lambda: s.NOW)
    return calls


def _config(tmp_path: Path) -> Path:
    day = s.NOW.replace(hour=0)
    write_trace(tmp_path / "de.csv", day, timedelta(minutes=30), [120.0 + i for i in range(96)])
    doc = {
        "providers": {"traces": {"type": "trace", "files": {"DE": "de.csv"}, "shift": "none"}},
        "regions": [
            {"name": "europe-west3", "carbon": {"provider": "traces", "zone": "DE"}},
            {"name": "europe-west9", "carbon": {"staticGramsPerKwh": 56}},
            {"name": "us-west2", "carbon": {"staticGramsPerKwh": 230}},
        ],
    }
    path = tmp_path / "operator-config.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_json_with_chart_from_the_carbon_service(
    jobs: list[Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    chart = tmp_path / "chart.png"
    rc = main(
        [
            "report",
            "-n",
            "ml",
            "--kubeconfig",
            "kc",
            "--config",
            str(_config(tmp_path)),
            "--output",
            str(chart),
            "--json",
        ]
    )
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert jobs == [("kc", "ml")]
    doc = json.loads(out)  # stdout is only the JSON document
    assert [r["name"] for r in doc["rows"]] == ["good", "worse", "failed", "running", "deferred", "pending"]
    assert doc["totals"]["savedGrams"] == pytest.approx(400 - 30 + 50)
    assert doc["chart"]["path"] == str(chart)
    assert doc["chart"]["intensity"] == "carbon-service"
    assert doc["chart"]["regions"] == ["europe-west3", "europe-west9", "us-west2"]
    assert doc["chart"]["fallbackSources"] == {"europe-west9": ["static (static)"], "us-west2": ["static (static)"]}
    assert chart.read_bytes()[:4] == b"\x89PNG"
    assert "wrote the chart" in err


def test_table_without_config_uses_status_only(
    jobs: list[Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    chart = tmp_path / "chart.png"
    rc = main(["report", "-A", "--since", "3h", "--output", str(chart)])
    out, _ = capsys.readouterr()
    assert rc == 0
    assert jobs[0][1] is None  # all namespaces
    assert out.startswith("GreenTrainingJobs in all namespaces, created or started since 2026-05-10 09:00 UTC: 4")
    names = {line.split()[1] for line in out.splitlines()[2:6]}
    assert names == {"running", "failed", "deferred", "pending"}
    assert "No carbon configuration given" in out
    assert chart.exists()


def test_default_namespace_comes_from_the_kubeconfig(
    jobs: list[Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kc = tmp_path / "kubeconfig"
    kc.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u", "namespace": "team-a"}}],
                "current-context": "x",
            }
        )
    )
    assert main(["report", "--kubeconfig", str(kc)]) == 0
    assert jobs == [(str(kc), "team-a")]
    assert "namespace team-a" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--since", "yesterday"], "--since 'yesterday' is neither a duration nor a time"),
        (["--config", "/nonexistent/operator-config.yaml"], "invalid configuration: cannot read"),
    ],
)
def test_bad_arguments_exit_2_before_listing(
    jobs: list[Any], argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", *argv]) == 2
    assert says in capsys.readouterr().err
    assert jobs == []


def test_namespace_and_all_namespaces_exclude_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["report", "-n", "ml", "-A"])
    assert info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_unreachable_api_server_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    kc = tmp_path / "kubeconfig"
    kc.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                # Port 1 on loopback: nothing listens, the connection is refused at once.
                "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:1"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    assert main(["report", "--kubeconfig", str(kc)]) == 1
    err = capsys.readouterr().err
    assert "cannot list GreenTrainingJobs in default" in err


def test_unwritable_chart_path_exits_1(jobs: list[Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "-n", "ml", "--output", str(tmp_path / "missing-dir" / "c.png")]) == 1
    assert "cannot write the chart" in capsys.readouterr().err
