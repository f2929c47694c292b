"""What a subcommand is, and the options several of them share."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table

from .._checks import add_dependent, check_output, launch_rank, non_negative_int, open_fraction, positive_int
from ..data.field import field_path
from ..data.scenario import PROTOCOLS
from ..data.sources import DEFAULT_SPEC, parse_spec


@dataclass(frozen=True)
class Command:
    """A subcommand's behaviour (its name and one-line help are in :data:`archrepair.commands.INDEX`):
    ``add_arguments(parser)``, ``run(args) -> dict`` does the work; ``show(result)`` prints it for people."""

    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], dict]
    show: Callable[[dict], None]


console = Console(width=None if sys.stdout.isatty() else 160)  # piped: wide enough that no block name is cut

DATA_HELP = (
    "data spec KIND[:PATH][?opt=val]: digits (embedded default), cifar10:ROOT, cifar100:ROOT, "
    "npz:FILE, imagefolder:DIR_OR_TAR_GZ (?size=N), or a bare .npz / folder / .tar.gz path"
)


def add_data(parser: argparse.ArgumentParser, default: str | None = DEFAULT_SPEC) -> None:
    suffix = f" (default: {default})" if default else " (default: the data the model was trained on)"
    parser.add_argument("--data", default=default, help=DATA_HELP + suffix)


def add_corruption(parser: argparse.ArgumentParser, also: tuple[str, ...] = ()) -> None:
    """Options that replace the test split: by a corrupted copy (the robustness scenario), or by a
    field set (``--field``); ``also``: other options of the command that read the corruption folder
    and seed (``--corruptions``)."""
    group = parser.add_argument_group("corrupted test set")
    group.add_argument("--corruption", help="use this corruption of the test split (e.g. fog); see `archrepair corrupt`")
    add_dependent(parser, "--severity", type=int, choices=range(1, 6), metavar="1..5", needs=("--corruption",),
                  default=3, group=group, help="severity 1..5 of --corruption (default: 3)")
    add_dependent(parser, "--corruption-dir", needs=("--corruption", *also), group=group,
                  help="read it from an official CIFAR-10-C folder or Tiny-ImageNet-C tree instead of generating it")
    add_dependent(parser, "--corruption-seed", type=non_negative_int, needs=("--corruption", *also), default=0,
                  group=group, help="seed of the generated corruption (default: 0)")
    field = parser.add_argument_group("failures from the field")
    field.add_argument("--field", metavar="SPEC",
                       help="labelled images collected in use, instead of the test split: a folder or .tar.gz of "
                            "<class>/<image>, an .npz with x and y, or a .csv of path,label rows (the path alone, or "
                            "KIND:PATH as for --data: imagefolder, tar, npz, csv); split into a fit part "
                            "(its failures are D_fail), a validation part and a hold-out, and judged on the hold-out "
                            "and on the home test set")


def add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", help="auto (CUDA when present, else CPU), cpu, cuda or cuda:N")
    parser.add_argument("--amp", action="store_true", help="mixed precision (float16 on CUDA, bfloat16 on CPU)")
    parser.add_argument("--channels-last", action="store_true", help="channels-last memory format (faster convolutions)")
    parser.add_argument("--batch-size", type=positive_int, default=256, help="examples per evaluation batch (default: 256)")


def list_methods_in_help(parser: argparse.ArgumentParser) -> None:
    """Show every registered repair method, one per line, at the end of ``--help``."""
    from .._repair import describe_repairers

    parser.epilog = "repair methods:\n" + describe_repairers()
    parser.formatter_class = argparse.RawDescriptionHelpFormatter


def add_failure_choice(parser: argparse.ArgumentParser, from_file: bool = True) -> None:
    """``--failures`` (a saved split; with ``from_file``), or ``--count`` failures chosen now under
    ``--protocol`` with ``--holdout``."""
    refused = ("--failures",) if from_file else ()  # a saved split has its own failures, protocol and parts
    if from_file:
        parser.add_argument("--failures", help="failure split from `archrepair failures` (default: choose --count now)")
    add_dependent(parser, "--count", type=positive_int, default=1000, refused_with=refused,
                  help="failures to choose (default: 1000, or all the failure pool holds)")
    add_dependent(parser, "--protocol", choices=PROTOCOLS, default="heldout", refused_with=refused,
                  help="heldout (default): D_fail from a failure pool, the repair judged on a test hold-out that "
                       "neither the model nor the repair has seen; paper: D_fail from every failure, judged on the "
                       "rest of the test set (the paper's figure, to reproduce it)")
    add_dependent(parser, "--holdout", type=open_fraction, default=0.5, refused_with=(*refused, "--protocol=paper"),
                  help="share of the test set held out (heldout protocol; stratified, seeded; default: 0.5)")
    add_dependent(parser, "--test-validation", type=open_fraction, metavar="SHARE",
                  refused_with=(*refused, "--protocol=paper"),
                  help="share of the test set held out for validation (heldout protocol; never in D_fail or "
                       "any evaluation); default: 0.1 when the model's own training hold-out is unknown "
                       "(an imported model), else none")


def add_quiet(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", action="store_true",
                        help="no progress lines on stderr (with --json alone they stay: stdout holds only the JSON)")


def progress(args: argparse.Namespace) -> Callable[[str], None]:
    """Where a command's progress lines go: stderr, whatever ``--json`` says; nowhere with ``--quiet``."""
    if args.quiet:
        return lambda message: None
    return lambda message: print(message, file=sys.stderr, flush=True)


