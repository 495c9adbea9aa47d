"""The carbon service: per region, an honest intensity series for any window, whatever fails.

Fallback chain for ``forecast`` and ``history`` over [start, end):

1. **live**: the region's provider, unless it is backing off after failures or was told to wait by
   a 429. A live answer younger than ``cacheTTL`` is reused without a request (still ``live``).
   A region whose provider is a trace file reads it directly instead, reported as ``trace``: replayed
   data, never passed off as live (the result's ``configured`` says it is the region's choice).
2. **cached**: the provider's last good answer for that zone (and, for history, its last forecast
   covering the window), reported ``stale`` once older than ``staleAfter``.
3. **trace**: the region's ``fallbackTrace``.
4. **static**: the region's annual factor; always covers the rest of the window.

Each later source only fills what the earlier ones leave uncovered, so a live forecast shorter than
the window is extended, and the result says which stretch came from where (``spans``) and why
(``error``). After a failure the provider/zone is not asked again until a jittered exponential
backoff has passed (``retryBackoff`` doubling up to ``maxRetryBackoff``); after a 429 not before its
Retry-After. Methods are synchronous and thread-safe; ``*_async`` variants run them in a worker
thread for kopf's event loop.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

import requests

from green_operator.times import format_duration

from . import registry
from .assemble import Candidate, assemble, static_series
from .config import CarbonConfig, CarbonConfigError, CarbonSettings, ProviderConfig, RegionCarbonConfig
from .metrics import CarbonMetrics
from .plugin import BuildContext
from .provider import CarbonProvider, DataSource, ErrorReason, ForecastResult, ProviderError, SourceSpan
from .series import IntensitySeries, utc
from .trace_provider import TraceProvider
from .transport import DEFAULT_RETRY_AFTER_S

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
SessionFactory = Callable[[], requests.Session]
_ORDER = (DataSource.LIVE, DataSource.CACHED, DataSource.TRACE, DataSource.STATIC)
_MAX_ERROR_CHARS = 1000


def utc_now() -> datetime:
    return datetime.now(UTC)


class UnknownRegionError(LookupError):
    """A region that is not in the carbon configuration."""


class _Kind(StrEnum):
    FORECAST = "forecast"
    HISTORY = "history"


_Key = tuple[str, str, _Kind]


@dataclass(frozen=True)
class _Entry:
    """A provider's last good answer, and the window it was asked for."""

    series: IntensitySeries
    fetched_at: datetime
    start: datetime
    end: datetime


@dataclass
class _Health:
    failures: int = 0
    retry_at: datetime | None = None
    last_error: str | None = None


