"""The phases of a GreenTrainingJob, the one place their names are spelled."""

from __future__ import annotations

from enum import StrEnum


class Phase(StrEnum):
    PENDING = "Pending"
    """Not planned yet, or its spec cannot be planned (see the Planned condition)."""
    DEFERRED = "Deferred"
    """Planned; its child Job waits, suspended, for the low-carbon window."""
    STARTING = "Starting"
    """Released; its pods are not running yet (scheduling, pulling, or unschedulable)."""
    RUNNING = "Running"
    """Its pods run."""
    PAUSED = "Paused"
    """An interruptible job between two segments: its child Job is suspended."""
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"

    @property
    def terminal(self) -> bool:
        return self in (Phase.SUCCEEDED, Phase.FAILED)

    @property
    def released(self) -> bool:
        return self in (Phase.STARTING, Phase.RUNNING)

    @classmethod
    def of(cls, value: object) -> Phase | None:
        """The phase a status names, None for none or a value this version does not know."""
        try:
            return cls(str(value)) if value else None
        except ValueError:
            return None


TERMINAL_PHASES = (Phase.SUCCEEDED, Phase.FAILED)
