"""Kubernetes Events as client-go's recorder writes them, and its deduplication: the same event
(object, reason, message, type) again within the window bumps `count` and `lastTimestamp` on the
Event already posted instead of creating another. Pure: it says what to write; the recorder writes.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from green_operator.times import rfc3339

COMPONENT = "green-training-operator"
MAX_MESSAGE = 1024
"""client-go's limit on an Event's message."""
CACHE_ENTRIES = 4096
"""client-go's LRU size for the events it deduplicates."""
WINDOW = timedelta(minutes=10)
"""After this, the same event is posted as a new Event: the old one may have expired (the
apiserver's default event TTL is an hour, but a namespace's events can be cleaned sooner)."""


@dataclass(frozen=True)
class ObjectRef:
    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str

    @classmethod
    def of(cls, body: Any) -> ObjectRef:
        meta = body.get("metadata") or {}
        return cls(
            str(body.get("apiVersion", "")),
            str(body.get("kind", "")),
            str(meta.get("namespace", "")),
            str(meta.get("name", "")),
            str(meta.get("uid", "")),
        )


@dataclass(frozen=True)
class EventKey:
    ref: ObjectRef
    reason: str
    message: str
    warning: bool


@dataclass(frozen=True)
class CreateEvent:
    key: EventKey
    body: dict[str, Any]


@dataclass(frozen=True)
class BumpEvent:
    key: EventKey
    name: str
    patch: dict[str, Any]


@dataclass
class _Seen:
    name: str | None
    """None until the create returns the generated name."""
    count: int
    first: datetime
    last: datetime


class EventCorrelator:
    """Which write each event needs. `posted` records the name a create got; `failed` forgets an
    event whose write failed (the next occurrence creates it again)."""

    def __init__(self, entries: int = CACHE_ENTRIES, window: timedelta = WINDOW) -> None:
        self._seen: OrderedDict[EventKey, _Seen] = OrderedDict()
        self._entries = entries
        self._window = window

    def record(
        self, ref: ObjectRef, reason: str, message: str, warning: bool, now: datetime
    ) -> CreateEvent | BumpEvent | None:
        """The write for this occurrence; None when an earlier create of it is still in flight
        (counted, and carried by the next occurrence's bump)."""
        key = EventKey(ref, reason, message[:MAX_MESSAGE], warning)
        seen = self._seen.get(key)
        if seen is not None and now - seen.last < self._window:
            self._seen.move_to_end(key)
            seen.count += 1
            seen.last = now
            if seen.name is None:
                return None
            return BumpEvent(key, seen.name, {"count": seen.count, "lastTimestamp": rfc3339(now)})
        self._seen[key] = _Seen(None, 1, now, now)
        self._seen.move_to_end(key)
        while len(self._seen) > self._entries:
            self._seen.popitem(last=False)
        return CreateEvent(key, _body(key, now))

    def bump(self, key: EventKey) -> dict[str, Any] | None:
        """The patch that brings the posted Event up to date now (None: forgotten meanwhile)."""
        seen = self._seen.get(key)
        if seen is None:
            return None
        return {"count": seen.count, "lastTimestamp": rfc3339(seen.last)}

    def posted(self, key: EventKey, name: str) -> None:
        seen = self._seen.get(key)
        if seen is not None:
            seen.name = name

    def failed(self, key: EventKey) -> None:
        self._seen.pop(key, None)


def _body(key: EventKey, now: datetime) -> dict[str, Any]:
    ref = key.ref
    ts = rfc3339(now)
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{ref.name}.", "namespace": ref.namespace},
        "involvedObject": {
            "apiVersion": ref.api_version,
            "kind": ref.kind,
            "namespace": ref.namespace,
            "name": ref.name,
            "uid": ref.uid,
        },
        "reason": key.reason,
        "message": key.message,
        "type": "Warning" if key.warning else "Normal",
        "source": {"component": COMPONENT},
        "firstTimestamp": ts,
        "lastTimestamp": ts,
        "count": 1,
    }
