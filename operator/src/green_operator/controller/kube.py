"""The operator's Kubernetes API, async, on kubernetes_asyncio's ApiClient (its auth, TLS, token
refresh and aiohttp pool). Requests and answers are plain dicts sent as raw JSON: the generated
model layer would re-validate our dicts and cost time on every call, and the API server validates
everything anyway. Watches are list-then-watch loops that resume from the last resourceVersion and
re-list when it has expired.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
from kubernetes_asyncio import client, config

from green_operator.api.manifests import GROUP, PLURAL, VERSION

JsonDict = dict[str, Any]
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
JSON = "application/json"
log = logging.getLogger(__name__)


class KubeApiError(RuntimeError):
    def __init__(self, status: int, reason: str, method: str, path: str) -> None:
        super().__init__(f"{method} {path}: HTTP {status}: {reason}")
        self.status = status
        self.reason = reason


PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NETRC")


class _JsonApiClient(client.ApiClient):
    """Every body, header and query here is plain JSON data already (dicts, lists, strings, numbers):
    kubernetes_asyncio walks each one to convert its model objects, a few percent of the operator's
    CPU in a burst, for nothing."""

    def sanitize_for_serialization(self, obj: Any) -> Any:
        return obj


async def load_client(kubeconfig: str | None = None, pool_size: int = 64) -> client.ApiClient:
    """Credentials as kubectl finds them: an explicit kubeconfig, else KUBECONFIG (or
    ~/.kube/config) when there is one, else the pod's service account."""
    cfg = client.Configuration()
    path = Path(kubeconfig or os.environ.get("KUBECONFIG") or Path.home() / ".kube" / "config")
    if kubeconfig or path.exists():  # noqa: ASYNC240  (once, at start-up)
        await config.load_kube_config(config_file=str(path), client_configuration=cfg)
    else:
        config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
    cfg.connection_pool_maxsize = pool_size
    api = _JsonApiClient(cfg)
    if not any(os.environ.get(v) for v in PROXY_VARS):
        # kubernetes_asyncio's session trusts the environment, so aiohttp looks for proxies and
        # reads ~/.netrc on every request: a twentieth of the operator's CPU in a burst. Without
        # proxy variables there is nothing to find.
        api.rest_client.pool_manager._trust_env = False
    return api


def q(name: str) -> str:
    return quote(name, safe="")


def job_path(namespace: str, name: str = "") -> str:
    return f"/apis/batch/v1/namespaces/{q(namespace)}/jobs" + (f"/{q(name)}" if name else "")


def service_path(namespace: str, name: str = "") -> str:
    return f"/api/v1/namespaces/{q(namespace)}/services" + (f"/{q(name)}" if name else "")


def pod_path(namespace: str, name: str) -> str:
    return f"/api/v1/namespaces/{q(namespace)}/pods/{q(name)}"


def gtj_path(namespace: str | None = None, name: str = "") -> str:
    base = f"/apis/{GROUP}/{VERSION}" + (f"/namespaces/{q(namespace)}" if namespace else "") + f"/{PLURAL}"
    return base + (f"/{q(name)}" if name else "")


