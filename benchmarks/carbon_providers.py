"""Benchmark: what carbon data costs the operator on this machine.

    .venv/bin/python benchmarks/carbon_providers.py [--repeats 200]

Prints (1) load time of each real trace in data/carbon, (2) one 48 h forecast from the trace
provider replayed on today (toNow, with noise), (3) one CarbonService answer: a cache hit, a live
fetch of the Electricity Maps fixture from a local HTTP server, and a fallback to the trace when
that server answers 503, (4) stitching a 7-day window of 5-minute data with a static tail.
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests
from prometheus_client import CollectorRegistry

from green_operator.carbon import DataSource
from green_operator.carbon.assemble import Candidate, assemble, static_series
from green_operator.carbon.config import parse_carbon_config
from green_operator.carbon.metrics import CarbonMetrics
from green_operator.carbon.service import CarbonService
from green_operator.carbon.trace_file import load_trace_csv
from green_operator.carbon.trace_provider import TraceProvider

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data" / "carbon"
FIXTURE = REPO / "tests" / "operator" / "carbon" / "fixtures" / "electricitymaps_forecast.json"


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, float]:
    """Median and p95 wall time in milliseconds."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.95))]


class _Server:
    def __init__(self, body: bytes) -> None:
        self.down = False
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, data = (503, b'{"error":"down"}') if outer.down else (200, body)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=200)
    args = ap.parse_args()
    n = args.repeats

    print("1) trace files (load_trace_csv)")
    traces = {}
    for f in sorted(DATA.glob("*.csv")):
        t = time.perf_counter()
        traces[f.stem] = load_trace_csv(f, zone=f.stem)
        print(f"   {f.name:36s} {len(traces[f.stem]):6d} rows  {(time.perf_counter() - t) * 1000:7.1f} ms")

    print("2) trace provider, toNow + 5% noise, 48 h forecast (15-min data -> 192 points)")
    tp = TraceProvider(
        "demo",
        {"DE": traces["lwa_ger_2020"]},
        shift="toNow",
        anchor=datetime(2020, 6, 1, tzinfo=UTC),
        noise_fraction=0.05,
        seed=1,
    )
    now = datetime.now(UTC)
    med, p95 = timed(lambda: tp.forecast("DE", now, now + timedelta(hours=48)), n)
    print(f"   median {med:.3f} ms   p95 {p95:.3f} ms")

    print("3) CarbonService.forecast, 24 h window, Electricity Maps shape on a local HTTP server")
    srv = _Server(FIXTURE.read_bytes())
    clock_now = [datetime(2020, 6, 1, 0, 10, tzinfo=UTC)]
    doc = {
        "providers": {
            "emaps": {"type": "electricitymaps", "baseUrl": srv.url + "/v3/"},
            "demo": {"type": "trace", "files": {"DE": str(DATA / "lwa_ger_2020.csv")}},
        },
        "carbon": {"maxRetries": 0, "retryBackoff": "1s", "maxRetryBackoff": "1s"},
        "regions": [
            {
                "name": "r",
                "carbon": {"provider": "emaps", "zone": "GB", "fallbackTrace": {"provider": "demo", "zone": "DE"}},
            }
        ],
    }

    def session() -> requests.Session:
        s = requests.Session()
        s.trust_env = False
        return s

    svc = CarbonService.from_config(
        parse_carbon_config(doc),
        clock=lambda: clock_now[0],
        session_factory=session,
        metrics=CarbonMetrics(CollectorRegistry()),
    )
    w = (clock_now[0], clock_now[0] + timedelta(hours=24))
    assert svc.forecast("r", *w).source is DataSource.LIVE
    med, p95 = timed(lambda: svc.forecast("r", *w), n)
    print(f"   cache hit:            median {med:.3f} ms   p95 {p95:.3f} ms")

    def live() -> None:
        clock_now[0] += timedelta(minutes=11)  # past the 10-minute cache TTL: fetch again
        assert svc.forecast("r", clock_now[0], clock_now[0] + timedelta(hours=24)).source is DataSource.LIVE

    med, p95 = timed(live, min(n, 100))
    print(f"   live fetch + parse:   median {med:.3f} ms   p95 {p95:.3f} ms")
    srv.down = True

    def fallback() -> None:
        clock_now[0] += timedelta(hours=3)  # past the backoff and staleAfter: provider tried, trace used
        r = svc.forecast("r", clock_now[0], clock_now[0] + timedelta(hours=24))
        assert r.source in (DataSource.CACHED, DataSource.TRACE), r.source

    med, p95 = timed(fallback, min(n, 20))
    print(f"   503 -> fallback:      median {med:.3f} ms   p95 {p95:.3f} ms")
    svc.close()
    srv.close()

    print("4) assemble: 7-day window, 5-min live data for 3 days, static for the rest")
    t0 = datetime(2023, 6, 8, tzinfo=UTC)
    wt = traces["watttime_caiso_north_2023-06"].window(t0, t0 + timedelta(days=3))
    end = t0 + timedelta(days=7)
    cands = [
        Candidate(DataSource.LIVE, "wt", wt, t0),
        Candidate(DataSource.STATIC, "static", static_series("Z", t0, end, 300.0)),
    ]
    med, p95 = timed(lambda: assemble("Z", t0, end, cands), min(n, 50))
    print(f"   {len(wt)} + static points: median {med:.3f} ms   p95 {p95:.3f} ms")
    print(json.dumps({"note": "single process, 2-core shared machine; figures are indicative"}))


if __name__ == "__main__":
    main()
