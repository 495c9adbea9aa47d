"""Past the forecast horizon: what a 48-hour forecast loses against forecasts over the whole window,
with and without extrapolation (``planner.extrapolate``), on Let's-Wait-Awhile-like scenarios.

Scenarios (``--scenario``), one region per run, the 2020 traces of Germany, Great Britain, France:
- ``long`` (default): jobs of 4 to 90 hours (uniform, whole hours), 1 GPU, ``--per-day`` a workday,
  submitted 09:00-17:00 UTC; deadline: the first workday 09:00 after the job could finish if it
  started at once (the LWA rule, stretched for runs longer than a night);
- ``short``: the benchmark lets_wait_awhile.py's jobs (1-8 h, deadline the next workday 09:00).

Arms, exact forecasts (no error), GPUs to spare, re-planned every ``--replan`` (default 1 h):
- ``48h``: a 48-hour forecast horizon, runs start within it (today's operator);
- ``48h+x``: the same 48-hour forecast, extended by extrapolation as far as the longest window;
- ``full``: forecasts over the whole window (the horizon as long as the longest window).

Prints the savings against the carbon-blind baseline and the points each arm loses against ``full``;
``--breakdown`` splits those points by job duration, ``--hysteresis`` sets the planner's.

    nice .venv/bin/python benchmarks/planner_horizon.py [--months 12] [--scenario long] [--breakdown]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from lets_wait_awhile import lwa_jobs, next_workday_nine

from green_operator.carbon.trace_file import load_trace_csv
from green_operator.planner import PlannerSettings, PowerPolicy, PowerRequest
from green_operator.simulate.engine import SimSettings
from green_operator.simulate.jobs_file import SimJob
from green_operator.simulate.report import simulate

DATA = Path(__file__).resolve().parents[1] / "data" / "carbon"
TRACES = {"DE": "lwa_ger_2020.csv", "GB": "lwa_gb_2020.csv", "FR": "lwa_fr_2020.csv"}
START = datetime(2020, 1, 1, tzinfo=UTC)


def long_jobs(region: str, *, days: int, per_day: int, seed: int = 1) -> list[SimJob]:
    rng = np.random.default_rng(seed)
    jobs: list[SimJob] = []
    for d in range(days):
        day = START + timedelta(days=d)
        if day.weekday() >= 5:
            continue
        for _ in range(per_day):
            submit = day + timedelta(hours=9, minutes=int(rng.integers(0, 8 * 60)))
            duration = timedelta(hours=int(rng.integers(4, 91)))
            deadline = next_workday_nine(submit + duration - timedelta(days=1))
            if deadline < submit + duration:
                deadline = next_workday_nine(deadline)
            jobs.append(SimJob(f"job-{len(jobs):05d}", submit, duration, 1, deadline, (region,), False))
    return jobs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-day", type=int, default=10)
    ap.add_argument("--months", type=int, default=12)
    ap.add_argument("--scenario", choices=("long", "short"), default="long")
    ap.add_argument("--countries", default="DE,GB,FR")
    ap.add_argument("--replan", type=float, default=60.0, help="re-plan interval, minutes")
    ap.add_argument("--arms", default="48h,48h+x,full")
    ap.add_argument("--hysteresis", type=float, default=PlannerSettings.hysteresis_fraction)
    ap.add_argument("--breakdown", action="store_true", help="points lost against full, by job duration")
    args = ap.parse_args()
    days = min(round(args.months * 30.5), 365 - 10)
    base = PlannerSettings(
        slot=timedelta(minutes=30),
        horizon=timedelta(hours=48),
        reserve_fraction=0.0,
        hysteresis_fraction=args.hysteresis,
    )
    print(
        f"scenario {args.scenario}: {args.per_day} jobs a workday over {days} days; re-plan every {args.replan:g} min;"
        f" hysteresis {args.hysteresis:.0%}"
    )
    for country in args.countries.split(","):
        trace = load_trace_csv(DATA / TRACES[country], zone=country)
        if args.scenario == "long":
            jobs = long_jobs(country, days=days, per_day=args.per_day)
        else:
            jobs = lwa_jobs(country, days=days, per_day=args.per_day, interruptible=False)
        window = max(j.deadline - j.submit_time for j in jobs)
        reach = (window // base.slot + 1) * base.slot
        arms = {
            "48h": base,
            "48h+x": replace(base, extrapolation=max(reach - base.horizon, timedelta(0))),
            "full": replace(base, horizon=max(reach, base.horizon)),
        }
        saved: dict[str, float] = {}
        grams: dict[str, dict[str, float]] = {}
        baseline: dict[str, float] = {}
        line = []
        for arm in args.arms.split(","):
            t0 = time.perf_counter()
            sim = SimSettings(
                planner=arms[arm], power=PowerRequest(PowerPolicy.NONE), replan_interval=timedelta(minutes=args.replan)
            )
            res = simulate({country: trace}, {country: 100_000}, jobs, sim, oracle=False)
            saved[arm] = res.savings(res.plan_grams)
            grams[arm] = {r.job_id: r.grams for r in res.plan.records}
            baseline = {r.job_id: r.grams for r in res.baseline}
            missed = sum(not r.deadline_met for r in res.plan.records)
            line.append(f"{arm} {saved[arm]:.2%} ({missed} late, {time.perf_counter() - t0:.0f} s)")
        loss = ", ".join(
            f"{a} loses {saved['full'] - s:.2%} pts" for a, s in saved.items() if a != "full" and "full" in saved
        )
        print(
            f"{country}: {len(jobs)} jobs, longest window {window}; saves "
            + "; ".join(line)
            + (f"; {loss}" if loss else ""),
            flush=True,
        )
        if args.breakdown and "full" in grams:
            print_breakdown(jobs, grams, baseline)


def print_breakdown(jobs: list[SimJob], grams: dict[str, dict[str, float]], baseline: dict[str, float]) -> None:
    """Points lost against ``full`` (share of the whole baseline), by job duration."""
    total = sum(baseline.values())
    buckets = ((4, 24), (24, 48), (48, 72), (72, 91))
    for arm in (a for a in grams if a != "full"):
        parts = []
        for lo, hi in buckets:
            ids = [j.id for j in jobs if lo <= j.duration.total_seconds() / 3600 < hi]
            lost = sum(grams[arm][i] - grams["full"][i] for i in ids) / total
            parts.append(f"{lo}-{hi - (hi == 91)} h ({len(ids)} jobs) {lost:+.2%}")
        print(f"  {arm} loses, by duration: " + ", ".join(parts), flush=True)


if __name__ == "__main__":
    main()
