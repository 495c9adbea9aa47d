"""A watch of this node's pods through the Kubernetes API, on the standard library alone.

The agent needs one list+watch of pods with `fieldSelector=spec.nodeName=<node>`; a full Kubernetes
client would add tens of MB to the trainer image for that. Authentication is a bearer token (the
ServiceAccount's, re-read on every request since kubelet rotates it) and the cluster CA.
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from http.client import HTTPResponse
from pathlib import Path
from typing import Any

from green_trainer.node_agent.holdings import PodKey
from green_trainer.node_agent.pods import PodInfo, pod_info

log = logging.getLogger(__name__)

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
WATCH_SECONDS = 300


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


@dataclass(frozen=True)
class ApiAccess:
    server: str
    token_file: Path
    ca_file: Path

    @classmethod
    def in_cluster(cls, environ: Mapping[str, str]) -> ApiAccess:
        host, port = environ.get("KUBERNETES_SERVICE_HOST"), environ.get("KUBERNETES_SERVICE_PORT")
        if not host or not port:
            raise ValueError(
                "not in a pod (KUBERNETES_SERVICE_HOST/PORT unset): pass --api-server, --token-file and --ca-file"
            )
        host = f"[{host}]" if ":" in host else host
        return cls(f"https://{host}:{port}", SERVICE_ACCOUNT / "token", SERVICE_ACCOUNT / "ca.crt")


class ApiClient:
    def __init__(self, access: ApiAccess) -> None:
        self._access = access
        self._ssl = ssl.create_default_context(cafile=str(access.ca_file))

    def _open(self, path: str, query: Mapping[str, str], timeout: float) -> HTTPResponse:
        url = f"{self._access.server.rstrip('/')}{path}?{urllib.parse.urlencode(query)}"
        token = self._access.token_file.read_text().strip()
        request = urllib.request.Request(
            url, headers={"Authorization": f"Bearer {token}", "Accept": "application/json"}
        )
        try:
            response: HTTPResponse = urllib.request.urlopen(request, timeout=timeout, context=self._ssl)
        except urllib.error.HTTPError as err:
            raise ApiError(err.code, err.read().decode(errors="replace")[:500]) from err
        return response

    def list_pods(self, node: str) -> tuple[list[Mapping[str, Any]], str]:
        query = {"fieldSelector": f"spec.nodeName={node}"}
        with self._open("/api/v1/pods", query, timeout=30) as response:
            doc = json.load(response)
        return list(doc.get("items") or []), str(doc["metadata"]["resourceVersion"])

    def watch_pods(self, node: str, resource_version: str) -> Iterator[Mapping[str, Any]]:
        query = {
            "fieldSelector": f"spec.nodeName={node}",
            "watch": "1",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(WATCH_SECONDS),
        }
        with self._open("/api/v1/pods", query, timeout=WATCH_SECONDS + 30) as response:
            for line in response:
                if line.strip():
                    yield json.loads(line)


class PodWatcher:
    """The node's pods by namespace/name, kept current by list+watch on a daemon thread."""

    def __init__(self, client: ApiClient, node: str) -> None:
        self._client = client
        self._node = node
        self._lock = threading.Lock()
        self._pods: dict[PodKey, PodInfo] = {}
        self._synced = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pod-watch", daemon=True)

    def start(self) -> PodWatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def snapshot(self) -> dict[PodKey, PodInfo] | None:
        """None until the first list has arrived: the agent decides nothing before that."""
        with self._lock:
            return dict(self._pods) if self._synced else None

    def _run(self) -> None:
        backoff = 1.0
        while not self._stop.is_set():
            try:
                items, version = self._client.list_pods(self._node)
                with self._lock:
                    self._pods = {info.key: info for info in map(pod_info, items)}
                    self._synced = True
                log.info("pod watch: %d pod(s) on node %s", len(items), self._node)
                backoff = 1.0
                self._watch(version)
            except Exception as err:  # any failure: list again after a pause; the last view stays
                log.warning("pod watch of node %s failed (%s); listing again in %.0f s", self._node, err, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)

    def _watch(self, version: str) -> None:
        while not self._stop.is_set():
            for event in self._client.watch_pods(self._node, version):
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    raise ApiError(int(obj.get("code", 0)), str(obj.get("message", "")))  # 410 Gone: list again
                version = str((obj.get("metadata") or {}).get("resourceVersion", version))
                if kind == "BOOKMARK":
                    continue
                info = pod_info(obj)
                with self._lock:
                    if kind == "DELETED":
                        self._pods.pop(info.key, None)
                    else:
                        self._pods[info.key] = info
