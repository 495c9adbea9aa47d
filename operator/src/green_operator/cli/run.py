"""`green-operator run`: load and validate the configuration, then run kopf with our handlers."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

from green_operator.cli import lean_imports
from green_operator.config import ConfigError, OperatorConfig, load_config

REQUESTS_IN_FLIGHT = 16
"""The controller's requests at once (watches apart). A 2-core apiserver is busy with far fewer;
more only queue there, and each holds a connection and its TLS buffers in the operator. In the
burst benchmark (1,000 jobs, three runs each) 16 against the pool's 64: every job decided in
9.3-10.0 s against 10.2-11.7 s, p99 1.7-1.8 s against 1.4-2.5 s, peak RSS 135-184 against
187-196 MiB, operator CPU 3.6-4.2 against 4.4-6.1 s."""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("run", help="run the operator (kopf) against the current cluster")
    p.add_argument(
        "--config",
        default=os.environ.get("GREEN_OPERATOR_CONFIG"),
        help="operator configuration YAML (env GREEN_OPERATOR_CONFIG)",
    )
    p.add_argument("--kubeconfig", default=None, help="kubeconfig file (default: in-cluster, then KUBECONFIG)")
    p.add_argument(
        "--namespace",
        action="append",
        default=None,
        help="watch only this namespace (repeatable; default: the configuration's, else all namespaces)",
    )
    p.add_argument("--liveness", default="http://0.0.0.0:8081/healthz", help="kopf liveness endpoint URL")
    p.add_argument("--metrics-port", type=int, default=None, help="Prometheus port (overrides the config)")
    p.add_argument("--verbose", action="store_true")
    election = p.add_argument_group("leader election (run several replicas; one acts, the others stand by)")
    election.add_argument(
        "--leader-elect",
        action="store_true",
        default=os.environ.get("GREEN_LEADER_ELECT", "").lower() in ("1", "true"),
        help="hold a coordination.k8s.io Lease before acting; exit when it is lost (env GREEN_LEADER_ELECT)",
    )
    election.add_argument("--leader-election-id", default="green-training-operator", help="the Lease's name")
    election.add_argument(
        "--leader-election-namespace",
        default=os.environ.get("POD_NAMESPACE"),
        help="the Lease's namespace (default: env POD_NAMESPACE, else the first --namespace, else default)",
    )
    election.add_argument("--lease-duration", type=float, default=15.0, help="seconds (default 15)")
    election.add_argument("--renew-deadline", type=float, default=10.0, help="seconds (default 10)")
    election.add_argument("--retry-period", type=float, default=2.0, help="seconds (default 2)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.config:
        print("green-operator run: --config (or GREEN_OPERATOR_CONFIG) is required", file=sys.stderr)
        return 2
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"green-operator: invalid configuration: {exc}", file=sys.stderr)
        return 2
    if args.leader_elect:
        from green_operator.controller.lease import LeaseTimings

        try:
            LeaseTimings(args.lease_duration, args.renew_deadline, args.retry_period)
        except ValueError as exc:
            print(f"green-operator run: {exc}", file=sys.stderr)
            return 2
    if args.kubeconfig:
        # kopf logs in through the kubernetes client's own loaders, which read KUBECONFIG.
        os.environ["KUBECONFIG"] = args.kubeconfig
    return asyncio.run(_serve(config, args))


async def _serve(config: OperatorConfig, args: argparse.Namespace) -> int:
    # kopf imports the synchronous `kubernetes` client, when installed, only to recognise its
    # models (34 MiB resident); this process never uses it, and logs kopf in itself (handlers.login).
    sys.modules.setdefault("kubernetes", None)  # type: ignore[arg-type]
    # Nor does it use kubernetes_asyncio's 800 models (36 MiB): imported only when named.
    lean_imports.install()
    import kopf
    from prometheus_client import start_http_server

    from green_operator.carbon.config import CarbonConfigError
    from green_operator.carbon.service import CarbonService
    from green_operator.controller import handlers  # noqa: F401  (registers kopf's start-up and clean-up)
    from green_operator.controller.driver import Controller
    from green_operator.controller.kube import AsyncKube, load_client
    from green_operator.metrics import OperatorMetrics

    try:
        carbon = CarbonService.from_config(config.carbon)
    except CarbonConfigError as exc:
        print(f"green-operator: invalid carbon configuration: {exc}", file=sys.stderr)
        return 2
    port = args.metrics_port if args.metrics_port is not None else config.metrics_port
    if port:
        start_http_server(port)
    kube = AsyncKube(await load_client(args.kubeconfig), in_flight=REQUESTS_IN_FLIGHT)
    metrics = OperatorMetrics()
    controller = Controller(config, carbon, kube, metrics)
    namespaces: list[str] = list(args.namespace or config.watch_namespaces)
    kwargs: dict[str, Any] = {"namespaces": namespaces} if namespaces else {"clusterwide": True}
    # The lease has a client of its own: renewals never queue behind a burst's requests, and it
    # outlives kopf's cleanup, which closes the controller's client, so the lease can be released.
    elector = (
        _elector(args, AsyncKube(await load_client(args.kubeconfig, pool_size=2)), namespaces)
        if args.leader_elect
        else None
    )
    if elector is not None:
        # The standby answers liveness probes while it waits; kopf serves them once it leads.
        async with _standby_liveness(args.liveness):
            await elector.acquire()
    metrics.leader.set(1)
    logging.getLogger(__name__).info(
        "starting with %d region(s) from %s, acting on %s",
        len(config.regions),
        config.source,
        ", ".join(namespaces) or "all namespaces",
    )
    operator = asyncio.create_task(
        kopf.operator(
            standalone=True,
            memo=kopf.Memo(controller=controller, namespaces=tuple(namespaces)),
            liveness_endpoint=args.liveness or None,
            **kwargs,
        )
    )
    try:
        if elector is None:
            await operator
            return 0
        lost = asyncio.create_task(elector.hold())
        await asyncio.wait({operator, lost}, return_when=asyncio.FIRST_COMPLETED)
        if lost.done():
            # Stop acting at once: no cleanup handler may write after another replica took over.
            logging.getLogger(__name__).critical("leadership lost: exiting")
            logging.shutdown()
            os._exit(1)
        lost.cancel()
        await operator
        await elector.release()
        await elector.kube.close()
        return 0
    finally:
        carbon.close()


def _elector(args: argparse.Namespace, kube: Any, namespaces: list[str]) -> Any:
    import socket
    import uuid

    from green_operator.controller.election import LeaderElector
    from green_operator.controller.lease import LeaseTimings

    namespace = args.leader_election_namespace or (namespaces[0] if namespaces else "default")
    identity = f"{os.environ.get('POD_NAME') or socket.gethostname()}_{uuid.uuid4().hex[:8]}"
    timings = LeaseTimings(args.lease_duration, args.renew_deadline, args.retry_period)
    return LeaderElector(kube, namespace, args.leader_election_id, identity, timings)


@contextlib.asynccontextmanager
async def _standby_liveness(url: str | None) -> AsyncIterator[None]:
    if not url:
        yield
        return
    from urllib.parse import urlsplit

    from aiohttp import web

    parts = urlsplit(url)

    async def ok(_: web.Request) -> web.Response:
        return web.json_response({"standby": True})

    app = web.Application()
    app.router.add_get(parts.path or "/", ok)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, parts.hostname, parts.port or 80, reuse_address=True).start()
    try:
        yield
    finally:
        await runner.cleanup()
