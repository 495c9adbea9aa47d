"""The seam to NVML: a module-like object with pynvml's names. Production passes `pynvml`; tests a fake."""

# ruff: noqa: N802 - the protocol spells pynvml's function names as they are

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from green_trainer.devices import Enumerated, Selection, select_devices

log = logging.getLogger(__name__)


class NvmlApi(Protocol):
    """The part of pynvml (nvidia-ml-py) the wrapper uses. Power in mW, energy in mJ."""

    NVMLError: type[Exception]
    NVMLError_NoPermission: type[Exception]
    NVMLError_NotSupported: type[Exception]

    def nvmlInit(self) -> None: ...
    def nvmlShutdown(self) -> None: ...
    def nvmlDeviceGetCount(self) -> int: ...
    def nvmlDeviceGetHandleByIndex(self, index: int) -> Any: ...
    def nvmlDeviceGetUUID(self, handle: Any) -> str: ...
    def nvmlDeviceGetName(self, handle: Any) -> str: ...
    def nvmlDeviceGetPowerUsage(self, handle: Any) -> int: ...
    def nvmlDeviceGetTotalEnergyConsumption(self, handle: Any) -> int: ...
    def nvmlDeviceGetPowerManagementLimit(self, handle: Any) -> int: ...
    def nvmlDeviceGetPowerManagementLimitConstraints(self, handle: Any) -> list[int]: ...
    def nvmlDeviceSetPowerManagementLimit(self, handle: Any, limit: int) -> None: ...
    def nvmlDeviceGetUtilizationRates(self, handle: Any) -> Any: ...


@dataclass(frozen=True)
class Gpu:
    index: int
    uuid: str
    model: str
    handle: Any


def load_pynvml() -> NvmlApi | None:
    """pynvml, initialised; None where there is no driver or library (CPU nodes, tests)."""
    try:
        import pynvml  # imported late: the driver library is optional at run time

        pynvml.nvmlInit()
    except Exception as err:  # pynvml raises NVMLError subclasses, or OSError before loading
        log.info("NVML not available (%s): no GPU metering", err)
        return None
    api: NvmlApi = pynvml
    return api


def load_nvml(environ: Mapping[str, str]) -> NvmlApi | None:
    """The fake NVML of a file when GREEN_FAKE_NVML_STATE names one (tests, benchmarks), else pynvml."""
    fake = environ.get("GREEN_FAKE_NVML_STATE", "").strip()
    if not fake:
        return load_pynvml()
    from green_trainer.fake_nvml import FileNvml  # only tests and benchmarks get here

    log.warning("using the FAKE NVML of %s (GREEN_FAKE_NVML_STATE): no real GPU is read or changed", fake)
    api: NvmlApi = FileNvml(Path(fake))
    try:
        api.nvmlInit()
    except OSError as err:
        log.error("fake NVML state %s unreadable (%s)", fake, err)
        return None
    return api


def _text(value: str | bytes) -> str:
    # Older pynvml versions return bytes.
    return value.decode() if isinstance(value, bytes) else value


def open_gpus(nvml: NvmlApi, nvidia_visible: str | None, cuda_visible: str | None) -> tuple[list[Gpu], Selection]:
    """The container's GPUs as NVML handles, scoped by the visibility variables."""
    handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(nvml.nvmlDeviceGetCount())]
    enumerated = [Enumerated(i, _text(nvml.nvmlDeviceGetUUID(h))) for i, h in enumerate(handles)]
    selection = select_devices(nvidia_visible, cuda_visible, enumerated)
    gpus = [
        Gpu(
            index=i,
            uuid=enumerated[i].uuid,
            model=_text(nvml.nvmlDeviceGetName(handles[i])),
            handle=handles[i],
        )
        for i in selection.indices
    ]
    return gpus, selection
