"""The whole wrapper in-process around real (tiny, non-torch) child processes, with a fake NVML."""

import json
import logging
import signal
import socket
import sys
import threading

import jsonschema
import pytest

from green_trainer.runner import run
from green_trainer.settings import Settings

# Waits (at most 20 s) for the test to create the go-file, reporting progress meanwhile.
WAIT_FOR_GO = """
import pathlib, sys, time
from green_trainer import progress
go = pathlib.Path(sys.argv[1])
deadline = time.monotonic() + 20
while not go.exists() and time.monotonic() < deadline:
    progress.report(samples=4, steps=1)
    time.sleep(0.01)
progress.flush()
sys.exit(int(sys.argv[2]) if go.exists() else 99)
"""


def _settings(tmp_path, port=0, **overrides):
    base = {
        "report_path": tmp_path / "termination-log",
        "metrics_port": port,
        "metrics_address": "127.0.0.1",
        "sample_interval_seconds": 0.02,
        "powercap_root": tmp_path / "no-powercap",
    }
    return Settings(**{**base, **overrides})


def _wall_seconds(report):
    """The run's duration, generous by the report's millisecond rounding (meters use another clock)."""
    return report["durationSeconds"] + 0.002


def _report(settings):
    return json.loads(settings.report_path.read_text())


def _scrape_then_go(port, go, wanted, scraper, wait_until):
    """In a helper thread: scrape until wanted(text) holds, keep that text, then release the child."""
    scraped = {}

    def work():
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM, signal.SIGINT])
        try:
            scraped["text"] = wait_until(lambda: (t := scraper(port)) and wanted(t) and t, timeout=15)
        finally:
            go.write_text("go")

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread, scraped


def test_limit_applied_to_the_containers_gpus_metered_exported_restored(
    tmp_path, fake_nvml_class, make_gpu, port, scraper, wait_until, report_schema, parse_metrics
):
    gpus = [make_gpu(0), make_gpu(1, power_mw=200_000, limit_mw=600_000), make_gpu(2)]
    nvml = fake_nvml_class(gpus)
    settings = _settings(
        tmp_path,
        port,
        power_limit_watts=250.0,
        nvidia_visible_devices=f"{gpus[1].uuid},{gpus[2].uuid}",  # privileged view: all three visible
        carbon_intensity=400.0,
        job_name="resnet",
        job_namespace="ml",
        pod_name="resnet-0",
    )
    go = tmp_path / "go"
    job = {"pod_namespace": "ml", "greentraining_job": "resnet", "pod_name": "resnet-0", "container_name": ""}
    steps = ("greentraining_training_steps_total", frozenset(job.items()))
    thread, scraped = _scrape_then_go(port, go, lambda t: parse_metrics(t).get(steps, 0) > 0, scraper, wait_until)
    code = run(settings, [sys.executable, "-c", WAIT_FOR_GO, str(go), "0"], {}, load_nvml=lambda: nvml)
    thread.join()
    assert code == 0
    report = _report(settings)
    jsonschema.validate(report, report_schema)
    assert report["meter"] == "nvml"
    assert [(g["index"], g["uuid"]) for g in report["gpus"]] == [(1, gpus[1].uuid), (2, gpus[2].uuid)]
    power = {1: 200.0, 2: 300.0}
    for gpu in report["gpus"]:
        # The fake counter runs at the GPU's power: its energy fits inside the run's wall time.
        assert 0 < gpu["energyJoules"] <= power[gpu["index"]] * _wall_seconds(report)
        assert gpu["meter"] == "nvml"
        assert gpu["powerLimitWatts"] == 250.0
    assert report["energyJoules"] == pytest.approx(sum(g["energyJoules"] for g in report["gpus"]), abs=0.01)
    assert report["powerLimit"] == {
        "requestedWatts": 250.0,
        "appliedWatts": 250.0,
        "applied": True,
        "code": "Applied",
        "reason": "",
        "restored": True,
    }
    assert [g.limit_mw for g in gpus] == [700_000, 600_000, 700_000]
    assert gpus[0].set_calls == []
    assert report["steps"] > 0
    assert report["samples"] == 4 * report["steps"]
    assert report["carbon"]["gramsPerKwh"] == pytest.approx(400.0, rel=1e-3)
    assert nvml.shut_down
    samples = parse_metrics(scraped["text"])
    gpu2 = {**job, "Hostname": "", "gpu": "2", "UUID": gpus[2].uuid, "modelName": gpus[2].name}
    gpu2 = frozenset(gpu2.items())
    assert samples[("greentraining_gpu_power_watts", gpu2)] == 300.0
    assert samples[("greentraining_gpu_power_limit_watts", gpu2)] == 250.0
    assert samples[("greentraining_power_limit_applied", frozenset({**job, "reason": "Applied"}.items()))] == 1.0
    intensity = frozenset({**job, "region": "", "source": "env"}.items())
    assert samples[("greentraining_carbon_intensity_grams_per_kwh", intensity)] == 400.0


