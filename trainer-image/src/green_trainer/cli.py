"""Command line: `green-trainer run -- <command> [args]`."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from green_trainer import __version__
from green_trainer.node_agent.options import add_arguments
from green_trainer.nvml import load_nvml
from green_trainer.runner import resolve_child_user, run
from green_trainer.settings import SettingsError, settings_from_env

USAGE_ERROR = 2

DESCRIPTION = """\
Runs a training command with the operator's GPU power limit applied, its energy metered (NVML,
else RAPL, else a labelled estimate) and served as Prometheus metrics, and writes a JSON report
to the termination-message path at exit. Configured by GREEN_* environment variables (see the
image README). Exits with the command's status."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="green-trainer", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"green-trainer {__version__}")
    commands = parser.add_subparsers(dest="subcommand", required=True)
    run_parser = commands.add_parser("run", help="run a training command under the wrapper")
    run_parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command and its arguments")
    agent_parser = commands.add_parser(
        "node-agent", help="the GPU node agent (DaemonSet): power limits per pod's GPUs, per-pod energy"
    )
    add_arguments(agent_parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(sys.argv[1:] if argv is None else list(argv))
    level = os.environ.get("GREEN_LOG_LEVEL", "").strip().upper()
    logging.basicConfig(
        level=level if level in logging.getLevelNamesMapping() else logging.INFO,
        format="green-trainer %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    if args.subcommand == "node-agent":
        from green_trainer.node_agent.main import run_node_agent  # gRPC: only the agent needs it
        from green_trainer.node_agent.state import StateFileError

        try:
            return run_node_agent(args, os.environ)
        except (ValueError, RuntimeError, StateFileError) as err:
            print(f"green-trainer node-agent: {err}", file=sys.stderr)
            return USAGE_ERROR
    command: list[str] = list(args.command)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        print("green-trainer: no command given; use: green-trainer run -- <command> [args]", file=sys.stderr)
        return USAGE_ERROR
    try:
        settings = settings_from_env(os.environ)
        user = resolve_child_user(settings)
    except (SettingsError, ValueError) as err:
        print(f"green-trainer: {err}", file=sys.stderr)
        return USAGE_ERROR
    return run(settings, command, os.environ, user=user, load_nvml=lambda: load_nvml(os.environ))


if __name__ == "__main__":
    sys.exit(main())
