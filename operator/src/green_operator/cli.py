"""The `green-operator` command: run the operator, preview a plan, simulate, report."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

# Each subcommand lives in its own module exposing `register(subparsers)`; the module sets
# `func` on its parser. Imported lazily so `green-operator simulate` never imports kopf, etc.
_SUBCOMMANDS: tuple[str, ...] = (
    "green_operator.run_command",
    "green_operator.plan_command",
    "green_operator.simulate.cli",
    "green_operator.report_command",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="green-operator",
        description="Runs GreenTrainingJobs where and when the electricity is cleanest.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in _SUBCOMMANDS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue  # a subcommand not built yet
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    return func(args)


if __name__ == "__main__":
    sys.exit(main())
