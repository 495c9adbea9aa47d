"""Shared fixtures for the trainer tests: a fake NVML at the import seam, a fake powercap tree, waiting."""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from harness.waiting import wait_for

TRAINER_IMAGE = Path(__file__).resolve().parents[2] / "trainer-image"
SCHEMA = TRAINER_IMAGE / "src" / "green_trainer" / "schema" / "report-v1.schema.json"


class FakeNVMLError(Exception):
    """Like pynvml.NVMLError: carries the NVML return code in `value`."""

    value = 999

    def __str__(self) -> str:
        return f"fake NVML error {self.value}"


class FakeNoPermissionError(FakeNVMLError):
    value = 4


class FakeNotSupportedError(FakeNVMLError):
    value = 3


@dataclass
class FakeGpu:
    uuid: str
    name: str = "NVIDIA H100 80GB HBM3"
    min_mw: int = 200_000
    max_mw: int = 700_000
    limit_mw: int = 700_000
    power_mw: int = 300_000
    utilization: int = 50
    has_energy_counter: bool = True
    # What nvmlDeviceSetPowerManagementLimit does: None succeeds, else the exception class to raise.
    set_error: type[Exception] | None = None
    restore_error: type[Exception] | None = None
    failing_reads: set[str] = field(default_factory=set)
    set_calls: list[int] = field(default_factory=list)
    energy_base_mj: int = 123_456_789
    born: float = field(default_factory=time.monotonic)


class FakeNvml:
    """pynvml's surface over FakeGpus; handles are indices. The energy counter runs at power_mw."""

    NVMLError = FakeNVMLError
    NVMLError_NoPermission = FakeNoPermissionError
    NVMLError_NotSupported = FakeNotSupportedError

    def __init__(self, gpus: list[FakeGpu], clock: Callable[[], float] = time.monotonic) -> None:
        self.gpus = gpus
        self.clock = clock
        self.initialised = False
        self.shut_down = False

    def _read(self, handle: int, what: str) -> FakeGpu:
        gpu = self.gpus[handle]
        if what in gpu.failing_reads:
            raise FakeNVMLError()
        return gpu

    def nvmlInit(self) -> None:
        self.initialised = True

    def nvmlShutdown(self) -> None:
        self.shut_down = True

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetUUID(self, handle: int) -> str:
        return self.gpus[handle].uuid

    def nvmlDeviceGetName(self, handle: int) -> str:
        return self.gpus[handle].name

    def nvmlDeviceGetPowerUsage(self, handle: int) -> int:
        return self._read(handle, "power").power_mw

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: int) -> int:
        gpu = self._read(handle, "energy")
        if not gpu.has_energy_counter:
            raise FakeNotSupportedError()
        return gpu.energy_base_mj + round(gpu.power_mw * (self.clock() - gpu.born))

    def nvmlDeviceGetPowerManagementLimit(self, handle: int) -> int:
        return self._read(handle, "limit").limit_mw

    def nvmlDeviceGetPowerManagementLimitConstraints(self, handle: int) -> list[int]:
        gpu = self.gpus[handle]
        return [gpu.min_mw, gpu.max_mw]

    def nvmlDeviceSetPowerManagementLimit(self, handle: int, limit: int) -> None:
        gpu = self.gpus[handle]
        error = gpu.restore_error if gpu.set_calls else gpu.set_error
        if error is not None:
            raise error()
        if not gpu.min_mw <= limit <= gpu.max_mw:
            raise FakeNVMLError()  # NVML_ERROR_INVALID_ARGUMENT: the limiter must clamp first
        gpu.set_calls.append(limit)
        gpu.limit_mw = limit

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> Any:
        return SimpleNamespace(gpu=self._read(handle, "utilization").utilization, memory=10)


def uuid(n: int) -> str:
    return f"GPU-{n:08x}-1111-2222-3333-444455556666"


@pytest.fixture
def make_gpu() -> Callable[..., FakeGpu]:
    def make(n: int = 0, **kwargs: Any) -> FakeGpu:
        return FakeGpu(uuid=uuid(n), **kwargs)

    return make


@pytest.fixture
def fake_nvml_class() -> type[FakeNvml]:
    return FakeNvml


@dataclass
class Zone:
    name: str
    energy_uj: int
    max_range_uj: int = 262_143_328_850


def write_powercap(root: Path, zones: dict[str, Zone]) -> Path:
    """A /sys/class/powercap lookalike: one directory per zone with name, energy_uj, max_energy_range_uj."""
    for directory, zone in zones.items():
        path = root / directory
        path.mkdir(parents=True, exist_ok=True)
        (path / "name").write_text(zone.name + "\n")
        (path / "energy_uj").write_text(f"{zone.energy_uj}\n")
        (path / "max_energy_range_uj").write_text(f"{zone.max_range_uj}\n")
    return root


@pytest.fixture
def powercap() -> Callable[[Path, dict[str, Zone]], Path]:
    return write_powercap


@pytest.fixture
def zone() -> type[Zone]:
    return Zone


@pytest.fixture
def wait_until() -> Callable[..., Any]:
    """The shared wait helper, polling briskly: these conditions turn true within milliseconds."""

    def wait(condition: Callable[[], Any], timeout: float = 20.0) -> Any:
        return wait_for(condition, timeout=timeout, interval=0.02)

    return wait


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def port() -> int:
    return free_port()


def scrape(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            return str(response.read().decode())
    except OSError:
        return None


@pytest.fixture
def scraper() -> Callable[[int], str | None]:
    return scrape


@pytest.fixture
def report_schema() -> dict[str, Any]:
    return dict(json.loads(SCHEMA.read_text()))


@pytest.fixture
def python() -> str:
    return sys.executable


@pytest.fixture
def wrapper_env(tmp_path: Path) -> dict[str, str]:
    """Environment for a real `green-trainer run`: no NVML, no RAPL, report in tmp, exporter off."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GREEN_", "NVIDIA_", "CUDA_"))}
    env.update(
        GREEN_DISABLE_NVML="1",
        GREEN_POWERCAP_ROOT=str(tmp_path / "no-powercap"),
        GREEN_REPORT_PATH=str(tmp_path / "termination-log"),
        GREEN_METRICS_PORT="0",
        GREEN_METRICS_ADDRESS="127.0.0.1",
        GREEN_SAMPLE_INTERVAL_SECONDS="0.05",
        OMP_NUM_THREADS="1",
    )
    return env


@pytest.fixture
def fake_nvml_class_errors() -> SimpleNamespace:
    return SimpleNamespace(Error=FakeNVMLError, NoPermission=FakeNoPermissionError, NotSupported=FakeNotSupportedError)


def metric_samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """{(sample name, labels): value} parsed from a Prometheus exposition."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


@pytest.fixture
def parse_metrics() -> Callable[[str], dict[tuple[str, frozenset[tuple[str, str]]], float]]:
    return metric_samples
