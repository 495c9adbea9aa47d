"""Emissions of MultiKueue dispatch: Kueue's default all-at-once dispatcher against the operator's
carbon-aware planner, on the same job list and carbon traces. No cluster: the simulator only.

The model (stated so it can be argued with):
- One worker cluster per region, each a grid zone with a real 2020 trace (data/carbon/): by default
  GB (lwa_gb_2020.csv), DE (lwa_ger_2020.csv), FR (lwa_fr_2020.csv), `--capacity` GPUs each. Every job
  may run in any worker (MultiKueue copies it to whichever is nominated).
- Jobs: the simulator's workload generator (green_operator/simulate/generator.py: debug, experiment
  and large training jobs with deadlines, office-hours arrivals), GPUs capped at one worker's capacity.
- (a) Kueue's default dispatcher (`kueue.x-k8s.io/multikueue-dispatcher-all-at-once`) nominates every
  worker at once and the first that admits wins: the job starts as soon as some worker has the GPUs
  free, in whichever of the free workers wins the race (modelled as a random order per job), at the
  default power. This is the simulator's carbon-blind baseline (`simulate.engine.run_baseline`) with
  each job's regions shuffled.
- (b) greedy: the same, but the worker with the lowest intensity at submission wins among the free
  ones (region choice without time shifting; the baseline again, regions sorted by intensity then).
- (c) the operator: its reconciler on a fake clock (`simulate.operator`, the same planning core as the
  live operator) chooses region and start on forecasts (the trace's future with `--forecast-error`
  noise), re-plans every 10 minutes and never plans past a deadline; power policy none (the same
  default power as (a)), so the difference is where and when, not how hard.
Every arm is charged against the same truth (each trace's 15-minute means). No figure is asserted.

    .venv/bin/python benchmarks/multicluster_dispatch.py [--days 7] [--jobs-per-day 20] [--capacity 64]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from green_operator.carbon.trace_file import load_trace_csv
from green_operator.planner import PowerPolicy, PowerRequest
from green_operator.simulate.engine import RunRecord, SimSettings, run_baseline
from green_operator.simulate.generator import generate_jobs
from green_operator.simulate.jobs_file import SimJob
from green_operator.simulate.report import simulate

DATA = Path(__file__).resolve().parents[1] / "data" / "carbon"
TRACES = {"GB": "lwa_gb_2020.csv", "DE": "lwa_ger_2020.csv", "FR": "lwa_fr_2020.csv"}


def dispatch_jobs(
    regions: list[str], start: datetime, days: float, per_day: float, capacity: int, seed: int
) -> list[SimJob]:
    """The generator's jobs, each allowed in every worker (in a random order: who wins Kueue's race)."""
    rng = np.random.default_rng(seed + 1)
    jobs = generate_jobs(regions, start, days, per_day, seed)
    return [
        replace(j, gpus=min(j.gpus, capacity), regions=tuple(str(r) for r in rng.permutation(regions))) for j in jobs
    ]


def summary(name: str, records: list[RunRecord], gpus: dict[str, int], baseline: float) -> str:
    grams = sum(r.grams for r in records)
    met = sum(r.deadline_met for r in records)
    by_region: dict[str, float] = {}
    for r in records:
        by_region[r.region] = by_region.get(r.region, 0.0) + r.duration.total_seconds() / 3600 * gpus[r.job_id]
    share = ", ".join(f"{k} {v / sum(by_region.values()):.0%}" for k, v in sorted(by_region.items()))
    saved = (baseline - grams) / baseline if baseline else 0.0
    return (
        f"{name:<34} {grams / 1e6:8.3f} t  saves {saved:6.1%}  deadlines met {met}/{len(records)}"
        f"  GPU-hours by region: {share}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--days", type=float, default=7)
    ap.add_argument("--jobs-per-day", type=float, default=20)
    ap.add_argument("--capacity", type=int, default=64, help="GPUs per worker cluster")
    ap.add_argument("--start", default="2020-06-01", help="first submission day (the traces cover 2020)")
    ap.add_argument("--forecast-error", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    regions = list(TRACES)
    traces = {z: load_trace_csv(DATA / f, zone=z) for z, f in TRACES.items()}
    capacity = dict.fromkeys(regions, args.capacity)
    start = datetime.fromisoformat(args.start).replace(tzinfo=UTC)
    jobs = dispatch_jobs(regions, start, args.days, args.jobs_per_day, args.capacity, args.seed)
    gpu_hours = sum(j.gpus * j.duration.total_seconds() / 3600 for j in jobs)
    busy = gpu_hours / (args.days * 24) / sum(capacity.values())
    print(
        f"{len(jobs)} jobs over {args.days:g} days from {args.start}, {gpu_hours:,.0f} GPU-hours "
        f"(mean {busy:.0%} of {sum(capacity.values())} GPUs in {len(regions)} workers busy); "
        f"forecast error {args.forecast_error:.0%}"
    )
    settings = SimSettings(power=PowerRequest(PowerPolicy.NONE))
    t0 = time.perf_counter()
    res = simulate(traces, capacity, jobs, settings, forecast_error=args.forecast_error, seed=args.seed, oracle=False)
    seconds = time.perf_counter() - t0
    world = res.world

    def intensity_now(region: str, t: datetime) -> float:
        return float(world.truth[world.row[region], int(world.to_slots(t))])

    greedy_jobs = [
        replace(j, regions=tuple(sorted(j.regions, key=lambda r: intensity_now(r, j.submit_time)))) for j in jobs
    ]
    greedy = run_baseline(world, greedy_jobs, settings)
    base = res.baseline_grams
    gpus = {j.id: j.gpus for j in jobs}
    for z in regions:
        row = world.truth[world.row[z]]
        print(f"  grid {z}: mean {row.mean():.0f} gCO2/kWh (min {row.min():.0f}, max {row.max():.0f})")
    print(summary("(a) Kueue all-at-once (first free)", res.baseline, gpus, base))
    print(summary("(b) greedy cleanest free worker now", greedy, gpus, base))
    print(summary("(c) operator: region and start", res.plan.records, gpus, base))
    print(f"simulation took {seconds:.1f} s ({res.plan.planner_calls} planner calls)")


if __name__ == "__main__":
    main()
