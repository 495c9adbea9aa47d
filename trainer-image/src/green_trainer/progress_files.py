"""How the training process tells the wrapper its progress: one small JSON file per process.

The wrapper makes a private directory and passes it as GREEN_PROGRESS_DIR. Each reporting process
writes its cumulative counts to `<pid>-<nonce>.json` by write-then-rename, so the wrapper never sees
a torn file; several processes (torchrun workers, data-parallel ranks) each keep their own file and
the wrapper adds them up. Nothing is lost if a process dies: its last file stays.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

PROGRESS_DIR_ENV = "GREEN_PROGRESS_DIR"
FIELDS = ("samples", "steps", "tokens")


@dataclass(frozen=True)
class Progress:
    samples: int = 0
    steps: int = 0
    tokens: int = 0
    fraction: float | None = None
    """Share of the whole training saved in the latest checkpoint (None: never said). Processes
    resume from the same checkpoint, so the total is the least any of them saved."""

    def __add__(self, other: Progress) -> Progress:
        fractions = [f for f in (self.fraction, other.fraction) if f is not None]
        return Progress(
            self.samples + other.samples,
            self.steps + other.steps,
            self.tokens + other.tokens,
            min(fractions) if fractions else None,
        )


def encode(progress: Progress) -> str:
    doc: dict[str, int | float] = {"samples": progress.samples, "steps": progress.steps, "tokens": progress.tokens}
    if progress.fraction is not None:
        doc["fraction"] = progress.fraction
    return json.dumps(doc)


def decode(text: str) -> Progress:
    document = json.loads(text)
    if not isinstance(document, dict):
        raise ValueError("progress file is not a JSON object")
    values = {}
    for field in FIELDS:
        value = document.get(field, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"progress field {field!r} must be a non-negative integer, got {value!r}")
        values[field] = value
    fraction = document.get("fraction")
    if fraction is not None and (
        isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0 <= fraction <= 1
    ):
        raise ValueError(f"progress field 'fraction' must be a number from 0 to 1, got {fraction!r}")
    return Progress(**values, fraction=None if fraction is None else float(fraction))


def write_atomically(directory: Path, name: str, progress: Progress) -> None:
    temporary = directory / f".{name}.tmp"
    temporary.write_text(encode(progress))
    os.replace(temporary, directory / name)


class ProgressReader:
    """The sum over every process's file; a file that cannot be read keeps its last good value."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._known: dict[str, Progress] = {}

    def read(self) -> Progress:
        try:
            names = [n for n in os.listdir(self.directory) if n.endswith(".json") and not n.startswith(".")]
        except OSError as err:
            log.debug("progress directory unreadable: %s", err)
            names = []
        for name in names:
            try:
                self._known[name] = decode((self.directory / name).read_text())
            except (OSError, ValueError) as err:
                log.debug("progress file %s skipped this sample: %s", name, err)
        total = Progress()
        for progress in self._known.values():
            total = total + progress
        return total
