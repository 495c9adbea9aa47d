"""CPU energy from RAPL counters under /sys/class/powercap (Intel, and AMD through the same driver).

Counted zones: each package (`intel-rapl:N`, name `package-N`) plus its `dram` child, which the
package counter does not include. Left out: `core`/`uncore` (inside the package), `psys` (the whole
platform, overlapping the packages) and `intel-rapl-mmio:*` (a second view of the same package).
Reading energy_uj needs root on kernels patched for CVE-2020-8694; unreadable means "not available".
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

_PACKAGE = re.compile(r"^intel-rapl:\d+$")
_CHILD = re.compile(r"^intel-rapl:\d+:\d+$")


def counter_delta(previous_uj: int, current_uj: int, max_range_uj: int) -> int:
    """Energy between two readings of a counter that wraps to 0 after max_range_uj."""
    if current_uj >= previous_uj:
        return current_uj - previous_uj
    return max_range_uj - previous_uj + current_uj


@dataclass(frozen=True)
class RaplZone:
    path: Path
    name: str
    max_range_uj: int

    def read_uj(self) -> int:
        return int((self.path / "energy_uj").read_text().strip())


def _zone(path: Path) -> RaplZone | None:
    try:
        name = (path / "name").read_text().strip()
        zone = RaplZone(path, name, int((path / "max_energy_range_uj").read_text().strip()))
        zone.read_uj()
    except (OSError, ValueError) as err:
        log.debug("RAPL zone %s not readable: %s", path, err)
        return None
    return zone


def discover_zones(root: Path) -> list[RaplZone]:
    """The readable package and DRAM zones under a powercap root."""
    if not root.is_dir():
        return []
    zones: list[RaplZone] = []
    for entry in sorted(root.iterdir()):
        if _PACKAGE.match(entry.name):
            wanted = _zone(entry)
            if wanted is not None and wanted.name.startswith("package"):
                zones.append(wanted)
        elif _CHILD.match(entry.name):
            child = _zone(entry)
            if child is not None and child.name == "dram":
                zones.append(child)
    return zones


class RaplCounter:
    """Accumulates joules across the zones, surviving counter wrap-around between samples."""

    def __init__(self, zones: list[RaplZone]) -> None:
        if not zones:
            raise ValueError("RaplCounter needs at least one readable zone; call discover_zones first")
        self.zones = zones
        self._last = {zone.path: zone.read_uj() for zone in zones}
        self._total_uj = 0

    def sample(self) -> None:
        for zone in self.zones:
            try:
                current = zone.read_uj()
            except (OSError, ValueError) as err:
                log.warning("RAPL zone %s unreadable this sample: %s", zone.path, err)
                continue
            self._total_uj += counter_delta(self._last[zone.path], current, zone.max_range_uj)
            self._last[zone.path] = current

    @property
    def joules(self) -> float:
        return self._total_uj / 1e6
