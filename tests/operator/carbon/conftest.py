"""Shared test tools for the carbon package: a real local HTTP server, a settable clock, fixtures.

Providers are exercised over real HTTP against ``FakeProviderServer`` (http.server in a thread);
nothing inside the providers is patched. Delays wait on an event that teardown sets, so a test that
provokes a client timeout never leaves a server thread sleeping.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from green_operator.carbon.transport import HttpClient, RetryPolicy

FIXTURES = Path(__file__).parent / "fixtures"


@dataclass
class _Reply:
    status: int = 200
    body: Any = None
    """bytes/str are sent as they are; anything else as JSON."""
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass(frozen=True)
class Seen:
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


class FakeProviderServer:
    """Serves queued replies per path; the last reply of a queue repeats. Records every request."""

    Reply: ClassVar[type[_Reply]] = _Reply  # tests build server.Reply(...): conftest is not importable

    def __init__(self) -> None:
        self._routes: dict[str, list[_Reply]] = {}
        self._lock = threading.Lock()
        self.seen: list[Seen] = []
        self.release = threading.Event()
        self.down = False
        """When set, every request gets a 503 (a provider that is 'dead' but reachable)."""
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                seen = Seen(parts.path, parse_qs(parts.query), {k.lower(): v for k, v in self.headers.items()})
                with fake._lock:
                    fake.seen.append(seen)
                reply = fake._next(parts.path)
                if reply.delay_s:
                    fake.release.wait(reply.delay_s)
                body = reply.body
                data = (
                    body
                    if isinstance(body, bytes)
                    else (body.encode() if isinstance(body, str) else json.dumps(body).encode())
                )
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client gave up (timeout test)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def route(self, path: str, *replies: _Reply) -> None:
        """Queue replies for a path (exact, or a prefix when ``path`` ends with '*')."""
        with self._lock:
            self._routes[path] = list(replies)

    def json(self, path: str, body: Any, status: int = 200, **headers: str) -> None:
        self.route(path, _Reply(status, body, dict(headers)))

    def count(self, prefix: str = "") -> int:
        with self._lock:
            return sum(1 for s in self.seen if s.path.startswith(prefix))

    def last(self, prefix: str = "") -> Seen:
        with self._lock:
            return [s for s in self.seen if s.path.startswith(prefix)][-1]

    def _next(self, path: str) -> _Reply:
        if self.down:
            return _Reply(503, {"error": "service unavailable"})
        with self._lock:
            queue = self._routes.get(path)
            if queue is None:
                for key, q in self._routes.items():
                    if key.endswith("*") and path.startswith(key[:-1]):
                        queue = q
                        break
            if not queue:
                return _Reply(404, {"error": f"no route for {path}"})
            return queue.pop(0) if len(queue) > 1 else queue[0]

    def close(self) -> None:
        self.release.set()
        self._httpd.shutdown()
        self._httpd.server_close()


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


def local_session() -> requests.Session:
    """A session that ignores proxy settings from the environment (tests talk to 127.0.0.1)."""
    s = requests.Session()
    s.trust_env = False
    return s


@pytest.fixture
def server() -> Iterator[FakeProviderServer]:
    srv = FakeProviderServer()
    yield srv
    srv.close()


@pytest.fixture
def fixture_json() -> Callable[[str], Any]:
    def load(name: str) -> Any:
        return json.loads((FIXTURES / name).read_text())

    return load


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2020, 6, 1, 0, 10, tzinfo=UTC))


@pytest.fixture
def make_client(clock: FakeClock) -> Iterator[Callable[..., HttpClient]]:
    clients: list[HttpClient] = []

    def make(
        base_url: str,
        *,
        name: str = "p",
        timeout_s: float = 5.0,
        retries: int = 0,
        sleeps: list[float] | None = None,
    ) -> HttpClient:
        c = HttpClient(
            name,
            base_url,
            local_session(),
            timeout_s=timeout_s,
            retry=RetryPolicy(max_retries=retries),
            sleep=(sleeps.append if sleeps is not None else lambda _s: None),
            rand=lambda: 0.5,
            clock=clock,
        )
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()


@pytest.fixture
def session_factory() -> Callable[[], requests.Session]:
    return local_session
