"""The Kubernetes API calls the operator makes, as plain-dict functions on the official client.

Synchronous on purpose (the kubernetes client is); async code calls them through
`asyncio.to_thread`, so kopf's event loop never blocks. Requests go through the client's
`ApiClient` (its auth, TLS and connection pool) as raw JSON: the generated model layer would
re-validate our dicts against its pydantic models (it rejects `nvidia.com/gpu: 1` as "not a string")
and costs time on every call, while the API server validates everything anyway.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from kubernetes import client, config

from green_operator.api.manifests import GROUP, PLURAL, VERSION

JsonDict = dict[str, Any]
MERGE_PATCH = "application/merge-patch+json"
JSON = "application/json"


class KubeApiError(RuntimeError):
    def __init__(self, status: int, reason: str, method: str, path: str) -> None:
        super().__init__(f"{method} {path}: HTTP {status}: {reason}")
        self.status = status
        self.reason = reason


class OwnershipConflictError(RuntimeError):
    """A Job with the deterministic name exists but belongs to something else."""


def load_client_config(kubeconfig: str | None = None, pool_size: int = 32) -> client.ApiClient:
    """In-cluster credentials when running in a pod, else the kubeconfig (KUBECONFIG or ~/.kube/config)."""
    cfg = client.Configuration()
    try:
        if kubeconfig:
            raise config.ConfigException("explicit kubeconfig")
        config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)  # type: ignore[no-untyped-call]
    # One connection per worker thread, so a burst of creations does not queue on a tiny pool.
    cfg.connection_pool_maxsize = pool_size
    return client.ApiClient(cfg)


def _q(name: str) -> str:
    return quote(name, safe="")


class Kube:
    def __init__(self, api: client.ApiClient, timeout: float = 30.0) -> None:
        self.api = api
        self.timeout = timeout

    def _call(self, method: str, path: str, body: Any = None, content_type: str = JSON, query: str = "") -> JsonDict:
        headers = {"Accept": JSON, "Content-Type": content_type}
        _, url, headers, _, _ = self.api.param_serialize(
            method=method, resource_path=path, header_params=headers, auth_settings=["BearerToken"]
        )
        if query:
            url = f"{url}?{query}"
        resp = self.api.call_api(method, url, header_params=headers, body=body, _request_timeout=self.timeout)
        data: bytes = resp.read()  # type: ignore[no-untyped-call]
        if not 200 <= resp.status <= 299:
            try:
                reason = json.loads(data).get("message", "") if data else ""
            except ValueError:
                reason = data[:200].decode(errors="replace") if data else ""
            raise KubeApiError(resp.status, reason or str(resp.reason), method, path)
        parsed: JsonDict = json.loads(data) if data else {}
        return parsed

    def _get_or_none(self, path: str) -> JsonDict | None:
        try:
            return self._call("GET", path)
        except KubeApiError as exc:
            if exc.status == 404:
                return None
            raise

    # -- Jobs ------------------------------------------------------------------------------------

    def create_job(self, manifest: Mapping[str, Any], owner_uid: str) -> tuple[JsonDict, bool]:
        """Create the Job; if it already exists and is ours, return it (idempotent: 409 means done)."""
        ns, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
        try:
            return self._call("POST", f"/apis/batch/v1/namespaces/{_q(ns)}/jobs", dict(manifest)), True
        except KubeApiError as exc:
            if exc.status != 409:
                raise
        existing = self.read_job(ns, name)
        if existing is None:  # deleted between the two calls: let the caller retry
            raise RuntimeError(f"Job {ns}/{name} vanished while being adopted")
        owners = existing["metadata"].get("ownerReferences") or []
        if not any(o.get("uid") == owner_uid for o in owners):
            raise OwnershipConflictError(
                f"a Job named {name} already exists in {ns} and is not owned by this GreenTrainingJob; "
                "rename or delete one of them"
            )
        return existing, False

    def read_job(self, namespace: str, name: str) -> JsonDict | None:
        return self._get_or_none(f"/apis/batch/v1/namespaces/{_q(namespace)}/jobs/{_q(name)}")

    def patch_job(self, namespace: str, name: str, patch: Mapping[str, Any]) -> JsonDict:
        return self._call(
            "PATCH", f"/apis/batch/v1/namespaces/{_q(namespace)}/jobs/{_q(name)}", dict(patch), MERGE_PATCH
        )

    def list_job_pods(self, namespace: str, job_name: str) -> list[JsonDict]:
        items: list[JsonDict] = self._call(
            "GET", f"/api/v1/namespaces/{_q(namespace)}/pods", query=f"labelSelector=job-name%3D{_q(job_name)}"
        ).get("items", [])
        return items

    # -- GreenTrainingJobs -------------------------------------------------------------------------

    def _gtj_path(self, namespace: str, name: str) -> str:
        return f"/apis/{GROUP}/{VERSION}/namespaces/{_q(namespace)}/{PLURAL}/{_q(name)}"

    def read_gtj(self, namespace: str, name: str) -> JsonDict | None:
        return self._get_or_none(self._gtj_path(namespace, name))

    def patch_gtj_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> JsonDict | None:
        """Merge-patch the status subresource; None if the resource is gone."""
        try:
            return self._call(
                "PATCH", self._gtj_path(namespace, name) + "/status", {"status": dict(status)}, MERGE_PATCH
            )
        except KubeApiError as exc:
            if exc.status == 404:
                return None
            raise

    def list_gtjs(self, namespace: str | None) -> list[JsonDict]:
        """Every GreenTrainingJob in ``namespace`` (None: all namespaces), following list pagination."""
        return self._list_all(f"/apis/{GROUP}/{VERSION}", PLURAL, namespace)

    def list_kueue_workloads(self, namespace: str | None) -> list[JsonDict]:
        """Every Kueue Workload (v1beta2) in ``namespace``; none where Kueue is not installed."""
        try:
            return self._list_all("/apis/kueue.x-k8s.io/v1beta2", "workloads", namespace)
        except KubeApiError as exc:
            if exc.status == 404:
                return []
            raise

    def _list_all(self, group_version: str, plural: str, namespace: str | None) -> list[JsonDict]:
        base = group_version + (f"/namespaces/{_q(namespace)}" if namespace else "") + f"/{plural}"
        items: list[JsonDict] = []
        token = ""
        while True:
            query = "limit=500" + (f"&continue={quote(token, safe='')}" if token else "")
            page = self._call("GET", base, query=query)
            items.extend(page.get("items") or [])
            token = str((page.get("metadata") or {}).get("continue") or "")
            if not token:
                return items
