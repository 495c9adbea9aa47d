"""Operator configurations for tests: carbon traces written for the test, with timestamps around "now"
at a short step, so windows open seconds, not hours, away."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

REGIONS = ("europe-west2", "europe-west3", "europe-west9", "us-west2")


def write_trace(path: Path, start: datetime, step: timedelta, values: Sequence[float]) -> Path:
    """A trace CSV like data/carbon: naive UTC timestamps, one value per step."""
    lines = ["Time,Carbon Intensity"]
    lines += [f"{(start + i * step).strftime('%Y-%m-%d %H:%M:%S')},{v}" for i, v in enumerate(values)]
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class TraceGrid:
    """Per-region intensity profiles on a grid of `step` starting `start` (before now)."""

    start: datetime
    step: timedelta
    values: dict[str, list[float]] = field(default_factory=dict)

    def at(self, t: datetime) -> int:
        return int((t - self.start) / self.step)


def make_config(
    tmp: Path,
    traces: TraceGrid,
    *,
    slot: timedelta,
    horizon: timedelta,
    replan: timedelta = timedelta(minutes=10),
    live_regions: dict[str, dict[str, Any]] | None = None,
    carbon: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    planner: dict[str, Any] | None = None,
) -> Path:
    """Operator config: every region reads its trace (shift none); `live_regions` overrides a region's
    carbon block (e.g. a live provider at an unreachable URL with the trace as fallback)."""
    files = {}
    for region, values in traces.values.items():
        files[region] = str(write_trace(tmp / f"{region}.csv", traces.start, traces.step, values))
    providers: dict[str, Any] = {"traces": {"type": "trace", "files": files, "shift": "none"}}
    regions = []
    for region in traces.values:
        block: dict[str, Any] = {"provider": "traces", "zone": region}
        if live_regions and region in live_regions:
            block = live_regions[region]
        regions.append({"name": region, "carbon": block})
    for spec in (live_regions or {}).values():
        providers.update(spec.pop("_providers", {}))
    doc = {
        "providers": providers,
        "carbon": carbon or {"cacheTTL": "2s", "staleAfter": "1m", "retryBackoff": "1s", "maxRetries": 0},
        "regions": regions,
        "planner": {
            "slot": f"{int(slot.total_seconds())}s",
            "horizon": f"{int(horizon.total_seconds())}s",
            "replanInterval": f"{int(replan.total_seconds())}s",
            "forecastRefresh": "1s",
            **(planner or {}),
        },
    }
    doc.update(extra or {})
    path = tmp / "operator-config.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path
