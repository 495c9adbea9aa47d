"""`green-trainer run -- python -m green_trainer.reference_train` on CPU: the real wrapper, a real torch
training process, the exporter scraped over HTTP, SIGTERM -> checkpoint -> resume, the report validated."""

import json
import signal
import subprocess
import sys
from pathlib import Path

import jsonschema

GREEN_TRAINER = str(Path(sys.executable).parent / "green-trainer")
# 4480 samples: 4032 for training = 63 full batches of 64, so samples = 64 x steps exactly.
TINY = ["--threads", "1", "--samples", "4480", "--batch-size", "64"]


def _train(env, *args, **popen):
    command = [GREEN_TRAINER, "run", "--", sys.executable, "-m", "green_trainer.reference_train", *TINY, *args]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def _events(stdout):
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def _report(env, schema):
    report = json.loads(Path(env["GREEN_REPORT_PATH"]).read_text())
    jsonschema.validate(report, schema)
    return report


def test_sigterm_checkpoints_and_a_rerun_resumes_where_it_stopped(
    tmp_path, wrapper_env, port, scraper, parse_metrics, wait_until, report_schema
):
    checkpoint = tmp_path / "ckpt" / "model.pt"
    env = {
        **wrapper_env,
        "GREEN_METRICS_PORT": str(port),
        "GREEN_GPU_POWER_LIMIT_WATTS": "250",
        "GREEN_CARBON_INTENSITY": "300",
        "GREEN_JOB_NAME": "tiny",
        "GREEN_JOB_NAMESPACE": "ml",
        "GREEN_POD_NAME": "tiny-0",
        "GREEN_ESTIMATED_WATTS_PER_DEVICE": "50",
    }
    job = {"pod_namespace": "ml", "greentraining_job": "tiny", "pod_name": "tiny-0", "container_name": ""}
    steps_key = ("greentraining_training_steps_total", frozenset(job.items()))
    endless = ["--epochs", "100000", "--patience", "0", "--checkpoint", str(checkpoint)]
    training = _train(env, *endless)
    try:
        metrics = wait_until(
            lambda: (text := scraper(port)) and parse_metrics(text).get(steps_key, 0) >= 20 and parse_metrics(text),
            timeout=40,
        )
        training.send_signal(signal.SIGTERM)
        stdout, stderr = training.communicate(timeout=60)
    finally:
        training.kill()
    assert training.returncode == 143, stderr
    energy = metrics[("greentraining_energy_joules_total", frozenset({**job, "meter": "estimate"}.items()))]
    assert energy > 0
    assert metrics[("greentraining_power_limit_applied", frozenset({**job, "reason": "NvmlUnavailable"}.items()))] == 0
    intensity = frozenset({**job, "region": "", "source": "env"}.items())
    assert metrics[("greentraining_carbon_intensity_grams_per_kwh", intensity)] == 300.0
    samples = metrics[("greentraining_training_samples_total", frozenset(job.items()))]
    per_sample = metrics[("greentraining_energy_per_sample_joules", frozenset({**job, "meter": "estimate"}.items()))]
    assert per_sample > 0
    assert samples > 0

    saved = [e for e in _events(stdout) if e["event"] == "checkpoint" and e["reason"] == "SIGTERM"]
    assert len(saved) == 1
    assert checkpoint.exists()
    stopped_at = saved[0]["step"]
    first = _report(env, report_schema)
    assert first["exitCode"] == 143
    assert first["terminatedBy"] == "SIGTERM"
    assert first["steps"] == stopped_at
    assert first["samples"] == 64 * stopped_at
    assert first["meter"] == "estimate"
    assert first["energyJoules"] > 0
    assert first["powerLimit"]["code"] == "NvmlUnavailable"
    assert first["powerLimit"]["requestedWatts"] == 250
    assert first["carbon"]["grams"] > 0

    rerun = _train({**env, "GREEN_METRICS_PORT": "0"}, *endless, "--max-steps", str(stopped_at + 25))
    stdout, stderr = rerun.communicate(timeout=60)
    assert rerun.returncode == 0, stderr
    events = _events(stdout)
    assert events[0] == {"event": "resumed", "step": stopped_at, "epoch": stopped_at // 63, "batch": stopped_at % 63}
    done = events[-1]
    assert (done["event"], done["reason"], done["step"], done["steps_this_run"]) == (
        "done",
        "max_steps",
        stopped_at + 25,
        25,
    )
    second = _report(env, report_schema)
    assert (second["exitCode"], second["steps"], second["samples"]) == (0, 25, 25 * 64)
    assert "terminatedBy" not in second


def test_early_stopping_with_bf16_autocast_metered_by_rapl(tmp_path, wrapper_env, powercap, zone, report_schema):
    root = powercap(tmp_path / "powercap", {"intel-rapl:0": zone("package-0", 5_000_000)})
    env = {**wrapper_env, "GREEN_POWERCAP_ROOT": str(root)}
    training = _train(env, "--epochs", "200", "--patience", "2", "--min-delta", "0.01", "--precision", "bf16")
    stdout, stderr = training.communicate(timeout=60)
    assert training.returncode == 0, stderr
    events = _events(stdout)
    assert events[0]["event"] == "start"
    assert events[0]["precision"] == "bf16"
    done = events[-1]
    assert done["reason"] == "early_stop"
    assert done["epoch"] < 200
    epochs = [e for e in events if e["event"] == "epoch"]
    assert len(epochs) == done["epoch"]
    report = _report(env, report_schema)
    assert report["meter"] == "rapl"
    assert report["steps"] == done["step"]
    assert report["exitCode"] == 0
