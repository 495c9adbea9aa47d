"""The wrapper's configuration, parsed from the environment the operator sets (pure)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_METRICS_PORT = 9402
DEFAULT_REPORT_PATH = Path("/dev/termination-log")
# A data-centre GPU's typical board power under training load (A100 SXM 400 W, H100 PCIe 350 W,
# L40S 350 W, A10 150 W): 300 W sits in the middle. Used only by the labelled `estimate` meter.
DEFAULT_ESTIMATED_WATTS_PER_DEVICE = 300.0
DEFAULT_SAMPLE_INTERVAL_SECONDS = 1.0
# Kubernetes' default terminationGracePeriodSeconds is 30: leave the wrapper ~5 s to restore the
# power limit and write the report before the kubelet's SIGKILL.
DEFAULT_CHILD_GRACE_SECONDS = 25.0
DEFAULT_POWERCAP_ROOT = Path("/sys/class/powercap")

MIN_SAMPLE_INTERVAL_SECONDS = 0.005
MAX_SAMPLE_INTERVAL_SECONDS = 3600.0
# Far beyond any board's limit: a value above this is a units mistake (milliwatts), not a wish.
MAX_POWER_LIMIT_WATTS = 10_000.0

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


class SettingsError(ValueError):
    """An environment variable holds a value the wrapper cannot use; the message names it and the fix."""


@dataclass(frozen=True)
class Settings:
    power_limit_watts: float | None = None
    job_name: str = ""
    job_namespace: str = ""
    pod_name: str = ""
    container_name: str = ""
    node_name: str = ""
    region: str = ""
    carbon_intensity: float | None = None
    carbon_intensity_file: Path | None = None
    metrics_port: int = DEFAULT_METRICS_PORT
    metrics_address: str = "0.0.0.0"
    report_path: Path = DEFAULT_REPORT_PATH
    estimated_watts_per_device: float = DEFAULT_ESTIMATED_WATTS_PER_DEVICE
    sample_interval_seconds: float = DEFAULT_SAMPLE_INTERVAL_SECONDS
    child_grace_seconds: float = DEFAULT_CHILD_GRACE_SECONDS
    child_user: str = ""
    powercap_root: Path = DEFAULT_POWERCAP_ROOT
    disable_nvml: bool = False
    nvidia_visible_devices: str | None = None
    cuda_visible_devices: str | None = None


def _text(env: Mapping[str, str], name: str) -> str:
    return env.get(name, "").strip()


def _float(
    env: Mapping[str, str], name: str, *, low: float, high: float, example: str, exclusive_low: bool = False
) -> float | None:
    """The variable as a float within [low, high] (or (low, high]); None when absent or empty."""
    raw = _text(env, name)
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number; set it like {name}={example}") from None
    too_low = value <= low if exclusive_low else value < low
    if not math.isfinite(value) or too_low or value > high:
        bound = ">" if exclusive_low else ">="
        raise SettingsError(
            f"{name}={raw!r} is out of range: it must be {bound} {low:g} and <= {high:g}, e.g. {name}={example}"
        )
    return value


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


def _bool(env: Mapping[str, str], name: str) -> bool:
    raw = _text(env, name).lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise SettingsError(f"{name}={raw!r} is not a boolean; use 1/true or 0/false")


def _port(env: Mapping[str, str], name: str) -> int:
    raw = _text(env, name)
    if not raw:
        return DEFAULT_METRICS_PORT
    if not raw.isdigit() or int(raw) > 65535:
        raise SettingsError(f"{name}={raw!r} is not a TCP port; use 1-65535, or 0 to turn the exporter off")
    return int(raw)


def _optional_path(env: Mapping[str, str], name: str) -> Path | None:
    raw = _text(env, name)
    return Path(raw) if raw else None


def settings_from_env(env: Mapping[str, str]) -> Settings:
    """Parse the wrapper's settings; raise SettingsError naming the variable and the fix."""
    return Settings(
        power_limit_watts=_float(
            env,
            "GREEN_GPU_POWER_LIMIT_WATTS",
            low=0.0,
            high=MAX_POWER_LIMIT_WATTS,
            example="250 (watts per GPU; leave it empty to keep the current limit)",
            exclusive_low=True,
        ),
        job_name=_text(env, "GREEN_JOB_NAME"),
        job_namespace=_text(env, "GREEN_JOB_NAMESPACE"),
        pod_name=_text(env, "GREEN_POD_NAME"),
        container_name=_text(env, "GREEN_CONTAINER_NAME"),
        node_name=_text(env, "GREEN_NODE_NAME"),
        region=_text(env, "GREEN_REGION"),
        carbon_intensity=_float(env, "GREEN_CARBON_INTENSITY", low=0.0, high=1e5, example="350.5 (gCO2eq/kWh)"),
        carbon_intensity_file=_optional_path(env, "GREEN_CARBON_INTENSITY_FILE"),
        metrics_port=_port(env, "GREEN_METRICS_PORT"),
        metrics_address=_text(env, "GREEN_METRICS_ADDRESS") or "0.0.0.0",
        report_path=_optional_path(env, "GREEN_REPORT_PATH") or DEFAULT_REPORT_PATH,
        estimated_watts_per_device=_or(
            _float(
                env,
                "GREEN_ESTIMATED_WATTS_PER_DEVICE",
                low=0.0,
                high=MAX_POWER_LIMIT_WATTS,
                example="300",
                exclusive_low=True,
            ),
            DEFAULT_ESTIMATED_WATTS_PER_DEVICE,
        ),
        sample_interval_seconds=_or(
            _float(
                env,
                "GREEN_SAMPLE_INTERVAL_SECONDS",
                low=MIN_SAMPLE_INTERVAL_SECONDS,
                high=MAX_SAMPLE_INTERVAL_SECONDS,
                example="1.0 (or 0.01-0.1 when integrating power)",
            ),
            DEFAULT_SAMPLE_INTERVAL_SECONDS,
        ),
        child_grace_seconds=_or(
            _float(env, "GREEN_CHILD_GRACE_SECONDS", low=0.0, high=86400.0, example="25"),
            DEFAULT_CHILD_GRACE_SECONDS,
        ),
        child_user=_text(env, "GREEN_CHILD_USER"),
        powercap_root=_optional_path(env, "GREEN_POWERCAP_ROOT") or DEFAULT_POWERCAP_ROOT,
        disable_nvml=_bool(env, "GREEN_DISABLE_NVML"),
        nvidia_visible_devices=env.get("NVIDIA_VISIBLE_DEVICES"),
        cuda_visible_devices=env.get("CUDA_VISIBLE_DEVICES"),
    )