class CarbonService:
    def __init__(
        self,
        config: CarbonConfig,
        providers: Mapping[str, CarbonProvider],
        *,
        clock: Clock = utc_now,
        metrics: CarbonMetrics | None = None,
        rand: Callable[[], float] = random.random,
        closers: tuple[Callable[[], None], ...] = (),
    ) -> None:
        self._settings: CarbonSettings = config.settings
        self._providers = dict(providers)
        self._regions: dict[str, RegionCarbonConfig] = {r.region: r for r in config.regions}
        for r in config.regions:
            for name in (r.provider, r.fallback_trace.provider if r.fallback_trace else None):
                if name is not None and name not in self._providers:
                    raise CarbonConfigError(f"region {r.region}: provider {name!r} was not built")
        self._clock = clock
        self._rand = rand
        self._metrics = metrics if metrics is not None else CarbonMetrics.default()
        self._closers = closers
        self._lock = threading.Lock()
        self._key_locks: dict[_Key, threading.Lock] = {}
        self._cache: dict[_Key, _Entry] = {}
        self._health: dict[_Key, _Health] = {}
        self._rate_limited: dict[str, tuple[datetime, str]] = {}
        self._last_live: dict[str, datetime] = {}
        self._metrics.declare(self._providers, self._regions)

    @property
    def metrics(self) -> CarbonMetrics:
        return self._metrics

    def live_regions(self) -> list[str]:
        """Regions configured on a live provider (not a trace file, not static factors only)."""
        return [r for r, rc in self._regions.items() if self._configured(rc) is DataSource.LIVE]

    @classmethod
    def from_config(
        cls,
        cfg: CarbonConfig,
        *,
        clock: Clock = utc_now,
        session_factory: SessionFactory = requests.Session,
        metrics: CarbonMetrics | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rand: Callable[[], float] = random.random,
    ) -> CarbonService:
        """Build every configured provider (reading trace files now, so a bad file fails at start-up
        with a ``CarbonConfigError`` naming the field). ``metrics=None`` uses the process-wide
        instance on the global Prometheus registry."""
        providers: dict[str, CarbonProvider] = {}
        closers: list[Callable[[], None]] = []
        for name, pc in cfg.providers.items():
            provider, closer = build_provider(
                pc, cfg.settings, clock=clock, session_factory=session_factory, sleep=sleep, rand=rand
            )
            providers[name] = provider
            if closer is not None:
                closers.append(closer)
        return cls(cfg, providers, clock=clock, metrics=metrics, rand=rand, closers=tuple(closers))

    # -- public API ----------------------------------------------------------------------------

    def regions(self) -> list[str]:
        return list(self._regions)

    def forecast(self, region: str, start: datetime, end: datetime) -> ForecastResult:
        """Intensity expected over [start, end) in ``region``; always covers the whole window."""
        return self._answer(region, _Kind.FORECAST, start, end)

    def history(self, region: str, start: datetime, end: datetime) -> ForecastResult:
        """Intensity that held over [start, end) (for emissions accounting); same fallback chain."""
        return self._answer(region, _Kind.HISTORY, start, end)

    async def forecast_async(self, region: str, start: datetime, end: datetime) -> ForecastResult:
        return await asyncio.to_thread(self.forecast, region, start, end)

    async def history_async(self, region: str, start: datetime, end: datetime) -> ForecastResult:
        return await asyncio.to_thread(self.history, region, start, end)

    def close(self) -> None:
        for close in self._closers:
            close()

    # -- the chain -----------------------------------------------------------------------------

    def _answer(self, region: str, kind: _Kind, start: datetime, end: datetime) -> ForecastResult:
        rc = self._regions.get(region)
        if rc is None:
            raise UnknownRegionError(
                f"unknown region {region!r}; configured regions: {', '.join(self._regions) or '(none)'}"
            )
        start, end = utc(start), utc(end)
        if end <= start:
            raise ValueError(f"empty window: end {end.isoformat()} is not after start {start.isoformat()}")
        now = self._clock()
        zone = rc.zone or rc.region
        candidates: list[Candidate] = []
        notes: list[str] = []
        if rc.provider is None:
            notes.append(f"no live provider configured for region {region}")
        elif self._configured(rc) is DataSource.TRACE:
            # In memory, nothing to cache or back off from.
            self._read_trace(rc.provider, zone, kind, start, end, candidates, notes)
        else:
            found, err = self._provider_data(rc, kind, start, end, now)
            candidates.extend(found)
            if err:
                notes.append(err)
        if rc.fallback_trace is not None:
            ref = rc.fallback_trace
            self._read_trace(ref.provider, ref.zone, kind, start, end, candidates, notes)
        grid = candidates[0].series.step if candidates else timedelta(hours=1)
        candidates.append(
            Candidate(
                DataSource.STATIC,
                "static",
                static_series(zone, start, end, rc.static.grams_per_kwh, step=max(grid, timedelta(minutes=5))),
            )
        )
        series, spans = assemble(zone, start, end, candidates)
        return self._result(rc, series, spans, notes, now)

    def _configured(self, rc: RegionCarbonConfig) -> DataSource:
        if rc.provider is None:
            return DataSource.STATIC
        return DataSource.TRACE if isinstance(self._providers[rc.provider], TraceProvider) else DataSource.LIVE

    def _read_trace(
        self,
        name: str,
        zone: str,
        kind: _Kind,
        start: datetime,
        end: datetime,
        candidates: list[Candidate],
        notes: list[str],
    ) -> None:
        tp = self._providers[name]
        try:
            ts = (tp.forecast if kind is _Kind.FORECAST else tp.history)(zone, start, end)
        except ProviderError as exc:
            notes.append(str(exc))
        else:
            candidates.append(Candidate(DataSource.TRACE, name, ts))

    def _provider_data(
        self, rc: RegionCarbonConfig, kind: _Kind, start: datetime, end: datetime, now: datetime
    ) -> tuple[list[Candidate], str | None]:
        assert rc.provider is not None
        assert rc.zone is not None
        name, zone = rc.provider, rc.zone
        key: _Key = (name, zone, kind)
        other: _Key = (name, zone, _Kind.HISTORY if kind is _Kind.FORECAST else _Kind.FORECAST)
        with self._key_lock(key):
            with self._lock:
                entry = self._cache.get(key)
                older = self._cache.get(other)
                health = self._health.setdefault(key, _Health())
                blocked = health.retry_at
                blocked_msg = health.last_error
                rl = self._rate_limited.get(name)
                if rl is not None and (blocked is None or rl[0] > blocked):
                    blocked, blocked_msg = rl
            extra = [Candidate(DataSource.CACHED, name, older.series, older.fetched_at)] if older else []
            if entry is not None and self._fresh_hit(entry, kind, start, end, now):
                return [Candidate(DataSource.LIVE, name, entry.series, entry.fetched_at), *extra], None
            if blocked is not None and now < blocked:
                err = f"{blocked_msg or name + ': failing'}; next attempt after {_hm(blocked)}"
            else:
                fetch_end = max(end, start + self._settings.forecast_horizon) if kind is _Kind.FORECAST else end
                provider = self._providers[name]
                fetch = provider.forecast if kind is _Kind.FORECAST else provider.history
                try:
                    series = fetch(zone, start, fetch_end)
                except ProviderError as exc:
                    err = self._failed(name, zone, key, exc, now)
                except Exception as exc:  # a bug must not break planning: the deadline is a promise
                    log.exception("carbon provider %s raised unexpectedly for zone %s", name, zone)
                    wrapped = ProviderError(
                        name,
                        f"internal error {type(exc).__name__} while reading its data",
                        reason=ErrorReason.INTERNAL,
                    )
                    err = self._failed(name, zone, key, wrapped, now)
                else:
                    self._succeeded(name, zone, rc.region, key, _Entry(series, now, start, fetch_end))
                    return [Candidate(DataSource.LIVE, name, series, now), *extra], None
            cached = [Candidate(DataSource.CACHED, name, entry.series, entry.fetched_at)] if entry else []
            return [*cached, *extra], err

    def _fresh_hit(self, entry: _Entry, kind: _Kind, start: datetime, end: datetime, now: datetime) -> bool:
        if now - entry.fetched_at >= self._settings.cache_ttl or start < entry.start:
            return False
        if end <= entry.end:
            return True
        # A forecast reaching further than last time: pointless to ask again while the provider's
        # horizon was shorter than what we asked then. (History always asks: it grows with time.)
        return kind is _Kind.FORECAST and entry.series.end is not None and entry.series.end < entry.end

    def _failed(self, name: str, zone: str, key: _Key, exc: ProviderError, now: datetime) -> str:
        msg = str(exc)
        self._metrics.request(name, reason=exc.reason)
        with self._lock:
            h = self._health[key]
            first = h.failures == 0
            h.failures += 1
            h.last_error = msg
            if exc.reason == ErrorReason.RATE_LIMITED:
                wait = exc.retry_after_s if exc.retry_after_s is not None else DEFAULT_RETRY_AFTER_S
                until = now + timedelta(seconds=wait)
                h.retry_at = until
                prev = self._rate_limited.get(name)
                if prev is None or prev[0] < until:
                    self._rate_limited[name] = (until, msg)
            else:
                s = self._settings
                raw = min(s.max_retry_backoff, s.retry_backoff * (2 ** min(h.failures - 1, 30)))
                h.retry_at = now + raw * (0.5 + 0.5 * self._rand())
        if first:
            log.warning("carbon data for zone %s: %s; using fallbacks", zone, msg)
        return msg

    def _succeeded(self, name: str, zone: str, region: str, key: _Key, entry: _Entry) -> None:
        self._metrics.request(name)
        with self._lock:
            self._cache[key] = entry
            h = self._health[key]
            recovered = h.failures > 0
            h.failures, h.retry_at, h.last_error = 0, None, None
            self._last_live[region] = entry.fetched_at
            rl = self._rate_limited.get(name)
            if rl is not None and rl[0] <= entry.fetched_at:
                del self._rate_limited[name]
        if recovered:
            log.info("carbon provider %s answers again for zone %s", name, zone)

    def _key_lock(self, key: _Key) -> threading.Lock:
        with self._lock:
            return self._key_locks.setdefault(key, threading.Lock())

    # -- the answer ----------------------------------------------------------------------------

    def _result(
        self,
        rc: RegionCarbonConfig,
        series: IntensitySeries,
        spans: tuple[SourceSpan, ...],
        notes: list[str],
        now: datetime,
    ) -> ForecastResult:
        stale_after = self._settings.stale_after
        configured = self._configured(rc)
        source = max((s.source for s in spans), key=_ORDER.index)
        stale = any(s.fetched_at is not None and now - s.fetched_at > stale_after for s in spans)
        fetched = [s.fetched_at for s in spans if s.fetched_at is not None]
        data_fetched_at = min(fetched) if fetched else None
        providers: list[str] = []
        for s in spans:
            if s.provider not in providers:
                providers.append(s.provider)
        error = None
        if source is not DataSource.LIVE or stale:
            parts = [
                *notes,
                *(_describe(s, rc, now, stale_after) for s in spans if _worth_noting(s, rc, now, stale_after)),
            ]
            error = "; ".join(parts) or None
            if error is not None and len(error) > _MAX_ERROR_CHARS:
                error = error[: _MAX_ERROR_CHARS - 3] + "..."
        if data_fetched_at is not None:
            age = (now - data_fetched_at).total_seconds()
        elif configured is DataSource.TRACE and source is DataSource.TRACE:
            # A replayed trace does not age, and there is no live provider to wait for.
            age = 0.0
        else:
            with self._lock:
                last = self._last_live.get(rc.region)
            age = (now - last).total_seconds() if last is not None else math.inf
        self._metrics.answer(rc.region, source, max(age, 0.0))
        return ForecastResult(
            region=rc.region,
            series=series,
            source=source,
            provider="+".join(providers),
            stale=stale,
            error=error,
            spans=spans,
            data_fetched_at=data_fetched_at,
            configured=configured,
        )


