from pathlib import Path

import pytest

from green_trainer.settings import (
    DEFAULT_ESTIMATED_WATTS_PER_DEVICE,
    DEFAULT_METRICS_PORT,
    DEFAULT_REPORT_PATH,
    SettingsError,
    settings_from_env,
)


def test_defaults_when_the_operator_sets_nothing():
    settings = settings_from_env({})
    assert settings.power_limit_watts is None
    assert settings.metrics_port == DEFAULT_METRICS_PORT == 9402
    assert settings.report_path == DEFAULT_REPORT_PATH == Path("/dev/termination-log")
    assert settings.sample_interval_seconds == 1.0
    assert settings.estimated_watts_per_device == DEFAULT_ESTIMATED_WATTS_PER_DEVICE
    assert settings.carbon_intensity is None
    assert settings.disable_nvml is False


def test_the_operator_contract_parses():
    settings = settings_from_env(
        {
            "GREEN_GPU_POWER_LIMIT_WATTS": " 250 ",
            "GREEN_JOB_NAME": "resnet",
            "GREEN_JOB_NAMESPACE": "ml",
            "GREEN_POD_NAME": "resnet-0-abc",
            "GREEN_CONTAINER_NAME": "train",
            "GREEN_NODE_NAME": "gpu-node-1",
            "GREEN_REGION": "europe-north1",
            "GREEN_CARBON_INTENSITY": "31.5",
            "GREEN_CARBON_INTENSITY_FILE": "/etc/green/intensity.json",
            "GREEN_METRICS_PORT": "0",
            "GREEN_REPORT_PATH": "/tmp/report.json",
            "GREEN_ESTIMATED_WATTS_PER_DEVICE": "400",
            "GREEN_SAMPLE_INTERVAL_SECONDS": "0.01",
            "GREEN_DISABLE_NVML": "true",
            "NVIDIA_VISIBLE_DEVICES": "GPU-abc",
        }
    )
    assert settings.power_limit_watts == 250.0
    assert (settings.job_name, settings.job_namespace, settings.pod_name) == ("resnet", "ml", "resnet-0-abc")
    assert (settings.container_name, settings.node_name) == ("train", "gpu-node-1")
    assert settings.region == "europe-north1"
    assert settings.carbon_intensity == 31.5
    assert settings.carbon_intensity_file == Path("/etc/green/intensity.json")
    assert settings.metrics_port == 0
    assert settings.report_path == Path("/tmp/report.json")
    assert settings.estimated_watts_per_device == 400.0
    assert settings.sample_interval_seconds == 0.01
    assert settings.disable_nvml is True
    assert settings.nvidia_visible_devices == "GPU-abc"


def test_an_empty_power_limit_leaves_the_limit_alone():
    assert settings_from_env({"GREEN_GPU_POWER_LIMIT_WATTS": ""}).power_limit_watts is None


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("GREEN_GPU_POWER_LIMIT_WATTS", "abc", "not a number"),
        ("GREEN_GPU_POWER_LIMIT_WATTS", "0", "must be > 0"),
        ("GREEN_GPU_POWER_LIMIT_WATTS", "250000", "<= 10000"),
        ("GREEN_CARBON_INTENSITY", "nan", "out of range"),
        ("GREEN_CARBON_INTENSITY", "-3", "must be >= 0"),
        ("GREEN_METRICS_PORT", "70000", "not a TCP port"),
        ("GREEN_METRICS_PORT", "http", "not a TCP port"),
        ("GREEN_SAMPLE_INTERVAL_SECONDS", "0.0001", "must be >= 0.005"),
        ("GREEN_ESTIMATED_WATTS_PER_DEVICE", "0", "must be > 0"),
        ("GREEN_DISABLE_NVML", "maybe", "not a boolean"),
    ],
)
def test_bad_values_name_the_variable_and_the_fix(name, value, fragment):
    with pytest.raises(SettingsError) as raised:
        settings_from_env({name: value})
    message = str(raised.value)
    assert message.startswith(f"{name}=")
    assert fragment in message
