"""Reservations as columns: the same grid as from objects, and bookings kept in step with a dict."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import numpy as np

from green_operator.planner import RegionForecast, Reservation
from green_operator.planner.columns import BookingColumns, ReservationColumns
from green_operator.planner.grid import SlotGrid

T0 = datetime(2024, 3, 4, 10, 0, tzinfo=UTC)
SLOT = timedelta(minutes=15)
REGIONS = [RegionForecast(r, 16, "NVIDIA H100 80GB HBM3", T0, [100.0] * 192) for r in ("a", "b")]


def random_reservations(rng: random.Random, n: int) -> list[Reservation]:
    out = []
    for _ in range(n):
        start = T0 + timedelta(minutes=rng.randrange(-600, 3000), seconds=rng.choice([0, 0, 7, 59]))
        length = timedelta(minutes=rng.choice([0, 1, 15, 37, 120, 600]))
        # Also regions the grid does not know, empty bookings and bookings that end before they start.
        out.append(
            Reservation(rng.choice("abz"), start, start + length * rng.choice([1, 1, -1]), rng.choice([0, 1, 4]))
        )
    return out


def grid(reservations: list[Reservation] | ReservationColumns, now: datetime = T0) -> SlotGrid:
    return SlotGrid(REGIONS, reservations, slot=SLOT, now=now, horizon=timedelta(hours=48), min_length=0)


def test_the_grid_reads_columns_exactly_as_objects() -> None:
    rng = random.Random(3)
    for _ in range(30):
        rs = random_reservations(rng, rng.randrange(0, 60))
        from_objects = grid(rs)
        from_columns = grid(ReservationColumns.of(rs))
        assert from_columns.length == from_objects.length
        assert np.array_equal(from_columns.reserved, from_objects.reserved)
    # A booking that starts and ends in the same slot holds that slot; one ending at the origin holds none.
    g = grid(
        [
            Reservation("a", T0 + timedelta(minutes=20), T0 + timedelta(minutes=25), 3),
            Reservation("b", T0 - SLOT, T0, 5),
        ]
    )
    assert g.reserved[0, 1] == 3
    assert int(g.reserved.sum()) == 3


def test_ended_bookings_are_held_until_the_next_slot() -> None:
    ended = Reservation("a", T0 - timedelta(hours=2), T0 - timedelta(hours=1), 2)
    running = Reservation("b", T0 - timedelta(hours=1), T0 + timedelta(hours=1), 1)
    held = ReservationColumns.of([ended, running]).held_until(T0, T0 + SLOT).reservations()
    assert held == [Reservation("a", ended.start, T0 + SLOT, 2), running]


def test_plus_appends_objects_with_their_own_regions() -> None:
    cols = ReservationColumns.of([Reservation("a", T0, T0 + SLOT, 1)])
    more = [Reservation("c", T0, T0 + 2 * SLOT, 2), Reservation("a", T0 + SLOT, T0 + 2 * SLOT, 3)]
    assert cols.plus(more).reservations() == [Reservation("a", T0, T0 + SLOT, 1), *more]
    assert cols.plus([]) is cols


def test_booking_columns_follow_every_set_and_removal() -> None:
    rng = random.Random(11)
    cols = BookingColumns()
    truth: dict[str, Reservation] = {}
    for step in range(2_000):
        key = f"k{rng.randrange(300)}"
        if rng.random() < 0.3:
            cols.set(key, None)
            truth.pop(key, None)
        else:
            start = T0 + timedelta(minutes=15 * rng.randrange(200))
            r = Reservation(rng.choice("ab"), start, start + timedelta(hours=rng.randrange(1, 9)), rng.randrange(1, 9))
            cols.set(key, r)
            truth[key] = r
        if step % 250 == 0:
            skip = {f"k{rng.randrange(300)}" for _ in range(5)}
            expected = sorted((r for k, r in truth.items() if k not in skip), key=repr)
            assert sorted(cols.without(skip).reservations(), key=repr) == expected
            assert len(cols) == len(truth)
    # A copy: later changes do not reach columns already handed out.
    snapshot = cols.without(())
    for k in list(truth):
        cols.set(k, None)
    assert len(snapshot) == len(truth)
    assert len(cols.without(())) == 0
