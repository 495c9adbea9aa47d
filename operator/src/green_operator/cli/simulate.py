"""`green-operator simulate` and `green-operator simulate generate`."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timedelta

from green_operator.api.interruption import Interruption, InterruptionPolicy
from green_operator.carbon.series import utc
from green_operator.carbon.trace_file import TraceFormatError, load_trace_csv
from green_operator.cli.output import add_output_flags, dump, output_format
from green_operator.planner import PlannerSettings, PowerPolicy, PowerRequest
from green_operator.simulate.engine import DEFAULT_REPLAN_INTERVAL, SimSettings
from green_operator.simulate.generator import generate_jobs
from green_operator.simulate.jobs_file import JobsFileError, read_jobs_csv, write_jobs_csv
from green_operator.simulate.world import TraceCoverageError


def _pairs(values: list[str] | None, flag: str, what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for v in values or []:
        name, sep, value = v.partition("=")
        if not sep or not name or not value:
            raise ValueError(f"{flag} expects REGION={what}, got {v!r}")
        if name in out:
            raise ValueError(f"{flag} names region {name!r} twice")
        out[name] = value
    return out


def _number(text: str, flag: str, kind: type[float] | type[int]) -> float:
    try:
        return kind(text)
    except ValueError as exc:
        raise ValueError(f"{flag}: {text!r} is not a {'whole ' if kind is int else ''}number") from exc


def run_simulate(args: argparse.Namespace) -> int:
    if getattr(args, "simulate_command", None) == "generate":
        return run_generate(args)
    from green_operator.simulate.report import format_text, simulate, to_json  # heavier: keeps `generate` light

    try:
        if not args.trace or not args.capacity or not args.jobs:
            raise ValueError("simulate needs --trace REGION=FILE, --capacity REGION=GPUS and --jobs FILE")
        scales = {
            k: _number(v, "--trace-scale", float)
            for k, v in _pairs(args.trace_scale, "--trace-scale", "FACTOR").items()
        }
        traces = {
            region: load_trace_csv(path, zone=region, scale=scales.get(region, 1.0))
            for region, path in _pairs(args.trace, "--trace", "FILE").items()
        }
        capacity = {
            k: int(_number(v, "--capacity", int)) for k, v in _pairs(args.capacity, "--capacity", "GPUS").items()
        }
        if any(c < 0 for c in capacity.values()):
            raise ValueError("--capacity must be >= 0 GPUs")
        if args.gpu_watts <= 0:
            raise ValueError("--gpu-watts must be positive")
        jobs = read_jobs_csv(args.jobs)
        settings = SimSettings(
            planner=PlannerSettings(
                slot=timedelta(minutes=args.slot_minutes),
                horizon=timedelta(hours=args.horizon_hours),
                default_gpu_watts=args.gpu_watts,
                hysteresis_fraction=args.hysteresis,
            ),
            power=PowerRequest(policy=PowerPolicy(args.power_policy), max_slowdown_percent=args.max_slowdown_percent),
            replan_interval=timedelta(minutes=args.replan_minutes),
            interruption=(
                Interruption(
                    InterruptionPolicy.CHECKPOINTED,
                    min_segment=timedelta(minutes=args.min_segment_minutes),
                    resume_overhead=timedelta(minutes=args.resume_overhead_minutes),
                )
                if args.interruptible
                else None
            ),
        )
        result = simulate(
            traces,
            capacity,
            jobs,
            settings,
            gpu_model=args.gpu_model,
            forecast_error=args.forecast_error,
            seed=args.seed,
            align_traces=args.align_traces,
            oracle=not args.no_oracle,
            oracle_time_limit_s=args.oracle_time_limit,
        )
    except (ValueError, TraceFormatError, JobsFileError, TraceCoverageError) as exc:
        print(f"green-operator simulate: {exc}", file=sys.stderr)
        return 2
    fmt = output_format(args)
    if fmt != "text":
        dump(to_json(result, per_job=not args.summary), fmt, sys.stdout)
    else:
        print(format_text(result, per_job=not args.summary))
    return 0


def run_generate(args: argparse.Namespace) -> int:
    try:
        regions = [r.strip() for r in args.regions.split(",") if r.strip()]
        start = utc(datetime.fromisoformat(args.start.replace("Z", "+00:00")))
        jobs = generate_jobs(regions, start, args.days, args.jobs_per_day, args.seed)
    except ValueError as exc:
        print(f"green-operator simulate generate: {exc}", file=sys.stderr)
        return 2
    if args.out == "-":
        write_jobs_csv(sys.stdout, jobs)
    else:
        write_jobs_csv(args.out, jobs)
        print(f"wrote {len(jobs)} jobs to {args.out}", file=sys.stderr)
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "simulate",
        help="replay carbon traces and a job list through the operator's decisions",
        description=(
            "Replays carbon traces and jobs through the operator's own reconciler on a fake clock (an "
            "in-memory cluster: each job a GreenTrainingJob, its child Job's pods running for the job's "
            "duration), and prints emissions for a carbon-blind baseline (run as soon as possible), what "
            "the operator does (first plans, re-plans, moves, bursts), and an oracle with perfect knowledge "
            "(LP/MILP, HiGHS). Deferred jobs are re-planned every --replan-minutes, as the operator does."
        ),
    )
    p.add_argument("--trace", action="append", metavar="REGION=FILE", help="carbon trace CSV (repeatable)")
    p.add_argument(
        "--trace-scale",
        action="append",
        metavar="REGION=FACTOR",
        help="unit factor for a trace, e.g. 0.453592 for WattTime lbs/MWh (repeatable)",
    )
    p.add_argument("--capacity", action="append", metavar="REGION=GPUS", help="GPUs in a region (repeatable)")
    p.add_argument(
        "--jobs", metavar="FILE", help="jobs CSV: id,submit_time,duration_minutes,gpus,deadline,regions,interruptible"
    )
    p.add_argument("--gpu-watts", type=float, default=300.0, metavar="W", help="average draw per GPU (default 300)")
    p.add_argument("--gpu-model", default="", help="GPU model for power profiles, e.g. H100 (default: none)")
    p.add_argument("--power-policy", choices=[p.value for p in (PowerPolicy.NONE, PowerPolicy.AUTO)], default="None")
    p.add_argument("--max-slowdown-percent", type=float, default=10.0)
    p.add_argument("--forecast-error", type=float, default=0.0, metavar="FRACTION", help="e.g. 0.1 for 10 %%")
    p.add_argument("--seed", type=int, default=0)
    add_output_flags(p, what="the results")
    p.add_argument("--summary", action="store_true", help="totals only, no per-job rows")
    p.add_argument("--slot-minutes", type=float, default=15.0)
    p.add_argument("--horizon-hours", type=float, default=48.0)
    replan = DEFAULT_REPLAN_INTERVAL.total_seconds() / 60
    p.add_argument(
        "--replan-minutes",
        type=float,
        default=replan,
        metavar="MINUTES",
        help=f"re-plan each deferred job this often (default {replan:g}: the operator's planner.replanInterval)",
    )
    p.add_argument("--hysteresis", type=float, default=0.05)
    p.add_argument(
        "--interruptible",
        action="store_true",
        help="pause and resume the jobs marked interruptible along their segments (default: one piece)",
    )
    p.add_argument("--min-segment-minutes", type=float, default=60.0, help="with --interruptible (default 60)")
    p.add_argument("--resume-overhead-minutes", type=float, default=5.0, help="with --interruptible (default 5)")
    p.add_argument("--align-traces", action="store_true", help="shift traces by whole weeks to cover the jobs")
    p.add_argument("--no-oracle", action="store_true", help="skip the oracle")
    p.add_argument("--oracle-time-limit", type=float, default=120.0, metavar="SECONDS")
    p.set_defaults(func=run_simulate)

    sub = p.add_subparsers(dest="simulate_command", metavar="generate")
    g = sub.add_parser("generate", help="write a realistic job list", description=generate_jobs.__doc__)
    g.add_argument("--regions", required=True, help="comma-separated region names, most used first")
    g.add_argument("--start", required=True, help="ISO time of the first possible submission")
    g.add_argument("--days", type=float, default=7.0)
    g.add_argument("--jobs-per-day", type=float, default=100.0)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--out", default="-", help="output CSV (default: standard output)")
    g.set_defaults(func=run_simulate)
