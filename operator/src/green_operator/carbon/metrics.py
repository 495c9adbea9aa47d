"""Prometheus metrics for carbon providers. Labels are configured names only, never secrets."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge

from .provider import DataSource, ErrorReason

OUTCOMES = ("success", "error", "rate_limited", "timeout")


def outcome_for(reason: str) -> str:
    if reason == ErrorReason.TIMEOUT:
        return "timeout"
    if reason == ErrorReason.RATE_LIMITED:
        return "rate_limited"
    return "error"


class CarbonMetrics:
    """The provider metrics, registered on ``registry`` (the global one by default).

    - ``greentraining_provider_requests_total{provider,outcome}``: provider calls by outcome
      (success | error | rate_limited | timeout); calls skipped while backing off are not counted.
    - ``greentraining_provider_errors_total{provider,reason}``: failures by reason (see ErrorReason).
    - ``greentraining_provider_data_age_seconds{region}``: age of the provider data in the region's
      last answer; with only trace/static data in it, the time since the region's last successful
      live fetch, or +Inf if there never was one; 0 for a region configured on a trace file while
      its answer is that trace (replayed data does not age).
    - ``greentraining_provider_fallback_active{region,source}``: 1 for the source of the last answer
      (its worst part: live < cached < trace < static), 0 for the others.
    """

    _default: CarbonMetrics | None = None
    _default_lock = threading.Lock()

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.requests = Counter(
            "greentraining_provider_requests_total",
            "Carbon provider calls by outcome.",
            ["provider", "outcome"],
            registry=registry,
        )
        self.errors = Counter(
            "greentraining_provider_errors_total",
            "Carbon provider failures by reason.",
            ["provider", "reason"],
            registry=registry,
        )
        self.data_age = Gauge(
            "greentraining_provider_data_age_seconds",
            "Age of the carbon data used in the region's last answer.",
            ["region"],
            registry=registry,
        )
        self.fallback_active = Gauge(
            "greentraining_provider_fallback_active",
            "1 for the carbon data source in use for the region (live, cached, trace, static).",
            ["region", "source"],
            registry=registry,
        )

    @classmethod
    def default(cls) -> CarbonMetrics:
        """One instance on the global registry per process (registering twice would fail)."""
        with cls._default_lock:
            if cls._default is None:
                cls._default = cls()
            return cls._default

    def declare(self, providers: Iterable[str], regions: Iterable[str]) -> None:
        """Create every series at zero so dashboards show 0 rather than 'no data'."""
        for p in providers:
            for o in OUTCOMES:
                self.requests.labels(p, o)
            for r in ErrorReason:
                self.errors.labels(p, r.value)
        for region in regions:
            self.data_age.labels(region).set(math.inf)
            for s in DataSource:
                self.fallback_active.labels(region, s.value).set(0)

    def request(self, provider: str, *, reason: str | None = None) -> None:
        if reason is None:
            self.requests.labels(provider, "success").inc()
            return
        self.requests.labels(provider, outcome_for(reason)).inc()
        self.errors.labels(provider, reason).inc()

    def answer(self, region: str, source: DataSource, age_seconds: float) -> None:
        self.data_age.labels(region).set(age_seconds)
        for s in DataSource:
            self.fallback_active.labels(region, s.value).set(1 if s is source else 0)
