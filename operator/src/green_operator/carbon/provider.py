"""The provider interface every carbon-data source implements, and the result of asking for data."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from .series import IntensitySeries


class ErrorReason(StrEnum):
    """Why a provider call failed: a small fixed set, so it can be a metrics label."""

    TIMEOUT = "timeout"
    CONNECTION = "connection"
    RATE_LIMITED = "rate_limited"
    AUTH = "auth"
    CREDENTIALS = "credentials"
    CLIENT_ERROR = "http_4xx"
    SERVER_ERROR = "http_5xx"
    MALFORMED = "malformed"
    NO_DATA = "no_data"
    INTERNAL = "internal"
    ERROR = "error"


class ProviderError(Exception):
    """A provider could not answer. The message is safe to show users: it never contains a token."""

    def __init__(
        self,
        provider: str,
        message: str,
        *,
        retry_after_s: float | None = None,
        reason: str = ErrorReason.ERROR,
    ) -> None:
        super().__init__(f"{provider}: {message}")
        self.provider = provider
        self.retry_after_s = retry_after_s
        self.reason = reason


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
class SourceSpan:
    """One stretch [start, end) of an answer and where its values came from."""

    source: DataSource
    provider: str
    start: datetime
    end: datetime
    fetched_at: datetime | None = None
    """When the provider data in this span was fetched; None for trace and static values."""


@dataclass(frozen=True)
class ForecastResult:
    """What the operator gets for one region: a series plus an honest account of its quality."""

    region: str
    series: IntensitySeries
    source: DataSource
    """The worst source used anywhere in the window (LIVE < CACHED < TRACE < STATIC)."""
    provider: str
    """The providers whose values make up the series, in time order, joined by '+' (e.g. 'emaps+static')."""
    stale: bool
    error: str | None = None
    """Why the answer is degraded (the live provider's sanitised error, which fallback covers which
    stretch); None exactly when the whole window is fresh data from the configured live provider or
    trace."""
    spans: tuple[SourceSpan, ...] = ()
    """Which source covers which part of the window, in time order."""
    data_fetched_at: datetime | None = None
    """Fetch time of the oldest provider data used; None when only trace/static values were used."""
    configured: DataSource = DataSource.LIVE
    """The source the region is configured to plan on: LIVE for a live provider, TRACE when its
    provider is a trace file, STATIC when it has none. Data from it is by design, not a fallback."""

    @property
    def degraded(self) -> bool:
        return self.source is not DataSource.LIVE or self.stale

    def source_at(self, when: datetime) -> DataSource | None:
        """The source of the value in force at ``when`` (e.g. to judge only the near term)."""
        for span in self.spans:
            if span.start <= when < span.end:
                return span.source
        return None

    @property
    def live_until(self) -> datetime | None:
        """End of the live stretch that starts the window, if the window starts with live data."""
        if self.spans and self.spans[0].source is DataSource.LIVE:
            return self.spans[0].end
        return None
