"""`green-operator run`: load and validate the configuration, then run kopf with our handlers."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from typing import Any

from green_operator.config import ConfigError, OperatorConfig, load_config


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
    if args.kubeconfig:
        # kopf logs in through the kubernetes client's own loaders, which read KUBECONFIG.
        os.environ["KUBECONFIG"] = args.kubeconfig
    return asyncio.run(_serve(config, args))


async def _serve(config: OperatorConfig, args: argparse.Namespace) -> int:
    import kopf
    from prometheus_client import start_http_server

    from green_operator.carbon.config import CarbonConfigError
    from green_operator.carbon.service import CarbonService
    from green_operator.controller import handlers
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
    controller = Controller(
        config, carbon, AsyncKube(await load_client(args.kubeconfig)), OperatorMetrics(), handlers.post_event
    )
    namespaces: list[str] = list(args.namespace or config.watch_namespaces)
    kwargs: dict[str, Any] = {"namespaces": namespaces} if namespaces else {"clusterwide": True}
    logging.getLogger(__name__).info(
        "starting with %d region(s) from %s, acting on %s",
        len(config.regions),
        config.source,
        ", ".join(namespaces) or "all namespaces",
    )
    try:
        await kopf.operator(
            standalone=True,
            memo=kopf.Memo(controller=controller, namespaces=tuple(namespaces)),
            liveness_endpoint=args.liveness or None,
            **kwargs,
        )
    finally:
        carbon.close()
    return 0
