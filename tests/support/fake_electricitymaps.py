"""A stand-in Electricity Maps v3 server, run as its own process so a test can kill it for real.

Serves `carbon-intensity/forecast` and `carbon-intensity/history` in the documented response shape
(tests/operator/carbon/fixtures/electricitymaps_*.json) with points on a short grid around the
current time: a constant value per zone given on the command line, e.g. `DE=300 FR=50`.

    python -m tests.support.fake_electricitymaps --port 18123 --step 5 DE=300
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


def points(
    value: float, step: timedelta, before: timedelta, after: timedelta, low: tuple[datetime, datetime, float] | None
) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    start = now - (now - epoch) % step - before
    n = int((before + after) / step)
    out = []
    for i in range(n):
        t = start + i * step
        v = low[2] if low and low[0] <= t < low[1] else value
        out.append({"carbonIntensity": v, "datetime": t.strftime("%Y-%m-%dT%H:%M:%S.000Z")})
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--step", type=float, default=5.0, help="seconds between points")
    ap.add_argument(
        "--low-window",
        default=None,
        metavar="START,END,VALUE",
        help="RFC 3339 start and end of a cleaner window with its value (all zones)",
    )
    ap.add_argument("zones", nargs="+", help="ZONE=gCO2eq/kWh")
    args = ap.parse_args()
    low = None
    if args.low_window:
        a, b, v = args.low_window.split(",")
        low = (datetime.fromisoformat(a), datetime.fromisoformat(b), float(v))
    values = {z: float(v) for z, v in (item.split("=", 1) for item in args.zones)}
    step = timedelta(seconds=args.step)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            zone = (parse_qs(parts.query).get("zone") or [""])[0]
            if self.headers.get("auth-token") is None or zone not in values:
                self._send(401 if zone in values else 404, {"error": f"bad request for zone {zone!r}"})
            elif parts.path.endswith("/carbon-intensity/forecast"):
                pts = points(values[zone], step, timedelta(0), timedelta(hours=1), low)
                self._send(200, {"zone": zone, "forecast": pts, "updatedAt": pts[0]["datetime"]})
            elif parts.path.endswith("/carbon-intensity/history"):
                pts = points(values[zone], step, timedelta(hours=1), timedelta(0), low)
                for p in pts:
                    p.update(zone=zone, isEstimated=False, emissionFactorType="lifecycle")
                self._send(200, {"zone": zone, "history": pts})
            else:
                self._send(404, {"error": "not found"})

        def _send(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"listening on {args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
