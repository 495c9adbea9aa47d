"""The exit report: compact JSON written to the termination-message path for the operator.

Schema: schema/report-v1.schema.json (documented in the image README). Kubernetes keeps at most
4096 bytes of a termination message, so the report sheds detail (GPU model names, then UUIDs, then
the per-GPU list) rather than ever being cut mid-JSON.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from green_trainer import __version__
from green_trainer.power_limit import PowerLimitOutcome
from green_trainer.sampler import Snapshot

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
MAX_BYTES = 4096
MAX_REASON_CHARS = 300
SCHEMA_PATH = Path(__file__).parent / "schema" / "report-v1.schema.json"


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def build_report(
    snapshot: Snapshot,
    limit: PowerLimitOutcome,
    start: datetime,
    end: datetime,
    exit_code: int,
    terminated_by: str | None = None,
) -> dict[str, Any]:
    """The report as a JSON-ready dict (pure)."""
    grams = snapshot.emissions_grams
    metered_kwh = snapshot.energy_joules / 3.6e6
    report: dict[str, Any] = {
        "v": SCHEMA_VERSION,
        "meter": snapshot.meter.value,
        "energyJoules": _round(snapshot.energy_joules),
        "gpus": [
            {
                "index": gpu.index,
                "uuid": gpu.uuid,
                "model": gpu.model,
                "meter": gpu.meter.value,
                "energyJoules": _round(gpu.energy_joules),
                "powerLimitWatts": _round(gpu.power_limit_watts, 1),
            }
            for gpu in snapshot.gpus
        ],
        "powerLimit": {
            "requestedWatts": limit.requested_watts,
            "appliedWatts": limit.applied_watts,
            "applied": limit.applied,
            "code": limit.code.value,
            "reason": limit.reason[:MAX_REASON_CHARS],
            "restored": limit.restored,
        },
        "start": rfc3339(start),
        "end": rfc3339(end),
        "durationSeconds": round((end - start).total_seconds(), 3),
        "samples": snapshot.progress.samples,
        "steps": snapshot.progress.steps,
        "tokens": snapshot.progress.tokens,
        "exitCode": exit_code,
        "carbon": {
            # The energy-weighted intensity over the run, so grams = kWh x gramsPerKwh holds.
            "gramsPerKwh": _round(grams / metered_kwh, 2) if grams is not None and metered_kwh > 0 else None,
            "grams": _round(grams),
        },
        "trainer": __version__,
    }
    if grams is not None and metered_kwh == 0:
        report["carbon"]["gramsPerKwh"] = _round(snapshot.carbon_intensity, 2)
    if terminated_by is not None:
        report["terminatedBy"] = terminated_by
    report["outcome"] = outcome(exit_code, terminated_by)
    if snapshot.progress.fraction is not None:
        report["progress"] = {"fraction": round(snapshot.progress.fraction, 6)}
    return report


def outcome(exit_code: int, terminated_by: str | None) -> str:
    """paused: asked to stop (a pause suspends the Job: SIGTERM), the training exited on its own
    within the grace period (it checkpointed); killed after the grace period, or any other non-zero
    exit without a signal, is a failure."""
    if terminated_by is not None and exit_code != 128 + 9:
        return "paused"
    return "completed" if exit_code == 0 else "failed"


def _compact(report: dict[str, Any]) -> str:
    return json.dumps(report, separators=(",", ":"), ensure_ascii=False)


def _without(key: str) -> Callable[[dict[str, Any]], None]:
    def shed(report: dict[str, Any]) -> None:
        for gpu in report["gpus"]:
            gpu.pop(key, None)

    return shed


def _drop_gpus(report: dict[str, Any]) -> None:
    report["gpus"] = []


def encode_report(report: dict[str, Any]) -> str:
    """Compact JSON of at most MAX_BYTES UTF-8 bytes, shedding per-GPU detail if it must."""
    text = _compact(report)
    for shed in (_without("model"), _without("uuid"), _drop_gpus):
        if len(text.encode()) <= MAX_BYTES:
            return text
        shed(report)
        report["truncated"] = True
        text = _compact(report)
    return text


def write_report(path: Path, text: str) -> bool:
    """Write the report; an unwritable path (not running in Kubernetes) is a warning, not a failure."""
    try:
        with open(path, "w", encoding="utf-8") as stream:
            stream.write(text)
    except OSError as err:
        log.warning("cannot write the report to %s (%s); set GREEN_REPORT_PATH to a writable file", path, err)
        return False
    return True
