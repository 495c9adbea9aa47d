"""HTTP for providers: timeouts, a bounded retry with jittered backoff, 429 handling, safe errors.

Each provider owns one ``HttpClient`` around a ``requests.Session`` it is given, which is the seam
tests use: they point the base URL at a real local HTTP server. Calls are serialised per client
because a ``requests.Session`` is not documented as thread-safe.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import requests

from .provider import ErrorReason, ProviderError

USER_AGENT = "green-training-operator (+https://greentraining.io)"
RETRYABLE_STATUS = frozenset({500, 502, 503, 504})
DEFAULT_RETRY_AFTER_S = 60.0
MAX_RETRY_AFTER_S = 3600.0
# Credentials a server might echo back: "Bearer <token>", "Authorization: Basic <b64>", "auth-token: <t>".
_BEARER = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]+")
_AUTH_HEADER = re.compile(r"(?i)\b(authorization|auth-token)([\"']?\s*[:=]\s*[\"']?)(basic\s+)?[^\s\"',;}]+")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class RetryPolicy:
    """Immediate retries of one request after a connection failure or a 5xx.

    "Full jitter" backoff: attempt n waits uniform(0, min(max_delay, base * 2**n)). Timeouts and
    429s are not retried here: a timeout already spent the whole budget, and a 429 says when to
    come back, which the service remembers instead of sleeping.
    """

    max_retries: int = 2
    base_delay_s: float = 0.5
    max_delay_s: float = 5.0

    def delay(self, attempt: int, rand: float) -> float:
        return rand * min(self.max_delay_s, self.base_delay_s * (2.0**attempt))


def parse_retry_after(value: str | None, now: datetime) -> float:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), capped at an hour."""
    if not value:
        return DEFAULT_RETRY_AFTER_S
    v = value.strip()
    try:
        secs = float(v)
    except ValueError:
        try:
            when = parsedate_to_datetime(v)
        except (TypeError, ValueError):
            return DEFAULT_RETRY_AFTER_S
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        secs = (when - now).total_seconds()
    return min(max(secs, 0.0), MAX_RETRY_AFTER_S)


class HttpClient:
    """GETs JSON from one provider's base URL; every failure becomes a ``ProviderError``."""

    def __init__(
        self,
        provider: str,
        base_url: str,
        session: requests.Session,
        *,
        timeout_s: float,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rand: Callable[[], float] = random.random,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.provider = provider
        self.base_url = base_url.rstrip("/")
        self.session = session
        self.timeout_s = timeout_s
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._rand = rand
        self._clock = clock
        self._lock = threading.Lock()
        self._secrets: set[str] = set()

    # -- secrets -------------------------------------------------------------------------------

    def remember_secret(self, value: str) -> None:
        """Register a secret so that it is masked in any error text built from server replies."""
        if value:
            with self._lock:
                self._secrets.add(value)

    def sanitise(self, text: str, limit: int = 300) -> str:
        out = _SPACES.sub(" ", text).strip()
        for s in sorted(self._secrets, key=len, reverse=True):
            out = out.replace(s, "***")
        out = _BEARER.sub(lambda m: f"{m.group(1)} ***", out)
        out = _AUTH_HEADER.sub(lambda m: f"{m.group(1)}{m.group(2)}{m.group(3) or ''}***", out)
        return out if len(out) <= limit else out[: limit - 3] + "..."

    def error(self, message: str, reason: str, retry_after_s: float | None = None) -> ProviderError:
        return ProviderError(self.provider, self.sanitise(message, 500), reason=reason, retry_after_s=retry_after_s)

    # -- requests ------------------------------------------------------------------------------

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def request(
        self,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
    ) -> requests.Response:
        """GET with retries for connection failures and 5xx; returns any other response as is."""
        hdrs = {"Accept": "application/json", "User-Agent": USER_AGENT, **(headers or {})}
        attempt = 0
        while True:
            try:
                with self._lock:
                    resp = self.session.get(
                        self.url(path), params=params, headers=hdrs, auth=auth, timeout=self.timeout_s
                    )
            except requests.Timeout:
                raise self.error(f"GET {path} timed out after {self.timeout_s:g}s", ErrorReason.TIMEOUT) from None
            except requests.RequestException as exc:
                if attempt < self.retry.max_retries:
                    self._sleep(self.retry.delay(attempt, self._rand()))
                    attempt += 1
                    continue
                raise self.error(
                    f"GET {path} failed: {type(exc).__name__} (is {self.base_url} reachable?)",
                    ErrorReason.CONNECTION,
                ) from None
            if resp.status_code in RETRYABLE_STATUS and attempt < self.retry.max_retries:
                resp.close()
                self._sleep(self.retry.delay(attempt, self._rand()))
                attempt += 1
                continue
            return resp

    def check(self, resp: requests.Response, path: str) -> None:
        """Raise the right ``ProviderError`` for a non-2xx response."""
        status = resp.status_code
        if 200 <= status < 300:
            return
        detail = _error_detail(resp)
        msg = f"HTTP {status} from GET {path}" + (f": {detail}" if detail else "")
        if status == 429:
            wait = parse_retry_after(resp.headers.get("Retry-After"), self._clock())
            raise self.error(msg + f" (retry after {wait:g}s)", ErrorReason.RATE_LIMITED, wait)
        if status in (401, 403):
            raise self.error(msg + " (check the provider credentials)", ErrorReason.AUTH)
        if status >= 500:
            raise self.error(msg, ErrorReason.SERVER_ERROR)
        raise self.error(msg, ErrorReason.CLIENT_ERROR)

    def decode(self, resp: requests.Response, path: str) -> Any:
        try:
            return json.loads(resp.content)
        except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: absurdly deep nesting
            excerpt = resp.content[:80].decode("utf-8", "replace")
            raise self.error(
                f"GET {path} returned malformed JSON (starts {excerpt!r})", ErrorReason.MALFORMED
            ) from None

    def get_json(
        self,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
    ) -> Any:
        resp = self.request(path, params=params, headers=headers, auth=auth)
        self.check(resp, path)
        return self.decode(resp, path)

    def close(self) -> None:
        self.session.close()


def _error_detail(resp: requests.Response) -> str:
    """The provider's own error message if its body has one (JSON 'error'/'message'), else a snippet."""
    text = resp.content[:2000].decode("utf-8", "replace")
    try:
        body = json.loads(text)
    except (ValueError, RecursionError):
        return text[:200]
    if isinstance(body, dict):
        for key in ("error", "message", "detail", "title"):
            val = body.get(key)
            if isinstance(val, str) and val:
                return val
            if isinstance(val, dict) and isinstance(val.get("message"), str):
                return str(val["message"])
    return text[:200]
