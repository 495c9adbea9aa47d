"""The planner: pure placement of jobs in space (region), time (start) and power (GPU limit).

No Kubernetes, no HTTP, no clock: everything comes in as arguments, so the operator and the
simulator run exactly the same code.
"""

from .model import (
    Decision,
    JobRequest,
    PlannerSettings,
    PowerPolicy,
    PowerRequest,
    RegionForecast,
    Reservation,
)
from .power import PowerOption, choose_power_limit, default_option, fixed_option, power_options
from .power_profiles import PROFILES, PowerProfile, ProfilePoint, power_profile
from .preemption import PreemptionResult, RepairMemo, plan_with_preemption
from .scheduler import latest_start, plan
from .segments import Segment, SegmentJob, SegmentPlan, plan_segments

__all__ = [
    "PROFILES",
    "Decision",
    "JobRequest",
    "PlannerSettings",
    "PowerOption",
    "PowerPolicy",
    "PowerProfile",
    "PowerRequest",
    "PreemptionResult",
    "ProfilePoint",
    "RegionForecast",
    "RepairMemo",
    "Reservation",
    "Segment",
    "SegmentJob",
    "SegmentPlan",
    "choose_power_limit",
    "default_option",
    "fixed_option",
    "latest_start",
    "plan",
    "plan_segments",
    "plan_with_preemption",
    "power_options",
    "power_profile",
]