def test_without_permission_training_goes_on_and_every_channel_says_why(
    tmp_path,
    fake_nvml_class,
    make_gpu,
    fake_nvml_class_errors,
    port,
    scraper,
    wait_until,
    caplog,
    report_schema,
    parse_metrics,
):
    gpus = [make_gpu(0, set_error=fake_nvml_class_errors.NoPermission)]
    settings = _settings(tmp_path, port, power_limit_watts=250.0)
    go = tmp_path / "go"
    thread, scraped = _scrape_then_go(port, go, lambda t: 'reason="NoPermission"' in t, scraper, wait_until)
    with caplog.at_level(logging.WARNING):
        code = run(
            settings, [sys.executable, "-c", WAIT_FOR_GO, str(go), "3"], {}, load_nvml=lambda: fake_nvml_class(gpus)
        )
    thread.join()
    assert code == 3
    report = _report(settings)
    jsonschema.validate(report, report_schema)
    assert report["exitCode"] == 3
    assert report["powerLimit"]["applied"] is False
    assert report["powerLimit"]["reason"] == "no permission (needs CAP_SYS_ADMIN)"
    assert report["powerLimit"]["code"] == "NoPermission"
    assert "no permission (needs CAP_SYS_ADMIN)" in caplog.text
    nobody = {"pod_namespace": "", "greentraining_job": "", "pod_name": "", "container_name": ""}
    applied = frozenset({**nobody, "reason": "NoPermission"}.items())
    assert parse_metrics(scraped["text"])[("greentraining_power_limit_applied", applied)] == 0.0
    assert gpus[0].limit_mw == 700_000


def test_gpus_without_an_energy_counter_are_integrated(tmp_path, fake_nvml_class, make_gpu, report_schema):
    gpus = [make_gpu(0, power_mw=300_000, has_energy_counter=False)]
    settings = _settings(tmp_path, sample_interval_seconds=0.01)
    code = run(
        settings,
        [sys.executable, "-c", "import time; time.sleep(0.3)"],
        {},
        load_nvml=lambda: fake_nvml_class(gpus),
    )
    assert code == 0
    report = _report(settings)
    jsonschema.validate(report, report_schema)
    assert report["meter"] == "nvml_power_integration"
    assert report["gpus"][0]["meter"] == "nvml_power_integration"
    # A constant 300 W integrated over the sampled part of the run (which is at least the child's 0.3 s).
    assert 300.0 * 0.3 <= report["energyJoules"] <= 300.0 * _wall_seconds(report)


def test_rapl_on_a_cpu_pod_including_a_counter_wrap(tmp_path, powercap, zone, report_schema):
    root = powercap(tmp_path / "powercap", {"intel-rapl:0": zone("package-0", 9_000_000, max_range_uj=10_000_000)})
    settings = _settings(tmp_path, powercap_root=root, carbon_intensity=200.0)
    # The "CPU" uses 1 J + 2 J, wrapping its counter, while the training runs.
    child = f"open({str(root / 'intel-rapl:0' / 'energy_uj')!r}, 'w').write('2000000')"
    assert run(settings, [sys.executable, "-c", child], {}, load_nvml=lambda: None) == 0
    report = _report(settings)
    jsonschema.validate(report, report_schema)
    assert report["meter"] == "rapl"
    assert report["energyJoules"] == pytest.approx(3.0)
    assert report["gpus"] == []
    assert report["carbon"]["grams"] == pytest.approx(3.0 / 3.6e6 * 200.0, abs=1e-3)
    assert report["powerLimit"]["code"] == "NotRequested"


def test_gpus_without_nvml_are_estimated_and_labelled(tmp_path, report_schema, caplog):
    settings = _settings(
        tmp_path, power_limit_watts=300.0, nvidia_visible_devices="GPU-a,GPU-b", estimated_watts_per_device=100.0
    )
    with caplog.at_level(logging.WARNING):
        assert run(settings, [sys.executable, "-c", "pass"], {}, load_nvml=lambda: None) == 0
    report = _report(settings)
    jsonschema.validate(report, report_schema)
    assert report["meter"] == "estimate"
    assert 0 < report["energyJoules"] <= 2 * 100.0 * _wall_seconds(report)
    assert report["powerLimit"]["code"] == "NvmlUnavailable"
    assert "ESTIMATE of 100 W x 2 device(s)" in caplog.text


def test_an_unwritable_report_path_does_not_change_the_exit_code(tmp_path, caplog):
    settings = _settings(tmp_path, report_path=tmp_path / "missing" / "termination-log")
    with caplog.at_level(logging.INFO):
        assert run(settings, [sys.executable, "-c", "raise SystemExit(4)"], {}, load_nvml=lambda: None) == 4
    assert "cannot write the report" in caplog.text
    assert '"exitCode":4' in caplog.text  # the report still reaches the log


def test_a_busy_metrics_port_is_logged_and_training_goes_on(tmp_path, caplog):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        settings = _settings(tmp_path, port=taken.getsockname()[1])
        with caplog.at_level(logging.ERROR):
            assert run(settings, [sys.executable, "-c", "raise SystemExit(0)"], {}, load_nvml=lambda: None) == 0
    assert "cannot serve metrics" in caplog.text
    assert _report(settings)["exitCode"] == 0
