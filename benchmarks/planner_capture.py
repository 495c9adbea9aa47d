"""Capture under tight capacity over many workloads: a fixed generator, many seeds, min and median.

Capture = (baseline - plan) / (baseline - bound): baseline is the carbon-blind schedule's emissions,
plan the operator's (its own reconcile on a fake clock, `simulate`), bound the oracle's Lagrangian
bound (`simulate.oracle`, column generation on the LP with perfect knowledge of arrivals and traces).

Lateness: tight workloads have jobs that cannot all start on time, and a bound is only worth
comparing with schedules that keep the same promises. So each arm's bound is computed with that
arm's late jobs allowed to start late at no penalty and every other job held to its latest start
(``solve_oracle(may_be_late=...)``): a proven lower bound on the emissions of every schedule whose
late jobs are among the plan's, the plan included. Capture against it is conservative (runs are
unbroken, so the true optimum can sit above the bound); the late counts are printed beside it.
Only the bound is computed (no MILP), cached in ``--cache`` by seed, tightness and late set.

The generator (fixed; seed s):
- four regions, Germany, Great Britain, France (2020 traces) and California (WattTime CAISO North
  June 2023, shifted by whole weeks), two weeks from Mon 2020-06-01;
- N = 300 + (s x 7919 mod 701) jobs (300 to 1,000), the simulator's realistic mix
  (`simulate.generator`: debug/experiment/large classes, one in ten urgent, half the jobs home-only);
- tightness: each region has GPUs for its home jobs' mean demand at ``--utilisation`` (default 0.6,
  the pressure case of planner_quality), and at least 32 (the biggest job);
- forecast error ``--error`` (the simulator's model: multiplicative, zero now and growing with lead
  time as an AR(1) process, correlation 0.97 per slot, long-run standard deviation ``--error``).

Arms (``--arms``, default ``off,joint``): ``off`` the operator without the periodic joint re-plan,
``joint`` with it (every ``--joint-every`` minutes, ``--joint`` seconds each), ``joint+reserve``
with the joint re-plan keeping out of the urgent-job reserve. ``--exact`` instead solves small
instances (a day, 40-80 jobs) to the MILP optimum over the schedules with the plan's late jobs
and prints plan vs optimum vs bound per arm.

    nice .venv/bin/python benchmarks/planner_capture.py --seeds 20 [--arms off,joint] [--error 0.1]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from green_operator.carbon.series import IntensitySeries
from green_operator.carbon.trace_file import load_trace_csv
from green_operator.planner import PowerPolicy, PowerRequest
from green_operator.simulate.engine import RunRecord, SimSettings
from green_operator.simulate.generator import generate_jobs
from green_operator.simulate.jobs_file import SimJob
from green_operator.simulate.oracle import solve_oracle
from green_operator.simulate.report import SimulationResult, simulate

DATA = Path(__file__).resolve().parents[1] / "data" / "carbon"
START = datetime(2020, 6, 1, tzinfo=UTC)


def traces() -> dict[str, IntensitySeries]:
    return {
        "DE": load_trace_csv(DATA / "lwa_ger_2020.csv", zone="DE"),
        "GB": load_trace_csv(DATA / "lwa_gb_2020.csv", zone="GB"),
        "FR": load_trace_csv(DATA / "lwa_fr_2020.csv", zone="FR"),
        "CA": load_trace_csv(DATA / "watttime_caiso_north_2023-06.csv", zone="CA", scale=0.453592),
    }


def workload(seed: int, regions: list[str], days: float) -> list[SimJob]:
    n = 300 + (seed * 7919) % 701
    return generate_jobs(regions, START, days, n / days, seed=seed)


def capacity(jobs: list[SimJob], regions: list[str], days: float, utilisation: float) -> dict[str, int]:
    demand: dict[str, float] = dict.fromkeys(regions, 0.0)
    for j in jobs:
        demand[j.regions[0]] += j.gpus * j.duration.total_seconds() / 3600
    return {r: max(32, math.ceil(demand[r] / (days * 24) / utilisation)) for r in regions}


def settings(arm: str, joint: float = 3.0, every: float = 60.0) -> SimSettings:
    power = PowerRequest(PowerPolicy.NONE)
    if arm == "off":
        return SimSettings(power=power)
    if arm not in ("joint", "joint+reserve"):
        raise SystemExit(f"--arms: unknown arm {arm!r}; use off, joint or joint+reserve")
    from green_operator.planner.joint import JointSettings

    every_td, budget = timedelta(minutes=every), timedelta(seconds=joint)
    keep = arm == "joint+reserve"
    return SimSettings(power=power, joint=JointSettings(budget=budget, interval=every_td, keep_reserve=keep))


def late_set(records: list[RunRecord]) -> list[int]:
    return [k for k, r in enumerate(records) if not r.deadline_met]


def bound_for(
    cache: dict[str, Any], path: Path, key: str, res: SimulationResult, jobs: list[SimJob], seconds: float
) -> float:
    """The arm's bound (its late jobs may be late), cached by workload and late set."""
    late = late_set(res.plan.records)
    full = f"{key}/late={hashlib.sha1(repr(late).encode()).hexdigest()[:12]}"
    if full not in cache:
        sim = SimSettings()
        o = solve_oracle(
            res.world,
            jobs,
            PowerRequest(PowerPolicy.NONE),
            sim.planner.default_gpu_watts,
            res.plan.records,
            time_limit_s=seconds,
            may_be_late=late,
            integer=False,
        )
        assert o.lower_bound is not None
        cache[full] = {"bound": o.lower_bound, "converged": o.converged, "seconds": round(o.seconds, 1)}
        path.write_text(json.dumps(cache))
    return float(cache[full]["bound"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--first-seed", type=int, default=1)
    ap.add_argument("--days", type=float, default=14.0)
    ap.add_argument("--utilisation", type=float, default=0.6)
    ap.add_argument("--error", type=float, default=0.0)
    ap.add_argument("--arms", default="off,joint", help="comma-separated: off, joint, joint+reserve")
    ap.add_argument("--joint", type=float, default=3.0, help="joint re-plan budget in seconds")
    ap.add_argument("--joint-every", type=float, default=60.0, help="minutes between joint re-plans")
    ap.add_argument("--oracle-seconds", type=float, default=60.0)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/planner_capture_bounds.json"))
    ap.add_argument("--exact", action="store_true", help="small instances solved to the MILP optimum")
    args = ap.parse_args()
    tr = traces()
    regions = list(tr)
    arms = args.arms.split(",")
    if args.exact:
        exact(tr, regions, arms, args)
        return
    cache: dict[str, Any] = json.loads(args.cache.read_text()) if args.cache.exists() else {}
    print(
        f"{args.seeds} workloads of 300-1,000 jobs over {args.days:g} days, 4 regions, capacity for "
        f"{args.utilisation:.0%} mean utilisation of home demand; forecast error {args.error:.0%}; "
        f"joint re-plan every {args.joint_every:g} min, {args.joint:g} s budget"
    )
    print(
        f"{'seed':>4}{'jobs':>6}{'GPUs DE/GB/FR/CA':>20}{'arm':>15}{'baseline kg':>13}{'plan kg':>10}{'bound kg':>10}"
        f"{'capture':>9}{'late b/p':>10}{'sim s':>7}  joint"
    )
    captures: dict[str, list[float]] = {arm: [] for arm in arms}
    late: dict[str, int] = dict.fromkeys(arms, 0)
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        jobs = workload(seed, regions, args.days)
        cap = capacity(jobs, regions, args.days, args.utilisation)
        gpus = "/".join(str(cap[r]) for r in regions)
        for arm in arms:
            t = time.process_time()
            sim = settings(arm, args.joint, args.joint_every)
            res = simulate(tr, cap, jobs, sim, forecast_error=args.error, seed=1, align_traces=True, oracle=False)
            sim_s = time.process_time() - t
            key = f"{seed}/{args.days}/{args.utilisation}"
            bound = bound_for(cache, args.cache, key, res, jobs, args.oracle_seconds)
            base, plan_g = res.baseline_grams, res.plan_grams
            capture = (base - plan_g) / (base - bound)
            captures[arm].append(capture)
            mb = sum(not r.deadline_met for r in res.baseline)
            mp = len(late_set(res.plan.records))
            late[arm] += mp
            joint = " ".join(f"{k}={v}" for k, v in sorted(res.plan.joint.items()))
            print(
                f"{seed:>4}{len(jobs):>6}{gpus:>20}{arm:>15}{base / 1e3:>13,.0f}{plan_g / 1e3:>10,.0f}"
                f"{bound / 1e3:>10,.0f}{capture:>9.1%}{f'{mb}/{mp}':>10}{sim_s:>7.0f}  {joint}",
                flush=True,
            )
    for arm in arms:
        c = captures[arm]
        print(
            f"{arm}: capture over {len(c)} workloads: min {min(c):.1%}, median {statistics.median(c):.1%}, "
            f"mean {statistics.mean(c):.1%}; late jobs {late[arm]}"
        )


def exact(tr: dict[str, IntensitySeries], regions: list[str], arms: list[str], args: argparse.Namespace) -> None:
    """Small instances: a day of 40-80 jobs; the oracle's MILP is solved to optimality there, over
    the schedules whose late jobs are among the plan's (each arm its own)."""
    print(
        f"{'seed':>4}{'jobs':>6}{'arm':>15}{'baseline kg':>13}{'plan kg':>10}{'optimum kg':>12}{'bound kg':>10}"
        f"{'capture(opt)':>14}{'late b/p':>10}"
    )
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        jobs = [j for j in generate_jobs(regions, START, 1.0, 40 + seed * 7 % 41, seed=seed) if j.gpus <= 8]
        jobs = [j for j in jobs if j.duration <= timedelta(hours=12)]
        cap = capacity(jobs, regions, 1.0, args.utilisation)
        cap = {r: max(8, c // 4) for r, c in cap.items()}
        for arm in arms:
            sim = settings(arm, args.joint, args.joint_every)
            res = simulate(tr, cap, jobs, sim, forecast_error=args.error, seed=1, align_traces=True, oracle=False)
            late = late_set(res.plan.records)
            o = solve_oracle(
                res.world,
                jobs,
                sim.power,
                sim.planner.default_gpu_watts,
                res.plan.records,
                time_limit_s=args.oracle_seconds,
                may_be_late=late,
            )
            assert o.lower_bound is not None
            base, plan_g = res.baseline_grams, res.plan_grams
            proved = "" if o.converged else " (not proven)"
            mb = sum(not r.deadline_met for r in res.baseline)
            print(
                f"{seed:>4}{len(jobs):>6}{arm:>15}{base / 1e3:>13,.1f}{plan_g / 1e3:>10,.1f}{o.grams / 1e3:>12,.1f}"
                f"{o.lower_bound / 1e3:>10,.1f}{(base - plan_g) / (base - o.grams):>14.1%}{f'{mb}/{len(late)}':>10}"
                f"{proved}",
                flush=True,
            )


if __name__ == "__main__":
    main()
