"""`-o text|json|yaml` for the subcommands that print structured results (`--json` is `-o json`)."""

from __future__ import annotations

import argparse
import json
from typing import IO, Any

import yaml

FORMATS = ("text", "json", "yaml")


def add_output_flags(p: argparse.ArgumentParser, *, what: str = "the result") -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "-o",
        "--format",
        dest="format",
        choices=FORMATS,
        default=None,
        help=f"print {what} as text (default), json or yaml",
    )
    group.add_argument("--json", dest="format", action="store_const", const="json", help="same as -o json")


def output_format(args: argparse.Namespace) -> str:
    """The chosen format; a namespace built by hand may carry the old ``json`` flag instead."""
    fmt = getattr(args, "format", None)
    if fmt:
        return str(fmt)
    return "json" if getattr(args, "json", False) else "text"


def dump(doc: Any, fmt: str, stream: IO[str]) -> None:
    """Write ``doc`` as JSON (indented, newline-terminated) or YAML (keys in document order)."""
    if fmt == "yaml":
        yaml.safe_dump(doc, stream, sort_keys=False, default_flow_style=False, allow_unicode=True)
    else:
        json.dump(doc, stream, indent=2)
        stream.write("\n")
