"""A live provider dies in the middle of a run and comes back: the operator keeps deciding on
fallback data, says so in status and metrics, keeps every deadline, and recovers."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from harness.cluster import REPO, kubectl
from harness.operator import OperatorProcess
from harness.processes import free_port
from harness.waiting import wait_for
from tests.support.gtjs import (
    SLOT,
    condition,
    create,
    gtj,
    phase_is,
    status,
    traces_with_window,
    ts,
)
from tests.support.operator_config import make_config

pytestmark = pytest.mark.integration

REGION = "europe-west3"
TOKEN = "emk_Q3v8ZrT5pL9xW2nB7cYh1KdJ4sA6gUfE"
"""A real-looking Electricity Maps token: no log line, status or Event may carry it."""


class FakeProvider:
    def __init__(self, port: int, low_window: str) -> None:
        self.port = port
        self.low_window = low_window
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.support.fake_electricitymaps",
                "--port",
                str(self.port),
                "--step",
                "5",
                "--low-window",
                self.low_window,
                "DE=320",
            ],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(self._up, timeout=20, message="the fake Electricity Maps server")

    def _up(self) -> bool:
        try:
            req = urllib.request.Request(f"http://127.0.0.1:{self.port}/v3/x?zone=DE", headers={"auth-token": "t"})
            urllib.request.urlopen(req, timeout=1)
        except urllib.error.HTTPError:
            return True  # it answers (404 for this path)
        except OSError:
            return False
        return True

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text: str = r.read().decode()
        return text


def sample(text: str, name: str, **labels: str) -> float | None:
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    del want
    return None


def carbon(namespace: str, name: str) -> dict[str, Any] | None:
    return condition(status(namespace, name), "CarbonDataAvailable")


def test_operator_rides_out_a_provider_outage(tmp_path: Path, namespace: str, crd: None) -> None:
    now = datetime.now(UTC)
    traces = traces_with_window(now, low_from=timedelta(minutes=20), low_for=timedelta(minutes=5), clean_region=REGION)
    # Live data: dirty now, clean from +60 s for a minute, so the first job waits (and is re-planned).
    low = f"{(now + timedelta(seconds=60)).isoformat()},{(now + timedelta(seconds=120)).isoformat()},40"
    provider = FakeProvider(free_port(), low)
    provider.start()
    live = {
        REGION: {
            "provider": "emaps",
            "zone": "DE",
            "fallbackTrace": {"provider": "traces", "zone": REGION},
            "_providers": {
                "emaps": {
                    "type": "electricitymaps",
                    "baseUrl": f"http://127.0.0.1:{provider.port}/v3/",
                    "tokenEnv": "EMAPS_TOKEN",
                    "timeoutSeconds": 2,
                }
            },
        }
    }
    config = make_config(
        tmp_path,
        traces,
        slot=SLOT,
        horizon=timedelta(minutes=10),
        replan=timedelta(seconds=3),
        live_regions=live,
        carbon={"cacheTTL": "2s", "staleAfter": "6s", "retryBackoff": "1s", "maxRetryBackoff": "2s", "maxRetries": 0},
    )
    mport = free_port()
    op = OperatorProcess(config, namespace, tmp_path / "operator.log", {"EMAPS_TOKEN": TOKEN}, mport).start()
    try:
        create(namespace, gtj("before", duration="20s", max_delay="100s", regions=[REGION]))
        wait_for(lambda: phase_is(namespace, "before", "Deferred"), timeout=30, message="a deferral on live data")
        c = carbon(namespace, "before")
        assert c is not None
        assert (c["status"], c["reason"]) == ("True", "LiveData")
        assert "emaps" in c["message"]

        provider.kill()

        def fallback_in_force() -> dict[str, Any] | None:
            c = carbon(namespace, "before")
            return c if c and c["status"] == "False" else None

        # Within the cache TTL an answer still counts as live; after it, the re-plan reports the fallback:
        # the last good forecast (marked stale after staleAfter), then the trace, then the static factor.
        c = wait_for(fallback_in_force, timeout=40, message="the deferred job's re-plan to report the fallback")
        assert c["reason"] in ("StaleData", "FallbackData")
        assert "ConnectionError" in c["message"]  # the provider's error is named
        assert "reachable" in c["message"]

        create(namespace, gtj("during", duration="20s", max_delay="40s", regions=[REGION]))
        st = wait_for(
            lambda: phase_is(namespace, "during", "Deferred", "Running", "Succeeded"),
            timeout=30,
            message="a decision while the provider is down",
        )
        during = condition(st, "CarbonDataAvailable")
        assert during is not None
        assert during["status"] == "False"
        assert during["reason"] in ("StaleData", "FallbackData")
        text = metrics(mport)
        errors = sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith('greentraining_provider_errors_total{provider="emaps"')
        )
        assert errors >= 1
        assert sample(text, "greentraining_provider_fallback_active", region=REGION, source="live") == 0.0
        assert 1.0 in (
            sample(text, "greentraining_provider_fallback_active", region=REGION, source=s) for s in ("cached", "trace")
        )

        provider.start()

        def recovered() -> dict[str, Any] | None:
            c = carbon(namespace, "before")
            return c if c and c["status"] == "True" else None

        wait_for(recovered, timeout=40, message="live data again after the provider came back")
        text = metrics(mport)
        assert sample(text, "greentraining_provider_fallback_active", region=REGION, source="live") == 1.0
        # Forecast vs later actual: the live forecasts of slots now past were scored against the
        # provider's history; this fake forecasts exactly what it later reports, so the error is 0.
        scored = sample(text, "greentraining_forecast_error_ratio_count", region=REGION, lead="0-1h")
        assert scored is not None
        assert scored >= 1
        assert sample(text, "greentraining_forecast_error_ratio_sum", region=REGION, lead="0-1h") == 0.0

        # The deadlines held throughout.
        for name in ("before", "during"):
            st = wait_for(
                lambda n=name: phase_is(namespace, n, "Running", "Succeeded"), timeout=120, message=f"{name} to start"
            )
            assert ts(st["startTime"]) <= ts(st["latestStart"]) + timedelta(seconds=5)
        # The whole operator log, the jobs' statuses and Events: the token reached the provider only.
        assert TOKEN not in (tmp_path / "operator.log").read_text()
        assert TOKEN not in json.dumps([status(namespace, n) for n in ("before", "during")])
        assert TOKEN not in kubectl("-n", namespace, "get", "events", "-o", "json").stdout
    finally:
        op.stop()
        provider.kill()
