"""Savings with and without interruption on a Let's-Wait-Awhile-like scenario (Wiesner et al.,
Middleware 2021, the machine-learning scenario), through the operator's own reconcile on a fake clock.

The scenario (one generator, `lwa_jobs`, shared with the joint re-planner's benchmarks):
- one region per run: the 2020 traces of Germany, Great Britain and France (data/carbon/lwa_*_2020.csv);
- jobs submitted on workdays (Monday-Friday) between 09:00 and 17:00 UTC, uniformly, `--per-day` a day;
- deadline: the next workday's 09:00 (Friday's jobs: Monday's);
- durations uniform from 1 h to 8 h in whole half hours, 1 GPU each, and GPUs to spare (as in the
  study, capacity does not bind: `--capacity`);
- exact forecasts over the whole window (forecast error 0, a 72 h horizon so weekend deadlines are in
  view), re-planned once a day (with exact forecasts a re-plan changes nothing);
- interruptible jobs (all of them in the "interrupted" arm) pause and resume at `--min-segment` /
  `--overhead`; 30 min / 0 s is the study's model (a job may stop at any 30-min slot, for free).

Prints, per country, the baseline (run at submission), shifting the start only, and interrupting,
with the savings against the baseline. No figure is asserted. The study reports 5.9/6.6/4.8 %
(shifting) and 7.9/9.0/5.9 % (interrupting) for DE/GB/FR.

    .venv/bin/python benchmarks/lets_wait_awhile.py [--per-day 10] [--months 12] [--min-segment 30m]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from green_operator.api.interruption import Interruption, InterruptionPolicy
from green_operator.carbon.trace_file import load_trace_csv
from green_operator.planner import PlannerSettings, PowerPolicy, PowerRequest
from green_operator.simulate.engine import SimSettings
from green_operator.simulate.jobs_file import SimJob
from green_operator.simulate.report import simulate
from green_operator.times import parse_delay

DATA = Path(__file__).resolve().parents[1] / "data" / "carbon"
TRACES = {"DE": "lwa_ger_2020.csv", "GB": "lwa_gb_2020.csv", "FR": "lwa_fr_2020.csv"}
START = datetime(2020, 1, 1, tzinfo=UTC)


def next_workday_nine(t: datetime) -> datetime:
    day = (t + timedelta(days=1)).replace(hour=9, minute=0, second=0, microsecond=0)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


def lwa_jobs(
    region: str,
    *,
    start: datetime = START,
    days: int = 365,
    per_day: int = 10,
    seed: int = 1,
    interruptible: bool = True,
) -> list[SimJob]:
    """Workday jobs, 09:00-17:00 submissions, deadline the next workday's 09:00, 1-8 h (half hours)."""
    rng = np.random.default_rng(seed)
    jobs: list[SimJob] = []
    for d in range(days):
        day = start + timedelta(days=d)
        if day.weekday() >= 5:
            continue
        for _ in range(per_day):
            submit = day + timedelta(hours=9, minutes=int(rng.integers(0, 8 * 60)))
            duration = timedelta(minutes=30 * int(rng.integers(2, 17)))
            jobs.append(
                SimJob(f"job-{len(jobs):05d}", submit, duration, 1, next_workday_nine(submit), (region,), interruptible)
            )
    return jobs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-day", type=int, default=10)
    ap.add_argument("--months", type=int, default=12, help="simulate the first N months of 2020")
    ap.add_argument("--capacity", type=int, default=1000)
    ap.add_argument("--min-segment", default="30m")
    ap.add_argument("--overhead", default="0s")
    ap.add_argument("--countries", default="DE,GB,FR")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    days = min(round(args.months * 30.5), 365 - 3)  # leave the traces' last days for the deadlines
    planner = PlannerSettings(slot=timedelta(minutes=30), horizon=timedelta(hours=72), reserve_fraction=0.0)
    interruption = Interruption(
        InterruptionPolicy.CHECKPOINTED,
        min_segment=parse_delay(args.min_segment),
        resume_overhead=parse_delay(args.overhead),
    )
    base = SimSettings(planner=planner, power=PowerRequest(PowerPolicy.NONE), replan_interval=timedelta(days=1))
    print(
        f"{args.per_day} jobs a workday over {days} days, 1-8 h, deadline next workday 09:00; "
        f"interrupting with minSegment {args.min_segment}, resumeOverhead {args.overhead}"
    )
    for country in args.countries.split(","):
        trace = load_trace_csv(DATA / TRACES[country], zone=country)
        jobs = lwa_jobs(country, days=days, per_day=args.per_day, seed=args.seed)
        results = {}
        for arm, settings in (("shift", base), ("interrupt", replace(base, interruption=interruption))):
            t0 = time.perf_counter()
            res = simulate({country: trace}, {country: args.capacity}, jobs, settings, oracle=False)
            results[arm] = (res, time.perf_counter() - t0)
        shift, t_shift = results["shift"]
        inter, t_inter = results["interrupt"]
        missed = sum(not r.deadline_met for r in inter.plan.records)
        pauses = inter.plan.events.get("Paused", 0)
        print(
            f"{country}: {len(jobs)} jobs, baseline {shift.baseline_grams / 1e3:,.1f} kg; "
            f"shifting saves {shift.savings(shift.plan_grams):.1%}, "
            f"interrupting saves {inter.savings(inter.plan_grams):.1%} "
            f"({pauses} pauses, {missed} deadlines missed; {t_shift:.0f} s + {t_inter:.0f} s)"
        )


if __name__ == "__main__":
    main()
