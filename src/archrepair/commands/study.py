"""``archrepair study run|status|report``: a grid of repair runs from a TOML study file into an
SQLite store, its progress, and its report regenerated from the store."""

from __future__ import annotations

import argparse

from .._checks import check_output, positive_int
from ..errors import ArchRepairError
from .base import Command, console

ACTIONS = ("run", "status", "report", "import", "export")
ONLY = {"--workers": "run", "--engine": "run", "--address": "run", "--retry-failed": "run",
        "--out": ("report", "export"), "--overwrite": ("report", "export"), "--rows": "import"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=ACTIONS,
                        help="run: run the study file's pending rows; status: a store's rows by status and the time "
                             "left; report: Markdown, CSV and PNG regenerated from a store; import: rows made before the store "
                             "(--rows FILE.jsonl) into it, marked imported, or a store's export back into a store; "
                             "export: a store's finished rows as JSON lines (--out FILE.jsonl), to commit")
    parser.add_argument("path", help="run: the study file (.toml); status, report, import, export: its store (.sqlite)")
    parser.add_argument("--workers", type=positive_int,
                        help="run: runs at a time (local: processes on this machine, each claiming rows; ray: tasks "
                             "in flight; default 1)")
    parser.add_argument("--engine", choices=("local", "ray"), help="run: where runs go (default local; ray needs "
                                                                    "pip install -e \".[ray]\")")
    parser.add_argument("--address", help="run, ray engine: the Ray cluster's address (default: a local Ray instance)")
    parser.add_argument("--retry-failed", action="store_true", help="run: run the failed rows again")
    parser.add_argument("--out", help="report: the folder to write (report.md, runs.csv, PNGs); export: the "
                                      "JSON-lines file to write")
    parser.add_argument("--overwrite", action="store_true",
                        help="report, export: write into an existing --out (report: its files replace their "
                             "namesakes, other files are kept; export: the file is replaced)")
    parser.add_argument("--rows", help="import: a JSON-lines file of the held-out bench's rows "
                                       "(benchmarks/results/heldout_rows.jsonl), or a store's export")


def run(args: argparse.Namespace) -> dict:
    for option, actions in ONLY.items():
        value = getattr(args, option[2:].replace("-", "_"))
        actions = (actions,) if isinstance(actions, str) else actions
        if value not in (None, False) and args.action not in actions:
            raise ArchRepairError(f"{option} means something only to `study {' / '.join(actions)}`")
    if args.address and args.engine != "ray":
        raise ArchRepairError("--address is the Ray cluster's: give it with --engine ray")
    if args.action == "run":
        from ..study import load_study, run_study

        return run_study(load_study(args.path), args.workers or 1, args.engine or "local", args.address,
                         args.retry_failed)
    if args.action == "status":
        from ..study import status

        return status(args.path)
    if args.action == "import":
        if not args.rows:
            raise ArchRepairError("study import needs --rows FILE.jsonl: the rows to import")
        from ..study import import_rows

        return import_rows(args.path, args.rows)
    if args.action == "export":
        if not args.out:
            raise ArchRepairError("study export needs --out FILE.jsonl: the file to write")
        from ..study import export_store

        return export_store(args.path, check_output(args.out, [args.path], "file", args.overwrite))
    if not args.out:
        raise ArchRepairError("study report needs --out DIR: the folder to write the report into")
    from ..study import write_report

    return write_report(args.path, check_output(args.out, [args.path], "folder", args.overwrite))


def show(result: dict) -> None:
    if "exported" in result:
        console.print(f"wrote {result['exported']} finished rows of {result['store']} to [bold]{result['out']}[/]")
        return
    if "imported" in result and "counts" not in result:
        console.print(f"imported {result['imported']} of {result['rows']} rows into [bold]{result['store']}[/]")
        return
    if "files" in result:
        console.print(f"wrote {', '.join(result['files'])} to [bold]{result['out']}[/] ({result['finished']} of "
                      f"{result['runs']} runs finished, {result['groups']} model-scenario groups)")
        return
    counts = result["counts"]
    line = ", ".join(f"{status} {count}" for status, count in counts.items() if count)
    console.print(f"study store {result['store']}: {line or 'no rows'}")
    for running in result.get("running", []):
        console.print(f"  running: {running['run']} on {running['worker']} for {running['seconds']} s")
    for failed in result.get("failed", []):
        console.print(f"  failed: {failed['run']}: {failed['error']}")
    if result.get("seconds_left") is not None and counts["pending"] + counts["running"]:
        console.print(f"  time left: about {result['seconds_left'] / 60:.0f} min (from the finished rows' mean seconds "
                      "per method)")


COMMAND = Command(add_arguments, run, show)
