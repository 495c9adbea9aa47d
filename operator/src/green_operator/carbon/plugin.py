"""What a carbon provider type plugs into: its configuration parser, its builder, shared field readers.

A provider module (``electricitymaps.py`` ...) owns its configuration dataclass, a ``parse`` that
reads one ``providers.<name>`` mapping (every error naming the field path and the fix), and a
``build`` that makes the provider from it; it exposes them as ``PROVIDER = ProviderType(...)`` and
is listed once in ``registry.py``. Nothing here imports the HTTP stack: ``BuildContext.http_client``
imports it when a provider is built.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from green_operator.times import parse_duration

from .credentials import SecretRef
from .provider import CarbonProvider
from .series import SignalKind

if TYPE_CHECKING:
    import requests

    from .transport import HttpClient

LBS_PER_MWH_TO_G_PER_KWH = 0.453592
Units = Literal["gCO2eqPerKWh", "lbsPerMWh"]
UNIT_SCALE: Mapping[str, float] = {"gCO2eqPerKWh": 1.0, "lbsPerMWh": LBS_PER_MWH_TO_G_PER_KWH}


class CarbonConfigError(ValueError):
    """Invalid carbon configuration; the message starts with the field path (``regions[2].carbon.zone``)."""


class ProviderConfig(Protocol):
    """A parsed ``providers.<name>`` entry: frozen, secrets by reference only (safe to log)."""

    @property
    def name(self) -> str: ...


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _default_session() -> requests.Session:
    import requests

    return requests.Session()


@dataclass(frozen=True)
class BuildContext:
    """What a builder may use: the shared carbon settings, the clock and the HTTP plumbing."""

    request_timeout: timedelta = timedelta(seconds=10)
    max_retries: int = 2
    clock: Callable[[], datetime] = _utc_now
    session_factory: Callable[[], requests.Session] = _default_session
    sleep: Callable[[float], None] = time.sleep
    rand: Callable[[], float] = random.random

    def http_client(self, name: str, base_url: str, timeout: timedelta | None) -> HttpClient:
        from .transport import HttpClient, RetryPolicy

        t = timeout if timeout is not None else self.request_timeout
        return HttpClient(
            name,
            base_url,
            self.session_factory(),
            timeout_s=t.total_seconds(),
            retry=RetryPolicy(max_retries=self.max_retries),
            sleep=self.sleep,
            rand=self.rand,
            clock=self.clock,
        )


Built = tuple[CarbonProvider, Callable[[], None] | None]
"""A provider and what releases its resources (None: nothing to release)."""


@dataclass(frozen=True)
class ProviderType:
    """One ``type:`` of provider.

    ``parse(name, mapping, path, base_dir)`` validates ``providers.<name>`` (``path`` is that field
    path; relative files resolve against ``base_dir``). ``build(config, ctx)`` makes the provider.
    ``static_zone(config, zone, path)`` checks a region's ``zone`` for this provider and returns the
    zone to look up a default static factor for (None: none known); by default the zone itself.
    """

    type: str
    parse: Callable[[str, Mapping[str, Any], str, Path], Any]
    build: Callable[[Any, BuildContext], Built]
    static_zone: Callable[[Any, str, str], str | None] = lambda cfg, zone, path: zone
    zone_example: str = ""
    """Shown when a region names this provider but no zone, e.g. "'FI' (Electricity Maps)"."""


# -- field readers shared by the parsers -----------------------------------------------------------


def mapping(raw: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise CarbonConfigError(f"{path}: expected a mapping (YAML object), got {kind(raw)}")
    return raw


def known(m: Mapping[str, Any], path: str, allowed: Sequence[str]) -> None:
    for key in m:
        if key not in allowed:
            raise CarbonConfigError(f"{path}.{key}: unknown field; known fields: {', '.join(allowed)}")


def duration(raw: Any, path: str) -> timedelta:
    if not isinstance(raw, str):
        raise CarbonConfigError(f"{path}: expected a duration string like '30s', '10m' or '1h30m', got {raw!r}")
    try:
        return parse_duration(raw)
    except ValueError as exc:
        raise CarbonConfigError(f"{path}: {exc}") from None


def timeout(m: Mapping[str, Any], p: str) -> timedelta | None:
    if "timeoutSeconds" not in m:
        return None
    v = m["timeoutSeconds"]
    if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v <= 300:
        raise CarbonConfigError(f"{p}.timeoutSeconds: expected seconds in (0, 300], e.g. 10, got {v!r}")
    return timedelta(seconds=float(v))


def url(raw: Any, path: str) -> str:
    if not isinstance(raw, str) or not raw.startswith(("http://", "https://")):
        raise CarbonConfigError(f"{path}: expected an http(s) URL, got {raw!r}")
    return raw


def secret(m: Mapping[str, Any], stem: str, p: str, base: Path, *, required: bool) -> SecretRef | None:
    env, file = m.get(f"{stem}Env"), m.get(f"{stem}File")
    if env is not None and file is not None:
        raise CarbonConfigError(f"{p}.{stem}Env: set either {stem}Env or {stem}File, not both")
    if env is not None:
        if not isinstance(env, str) or not env.strip():
            raise CarbonConfigError(f"{p}.{stem}Env: expected an environment variable name, got {env!r}")
        return SecretRef(env=env.strip())
    if file is not None:
        if not isinstance(file, str) or not file.strip():
            raise CarbonConfigError(f"{p}.{stem}File: expected a file path, got {file!r}")
        fp = Path(file)
        return SecretRef(file=fp if fp.is_absolute() else base / fp)
    if required:
        raise CarbonConfigError(
            f"{p}.{stem}Env: required; name the environment variable (or use {stem}File for a mounted "
            "Secret file) that holds it"
        )
    return None


def units(m: Mapping[str, Any], p: str) -> Units:
    u = m.get("units", "gCO2eqPerKWh")
    if u == "gCO2eqPerKWh":
        return "gCO2eqPerKWh"
    if u == "lbsPerMWh":
        return "lbsPerMWh"
    raise CarbonConfigError(f"{p}.units: must be 'gCO2eqPerKWh' or 'lbsPerMWh', got {u!r}")


def signal(m: Mapping[str, Any], p: str, u: Units) -> SignalKind:
    """Explicit ``signal``; by default lbs/MWh means a WattTime MOER source, i.e. marginal."""
    raw = m.get("signal")
    if raw is None:
        return SignalKind.MARGINAL if u == "lbsPerMWh" else SignalKind.AVERAGE
    try:
        return SignalKind(raw)
    except ValueError:
        raise CarbonConfigError(f"{p}.signal: must be 'average' or 'marginal', got {raw!r}") from None


def kind(v: Any) -> str:
    return "null" if v is None else type(v).__name__
