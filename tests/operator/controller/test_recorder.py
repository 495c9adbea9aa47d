"""The Event recorder's hold: Events recorded during a burst wait, then go out. The API calls are
counted by a stand-in client (the real apiserver's side is in
test_recorder_integration.py)."""

from __future__ import annotations

import asyncio
from typing import Any

from green_operator.controller.recorder import EventRecorder

BODY = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": "ns", "name": "cm", "uid": "u1"}}


class CountingKube:
    def __init__(self) -> None:
        self.created: list[dict[str, Any]] = []

    async def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        self.created.append(body)
        return {"metadata": {"name": f"e{len(self.created)}"}}


async def _yield(times: int = 20) -> None:
    for _ in range(times):
        await asyncio.sleep(0)


def test_held_events_go_out_once_let_go() -> None:
    async def run() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        kube = CountingKube()
        rec = EventRecorder(kube)  # type: ignore[arg-type]
        rec.hold(True)
        rec.post(BODY, "Deferred", "waiting", False)
        rec.post({**BODY, "metadata": {**BODY["metadata"], "name": "cm2", "uid": "u2"}}, "Deferred", "w", False)
        await _yield()
        while_held = list(kube.created)
        rec.hold(False)
        await rec.close()
        return while_held, kube.created

    while_held, created = asyncio.run(run())
    assert while_held == []
    assert sorted(e["involvedObject"]["name"] for e in created) == ["cm", "cm2"]


def test_closing_lets_held_events_go() -> None:
    async def run() -> int:
        kube = CountingKube()
        rec = EventRecorder(kube)  # type: ignore[arg-type]
        rec.hold(True)
        rec.post(BODY, "Deferred", "waiting", False)
        await asyncio.wait_for(rec.close(), timeout=10)
        return len(kube.created)

    assert asyncio.run(run()) == 1
