"""Running a whole simulation and presenting its result (text table or JSON)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from green_operator.carbon.series import IntensitySeries
from green_operator.planner import PowerPolicy

from .engine import PlanArm, RunRecord, SimSettings, run_baseline
from .jobs_file import SimJob, check_regions
from .operator import run_operator
from .world import ForecastModel, World, build_world, check_regions_match, first_slot


@dataclass(frozen=True)
class SimulationResult:
    world: World
    jobs: Sequence[SimJob]
    settings: SimSettings
    forecast_error: float
    seed: int
    baseline: list[RunRecord]
    plan: PlanArm
    oracle: Any | None
    """OracleResult, or None when the oracle was skipped."""

    @staticmethod
    def _total(records: Sequence[RunRecord]) -> float:
        return sum(r.grams for r in records)

    @property
    def baseline_grams(self) -> float:
        return self._total(self.baseline)

    @property
    def plan_grams(self) -> float:
        return self._total(self.plan.records)

    def savings(self, grams: float) -> float:
        b = self.baseline_grams
        return (b - grams) / b if b > 0 else 0.0

    @property
    def oracle_reference(self) -> float | None:
        """The oracle figure savings are measured against: the proven bound when there is one."""
        if self.oracle is None:
            return None
        return float(self.oracle.lower_bound if self.oracle.lower_bound is not None else self.oracle.grams)

    @property
    def capture(self) -> float | None:
        """Share of the oracle's savings the plan achieves (1.0 = all of them)."""
        ref = self.oracle_reference
        if ref is None:
            return None
        possible = self.baseline_grams - ref
        if possible <= 1e-9 * max(self.baseline_grams, 1.0):
            return 1.0 if self.plan_grams <= self.baseline_grams + 1e-6 else 0.0
        return (self.baseline_grams - self.plan_grams) / possible


def simulate(
    traces: Mapping[str, IntensitySeries],
    capacity: Mapping[str, int],
    jobs: Sequence[SimJob],
    settings: SimSettings,
    *,
    gpu_model: str = "",
    forecast_error: float = 0.0,
    seed: int = 0,
    align_traces: bool = False,
    oracle: bool = True,
    oracle_time_limit_s: float = 120.0,
) -> SimulationResult:
    check_regions_match(traces, capacity)
    check_regions(jobs, traces)
    slot = settings.planner.slot
    start = first_slot(jobs, slot)
    longest = max(j.duration for j in jobs)
    last_deadline = max(j.deadline for j in jobs)
    # Room for late starts under capacity pressure and for the planner's forecast horizon.
    required_end = last_deadline + longest * 2
    end = required_end + settings.planner.horizon + timedelta(days=2)
    world = build_world(
        traces,
        capacity,
        start=start,
        end=end,
        slot=slot,
        gpu_model=gpu_model,
        align=align_traces,
        required_end=required_end,
    )
    forecasts = ForecastModel(world, forecast_error, seed)
    baseline = run_baseline(world, jobs, settings)
    plan_arm = run_operator(world, jobs, settings, forecasts)
    oracle_result = None
    if oracle:
        from .oracle import solve_oracle  # scipy: only when the oracle runs

        oracle_result = solve_oracle(
            world,
            jobs,
            settings.power,
            settings.planner.default_gpu_watts,
            plan_arm.records,
            time_limit_s=oracle_time_limit_s,
        )
    return SimulationResult(world, jobs, settings, forecast_error, seed, baseline, plan_arm, oracle_result)


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _record_json(r: RunRecord) -> dict[str, Any]:
    return {
        "region": r.region,
        "start": _iso(r.start),
        "power_limit_watts": r.power_limit_watts,
        "duration_minutes": round(r.duration.total_seconds() / 60, 2),
        "grams": round(r.grams, 3),
        "deadline_met": r.deadline_met,
    }


