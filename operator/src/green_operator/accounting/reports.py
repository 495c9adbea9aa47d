"""The trainer's exit report, read from a termination message: untrusted input from a user's pod.

Whatever a pod writes, the operator either accepts a report, sees none (a plain-text message, a
trainer-less image: the pod is then estimated), or refuses it with a reason; it never raises.
A refused report is counted as an estimate too, and the refusal is labelled (status
energy.refusedReports, a Warning Event, the metric greentraining_trainer_reports_refused_total).

Refused:
- TooLarge: more than 4096 bytes (UTF-8), the kubelet's own cap on a termination message; the
  trainer sheds detail to stay under it (green_trainer.report.MAX_BYTES).
- InvalidJson: starts like a JSON object but does not parse (or nests absurdly deep).
- InvalidEnergy: a JSON object whose energyJoules is missing-but-versioned, not a number, or a bool.
- NegativeEnergy, NonFiniteEnergy: below zero; NaN or infinite.
- AbsurdEnergy: more than MAX_WATTS_PER_GPU per GPU (at least one: the trainer meters the CPU
  when there is no GPU) sustained over the container's wall time as the kubelet recorded it, plus
  CLOCK_SLACK (its timestamps have 1-second resolution). 2 kW is above any accelerator's board
  power today (H100 SXM 700 W, B200 1 kW, GB300 about 1.4 kW) with margin. Without the kubelet's
  timestamps, the wall time is taken as UNTIMED (7 days).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

MAX_REPORT_BYTES = 4096
MAX_WATTS_PER_GPU = 2000.0
CLOCK_SLACK_SECONDS = 60.0
UNTIMED_SECONDS = 7 * 86400.0
MAX_REASON_CHARS = 300
METERS = frozenset({"nvml", "nvml_power_integration", "rapl", "estimate"})
UNKNOWN_METER = "unknown"


class Refusal(StrEnum):
    TOO_LARGE = "TooLarge"
    INVALID_JSON = "InvalidJson"
    INVALID_ENERGY = "InvalidEnergy"
    NEGATIVE_ENERGY = "NegativeEnergy"
    NON_FINITE_ENERGY = "NonFiniteEnergy"
    ABSURD_ENERGY = "AbsurdEnergy"


@dataclass(frozen=True)
class TrainerReport:
    joules: float
    meter: str
    """One of METERS, or "unknown" for anything else a pod wrote."""
    power_applied: bool | None = None
    power_reason: str = ""
    progress: float | None = None
    """The fraction of the work done (0 to 1) a paused trainer reported; None when absent or invalid."""


@dataclass(frozen=True)
class Refused:
    reason: Refusal
    detail: str


def max_joules(gpus: int, wall_seconds: float | None) -> float:
    """The most energy a container with `gpus` GPUs can have used over its wall time."""
    seconds = UNTIMED_SECONDS if wall_seconds is None else max(wall_seconds, 0.0)
    return max(gpus, 1) * MAX_WATTS_PER_GPU * (seconds + CLOCK_SLACK_SECONDS)


def read_report(message: object, limit_joules: float) -> TrainerReport | Refused | None:
    """The report in a termination message; None when there is none (plain text, or JSON that is
    not the trainer's); Refused when it is one but cannot be believed. Never raises."""
    if not isinstance(message, str) or not message.strip():
        return None
    size = len(message.encode("utf-8", "surrogatepass"))
    if size > MAX_REPORT_BYTES:
        return Refused(Refusal.TOO_LARGE, f"{size} bytes, above the {MAX_REPORT_BYTES}-byte termination-message cap")
    if not message.lstrip().startswith("{"):
        return None  # a plain-text termination message: not the trainer's
    try:
        doc = json.loads(message)
    except (ValueError, RecursionError) as err:
        return Refused(Refusal.INVALID_JSON, f"not valid JSON ({type(err).__name__})")
    if not isinstance(doc, dict):
        return Refused(Refusal.INVALID_JSON, "not a JSON object")
    if "energyJoules" not in doc:
        if "v" in doc:  # versioned like the trainer's, without the one figure that matters
            return Refused(Refusal.INVALID_ENERGY, "energyJoules is missing")
        return None  # some other program's JSON
    joules = _energy(doc["energyJoules"])
    if isinstance(joules, Refused):
        return joules
    if joules > limit_joules:
        return Refused(
            Refusal.ABSURD_ENERGY,
            f"energyJoules {joules:.6g} exceeds {limit_joules:.6g} J "
            f"({MAX_WATTS_PER_GPU:.0f} W per GPU over the container's wall time)",
        )
    meter = doc.get("meter")
    limit = doc.get("powerLimit")
    if isinstance(limit, Mapping) and limit.get("code") == "NotRequested":
        limit = None  # the wrapper was not asked (the node agent sets limits): it knows nothing of one
    applied = limit.get("applied") if isinstance(limit, Mapping) else None
    reason = limit.get("reason") if isinstance(limit, Mapping) else None
    return TrainerReport(
        joules=joules,
        meter=meter if isinstance(meter, str) and meter in METERS else UNKNOWN_METER,
        power_applied=applied if isinstance(applied, bool) else None,
        power_reason=reason[:MAX_REASON_CHARS] if isinstance(reason, str) else "",
        progress=_fraction(doc.get("progress")),
    )


def _fraction(progress: Any) -> float | None:
    """progress.fraction when it is a finite number in [0, 1]: a bad one is ignored, not believed."""
    value = progress.get("fraction") if isinstance(progress, Mapping) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        fraction = float(value)
    except OverflowError:
        return None
    return fraction if math.isfinite(fraction) and 0.0 <= fraction <= 1.0 else None


def _energy(value: Any) -> float | Refused:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return Refused(Refusal.INVALID_ENERGY, f"energyJoules is not a number ({type(value).__name__})")
    try:
        joules = float(value)
    except OverflowError:  # an integer too large for a float
        return Refused(Refusal.NON_FINITE_ENERGY, "energyJoules overflows a float")
    if not math.isfinite(joules):
        return Refused(Refusal.NON_FINITE_ENERGY, f"energyJoules is {joules}")
    if joules < 0:
        return Refused(Refusal.NEGATIVE_ENERGY, f"energyJoules is negative ({joules:.6g})")
    return joules
