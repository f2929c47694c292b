"""The ``archrepair`` command.

Every command prints a readable result, or one JSON object with ``--json``; exit status 0 on
success, 1 with a one-line reason on bad input, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys

from . import __version__
from ._checks import Parser, check_dependent, launch_rank, launched, say_once
from .errors import ArchRepairError
from .fileio import json_ready


def main(argv: list[str] | None = None) -> int:
    status = _main(argv)
    if launched():
        # one of several processes under torchrun: end here, output flushed, without the interpreter's
        # teardown, where gloo's threads sometimes abort (SIGABRT) after the work is done and written
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    return status


def _main(argv: list[str] | None) -> int:
    argv = [str(word) for word in (sys.argv[1:] if argv is None else argv)]
    parser = build_parser(_command_named(argv))
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help, --version (0) and argparse's one-line errors (1)
        return int(stop.code or 0)
    if args.command is None:
        parser.print_help()
        return 0
    if launched() and args.command != "repair":
        _error(args.command, f"only repair runs over several processes; run {args.command} without torchrun", None)
        return 1
    previous = signal.signal(signal.SIGTERM, _terminate) if _main_thread() else None
    try:
        check_dependent(args)
        result = args.handler(args)
    except ArchRepairError as error:
        _error(args.command, str(error), error)
        return 1
    except OSError as error:  # a full disk, a file removed under us: the system's words, one line
        where = f" ({error.filename})" if error.filename else ""
        _error(args.command, f"{error.strerror or error}{where}", error)
        return 1
    except KeyboardInterrupt:
        hint = "; finished epochs are kept, rerun with --resume" if hasattr(args, "resume") else ""
        if launch_rank() == 0:
            print(f"archrepair {args.command}: interrupted{hint}", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if launch_rank() != 0:  # one of several processes under torchrun: process 0 prints the result
        return 0
    if args.json:
        print(json.dumps(json_ready(result)))
    else:
        args.printer(result)
    return 0


def _error(command: str, message: str, error: BaseException | None) -> None:
    """One line on stderr. Under torchrun, a refusal before the processes joined is the same in every
    process and process 0 says it; a failure after they joined is said by each process it hit, named."""
    process = getattr(error, "archrepair_process", None)
    if process is None:
        say_once(f"archrepair {command}: error: {message}")
    else:
        tag = f" (process {process})" if process else ""
        print(f"archrepair {command}: error{tag}: {message}", file=sys.stderr)


def _terminate(signum, frame) -> None:
    """SIGTERM ends a command like Ctrl-C: its ``finally`` blocks run (workers stop, locks go)."""
    raise KeyboardInterrupt


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _command_named(argv: list[str]) -> str | None:
    """The subcommand ``argv`` names (its first word that is not an option), if any."""
    return next((word for word in argv if not word.startswith("-")), None)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every subcommand; only ``command``'s has its options (its module is imported,
    and with it torch), so that ``archrepair --help`` starts at once."""
    parser = Parser(
        prog="archrepair",
        description="Block-level, architecture-oriented repair of trained PyTorch image classifiers.",
    )
    parser.add_argument("--version", action="version", version=f"archrepair {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    from .commands import INDEX

    for entry in INDEX:
        sub = commands.add_parser(entry.name, help=entry.help, description=entry.help, allow_abbrev=False)
        if entry.name == command:
            spec = entry.load()
            spec.add_arguments(sub)
            sub.add_argument("--json", action="store_true", help="print the result as one JSON object")
            sub.set_defaults(handler=spec.run, printer=spec.show)
    return parser


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
