"""References to secrets (API tokens, passwords) held in the environment or in mounted files.

Only the *reference* (variable name or file path) is stored in configuration objects, so their
repr(), logs and status never carry a secret. The value is read when a request needs it, which also
picks up a rotated Kubernetes Secret mounted as a file without restarting the operator.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


class CredentialError(Exception):
    """A secret could not be read. The message names where it was looked for, never a value."""


@dataclass(frozen=True)
class SecretRef:
    """Exactly one of ``env`` (an environment variable name) or ``file`` (a path) is set."""

    env: str | None = None
    file: Path | None = None

    def __post_init__(self) -> None:
        if (self.env is None) == (self.file is None):
            raise ValueError("SecretRef needs exactly one of env or file")

    def describe(self) -> str:
        return f"environment variable {self.env}" if self.env is not None else f"file {self.file}"

    def read(self, environ: Mapping[str, str] | None = None) -> str:
        """The secret's value, surrounding whitespace (a file's trailing newline) removed."""
        if self.env is not None:
            value = (os.environ if environ is None else environ).get(self.env)
            if value is None:
                raise CredentialError(f"{self.describe()} is not set")
        else:
            assert self.file is not None
            try:
                value = self.file.read_text(encoding="utf-8")
            except OSError as exc:
                raise CredentialError(f"cannot read {self.describe()}: {exc.strerror}") from None
        value = value.strip()
        if not value:
            raise CredentialError(f"{self.describe()} is empty")
        return value
