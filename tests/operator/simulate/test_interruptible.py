"""The simulator honours `interruptible`: the operator's reconcile pauses and resumes the job along its
segments on the fake clock (the trainer's pause reports are simulated), and interrupting beats
shifting the start when the clean hours come in two windows."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from green_operator.api.interruption import Interruption, InterruptionPolicy
from green_operator.carbon.series import series_from_values
from green_operator.planner import PlannerSettings, PowerPolicy, PowerRequest
from green_operator.simulate.engine import SimSettings
from green_operator.simulate.jobs_file import SimJob
from green_operator.simulate.report import simulate

T0 = datetime(2024, 3, 4, 0, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def test_interrupting_follows_two_clean_windows_and_saves_more_than_shifting() -> None:
    # Clean 02-04 and 08-10, dirty otherwise, for three days.
    values = [50.0 if h % 24 in (2, 3, 8, 9) else 500.0 for h in range(72)]
    trace = series_from_values("r", "test", T0, HOUR, values)
    job = SimJob("a", T0 + timedelta(minutes=30), 4 * HOUR, 1, T0 + 12 * HOUR, ("r",), interruptible=True)
    planner = PlannerSettings(slot=timedelta(minutes=30), horizon=timedelta(hours=24), reserve_fraction=0.0)
    shift = SimSettings(planner=planner, power=PowerRequest(PowerPolicy.NONE))
    interrupt = replace(
        shift,
        interruption=Interruption(InterruptionPolicy.CHECKPOINTED, min_segment=HOUR, resume_overhead=timedelta(0)),
    )
    one_piece = simulate({"r": trace}, {"r": 4}, [job], shift, oracle=False)
    segments = simulate({"r": trace}, {"r": 4}, [job], interrupt, oracle=False)

    rec = segments.plan.records[0]
    assert rec.deadline_met
    assert rec.duration == 4 * HOUR  # run time over both segments, the pause excluded
    assert rec.start == T0 + 2 * HOUR
    assert segments.plan.events.get("Paused") == 1
    assert segments.plan.events.get("Resumed") == 1
    assert segments.plan_grams < one_piece.plan_grams
    # Both clean windows, all of the run: 4 h x 50 g/kWh at the default draw.
    assert segments.plan_grams == rec.grams
    assert abs(rec.grams - 4 * 50 * planner.default_gpu_watts / 1000) < 1e-6
    # Without the interruption block the column is ignored: one piece.
    assert one_piece.plan.events.get("Paused", 0) == 0
