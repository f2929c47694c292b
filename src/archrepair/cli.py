"""The ``archrepair`` command.

Every command prints a readable result, or one JSON object with ``--json``; exit status 0 on
success, 1 with a one-line reason on bad input, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from . import __version__
from .errors import ArchRepairError


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        result = args.handler(args)
    except ArchRepairError as error:
        print(f"archrepair {args.command}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"archrepair {args.command}: interrupted; finished epochs are kept, rerun with --resume", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(result, default=_json_default))
    else:
        args.printer(result)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="archrepair",
        description="Block-level, architecture-oriented repair of trained PyTorch image classifiers.",
    )
    parser.add_argument("--version", action="version", version=f"archrepair {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    from . import commands as handlers

    for spec in handlers.COMMANDS:
        sub = commands.add_parser(spec.name, help=spec.help, description=spec.help)
        spec.add_arguments(sub)
        sub.add_argument("--json", action="store_true", help="print the result as one JSON object")
        sub.set_defaults(handler=spec.run, printer=spec.show)
    return parser


def _json_default(value):
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
