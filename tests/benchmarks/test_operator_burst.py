"""The burst benchmark's wait for decisions: it recovers from a watch the apiserver refuses (410 Gone, 504
"Too large resource version" on a freshly restarted cluster) and ends with an error instead of hanging."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from benchmarks.operator_burst import DecisionWatch, WatchError
from harness.waiting import WaitTimeoutError

Segment = list[dict[str, Any]] | ApiException


def job(name: str, rv: str, phase: str | None = None) -> dict[str, Any]:
    return {"metadata": {"name": name, "resourceVersion": rv}, "status": {"phase": phase} if phase else {}}


class FakeApi:
    """Lists answer in turn from ``lists``; each watch plays the next segment (events, or an error), and
    once they are used up blocks until the watcher stops, as a quiet watch does."""

    def __init__(self, lists: list[dict[str, Any]], segments: list[Segment]) -> None:
        self.lists = lists
        self.segments = segments
        self.watched_from: list[str] = []
        self.stopped = threading.Event()

    def list_jobs(self) -> dict[str, Any]:
        return self.lists.pop(0)

    def watch_jobs(self, rv: str) -> Iterator[dict[str, Any]]:
        self.watched_from.append(rv)
        if not self.segments:
            self.stopped.wait()
            return
        segment = self.segments.pop(0)
        if isinstance(segment, ApiException):
            raise segment
        yield from segment


def listing(rv: str, *items: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"resourceVersion": rv}, "items": list(items)}


def started(api: FakeApi) -> DecisionWatch:
    w = DecisionWatch(api.list_jobs, api.watch_jobs, retry_pause=0)
    api.stopped = w.stopped
    return w.start()


def test_a_too_large_resource_version_relists_and_watches_from_the_new_list() -> None:
    too_large = ApiException(status=504, reason="Timeout: Too large resource version: 30, current: 20")
    api = FakeApi(
        lists=[listing("10", job("a", "9")), listing("20", job("a", "15", "Deferred"))],
        segments=[too_large, [{"type": "MODIFIED", "object": job("b", "21", "Running")}]],
    )
    w = started(api)
    try:
        w.wait_decided(["a", "b"], timeout=30)
    finally:
        w.stop()
    assert api.watched_from[:2] == ["10", "20"]  # re-watched from the second list's version
    assert w.relists == 1
    assert w.error is None


def test_a_gone_watch_relists_and_an_ended_one_resumes_from_the_last_version() -> None:
    gone = ApiException(status=410, reason="Expired: too old resource version: 10 (15)")
    api = FakeApi(
        lists=[listing("10"), listing("16")],
        segments=[
            gone,
            [{"type": "ADDED", "object": job("a", "17", "Pending")}, {"type": "BOOKMARK", "object": job("", "18")}],
            [{"type": "MODIFIED", "object": job("a", "19", "Deferred")}],
        ],
    )
    w = started(api)
    try:
        w.wait_decided(["a"], timeout=30)
    finally:
        w.stop()
    # The watch that ended normally was resumed from its last version (the bookmark's), not re-listed.
    assert api.watched_from[:3] == ["10", "16", "18"]
    assert (w.relists, api.lists) == (1, [])


def test_an_unrecoverable_watch_error_ends_the_wait_at_once() -> None:
    api = FakeApi(lists=[listing("10")], segments=[ApiException(status=403, reason="Forbidden")])
    w = started(api)
    with pytest.raises(WatchError, match="Forbidden"):
        w.wait_decided(["a"], timeout=600)  # returns on the error, not after the timeout
    w.stop()


def test_a_wait_without_decisions_ends_with_a_clear_error() -> None:
    api = FakeApi(lists=[listing("10", job("a", "9"))], segments=[])
    w = started(api)
    try:
        with pytest.raises(WaitTimeoutError, match=r"decisions \(0/1; 0 re-lists"):
            w.wait_decided(["a"], timeout=0.5)
    finally:
        w.stop()


@pytest.mark.integration
def test_the_benchmark_runs_end_to_end_at_a_small_scale(cluster: Any) -> None:
    """The script itself, against the local cluster with five jobs: it must keep working as the
    harness and the operator change (it is not part of `make test` otherwise)."""
    import subprocess
    import sys

    from harness.cluster import REPO

    script = REPO / "benchmarks" / "operator_burst.py"
    result = subprocess.run(
        [sys.executable, str(script), "--jobs", "5", "--concurrency", "2", "--timeout", "120"],
        capture_output=True, text=True, timeout=300, check=False, cwd=REPO,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "(once idle: 5)" in result.stdout  # every job's child, in a burst or not
    assert "created with no operator running" in result.stdout
    assert "ratio (time to all decisions / raw)" in result.stdout


def test_the_operator_config_shows_a_fixed_hour_of_the_traces(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    import yaml

    from benchmarks.operator_burst import REPO, operator_config

    example = yaml.safe_load((REPO / "examples" / "operator-config.yaml").read_text())
    now = datetime(2026, 12, 4, 17, 41, 5, tzinfo=UTC)
    doc = yaml.safe_load(operator_config(tmp_path, "19", now=now).read_text())
    traces = {name: p for name, p in doc["providers"].items() if p["type"] == "trace"}
    assert traces
    assert set(traces) == {n for n, p in example["providers"].items() if p["type"] == "trace"}
    for name, provider in traces.items():
        old = datetime.fromisoformat(example["providers"][name]["anchor"].replace("Z", "+00:00"))
        # The provider shows anchor + (now - today's midnight): 17:41 now shows the anchor day's 19:41.
        shown = datetime.fromisoformat(provider["anchor"]) + (now - now.replace(hour=0, minute=0, second=0))
        assert shown - old == timedelta(hours=19, minutes=41, seconds=5)
        assert all(Path(f).is_absolute() and Path(f).is_file() for f in provider["files"].values())
    assert doc["regions"] == example["regions"]
    assert operator_config(tmp_path, "now") == REPO / "examples" / "operator-config.yaml"
