"""`green-trainer node-agent` refuses bad input with an error naming the option (or file) and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from green_trainer.cli import main
from green_trainer.fake_nvml import STATE_ENV, FakeNvmlFile, FileGpu, gpu_uuid


@pytest.fixture
def fake_gpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "nvml.json"
    FakeNvmlFile(path).create([FileGpu(uuid=gpu_uuid(0))])
    monkeypatch.setenv(STATE_ENV, str(path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    return path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "--node-name (or $NODE_NAME"),
        (["--node-name", "n1", "--interval", "0"], "--interval must be above 0 seconds, got 0.0"),
        (["--node-name", "n1", "--read-only"], "not in a pod (KUBERNETES_SERVICE_HOST/PORT unset): pass --api-server"),
        (["--node-name", "n1", "--read-only", "--api-server", "https://x"], "--api-server needs --token-file"),
    ],
)
def test_bad_options_are_named(
    fake_gpus: Path, args: list[str], message: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NODE_NAME", raising=False)
    assert main(["node-agent", *args]) == 2
    assert message in capsys.readouterr().err


def test_an_unreadable_state_file_stops_the_agent_naming_it(
    fake_gpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state.json"
    state.write_text("{")
    assert main(["node-agent", "--node-name", "n1", "--state-file", str(state)]) == 2
    err = capsys.readouterr().err
    assert f"state file {state} is unreadable" in err
    assert "move the file aside" in err


def test_without_nvml_the_agent_says_what_it_needs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(STATE_ENV, str(tmp_path / "absent.json"))
    assert main(["node-agent", "--node-name", "n1"]) == 2
    assert "NVML is not available" in capsys.readouterr().err
