"""A simulated GPU behind pynvml's names, for the end-to-end tier on a machine without one.

The e2e test puts this directory first on PYTHONPATH of a real `green-trainer run`, so the wrapper's
NVML seam (green_trainer.nvml.load_pynvml imports `pynvml`) finds one H100-like GPU: a 700 W board
whose limit can be set within 200-700 W, drawing a steady 310 W (capped by the limit) at 87% busy, with
a total-energy counter in mJ that integrates that draw. Only the functions the wrapper calls exist.
"""

# ruff: noqa: N801, N818 - pynvml's names

from __future__ import annotations

import time
from types import SimpleNamespace

_MIN_MW, _MAX_MW, _DRAW_MW = 200_000, 700_000, 310_000
_UUID = "GPU-5e2e0000-1111-2222-3333-444455556666"
_state = {"limit_mw": _MAX_MW, "born": time.monotonic(), "energy_mj": 9_876_543_210.0, "last": time.monotonic()}


class NVMLError(Exception):
    value = 999


class NVMLError_NoPermission(NVMLError):
    value = 4


class NVMLError_NotSupported(NVMLError):
    value = 3


def _power_mw() -> int:
    return min(_DRAW_MW, int(_state["limit_mw"]))


def _advance() -> None:
    now = time.monotonic()
    _state["energy_mj"] += _power_mw() * (now - _state["last"])
    _state["last"] = now


def _check(handle: int) -> None:
    if handle != 0:
        raise NVMLError()


def nvmlInit() -> None:
    _state["last"] = time.monotonic()


def nvmlShutdown() -> None:
    return None


def nvmlDeviceGetCount() -> int:
    return 1


def nvmlDeviceGetHandleByIndex(index: int) -> int:
    _check(index)
    return index


def nvmlDeviceGetUUID(handle: int) -> str:
    _check(handle)
    return _UUID


def nvmlDeviceGetName(handle: int) -> str:
    _check(handle)
    return "NVIDIA H100 80GB HBM3 (simulated)"


def nvmlDeviceGetPowerUsage(handle: int) -> int:
    _check(handle)
    return _power_mw()


def nvmlDeviceGetTotalEnergyConsumption(handle: int) -> int:
    _check(handle)
    _advance()
    return int(_state["energy_mj"])


def nvmlDeviceGetPowerManagementLimit(handle: int) -> int:
    _check(handle)
    return int(_state["limit_mw"])


def nvmlDeviceGetPowerManagementLimitConstraints(handle: int) -> list[int]:
    _check(handle)
    return [_MIN_MW, _MAX_MW]


def nvmlDeviceSetPowerManagementLimit(handle: int, limit: int) -> None:
    _check(handle)
    if not _MIN_MW <= limit <= _MAX_MW:
        raise NVMLError()
    _advance()
    _state["limit_mw"] = limit


def nvmlDeviceGetUtilizationRates(handle: int) -> SimpleNamespace:
    _check(handle)
    return SimpleNamespace(gpu=87, memory=40)
