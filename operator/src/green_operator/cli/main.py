"""The `green-operator` command: run the operator, preview a plan, simulate, report."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

# Each subcommand lives in its own module exposing `register(subparsers)`; the module sets
# `func` on its parser. Imported lazily so `green-operator simulate` never imports kopf, etc.
_SUBCOMMANDS: tuple[str, ...] = (
    "green_operator.cli.run",
    "green_operator.cli.plan",
    "green_operator.cli.simulate",
    "green_operator.cli.report",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="green-operator",
        description="Runs GreenTrainingJobs where and when the electricity is cleanest.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in _SUBCOMMANDS:
        try:
            module = importlib.import_module(name)
        except Exception as exc:
            raise SubcommandImportError(name, exc) from exc
        module.register(sub)
    return parser


class SubcommandImportError(RuntimeError):
    """A subcommand's module failed to import: a broken installation, never silently skipped."""

    def __init__(self, module: str, cause: BaseException) -> None:
        super().__init__(f"cannot load subcommand module {module}: {type(cause).__name__}: {cause}")
        self.module = module


def version() -> str:
    """The installed distribution's version, else the package's own."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("green-training-operator")
    except PackageNotFoundError:
        from green_operator import __version__

        return __version__


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser = build_parser()
    except SubcommandImportError as exc:
        print(f"green-operator: {exc}", file=sys.stderr)
        return 1
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    return func(args)


if __name__ == "__main__":
    sys.exit(main())
