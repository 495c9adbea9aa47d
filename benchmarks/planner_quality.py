"""Planner quality on the real traces: baseline vs plan vs oracle emissions.

Workload: one week (from Mon 2020-06-01) of the generator's realistic mix, about 100 jobs a day,
over four regions: Germany, Great Britain, France (2020 traces) and California (WattTime CAISO
North June 2023, marginal, shifted by whole weeks onto 2020 and converted from lbs/MWh).
Scenarios: ample capacity and capacity pressure (about 60 % average utilisation), forecast error
0 %, 5 % and 10 %; 300 W per GPU (policy None) and, once, Auto power limits on H100s.

The oracle (perfect knowledge of jobs and traces; column generation + MILP with HiGHS, started
from the plan arm's schedule and from the planner's own search over all jobs at once) is solved
once per scenario: it does not depend on the forecast error. "capture" is the share of the
oracle's savings the plan gets, against the proven lower bound (conservative) and against the
best integer schedule found.

Deadline misses under pressure swing by a few jobs with small changes anywhere (which job gets
the last GPUs decides who waits), so ``--extra-seeds N`` also runs N other workloads (seeds 2..)
of the pressure scenario at 5 % forecast error, baseline and plan only, and sums their misses.

    .venv/bin/python benchmarks/planner_quality.py [--oracle-seconds 240] [--extra-seeds 0]
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from pathlib import Path

from green_operator.carbon.series import IntensitySeries
from green_operator.carbon.trace_file import load_trace_csv
from green_operator.planner import PowerPolicy, PowerRequest
from green_operator.simulate.engine import SimSettings
from green_operator.simulate.generator import generate_jobs
from green_operator.simulate.oracle import solve_oracle
from green_operator.simulate.report import simulate

DATA = Path(__file__).resolve().parents[1] / "data" / "carbon"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--oracle-seconds", type=float, default=240.0)
    ap.add_argument("--days", type=float, default=7.0)
    ap.add_argument("--jobs-per-day", type=float, default=100.0)
    ap.add_argument("--extra-seeds", type=int, default=0)
    args = ap.parse_args()
    traces = {
        "DE": load_trace_csv(DATA / "lwa_ger_2020.csv", zone="DE"),
        "GB": load_trace_csv(DATA / "lwa_gb_2020.csv", zone="GB"),
        "FR": load_trace_csv(DATA / "lwa_fr_2020.csv", zone="FR"),
        "CA": load_trace_csv(DATA / "watttime_caiso_north_2023-06.csv", zone="CA", scale=0.453592),
    }
    jobs = generate_jobs(list(traces), datetime(2020, 6, 1, tzinfo=UTC), args.days, args.jobs_per_day, seed=1)
    gpu_hours = sum(j.gpus * j.duration.total_seconds() / 3600 for j in jobs)
    busy = gpu_hours / args.days / 24
    print(f"{len(jobs)} jobs, {gpu_hours:,.0f} GPU-hours over {args.days:g} days (mean {busy:.0f} GPUs busy)")
    scenarios = {
        "ample": (dict.fromkeys(traces, 10000), "None", ""),
        "pressure": ({"DE": 200, "GB": 110, "FR": 90, "CA": 70}, "None", ""),
        "ample, Auto H100": (dict.fromkeys(traces, 10000), "Auto", "H100"),
    }
    head = (
        f"{'scenario':<18}{'error':>6}{'baseline kg':>13}{'plan kg':>10}{'oracle kg':>11}{'bound kg':>10}"
        f"{'plan saves':>12}{'oracle saves':>14}{'capture(bound)':>16}{'capture(best)':>15}{'missed b/p/o':>14}"
    )
    print(head)
    for name, (capacity, policy, model) in scenarios.items():
        settings = SimSettings(power=PowerRequest(PowerPolicy(policy), max_slowdown_percent=10))
        errors = (0.0,) if policy == "Auto" else (0.0, 0.05, 0.10)
        oracle = None
        for err in errors:
            t = time.monotonic()
            res = simulate(
                traces,
                capacity,
                jobs,
                settings,
                gpu_model=model,
                forecast_error=err,
                seed=1,
                align_traces=True,
                oracle=False,
            )
            sim_s = time.monotonic() - t
            if oracle is None:
                oracle = solve_oracle(
                    res.world,
                    jobs,
                    settings.power,
                    settings.planner.default_gpu_watts,
                    res.plan.records,
                    time_limit_s=args.oracle_seconds,
                )
            base, plan_g = res.baseline_grams, res.plan_grams
            bound = oracle.lower_bound if oracle.lower_bound is not None else oracle.grams
            cap_bound = (base - plan_g) / (base - bound)
            cap_best = (base - plan_g) / (base - oracle.grams)
            missed = (
                f"{sum(not r.deadline_met for r in res.baseline)}/"
                f"{sum(not r.deadline_met for r in res.plan.records)}/{oracle.late}"
            )
            print(
                f"{name:<18}{err:>6.0%}{base / 1e3:>13,.0f}{plan_g / 1e3:>10,.0f}{oracle.grams / 1e3:>11,.0f}"
                f"{bound / 1e3:>10,.0f}{res.savings(plan_g):>12.1%}{res.savings(bound):>14.1%}"
                f"{cap_bound:>16.1%}{cap_best:>15.1%}{missed:>14}"
            )
            print(
                f"{'':<24}simulation {sim_s:.1f}s, {res.plan.planner_calls} planner calls, "
                f"{res.plan.moves} moves; oracle {oracle.seconds:.0f}s, {oracle.iterations} LP rounds, "
                f"converged={oracle.converged}, {oracle.columns} columns"
            )
    if args.extra_seeds > 0:
        extra_seeds(traces, args.days, args.jobs_per_day, args.extra_seeds)


def extra_seeds(traces: dict[str, IntensitySeries], days: float, per_day: float, n: int) -> None:
    capacity = {"DE": 200, "GB": 110, "FR": 90, "CA": 70}
    settings = SimSettings(power=PowerRequest(PowerPolicy.NONE))
    print()
    print(
        f"pressure, 5% forecast error, other workloads: {'seed':>4}{'baseline kg':>13}{'plan kg':>10}{'missed b/p':>12}"
    )
    totals = [0, 0]
    for seed in range(2, 2 + n):
        jobs = generate_jobs(list(traces), datetime(2020, 6, 1, tzinfo=UTC), days, per_day, seed=seed)
        res = simulate(traces, capacity, jobs, settings, forecast_error=0.05, seed=1, align_traces=True, oracle=False)
        mb = sum(not r.deadline_met for r in res.baseline)
        mp = sum(not r.deadline_met for r in res.plan.records)
        totals[0] += mb
        totals[1] += mp
        print(f"{'':<50}{seed:>4}{res.baseline_grams / 1e3:>13,.0f}{res.plan_grams / 1e3:>10,.0f}{f'{mb}/{mp}':>12}")
    print(f"{'':<50}{'all':>4}{'':>23}{f'{totals[0]}/{totals[1]}':>12}")


if __name__ == "__main__":
    main()
