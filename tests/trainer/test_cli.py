"""The installed `green-trainer` command, as a real process."""

import json
import subprocess
import sys
from pathlib import Path

import jsonschema

from green_trainer import __version__

GREEN_TRAINER = str(Path(sys.executable).parent / "green-trainer")


def _run(args, env, timeout=60):
    return subprocess.run([GREEN_TRAINER, *args], env=env, capture_output=True, text=True, timeout=timeout)


def test_the_childs_exit_code_and_the_report(wrapper_env, report_schema):
    done = _run(["run", "--", sys.executable, "-c", "raise SystemExit(5)"], wrapper_env)
    assert done.returncode == 5
    report = json.loads(Path(wrapper_env["GREEN_REPORT_PATH"]).read_text())
    jsonschema.validate(report, report_schema)
    assert report["exitCode"] == 5
    assert report["meter"] == "estimate"
    assert "ESTIMATE" in done.stderr


def test_a_command_that_does_not_exist_exits_127(wrapper_env):
    done = _run(["run", "--", "/no/such/trainer"], wrapper_env)
    assert done.returncode == 127
    assert json.loads(Path(wrapper_env["GREEN_REPORT_PATH"]).read_text())["exitCode"] == 127


def test_usage_and_configuration_errors_exit_2_and_say_what_to_fix(wrapper_env):
    assert _run(["run"], wrapper_env).returncode == 2
    bad = _run(["run", "--", "true"], {**wrapper_env, "GREEN_METRICS_PORT": "http"})
    assert bad.returncode == 2
    assert "GREEN_METRICS_PORT='http' is not a TCP port" in bad.stderr
    assert not Path(wrapper_env["GREEN_REPORT_PATH"]).exists()


def test_version():
    done = _run(["--version"], {})
    assert done.returncode == 0
    assert done.stdout.strip() == f"green-trainer {__version__}"
