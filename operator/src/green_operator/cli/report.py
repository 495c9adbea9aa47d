"""`green-operator report`: a table (or JSON) of GreenTrainingJobs' energy, emissions and savings, and
optionally a PNG chart of each region's carbon intensity with the jobs' windows drawn on it.

Read-only: it lists GreenTrainingJobs and, with --config, asks the configured carbon providers for
intensity history. Exit codes: 0 done, 1 the API or the chart failed, 2 bad arguments or configuration.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from green_operator.cli.output import add_output_flags, dump, output_format
from green_operator.times import utcnow

if TYPE_CHECKING:
    from green_operator.config import OperatorConfig
    from green_operator.reporting import JobRow

# Everything heavy (kubernetes, matplotlib, the carbon service) is imported inside the functions:
# the CLI imports every subcommand module to build its parser.


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "report",
        help="report GreenTrainingJobs' (and Kueue workloads') energy, emissions and savings (table, JSON, chart)",
        description=(
            "Lists GreenTrainingJobs with their region, start, duration, energy, emissions and the emissions "
            "saved against running immediately, with totals. --output also draws each region's carbon "
            "intensity with the jobs' run windows (history from --config's providers; without --config, "
            "only the intensities the statuses hold)."
        ),
    )
    scope = p.add_mutually_exclusive_group()
    scope.add_argument("-n", "--namespace", default=None, help="namespace (default: the kubeconfig context's)")
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="report every namespace")
    p.add_argument(
        "--since",
        default=None,
        metavar="DURATION_OR_TIME",
        help="only jobs created or started since then: a duration back from now (24h, 90m, 7d) or an RFC 3339 time",
    )
    p.add_argument("--config", default=None, help="operator configuration YAML whose carbon providers feed the chart")
    p.add_argument("--kubeconfig", default=None, help="kubeconfig file (default: in-cluster, then KUBECONFIG)")
    p.add_argument("--output", default=None, metavar="CHART.png", help="write the chart to this PNG file")
    add_output_flags(p, what="rows and totals")
    p.set_defaults(func=run)


def _err(message: str) -> None:
    print(f"green-operator report: {message}", file=sys.stderr)


def current_namespace(kubeconfig: str | None) -> str:
    """The namespace kubectl would use: the kubeconfig's current context, the pod's own, else default."""
    from kubernetes import config

    try:
        _, active = config.list_kube_config_contexts(config_file=kubeconfig)  # type: ignore[no-untyped-call]
        ns = ((active or {}).get("context") or {}).get("namespace")
        if ns:
            return str(ns)
    except (config.ConfigException, OSError):
        try:
            with open("/var/run/secrets/kubernetes.io/serviceaccount/namespace") as f:
                return f.read().strip() or "default"
        except OSError:
            pass
    return "default"


def run(args: argparse.Namespace) -> int:
    import urllib3
    from kubernetes.config import ConfigException

    from green_operator.cli.kube import KubeApiError
    from green_operator.config import ConfigError, load_config
    from green_operator.reporting import SinceError, compute_totals, parse_since, rows_from_items, select_since

    now = utcnow()
    try:
        since = parse_since(args.since, now) if args.since is not None else None
    except SinceError as exc:
        _err(str(exc))
        return 2
    config: OperatorConfig | None = None
    if args.config:
        try:
            config = load_config(args.config)
        except ConfigError as exc:
            _err(f"invalid configuration: {exc}")
            return 2

    namespace = None if args.all_namespaces else (args.namespace or current_namespace(args.kubeconfig))
    try:
        items = _list_jobs(args.kubeconfig, namespace)
    # An API answer (403; 404 without the CRD), no connection, a bad kubeconfig: say which, exit 1.
    except (KubeApiError, urllib3.exceptions.HTTPError, ConfigException, OSError, ValueError) as exc:
        _err(f"cannot list GreenTrainingJobs in {namespace or 'all namespaces'}: {exc}")
        return 1
    rows = select_since(rows_from_items(items), since)
    totals = compute_totals(rows)

    chart_info: dict[str, Any] | None = None
    notes: list[str] = []
    if args.output:
        try:
            chart_info, notes = _chart(rows, now, config, args.output)
        except _ChartError as exc:
            _err(str(exc))
            return exc.code

    fmt = output_format(args)
    if fmt != "text":
        from green_operator.reporting import report_json

        doc = report_json(rows, totals, now, namespace=namespace, since=since, chart=chart_info, notes=notes)
        dump(doc, fmt, sys.stdout)
    else:
        from green_operator.reporting import format_table

        scope = f"namespace {namespace}" if namespace else "all namespaces"
        window = f", created or started since {since:%Y-%m-%d %H:%M} UTC" if since else ""
        print(f"GreenTrainingJobs in {scope}{window}: {len(rows)}")
        print(format_table(rows, totals, now, notes))
    if chart_info is not None:
        print(f"green-operator report: wrote the chart to {chart_info['path']}", file=sys.stderr)
    return 0


def _list_jobs(kubeconfig: str | None, namespace: str | None) -> list[dict[str, Any]]:
    from green_operator.cli.kube import Kube, load_client_config
    from green_operator.kueue.accounting import report_item

    api = load_client_config(kubeconfig, pool_size=1)
    try:
        kube = Kube(api)
        items = kube.list_gtjs(namespace)
        # Kueue workloads the carbon check planned report alongside, named after the user's object.
        rows = (report_item(wl) for wl in kube.list_kueue_workloads(namespace))
        return items + [r for r in rows if r is not None]
    finally:
        api.close()  # type: ignore[no-untyped-call]


class _ChartError(RuntimeError):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _chart(
    rows: Sequence[JobRow], now: datetime, config: OperatorConfig | None, output: str
) -> tuple[dict[str, Any], list[str]]:
    """Fetch the regions' intensity (with a configuration), draw, save; returns JSON info and notes."""
    from green_operator.reporting import Curve, build_figure, chart_data, region_curves, report_span, write_png

    span = report_span(rows, now) or (now, now)
    curves: dict[str, list[Curve]] | None = None
    notes: list[str] = []
    if config is not None and span[1] > span[0]:
        from green_operator.carbon.config import CarbonConfigError
        from green_operator.carbon.service import CarbonService

        try:
            service = CarbonService.from_config(config.carbon)
        except CarbonConfigError as exc:
            raise _ChartError(f"invalid carbon configuration: {exc}", 2) from None
        try:
            curves = {}
            for region in sorted({r.region for r in rows if r.region}):
                curves[region], region_notes = region_curves(service, region, span[0], span[1], now)
                notes.extend(region_notes)
        finally:
            service.close()
    elif config is not None:
        curves = {}
    try:
        data = chart_data(rows, now, span, curves, notes=notes)
        path = write_png(build_figure(data), output)
    except ModuleNotFoundError as exc:
        raise _ChartError(
            f"the chart needs {exc.name}: pip install 'green-training-operator[tools]' (or drop --output)", 1
        ) from None
    except OSError as exc:
        raise _ChartError(f"cannot write the chart to {output}: {exc.strerror or exc}", 1) from None
    info = {
        "path": str(path),
        "intensity": "status" if curves is None else "carbon-service",
        "regions": [p.region for p in data.panels],
        "fallbackSources": {p.region: list(p.fallback_sources) for p in data.panels if p.fallback_sources},
    }
    return info, list(data.notes)