def to_json(res: SimulationResult, *, per_job: bool = True) -> dict[str, Any]:
    missed = {
        "baseline": sum(not r.deadline_met for r in res.baseline),
        "plan": sum(not r.deadline_met for r in res.plan.records),
    }
    out: dict[str, Any] = {
        "jobs": len(res.jobs),
        "regions": {
            r: {"capacity_gpus": res.world.capacity[r], "trace_shift_days": res.world.shifts[r].days}
            for r in res.world.regions
        },
        "settings": {
            "slot_minutes": res.settings.planner.slot.total_seconds() / 60,
            "horizon_hours": res.settings.planner.horizon.total_seconds() / 3600,
            "replan_interval_minutes": res.settings.replan_interval.total_seconds() / 60,
            "hysteresis_fraction": res.settings.planner.hysteresis_fraction,
            "gpu_watts": res.settings.planner.default_gpu_watts,
            "gpu_model": res.world.gpu_model or None,
            "power_policy": str(res.settings.power.policy),
            "max_slowdown_percent": res.settings.power.max_slowdown_percent
            if res.settings.power.policy is PowerPolicy.AUTO
            else None,
            "forecast_error": res.forecast_error,
            "seed": res.seed,
        },
        "totals": {
            "baseline_grams": round(res.baseline_grams, 1),
            "plan_grams": round(res.plan_grams, 1),
            "plan_savings": round(res.savings(res.plan_grams), 5),
        },
        "deadlines_missed": missed,
        "plan_stats": {
            "decisions": res.plan.decisions,
            "planner_calls": res.plan.planner_calls,
            "replans": res.plan.replans,
            "busiest_replan_minute": res.plan.busiest_replan_minute,
            "moves": res.plan.moves,
            "moved_aside": res.plan.moved_aside,
            "flagged_at_risk": res.plan.flagged,
            "burst_plans": res.plan.burst_plans,
            "burst_late": res.plan.burst_late,
            "waited_for_gpus": res.plan.waited_for_gpus,
            "events": dict(res.plan.events),
            "accounted_grams": round(res.plan.accounted_grams, 1),
            "accounted_baseline_grams": round(res.plan.accounted_baseline_grams, 1),
        },
    }
    if res.oracle is not None:
        o = res.oracle
        out["totals"].update(
            {
                "oracle_grams": round(o.grams, 1),
                "oracle_lower_bound_grams": None if o.lower_bound is None else round(o.lower_bound, 1),
                "oracle_savings": round(res.savings(o.grams), 5),
                "oracle_bound_savings": None if o.lower_bound is None else round(res.savings(o.lower_bound), 5),
                "plan_capture_of_oracle_savings": None if res.capture is None else round(res.capture, 5),
            }
        )
        missed["oracle"] = o.late
        out["oracle_stats"] = {
            "columns": o.columns,
            "iterations": o.iterations,
            "converged": o.converged,
            "seconds": round(o.seconds, 2),
        }
    if res.world.padded_from < res.world.length:
        out["warnings"] = [f"a trace ended at slot {res.world.padded_from}; its mean stands in beyond (late runs only)"]
    if per_job:
        rows = []
        for k, job in enumerate(res.jobs):
            row: dict[str, Any] = {
                "id": job.id,
                "gpus": job.gpus,
                "baseline": _record_json(res.baseline[k]),
                "plan": _record_json(res.plan.records[k]),
            }
            if res.oracle is not None:
                row["oracle"] = _record_json(res.oracle.records[k])
            rows.append(row)
        out["per_job"] = rows
    return out


def _kg(g: float) -> str:
    return f"{g / 1000:,.1f} kg"


def format_text(res: SimulationResult, *, per_job: bool = True) -> str:
    lines = [
        f"{len(res.jobs)} jobs, regions: "
        + ", ".join(f"{r} ({res.world.capacity[r]} GPUs)" for r in res.world.regions)
        + f"; forecast error {res.forecast_error:.0%}, seed {res.seed}",
        "",
        f"{'arm':<22}{'emissions':>14}{'saved vs baseline':>20}{'deadlines missed':>18}",
    ]

    def line(name: str, grams: float, missed: int | str) -> None:
        lines.append(f"{name:<22}{_kg(grams):>14}{res.savings(grams):>20.1%}{missed!s:>18}")

    line("baseline (run now)", res.baseline_grams, sum(not r.deadline_met for r in res.baseline))
    line("plan", res.plan_grams, sum(not r.deadline_met for r in res.plan.records))
    if res.oracle is not None:
        line("oracle (best found)", res.oracle.grams, res.oracle.late)
        if res.oracle.lower_bound is not None:
            line("oracle (lower bound)", res.oracle.lower_bound, "-")
        if res.capture is not None and not math.isnan(res.capture):
            lines.append("")
            lines.append(f"The plan captures {res.capture:.1%} of the oracle's savings.")
    arm = res.plan
    lines.append(
        f"Operator: {arm.decisions} decisions, {arm.planner_calls} planner calls, {arm.replans} re-plans "
        f"(at most {arm.busiest_replan_minute} in one minute), "
        f"{arm.moves} moves ({arm.moved_aside} moved aside for another job), {arm.flagged} jobs flagged at risk, "
        f"{arm.burst_plans} first plans in a burst ({arm.burst_late} left late), "
        f"{arm.waited_for_gpus} jobs waited for GPUs."
    )
    if arm.events:
        lines.append("Events: " + ", ".join(f"{reason} {n}" for reason, n in arm.events.items()) + ".")
    if per_job:
        lines.append("")
        head = f"{'job':<12}{'baseline g':>12}{'plan g':>12}  {'plan region':<14}{'plan start':<22}"
        if res.oracle is not None:
            head += f"{'oracle g':>12}"
        lines.append(head)
        for k, job in enumerate(res.jobs):
            b, p = res.baseline[k], res.plan.records[k]
            text = f"{job.id:<12}{b.grams:>12.0f}{p.grams:>12.0f}  {p.region:<14}{_iso(p.start):<22}"
            if res.oracle is not None:
                text += f"{res.oracle.records[k].grams:>12.0f}"
            lines.append(text)
    return "\n".join(lines)