def _worth_noting(s: SourceSpan, rc: RegionCarbonConfig, now: datetime, stale_after: timedelta) -> bool:
    if s.source is DataSource.TRACE and s.provider == rc.provider:
        return False  # the region's configured trace: what it plans on by design
    if s.source is not DataSource.LIVE:
        return True
    return s.fetched_at is not None and now - s.fetched_at > stale_after


def _describe(s: SourceSpan, rc: RegionCarbonConfig, now: datetime, stale_after: timedelta) -> str:
    when = f"{_hm(s.start)}..{_hm(s.end)}"
    if s.source is DataSource.STATIC:
        return f"{when} from static {rc.static.grams_per_kwh:g} g/kWh ({rc.static.basis})"
    if s.source is DataSource.TRACE:
        zone = rc.fallback_trace.zone if rc.fallback_trace else "?"
        return f"{when} from trace {s.provider}/{zone}"
    age = now - s.fetched_at if s.fetched_at is not None else timedelta(0)
    label = "cached" if s.source is DataSource.CACHED else "live"
    stale = ", stale" if age > stale_after else ""
    return f"{when} from {label} {s.provider} data fetched {format_duration(age)} ago{stale}"


def _hm(dt: datetime) -> str:
    return utc(dt).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_provider(
    pc: ProviderConfig,
    settings: CarbonSettings,
    *,
    clock: Clock = utc_now,
    session_factory: SessionFactory = requests.Session,
    sleep: Callable[[float], None] = time.sleep,
    rand: Callable[[], float] = random.random,
) -> tuple[CarbonProvider, Callable[[], None] | None]:
    """One provider instance from its configuration (by its registered type), plus a function that
    releases its resources."""
    ctx = BuildContext(
        request_timeout=settings.request_timeout,
        max_retries=settings.max_retries,
        clock=clock,
        session_factory=session_factory,
        sleep=sleep,
        rand=rand,
    )
    try:
        ptype = registry.type_of(pc)
    except LookupError as exc:
        raise CarbonConfigError(f"providers.{pc.name}: {exc}") from None
    return ptype.build(pc, ctx)
