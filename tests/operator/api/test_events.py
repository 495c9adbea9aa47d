"""Events as client-go's recorder writes them: the same event again bumps the one posted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from green_operator.api.events import BumpEvent, CreateEvent, EventCorrelator, ObjectRef

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
JOB = ObjectRef("greentraining.io/v1alpha1", "GreenTrainingJob", "team-a", "train", "uid-1")


def test_a_first_event_is_created_on_its_object() -> None:
    w = EventCorrelator().record(JOB, "Deferred", "waiting for a cleaner hour", False, T0)
    assert isinstance(w, CreateEvent)
    assert w.body["involvedObject"] == {
        "apiVersion": "greentraining.io/v1alpha1",
        "kind": "GreenTrainingJob",
        "namespace": "team-a",
        "name": "train",
        "uid": "uid-1",
    }
    assert w.body["metadata"] == {"generateName": "train.", "namespace": "team-a"}
    assert (w.body["type"], w.body["count"], w.body["lastTimestamp"]) == ("Normal", 1, "2026-06-01T12:00:00Z")


def test_the_same_event_again_bumps_the_count_of_the_one_posted() -> None:
    c = EventCorrelator()
    first = c.record(JOB, "Replanned", "moved", True, T0)
    assert isinstance(first, CreateEvent)
    assert first.body["type"] == "Warning"
    # Before the create returned: counted, nothing written yet.
    assert c.record(JOB, "Replanned", "moved", True, T0 + timedelta(seconds=1)) is None
    c.posted(first.key, "train.abc")
    bump = c.record(JOB, "Replanned", "moved", True, T0 + timedelta(seconds=2))
    assert bump == BumpEvent(first.key, "train.abc", {"count": 3, "lastTimestamp": "2026-06-01T12:00:02Z"})


def test_another_message_reason_object_or_a_late_repeat_is_a_new_event() -> None:
    c = EventCorrelator(window=timedelta(minutes=10))
    first = c.record(JOB, "Deferred", "a", False, T0)
    assert isinstance(first, CreateEvent)
    c.posted(first.key, "train.1")
    other = ObjectRef("greentraining.io/v1alpha1", "GreenTrainingJob", "team-a", "other", "uid-2")
    assert isinstance(c.record(JOB, "Deferred", "b", False, T0), CreateEvent)
    assert isinstance(c.record(JOB, "Started", "a", False, T0), CreateEvent)
    assert isinstance(c.record(other, "Deferred", "a", False, T0), CreateEvent)
    assert isinstance(c.record(JOB, "Deferred", "a", False, T0 + timedelta(minutes=11)), CreateEvent)


def test_a_failed_write_is_forgotten_and_the_cache_is_bounded() -> None:
    c = EventCorrelator(entries=2)
    first = c.record(JOB, "R", "m", False, T0)
    assert isinstance(first, CreateEvent)
    c.failed(first.key)
    assert isinstance(c.record(JOB, "R", "m", False, T0), CreateEvent)
    for i in range(3):
        c.record(JOB, "R", f"other {i}", False, T0)
    # The oldest entry was evicted: the same event is created anew.
    assert isinstance(c.record(JOB, "R", "m", False, T0), CreateEvent)


def test_long_messages_are_cut_to_the_apiservers_limit() -> None:
    w = EventCorrelator().record(JOB, "R", "x" * 5000, False, T0)
    assert isinstance(w, CreateEvent)
    assert len(w.body["message"]) == 1024


def test_a_bump_sends_the_latest_count() -> None:
    c = EventCorrelator()
    first = c.record(JOB, "R", "m", False, T0)
    assert isinstance(first, CreateEvent)
    c.posted(first.key, "train.1")
    for i in range(1, 4):
        c.record(JOB, "R", "m", False, T0 + timedelta(seconds=i))
    assert c.bump(first.key) == {"count": 4, "lastTimestamp": "2026-06-01T12:00:03Z"}
    c.failed(first.key)
    assert c.bump(first.key) is None
