"""Leader election against the apiserver: acquire the Lease before kopf starts, renew it while
leading, and report when it is lost so that the process exits (the decisions are in `lease`)."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any

from green_operator.controller.kube import AsyncKube, KubeApiError, q
from green_operator.controller.lease import (
    LeaseRecord,
    LeaseTimings,
    Observation,
    Verdict,
    lease_spec,
    observe,
    released_spec,
    verdict,
)
from green_operator.times import utcnow

log = logging.getLogger(__name__)


def lease_path(namespace: str, name: str = "") -> str:
    base = f"/apis/coordination.k8s.io/v1/namespaces/{q(namespace)}/leases"
    return base + (f"/{q(name)}" if name else "")


class LeaderElector:
    def __init__(
        self, kube: AsyncKube, namespace: str, name: str, identity: str, timings: LeaseTimings | None = None
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.timings = timings or LeaseTimings()
        self._seen: Observation | None = None
        self._version = ""

    async def try_acquire_or_renew(self) -> bool:
        """One round: read the lease, decide, write. True when we hold it afterwards."""
        lease = await self.kube.get_or_none(lease_path(self.namespace, self.name))
        now = time.monotonic()
        if lease is not None:
            self._seen = observe(self._seen, LeaseRecord.of(lease), now)
            self._version = str((lease.get("metadata") or {}).get("resourceVersion") or "")
        v = verdict(self.identity, lease is not None, self._seen if lease is not None else None, now)
        if v is Verdict.WAIT:
            return False
        current = self._seen.record if lease is not None and self._seen else None
        spec = lease_spec(self.identity, self.timings, utcnow(), current, v)
        body: dict[str, Any] = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": spec,
        }
        try:
            if v is Verdict.CREATE:
                written = await self.kube.create(lease_path(self.namespace), body)
            else:
                # A patch that names the version read: a competitor's write in between makes it a 409.
                patch = {"metadata": {"resourceVersion": self._version}, "spec": spec}
                written = await self.kube.merge_patch(lease_path(self.namespace, self.name), patch)
        except KubeApiError as exc:
            if exc.status == 409:
                return False
            raise
        self._seen = observe(None, LeaseRecord.of(written), time.monotonic())
        self._version = str((written.get("metadata") or {}).get("resourceVersion") or "")
        if v is Verdict.TAKE:
            log.info("took over lease %s/%s from %r", self.namespace, self.name, current.holder if current else "")
        return True

    async def acquire(self) -> None:
        """Wait until we hold the lease; the standby replica sits here."""
        log.info("waiting to lead: lease %s/%s as %s", self.namespace, self.name, self.identity)
        while True:
            try:
                if await self.try_acquire_or_renew():
                    log.info("leading: lease %s/%s as %s", self.namespace, self.name, self.identity)
                    return
            except (TimeoutError, KubeApiError, OSError) as exc:
                log.warning("leader election: %s", exc)
            await asyncio.sleep(self.timings.retry_period * (1 + 0.2 * random.random()))

    async def hold(self) -> None:
        """Renew until a renewal has not succeeded for `renew_deadline`; then return (lost)."""
        last_ok = time.monotonic()
        while True:
            await asyncio.sleep(self.timings.retry_period)
            try:
                attempt = self.try_acquire_or_renew()
                remaining = self.timings.renew_deadline - (time.monotonic() - last_ok)
                if await asyncio.wait_for(attempt, timeout=max(remaining, 0.1)):
                    last_ok = time.monotonic()
                    continue
                holder = self._seen.record.holder if self._seen else ""
                if holder and holder != self.identity:
                    log.error("lost lease %s/%s to %s", self.namespace, self.name, holder)
                    return
            except (TimeoutError, KubeApiError, OSError) as exc:
                log.warning("leader election: renewing failed: %s", exc)
            if time.monotonic() - last_ok >= self.timings.renew_deadline:
                deadline = self.timings.renew_deadline
                log.error("lost lease %s/%s: not renewed for %.0fs", self.namespace, self.name, deadline)
                return

    async def release(self) -> None:
        """On graceful shutdown: hand the lease back so a standby takes over at once."""
        if self._seen is None or self._seen.record.holder != self.identity:
            return
        patch = {"metadata": {"resourceVersion": self._version}, "spec": released_spec(self._seen.record, utcnow())}
        try:
            await self.kube.merge_patch(lease_path(self.namespace, self.name), patch)
            log.info("released lease %s/%s", self.namespace, self.name)
        except (TimeoutError, KubeApiError, OSError) as exc:
            log.warning("could not release lease %s/%s: %s", self.namespace, self.name, exc)
