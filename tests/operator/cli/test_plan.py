"""`green-operator plan` says where the carbon data came from: a trace file is a trace, not live data."""

from __future__ import annotations

import argparse
import json

import pytest

from green_operator.cli import plan as plan_command
from harness.cluster import REPO

CONFIG = REPO / "examples" / "operator-config.yaml"  # every region replays a trace file
JOB = REPO / "examples" / "jobs" / "finetune-resnet.yaml"


def _plan(capsys: pytest.CaptureFixture[str], *, as_json: bool) -> str:
    args = argparse.Namespace(filename=str(JOB), config=str(CONFIG), kubeconfig=None, capacity=[], json=as_json)
    assert plan_command.run(args) == 0
    return capsys.readouterr().out


def test_plan_reports_trace_data_as_trace(capsys: pytest.CaptureFixture[str]) -> None:
    sources = json.loads(_plan(capsys, as_json=True))["carbonData"]
    assert sources == {
        "europe-west2": "trace (europe-traces)",
        "europe-west3": "trace (europe-traces)",
        "europe-west9": "trace (europe-traces)",
        "us-west2": "trace (caiso-trace)",
    }
    text = _plan(capsys, as_json=False)
    assert "carbon data:   europe-west2: trace (europe-traces);" in text
