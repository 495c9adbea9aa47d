"""How long `green-operator simulate` takes for a year: about 3,400 training jobs in one region.

Workload (stated so it can be argued with), in the spirit of Let's Wait Awhile's machine-learning
scenario (Wiesner et al., Middleware 2021: about 3,400 training jobs of 4-90 h over 2020):
- region DE, the 2020 German trace (data/carbon/lwa_ger_2020.csv), 64 GPUs by default;
- submissions from 2020-01-01 to 2020-12-24, Poisson, three times denser in weekday office hours
  (08-19 UTC) than at night and a third as dense on weekends; about 9.3 a day;
- durations log-uniform between 4 h and 90 h (whole quarter hours), 1, 2, 4 or 8 GPUs;
- deadline: submission + duration + a slack drawn uniformly from 0 to 48 h (the forecast horizon).

The simulation is baseline + plan (the operator's reconciler on a fake clock), no oracle. It prints
the seconds it took, the jobs, re-plans, moves and savings. No figure is asserted.

    .venv/bin/python benchmarks/simulate_year.py [--capacity 64] [--jobs-out year.csv] [--profile out.prof]

`--jobs-out` also writes the workload as a jobs CSV, for `green-operator simulate --jobs` (e.g. to time
an older version's simulator on exactly the same jobs).
"""

from __future__ import annotations

import argparse
import cProfile
import math
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from green_operator.carbon.trace_file import load_trace_csv
from green_operator.planner import PowerPolicy, PowerRequest
from green_operator.simulate.engine import SimSettings
from green_operator.simulate.jobs_file import SimJob, write_jobs_csv
from green_operator.simulate.report import simulate

DATA = Path(__file__).resolve().parents[1] / "data" / "carbon"
START = datetime(2020, 1, 1, tzinfo=UTC)
END = datetime(2020, 12, 24, tzinfo=UTC)


def _weight(t: datetime) -> float:
    office = t.weekday() < 5 and 8 <= t.hour < 19
    return (3.0 if office else 1.0) * (1 / 3 if t.weekday() >= 5 else 1.0)


def year_of_jobs(per_day: float = 9.3, seed: int = 1, region: str = "DE") -> list[SimJob]:
    rng = np.random.default_rng(seed)
    mean_weight = (5 * (11 * 3 + 13) + 2 * 24 / 3) / (7 * 24)
    peak_per_hour = per_day / 24 / mean_weight * 3.0
    jobs: list[SimJob] = []
    t = START
    while True:
        t += timedelta(hours=float(rng.exponential(1 / peak_per_hour)))
        if t >= END:
            break
        if rng.random() >= _weight(t) / 3.0:
            continue
        submit = t.replace(microsecond=0)
        hours = math.exp(rng.uniform(math.log(4), math.log(90)))
        duration = timedelta(minutes=15 * max(16, round(hours * 4)))
        slack = timedelta(minutes=round(float(rng.uniform(0, 48 * 60))))
        gpus = int(rng.choice((1, 2, 4, 8)))
        jobs.append(SimJob(f"job-{len(jobs):05d}", submit, duration, gpus, submit + duration + slack, (region,)))
    return jobs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--capacity", type=int, default=64)
    ap.add_argument("--jobs-per-day", type=float, default=9.3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--forecast-error", type=float, default=0.0)
    ap.add_argument("--jobs-out", type=Path, help="also write the workload as a jobs CSV")
    ap.add_argument("--profile", type=Path, help="write a cProfile of the simulation here")
    args = ap.parse_args()
    jobs = year_of_jobs(args.jobs_per_day, args.seed)
    if args.jobs_out:
        write_jobs_csv(args.jobs_out, jobs)
    traces = {"DE": load_trace_csv(DATA / "lwa_ger_2020.csv", zone="DE")}
    gpu_hours = sum(j.gpus * j.duration.total_seconds() / 3600 for j in jobs)
    days = (END - START).days
    print(
        f"{len(jobs)} jobs, {gpu_hours:,.0f} GPU-hours over {days} days "
        f"(mean {gpu_hours / days / 24:.0f} of {args.capacity} GPUs busy)"
    )
    settings = SimSettings(power=PowerRequest(PowerPolicy.NONE))
    prof = cProfile.Profile() if args.profile else None
    t0 = time.perf_counter()
    if prof:
        prof.enable()
    res = simulate(
        traces,
        {"DE": args.capacity},
        jobs,
        settings,
        forecast_error=args.forecast_error,
        seed=args.seed,
        oracle=False,
    )
    if prof:
        prof.disable()
        prof.dump_stats(str(args.profile))
    seconds = time.perf_counter() - t0
    p = res.plan
    missed_b = sum(not r.deadline_met for r in res.baseline)
    missed_p = sum(not r.deadline_met for r in p.records)
    print(f"simulation: {seconds:.1f} s")
    print(
        f"baseline {res.baseline_grams / 1e6:,.2f} t, plan {res.plan_grams / 1e6:,.2f} t: "
        f"saves {res.savings(res.plan_grams):.1%}; deadlines missed {missed_b} (baseline) / {missed_p} (plan)"
    )
    print(
        f"{p.decisions} decisions, {p.planner_calls} planner calls, re-plans {p.replans} "
        f"(busiest minute {p.busiest_replan_minute}), moves {p.moves} "
        f"({p.moved_aside} moved aside), flagged at risk {p.flagged}, waited for GPUs {p.waited_for_gpus}"
    )


if __name__ == "__main__":
    main()
