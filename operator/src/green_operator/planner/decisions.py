"""A planner schedule as the operator's ``Decision``s: where, when, at what limit, and why."""

from __future__ import annotations

from datetime import datetime, timedelta

from .grid import SlotGrid
from .model import Decision, JobRequest, PlannerSettings, PowerPolicy
from .placement import JobContext, Placement
from .power_profiles import PowerProfile
from .reasons import ReasonInputs, Risk, build_reason


def decision(
    job: JobRequest,
    ctx: JobContext,
    grid: SlotGrid,
    p: Placement,
    b: Placement,
    *,
    risk: Risk,
    kept: bool,
    now: datetime,
    settings: PlannerSettings,
    profile: PowerProfile | None,
) -> Decision:
    """Job ``job`` placed at ``p``, where the carbon-blind baseline would place it at ``b``."""
    region = grid.names[p.row]
    group = next(g for g in ctx.groups if p.row in g.rows)
    model = grid.gpu_models[p.row]
    reason = build_reason(
        ReasonInputs(
            now=now,
            earliest=ctx.earliest_time,
            region=region,
            start=p.start_time,
            intensity=p.intensity,
            baseline_region=grid.names[b.row],
            baseline_start=b.start_time,
            baseline_intensity=b.intensity,
            risk=risk,
            kept_previous=kept,
            hysteresis_fraction=settings.hysteresis_fraction,
            duration=job.duration,
            deadline=job.deadline,
            latest_start=job.latest_start,
            gpus=job.gpus,
            regions=job.regions or tuple(grid.names),
            max_region_capacity=ctx.max_region_capacity,
            policy=job.power.policy,
            option=p.option,
            lowest_energy_option=min(group.options, key=lambda o: o.energy_per_work),
            default_option=group.options[0],
            has_profile=profile is not None,
            gpu_model=model,
        )
    )
    limit = None if job.power.policy is PowerPolicy.NONE else p.option.limit_watts
    extrapolated = grid.slot * grid.extrapolated_slots(p.row, p.start, p.start + ctx.duration * p.option.slowdown)
    if extrapolated > timedelta(0):
        hours = extrapolated.total_seconds() / 3600
        reason += f" ({hours:.1f} h of the run lie past the forecast, on extrapolated intensity)"
    return Decision(
        key=job.key,
        region=region,
        start=p.start_time,
        power_limit_watts=limit,
        expected_duration=job.duration * p.option.slowdown,
        expected_grams=p.grams,
        forecast_intensity=p.intensity,
        baseline_region=grid.names[b.row],
        baseline_start=b.start_time,
        baseline_grams=b.grams,
        baseline_intensity=b.intensity,
        deadline_at_risk=risk is not Risk.NONE,
        reason=reason,
        extrapolated=extrapolated,
    )
