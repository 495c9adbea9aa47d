"""A fake NVML whose GPUs live in a JSON file, for tests and benchmarks only.

Selected by GREEN_FAKE_NVML_STATE=<path> (see nvml.load_nvml). The state is outside the process that
reads it, so a test can SIGKILL the node agent, restart it and see what the GPUs really hold: a
restart test cannot pass on the agent's memory. Every call takes an exclusive lock on `<path>.lock`.
The energy counter runs at the stored power draw from `stamp` on (mW x s = mJ), like a real GPU's.
"""

# ruff: noqa: N802 - pynvml's names

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

STATE_ENV = "GREEN_FAKE_NVML_STATE"


class FakeNVMLError(Exception):
    value = 999


class FakeNoPermissionError(FakeNVMLError):
    value = 4


class FakeNotSupportedError(FakeNVMLError):
    value = 3


_ERRORS: dict[str, type[Exception]] = {
    "NoPermission": FakeNoPermissionError,
    "NotSupported": FakeNotSupportedError,
    "Error": FakeNVMLError,
}


@dataclass
class FileGpu:
    uuid: str
    name: str = "NVIDIA H100 80GB HBM3"
    min_mw: int = 200_000
    max_mw: int = 700_000
    limit_mw: int = 700_000
    power_mw: int = 300_000
    utilization: int = 50
    energy_mj: int = 100_000_000
    stamp: float = field(default_factory=time.time)
    has_energy_counter: bool = True
    set_error: str | None = None  # "NoPermission" | "NotSupported" | "Error"
    set_calls: list[int] = field(default_factory=list)

    def energy_now(self, now: float) -> int:
        return self.energy_mj + round(self.power_mw * max(now - self.stamp, 0.0))


def gpu_uuid(n: int) -> str:
    return f"GPU-{n:08x}-0000-4000-8000-{n:012x}"


class FakeNvmlFile:
    """The JSON file of fake GPUs: create it, read it, change it under the lock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock_path = path.with_name(path.name + ".lock")

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with self._lock_path.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _load(self) -> list[FileGpu]:
        doc = json.loads(self.path.read_text())
        return [FileGpu(**g) for g in doc["gpus"]]

    def _store(self, gpus: list[FileGpu]) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps({"gpus": [asdict(g) for g in gpus]}, indent=1))
        os.replace(tmp, self.path)

    def create(self, gpus: list[FileGpu]) -> FakeNvmlFile:
        with self._locked():
            self._store(gpus)
        return self

    def gpus(self) -> list[FileGpu]:
        with self._locked():
            return self._load()

    def update(self, change: Callable[[list[FileGpu]], None]) -> None:
        with self._locked():
            gpus = self._load()
            change(gpus)
            self._store(gpus)

    def set_power(self, index: int, power_mw: int) -> None:
        """Change a GPU's draw; the energy so far is kept, so the counter never runs backwards."""

        def change(gpus: list[FileGpu]) -> None:
            now = time.time()
            gpu = gpus[index]
            gpu.energy_mj, gpu.stamp, gpu.power_mw = gpu.energy_now(now), now, power_mw

        self.update(change)


class FileNvml:
    """pynvml's surface (the part NvmlApi names) over a FakeNvmlFile; handles are indices."""

    NVMLError: type[Exception] = FakeNVMLError
    NVMLError_NoPermission: type[Exception] = FakeNoPermissionError
    NVMLError_NotSupported: type[Exception] = FakeNotSupportedError

    def __init__(self, path: Path) -> None:
        self.file = FakeNvmlFile(path)

    def _gpu(self, handle: int) -> FileGpu:
        gpus = self.file.gpus()
        if not 0 <= handle < len(gpus):
            raise FakeNVMLError(f"no GPU {handle}")
        return gpus[handle]

    def nvmlInit(self) -> None:
        self.file.gpus()  # fails like a missing driver when the file is not there

    def nvmlShutdown(self) -> None:
        return None

    def nvmlDeviceGetCount(self) -> int:
        return len(self.file.gpus())

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        self._gpu(index)
        return index

    def nvmlDeviceGetUUID(self, handle: int) -> str:
        return self._gpu(handle).uuid

    def nvmlDeviceGetName(self, handle: int) -> str:
        return self._gpu(handle).name

    def nvmlDeviceGetPowerUsage(self, handle: int) -> int:
        return self._gpu(handle).power_mw

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: int) -> int:
        gpu = self._gpu(handle)
        if not gpu.has_energy_counter:
            raise FakeNotSupportedError()
        return gpu.energy_now(time.time())

    def nvmlDeviceGetPowerManagementLimit(self, handle: int) -> int:
        return self._gpu(handle).limit_mw

    def nvmlDeviceGetPowerManagementLimitConstraints(self, handle: int) -> list[int]:
        gpu = self._gpu(handle)
        return [gpu.min_mw, gpu.max_mw]

    def nvmlDeviceSetPowerManagementLimit(self, handle: int, limit: int) -> None:
        def change(gpus: list[FileGpu]) -> None:
            gpu = gpus[handle]
            if gpu.set_error is not None:
                raise _ERRORS[gpu.set_error]()
            if not gpu.min_mw <= limit <= gpu.max_mw:
                raise FakeNVMLError("invalid argument")  # like NVML: callers must clamp first
            gpu.set_calls.append(limit)
            gpu.limit_mw = limit

        self.file.update(change)

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> Any:
        return SimpleNamespace(gpu=self._gpu(handle).utilization, memory=0)
