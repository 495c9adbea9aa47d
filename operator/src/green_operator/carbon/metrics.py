"""Prometheus metrics for carbon providers. Labels are configured names only, never secrets."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from .provider import DataSource, ErrorReason

OUTCOMES = ("success", "error", "rate_limited", "timeout")
FORECAST_ERROR_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.0)


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
    - ``greentraining_forecast_error_ratio{region,lead}``: how far a live forecast was off,
      ``|forecast - actual| / actual`` per planner slot, once the provider's history covers it,
      by lead time (``controller.forecast_error.LEAD_LABELS``); ``_sum / _count`` is the mean
      absolute percentage error as a fraction.
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
        self.forecast_error = Histogram(
            "greentraining_forecast_error_ratio",
            "How far live forecasts were off: |forecast - actual| / actual per slot, by region and lead time.",
            ["region", "lead"],
            buckets=FORECAST_ERROR_BUCKETS,
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

    def declare_forecast_error(self, regions: Iterable[str], leads: Iterable[str]) -> None:
        """The error histograms of the live regions, at zero until their first scored slot."""
        leads = tuple(leads)
        for region in regions:
            for lead in leads:
                self.forecast_error.labels(region, lead)

    def forecast_error_observed(self, region: str, lead: str, ratio: float) -> None:
        self.forecast_error.labels(region, lead).observe(ratio)

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
