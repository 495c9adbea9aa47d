"""The operator's API client against the real apiserver: requests in flight are bounded, and a
watch never takes one of their slots."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from green_operator.controller.kube import AsyncKube, load_client
from harness.cluster import kubeconfig

pytestmark = pytest.mark.integration


class CountingKube(AsyncKube):
    """Counts the requests and watches open at once, as the apiserver sees them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.open = self.most_open = 0

    async def _response(self, *args: Any, **kwargs: Any) -> Any:
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        try:
            return await super()._response(*args, **kwargs)
        finally:
            self.open -= 1


def test_requests_in_flight_are_bounded_and_all_answered(namespace: str) -> None:
    async def run() -> list[Any]:
        kube = CountingKube(await load_client(str(kubeconfig())), in_flight=4)
        try:
            answers = await asyncio.gather(*(kube.call("GET", f"/api/v1/namespaces/{namespace}") for _ in range(40)))
        finally:
            await kube.close()
        assert kube.most_open == 4
        return answers

    answers = asyncio.run(run())
    assert [a["metadata"]["name"] for a in answers] == [namespace] * 40


def test_a_watch_holds_no_request_slot(namespace: str) -> None:
    async def run() -> dict[str, Any]:
        kube = AsyncKube(await load_client(str(kubeconfig())), in_flight=1)
        path = f"/api/v1/namespaces/{namespace}/configmaps"
        seen = asyncio.Event()

        def on_event(kind: str, obj: dict[str, Any]) -> None:
            if obj["metadata"]["name"] == "ping":
                seen.set()

        listed = asyncio.Event()
        watch = asyncio.ensure_future(kube.informer(path, on_event, lambda items: None, ready=listed))
        try:
            # Created after the list, so it arrives on the watch: when it does, the stream is open.
            await asyncio.wait_for(listed.wait(), timeout=30)
            await kube.create(path, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ping"}})
            await asyncio.wait_for(seen.wait(), timeout=30)
            # The one request slot is free for this call while the watch streams.
            return await asyncio.wait_for(kube.call("GET", f"/api/v1/namespaces/{namespace}"), timeout=30)
        finally:
            watch.cancel()
            await asyncio.gather(watch, return_exceptions=True)
            await kube.close()

    assert asyncio.run(run())["metadata"]["name"] == namespace
