"""The operator's in-memory coordination: bursts of first decisions and the late jobs' turn after."""

from __future__ import annotations

from typing import cast

from prometheus_client import CollectorRegistry

from green_operator.carbon.service import CarbonService
from green_operator.config import parse_config
from green_operator.kube import Kube
from green_operator.metrics import OperatorMetrics
from green_operator.runtime import BURST_JOBS, ForecastCache, Runtime


def runtime() -> Runtime:
    config = parse_config({"regions": [{"name": "r1"}]})
    carbon = CarbonService.from_config(config.carbon)
    return Runtime(
        config=config,
        carbon=carbon,
        kube=cast(Kube, None),  # the bookkeeping never calls the API
        metrics=OperatorMetrics(CollectorRegistry()),
        forecasts=ForecastCache(carbon, config),
    )


def test_a_long_queue_of_first_decisions_is_a_burst() -> None:
    rt = runtime()
    rt.unplanned.update(f"ns/j{i}" for i in range(BURST_JOBS))
    assert not rt.in_burst()
    rt.unplanned.add("ns/one-more")
    assert rt.in_burst()


def test_late_jobs_are_woken_once_no_first_decision_waits() -> None:
    rt = runtime()
    rt.unplanned.update({"ns/a", "ns/b"})
    rt.rescue.add("ns/late")
    woken = rt.wakeup("ns/late")
    rt.first_plan_done("ns/a")
    assert not rt.may_rescue()
    assert not woken.is_set()  # a first decision still waits
    rt.first_plan_done("ns/b")
    assert rt.may_rescue()
    assert woken.is_set()


def test_a_deleted_job_leaves_no_burst_behind() -> None:
    # A job deleted before its first decision must not keep the operator "in a burst" forever.
    rt = runtime()
    rt.unplanned.update(f"ns/j{i}" for i in range(BURST_JOBS + 1))
    rt.rescue.add("ns/j0")
    for i in range(BURST_JOBS + 1):
        rt.forget(f"ns/j{i}")
    assert not rt.in_burst()
    assert rt.may_rescue()
    assert rt.rescue == set()