class AsyncKube:
    """``in_flight``: at most this many requests (not watches) at once; the rest wait their turn,
    first come first served. Each request in flight holds a TLS connection with a 256 KiB read
    buffer, so a burst's thousand writes would otherwise hold the pool's whole size open."""

    def __init__(self, api: client.ApiClient, timeout: float = 30.0, in_flight: int | None = None) -> None:
        self.api = api
        self.timeout = timeout
        self._slots = asyncio.Semaphore(in_flight) if in_flight else None

    async def close(self) -> None:
        await self.api.close()

    async def _response(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = JSON,
        query: list[tuple[str, str]] | None = None,
        request_timeout: float | aiohttp.ClientTimeout | None = None,
    ) -> aiohttp.ClientResponse:
        resp: aiohttp.ClientResponse = await self.api.call_api(
            path,
            method,
            query_params=query or [],
            header_params={"Accept": JSON, "Content-Type": content_type},
            body=body,
            auth_settings=["BearerToken"],
            _preload_content=False,
            _request_timeout=request_timeout if request_timeout is not None else self.timeout,
        )
        if not 200 <= resp.status <= 299:
            data = await resp.read()
            resp.release()
            try:
                reason = json.loads(data).get("message", "") if data else ""
            except ValueError:
                reason = data[:200].decode(errors="replace") if data else ""
            raise KubeApiError(resp.status, reason or str(resp.reason), method, path)
        return resp

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = JSON,
        query: list[tuple[str, str]] | None = None,
    ) -> JsonDict:
        async with self._slots or contextlib.nullcontext():
            resp = await self._response(method, path, body, content_type, query)
            data = await resp.read()
            resp.release()
        parsed: JsonDict = json.loads(data) if data else {}
        return parsed

    async def get_or_none(self, path: str) -> JsonDict | None:
        try:
            return await self.call("GET", path)
        except KubeApiError as exc:
            if exc.status == 404:
                return None
            raise

    # -- objects ---------------------------------------------------------------------------------

    async def create(self, path: str, manifest: Mapping[str, Any]) -> JsonDict:
        return await self.call("POST", path, dict(manifest))

    async def merge_patch(self, path: str, patch: Mapping[str, Any]) -> JsonDict:
        return await self.call("PATCH", path, dict(patch), MERGE_PATCH)

    async def strategic_patch(self, path: str, patch: Mapping[str, Any]) -> JsonDict:
        return await self.call("PATCH", path, dict(patch), STRATEGIC_MERGE_PATCH)

    async def delete(self, path: str, propagation: str = "Background") -> None:
        try:
            await self.call("DELETE", path, {"propagationPolicy": propagation})
        except KubeApiError as exc:
            if exc.status != 404:
                raise

    async def list_pods(self, namespace: str, selector: str) -> list[JsonDict]:
        page = await self.call("GET", f"/api/v1/namespaces/{q(namespace)}/pods", query=[("labelSelector", selector)])
        items: list[JsonDict] = page.get("items") or []
        return items

    # -- watches ---------------------------------------------------------------------------------

    async def list_all(self, path: str, query: list[tuple[str, str]]) -> tuple[list[JsonDict], str]:
        """Every item (following pagination) and the list's resourceVersion."""
        items: list[JsonDict] = []
        token = ""
        while True:
            page = await self.call(
                "GET", path, query=[*query, ("limit", "500"), *([("continue", token)] if token else [])]
            )
            items.extend(page.get("items") or [])
            meta = page.get("metadata") or {}
            token = str(meta.get("continue") or "")
            if not token:
                return items, str(meta.get("resourceVersion") or "")

    async def _watch_stream(
        self, path: str, query: list[tuple[str, str]], resource_version: str, server_timeout: int
    ) -> AsyncIterator[JsonDict]:
        params = [
            *query,
            ("watch", "true"),
            ("resourceVersion", resource_version),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", str(server_timeout)),
        ]
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=server_timeout + 30)
        resp = await self._response("GET", path, query=params, request_timeout=timeout)
        try:
            while True:
                line = await resp.content.readline()
                if not line:
                    return
                if line.strip():
                    yield json.loads(line)
        finally:
            resp.release()

    async def informer(
        self,
        path: str,
        on_event: Callable[[str, JsonDict], None],
        on_relist: Callable[[list[JsonDict]], None],
        *,
        query: list[tuple[str, str]] | None = None,
        ready: asyncio.Event | None = None,
        server_timeout: int = 300,
    ) -> None:
        """List, then watch from the list's resourceVersion, forever. An expired version (410, or
        a 504 'too large resource version' from a freshly restarted server) re-lists; other errors
        back off and resume."""
        query = query or []
        rv = ""
        backoff = 1.0
        while True:
            try:
                if not rv:
                    items, rv = await self.list_all(path, query)
                    on_relist(items)
                    if ready is not None:
                        ready.set()
                async for event in self._watch_stream(path, query, rv, server_timeout):
                    kind = str(event.get("type"))
                    obj = event.get("object") or {}
                    if kind == "ERROR":
                        code = int(obj.get("code") or 0)
                        if code in (410, 504):
                            rv = ""  # expired: re-list
                            break
                        raise KubeApiError(code, str(obj.get("message")), "WATCH", path)
                    new_rv = (obj.get("metadata") or {}).get("resourceVersion")
                    if new_rv:
                        rv = str(new_rv)
                    if kind != "BOOKMARK":
                        on_event(kind, obj)
                backoff = 1.0
            except asyncio.CancelledError:
                raise
            except KubeApiError as exc:
                if exc.status in (410, 504):
                    rv = ""
                    continue
                log.warning("watch %s failed: %s; resuming in %.0fs", path, exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                log.warning("watch %s interrupted: %s; resuming in %.0fs", path, exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)


async def run_until_cancelled(*coros: Awaitable[None]) -> None:
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        await asyncio.gather(*tasks)
    finally:
        for t in tasks:
            t.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.gather(*tasks, return_exceptions=True)
