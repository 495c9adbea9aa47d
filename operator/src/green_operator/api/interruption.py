"""The `spec.interruption` block: whether a job may pause between segments, and what a pause costs.

Pure: errors are `SpecProblem` values naming the field. The CRD refuses most bad input at apply
time; this parser is the operator's own check (and the simulator's, which has no API server).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any

from green_operator.times import parse_delay

CHECKPOINT_DIR_ENV = "GREEN_CHECKPOINT_DIR"
CHECKPOINT_VOLUME = "green-checkpoints"
DEFAULT_MOUNT_PATH = "/checkpoints"
REPORT_FINALIZER = "greentraining.io/segment-report"
"""On an interruptible job's pods: holds a paused pod until the operator has read its report (the
Job controller deletes the pods on suspend, and their termination messages would go with them)."""


class InterruptionPolicy(StrEnum):
    NEVER = "Never"
    CHECKPOINTED = "Checkpointed"


@dataclass(frozen=True)
class CheckpointVolume:
    claim_name: str
    mount_path: str = DEFAULT_MOUNT_PATH


@dataclass(frozen=True)
class Interruption:
    policy: InterruptionPolicy = InterruptionPolicy.NEVER
    grace_period: timedelta = timedelta(minutes=5)
    min_segment: timedelta = timedelta(hours=1)
    resume_overhead: timedelta = timedelta(minutes=5)
    resume_energy_joules: float = 0.0
    volume: CheckpointVolume | None = None

    @property
    def interruptible(self) -> bool:
        return self.policy is InterruptionPolicy.CHECKPOINTED


NEVER = Interruption()


def parse_interruption(raw: Mapping[str, Any] | None) -> Interruption | list[tuple[str, str]]:
    """The block with defaults, or (field, message) problems."""
    if not raw:
        return NEVER
    problems: list[tuple[str, str]] = []
    base = "spec.interruption"
    try:
        policy = InterruptionPolicy(str(raw.get("policy", "Never")))
    except ValueError:
        problems.append((f"{base}.policy", f"must be Never or Checkpointed, got {raw.get('policy')!r}"))
        policy = InterruptionPolicy.NEVER

    def duration(name: str, default: timedelta) -> timedelta:
        if name not in raw:
            return default
        try:
            return parse_delay(str(raw[name]))
        except ValueError as exc:
            problems.append((f"{base}.{name}", f"{exc}; use a duration such as 5m or 1h"))
            return default

    grace = duration("checkpointGracePeriod", NEVER.grace_period)
    min_segment = duration("minSegment", NEVER.min_segment)
    overhead = duration("resumeOverhead", NEVER.resume_overhead)
    if grace < timedelta(seconds=1):
        problems.append((f"{base}.checkpointGracePeriod", "must be at least 1s (the pods' time to checkpoint)"))
    if min_segment <= overhead:
        problems.append(
            (f"{base}.minSegment", "must be longer than resumeOverhead, or a segment does no work: raise minSegment")
        )
    try:
        energy = float(raw.get("resumeEnergyJoules", 0) or 0)
    except (TypeError, ValueError):
        problems.append((f"{base}.resumeEnergyJoules", "must be a number of joules (0 or more)"))
        energy = 0.0
    if energy < 0:
        problems.append((f"{base}.resumeEnergyJoules", "must be 0 or more"))
    volume = None
    vol_raw = raw.get("checkpointVolume")
    if vol_raw:
        claim = str(vol_raw.get("claimName") or "")
        mount = str(vol_raw.get("mountPath") or DEFAULT_MOUNT_PATH)
        if not claim:
            problems.append((f"{base}.checkpointVolume.claimName", "name the PersistentVolumeClaim to checkpoint to"))
        if not mount.startswith("/"):
            problems.append((f"{base}.checkpointVolume.mountPath", "must be an absolute path such as /checkpoints"))
        volume = CheckpointVolume(claim, mount)
    if problems:
        return problems
    return Interruption(policy, grace, min_segment, overhead, energy, volume)


def interruption_pod_changes(template: Mapping[str, Any], interruption: Interruption) -> dict[str, Any]:
    """The pod template of an interruptible job: the checkpoint grace period becomes the pods'
    terminationGracePeriodSeconds, and the checkpoint volume is mounted in every container and
    named by GREEN_CHECKPOINT_DIR; the pods carry the operator's report finalizer. Returns a new
    template; a never-interrupted job's is unchanged."""
    pod: dict[str, Any] = copy.deepcopy(dict(template))
    if not interruption.interruptible:
        return pod
    meta = pod.setdefault("metadata", {})
    meta["finalizers"] = sorted({*(meta.get("finalizers") or []), REPORT_FINALIZER})
    spec = pod.setdefault("spec", {})
    spec["terminationGracePeriodSeconds"] = int(interruption.grace_period.total_seconds())
    vol = interruption.volume
    if vol is None:
        return pod
    volumes = [v for v in spec.get("volumes") or [] if v.get("name") != CHECKPOINT_VOLUME]
    volumes.append({"name": CHECKPOINT_VOLUME, "persistentVolumeClaim": {"claimName": vol.claim_name}})
    spec["volumes"] = volumes
    for c in spec.get("containers") or []:
        mounts = [m for m in c.get("volumeMounts") or [] if m.get("name") != CHECKPOINT_VOLUME]
        c["volumeMounts"] = [*mounts, {"name": CHECKPOINT_VOLUME, "mountPath": vol.mount_path}]
        env = [e for e in c.get("env") or [] if e.get("name") != CHECKPOINT_DIR_ENV]
        c["env"] = [*env, {"name": CHECKPOINT_DIR_ENV, "value": vol.mount_path}]
    return pod