def failure_note(line: str) -> None:
    """A note about the failures chosen (a shortfall, and why), said once (by process 0) on stderr
    whatever ``--json`` says."""
    if launch_rank() == 0:
        print(f"note: {line}", file=sys.stderr, flush=True)


def failures_of(loaded, args: argparse.Namespace, seed: int):
    """The failure split of ``--failures``, or ``--count`` failures chosen now with ``seed`` (its
    notes said through :func:`failure_note`)."""
    given = getattr(args, "failures", None)
    split = loaded.failures(given, args.count, seed, args.protocol, args.holdout, args.test_validation)
    for note in ([] if given else split.notes()):
        failure_note(note)
    return split


def add_overwrite(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--overwrite", action="store_true",
                        help="write into an existing --out: what this command writes replaces its namesakes "
                             "(atomically, once complete); other files there are kept")


def data_path(spec: str | None) -> str | None:
    """The file or folder a data spec reads, if any (an input no output may replace)."""
    if not spec:
        return None
    try:
        return parse_spec(spec)[1] or None
    except Exception:  # an unparsable spec is reported when the data is loaded
        return None


def checked_out(args: argparse.Namespace, *inputs, kind: str = "folder"):
    """``args.out`` checked against the command's inputs and its --overwrite/--resume options."""
    field = getattr(args, "field", None)
    inputs = (*inputs, field_path(field) if field else None)
    return check_output(args.out, inputs, kind, getattr(args, "overwrite", False), getattr(args, "resume", False),
                        resumable=hasattr(args, "resume"))


def percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def per_class_table(title: str, reports: dict[str, dict]) -> Table:
    """One row per class, one accuracy column per report (``{column: accuracy_report}``)."""
    table = Table(title=title)
    table.add_column("class")
    for column in reports:
        table.add_column(column, justify="right")
    table.add_column("examples", justify="right")
    first = next(iter(reports.values()))
    for name in first["per_class"]:
        cells = [percent(report["per_class"][name]["accuracy"]) for report in reports.values()]
        table.add_row(name, *cells, str(first["per_class"][name]["examples"]))
    table.add_row("all", *[percent(report["accuracy"]) for report in reports.values()], str(first["examples"]), style="bold")
    return table
