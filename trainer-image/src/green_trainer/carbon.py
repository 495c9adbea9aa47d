"""Carbon intensity from the operator (env value, or a mounted file it may update) and emissions."""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

log = logging.getLogger(__name__)

JOULES_PER_KWH = 3.6e6
# A mounted ConfigMap changes by symlink swap, seen through stat(); once a second is plenty.
FILE_CHECK_SECONDS = 1.0


def emissions_grams(joules: float, grams_per_kwh: float) -> float:
    return joules / JOULES_PER_KWH * grams_per_kwh


def parse_intensity_file(text: str) -> float:
    """gCO2eq/kWh from {"gramsPerKwh": <float>, "updatedAt": "<RFC3339>"}; ValueError says what is wrong."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"not JSON ({err})") from None
    if not isinstance(document, dict) or "gramsPerKwh" not in document:
        raise ValueError('expected an object with "gramsPerKwh", e.g. {"gramsPerKwh": 250.0}')
    value = document["gramsPerKwh"]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ValueError(f'"gramsPerKwh" must be a non-negative number, got {value!r}')
    return float(value)


class CarbonIntensity:
    """The intensity in force now: the file's value while it is valid, else the env value, else None."""

    def __init__(self, env_value: float | None, file: Path | None) -> None:
        self._env_value = env_value
        self._file = file
        self._file_value: float | None = None
        self._signature: tuple[int, int, int] | None = None
        self._next_check = -math.inf

    @property
    def source(self) -> str:
        if self._file_value is not None:
            return "file"
        return "env" if self._env_value is not None else "none"

    def current(self, now: float) -> float | None:
        if self._file is not None and now >= self._next_check:
            self._next_check = now + FILE_CHECK_SECONDS
            self._refresh(self._file)
        return self._file_value if self._file_value is not None else self._env_value

    def _refresh(self, file: Path) -> None:
        try:
            stat = os.stat(file)
        except OSError:
            if self._signature is not None:
                log.warning("carbon intensity file %s is gone; using GREEN_CARBON_INTENSITY", file)
            self._signature, self._file_value = None, None
            return
        signature = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if signature == self._signature:
            return
        self._signature = signature
        try:
            self._file_value = parse_intensity_file(file.read_text())
            log.info("carbon intensity %.1f gCO2eq/kWh from %s", self._file_value, file)
        except (OSError, ValueError) as err:
            self._file_value = None
            log.warning("carbon intensity file %s ignored: %s; using GREEN_CARBON_INTENSITY", file, err)
