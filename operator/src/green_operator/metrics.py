"""The operator's own Prometheus metrics (the carbon providers' live in carbon/metrics.py).

Names follow DESIGN section 9: `greentraining_` prefix, base units, counters end in `_total`.
Labels are bounded (phase, region, namespace, outcome, deadline_at_risk): never a job name, which
would explode cardinality on a busy cluster.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from green_operator.api.phase import Phase

PHASES = tuple(str(p) for p in Phase)
DECISION_OUTCOMES = ("deferred", "started", "replanned")
RECONCILE_ACTIONS = ("plan", "replan", "release")
JOINT_OUTCOMES = ("optimal", "improved", "fallback", "timeout")
"""Who made a periodic joint re-plan's plan (planner.joint.OUTCOMES)."""


class OperatorMetrics:
    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.leader = Gauge(
            "greentraining_operator_leader",
            "1 while this replica acts (it holds the leader Lease, or runs without leader election); "
            "0 while it stands by.",
            registry=registry,
        )
        self.jobs = Gauge(
            "greentraining_jobs",
            "GreenTrainingJobs known to the operator, by phase.",
            ["phase"],
            registry=registry,
        )
        for p in PHASES:
            self.jobs.labels(p).set(0)
        self.reconcile_seconds = Histogram(
            "greentraining_reconcile_duration_seconds",
            "Time to take one decision for a job (plan, create or update the Job, write status).",
            ["action"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=registry,
        )
        for a in RECONCILE_ACTIONS:
            self.reconcile_seconds.labels(a)
        self.decisions = Counter(
            "greentraining_decisions_total",
            "Planning decisions by outcome (deferred, started, replanned; exclusive, so a sum over "
            'outcomes counts each decision once) and whether they put the deadline at risk ("true", "false").',
            ["outcome", "deadline_at_risk"],
            registry=registry,
        )
        # Label values known in advance start at 0 (here and for reconcile_seconds): a series that
        # appears already at 1 shows no increase(), so the first decision would be invisible to the
        # deadline-at-risk alert and the dashboard's rates.
        for o in DECISION_OUTCOMES:
            for risk in ("true", "false"):
                self.decisions.labels(o, risk)
        self.deferral_seconds = Histogram(
            "greentraining_deferral_seconds",
            "How long jobs waited for their low-carbon window (from creation to release).",
            buckets=(1, 10, 60, 300, 900, 1800, 3600, 7200, 14400, 28800, 57600, 86400, 172800),
            registry=registry,
        )
        self.planned_grams = Counter(
            "greentraining_planned_emissions_grams_total",
            "Expected emissions of the plans made (gCO2eq), by region.",
            ["region"],
            registry=registry,
        )
        self.planned_baseline_grams = Counter(
            "greentraining_planned_baseline_emissions_grams_total",
            "Expected emissions had the planned jobs run immediately (gCO2eq), by the plan's region.",
            ["region"],
            registry=registry,
        )
        self.emitted_grams = Counter(
            "greentraining_job_emissions_grams_total",
            "Emissions of finished jobs, energy integrated over the region's intensity (gCO2eq).",
            ["namespace", "region"],
            registry=registry,
        )
        self.saved_grams = Counter(
            "greentraining_emissions_saved_grams_total",
            "Emissions saved against running immediately (gCO2eq); negative savings are counted in "
            "greentraining_emissions_excess_grams_total instead, since counters cannot go down.",
            ["namespace", "region"],
            registry=registry,
        )
        self.excess_grams = Counter(
            "greentraining_emissions_excess_grams_total",
            "Emissions above the run-immediately baseline for jobs whose plan did worse (gCO2eq).",
            ["namespace", "region"],
            registry=registry,
        )
        self.energy_joules = Counter(
            "greentraining_job_energy_joules_total",
            "Energy used by finished jobs as reported by their trainers (J), by meter.",
            ["namespace", "region", "meter"],
            registry=registry,
        )
        self.reports_refused = Counter(
            "greentraining_trainer_reports_refused_total",
            "Trainer reports (termination messages) the operator refused, by reason: TooLarge, InvalidJson, "
            "InvalidEnergy, NegativeEnergy, NonFiniteEnergy, AbsurdEnergy. Those pods' energy is estimated.",
            ["namespace", "reason"],
            registry=registry,
        )
        self.finished = Counter(
            "greentraining_jobs_finished_total",
            "Jobs that ended, by phase.",
            ["namespace", "phase"],
            registry=registry,
        )
        self.deadline_at_risk = Gauge(
            "greentraining_jobs_deadline_at_risk",
            "Jobs whose deadline cannot be met (DeadlineAtRisk=True).",
            registry=registry,
        )

        self.joint_replans = Counter(
            "greentraining_joint_replan_total",
            "Periodic joint re-plans of the deferred jobs, by what produced the plan: optimal (the MILP "
            "proved its optimum over the runs considered), improved (the optimiser's LP-guided plan), "
            "fallback (the heuristic's, the solver having failed or done worse), timeout (the optimiser "
            "ran out of its time budget).",
            ["outcome"],
            registry=registry,
        )
        for o in JOINT_OUTCOMES:
            self.joint_replans.labels(o)
        self.joint_moves = Counter(
            "greentraining_joint_replan_moves_total",
            "Deferred jobs moved by periodic joint re-plans.",
            registry=registry,
        )

    def record_joint(self, outcome: str, moves: int) -> None:
        if outcome not in JOINT_OUTCOMES:
            raise ValueError(f"unknown joint re-plan outcome {outcome!r}; expected one of {', '.join(JOINT_OUTCOMES)}")
        self.joint_replans.labels(outcome).inc()
        self.joint_moves.inc(moves)

    def record_decision(self, outcome: str, at_risk: bool) -> None:
        """Count one planning decision; ``outcome`` is one of DECISION_OUTCOMES."""
        if outcome not in DECISION_OUTCOMES:
            raise ValueError(f"unknown decision outcome {outcome!r}; expected one of {', '.join(DECISION_OUTCOMES)}")
        self.decisions.labels(outcome, "true" if at_risk else "false").inc()

    def track_jobs(self, phases: Callable[[], Iterable[str]], at_risk: Callable[[], int]) -> None:
        """Jobs by phase and jobs at risk, counted when scraped: counting them again on every
        watch event costs O(jobs) per event, a million steps in a burst of a thousand. The scrape runs
        in another thread: each callable must read its data in one step (a copy made in C)."""
        for p in PHASES:
            self.jobs.labels(p).set_function(_count_of(p, phases))
        self.deadline_at_risk.set_function(at_risk)


def _count_of(phase: str, phases: Callable[[], Iterable[str]]) -> Callable[[], float]:
    return lambda: sum(1 for x in phases() if x == phase)
