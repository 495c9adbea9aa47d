"""The provider interface every carbon-data source implements, and the result of asking for data."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from .series import IntensitySeries


class ProviderError(Exception):
    """A provider could not answer. The message is safe to show users: it never contains a token."""

    def __init__(self, provider: str, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(f"{provider}: {message}")
        self.provider = provider
        self.retry_after_s = retry_after_s


class CarbonProvider(Protocol):
    """A source of carbon intensity. Implementations are synchronous (requests); callers in async
    code run them in a worker thread so kopf's event loop never blocks."""

    name: str

    def forecast(self, zone: str, start: datetime, end: datetime) -> IntensitySeries:
        """Intensity forecast covering as much of [start, end) as the source offers (UTC)."""
        ...

    def history(self, zone: str, start: datetime, end: datetime) -> IntensitySeries:
        """Measured (or provider-estimated) intensity over [start, end) (UTC)."""
        ...


class DataSource(StrEnum):
    """Where a forecast handed to the planner came from, best first (the fallback chain)."""

    LIVE = "live"
    CACHED = "cached"
    TRACE = "trace"
    STATIC = "static"


@dataclass(frozen=True)
class ForecastResult:
    """What the operator gets for one region: a series plus an honest account of its quality."""

    region: str
    series: IntensitySeries
    source: DataSource
    provider: str
    stale: bool
    error: str | None = None
    """The live provider's error when a fallback was used; None when live data was fresh."""

    @property
    def degraded(self) -> bool:
        return self.source is not DataSource.LIVE or self.stale
