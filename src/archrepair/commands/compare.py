"""``archrepair compare``: several repair methods on one model and failure set, over seeds, one budget."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.table import Table

from .._checks import add_dependent, name_list, non_negative_int, output_lock, positive_int
from .._comparison import Comparison, ComparisonRow, compare_methods, summarise, write_comparison
from .._comparison.write import JSON_FILE
from ..fileio import write_text_atomically
from ..errors import ArchRepairError
from .._repair import DEFAULT_METHOD, get_repairer
from ..plan import Prepared, prepare
from .base import add_failure_choice, Command, add_corruption, add_data, add_device
from .base import add_overwrite, add_quiet, checked_out, console, data_path, failure_note, list_methods_in_help, progress
from .repair import add_budget, add_repair_options, plan_of, repair_settings

DEFAULT_METHODS = f"{DEFAULT_METHOD},archrepair,train-more-block,block-gradient,network-gradient"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="checkpoint folder written by `archrepair train` (never modified)")
    add_data(parser, default=None)
    parser.add_argument("--methods", type=name_list, default=DEFAULT_METHODS.split(","),
                        help=f"comma-separated repair methods (default: {DEFAULT_METHODS}; the list is below)")
    list_methods_in_help(parser)
    parser.add_argument("--seeds", type=positive_int, default=3, help="repeat every method with seeds 0..N-1 (default: 3)")
    add_budget(parser, "per method run")
    add_failure_choice(parser)
    add_dependent(parser, "--failure-seed", type=non_negative_int, default=0, refused_with=("--failures",),
                  help="seed of the failure choice (default: 0)")
    parser.add_argument("--out", required=True, help="folder for comparison.json, .md, .csv and .png")
    parser.add_argument("--resume", action="store_true",
                        help="keep the finished runs of an interrupted comparison in --out and run the rest")
    add_overwrite(parser)
    add_quiet(parser)
    parser.add_argument("--dry-run", action="store_true",
                        help="time a few steps of each method and print the estimated seconds of the comparison; run nothing")
    add_repair_options(parser)
    add_corruption(parser)
    add_device(parser)


def run(args: argparse.Namespace) -> dict:
    settings = repair_settings(args, args.methods)
    plan = plan_of(args, settings, method=args.methods[0], seed=args.failure_seed)
    for name in args.methods:
        get_repairer(name, settings, plan.budget)  # an unknown method or an impossible budget fails before any work
    if not args.dry_run:
        out = checked_out(args, args.checkpoint, args.failures, data_path(args.data), args.corruption_dir)
        saved = out / JSON_FILE
        if args.resume and not saved.exists():
            raise ArchRepairError(f"nothing to resume: {str(saved)!r} does not exist; rerun without --resume")
    prepared = prepare(plan, note=failure_note)
    for name in args.methods[1:]:  # every method's settings checked on this model before any run
        prepared.for_method(name)
    if args.dry_run:
        return _dry_run(args, prepared)
    with output_lock(out):
        return _compare(args, prepared, saved)


def _compare(args: argparse.Namespace, prepared: Prepared, saved: Path) -> dict:
    methods = args.methods
    previous = _read_previous(saved) if args.resume else None
    say = progress(args)
    say(f"{len(methods)} methods x {args.seeds} seeds, budget: {prepared.plan.budget.describe()}")

    def finished(row: ComparisonRow, so_far: Comparison) -> None:
        write_text_atomically(saved, so_far.to_json())  # an interruption loses at most the run in progress
        held = "" if row.holdout_change_points is None else (
            f"hold-out {row.holdout_change_points:+.2f} pts [{row.holdout_interval_points[0]:+.2f}, "
            f"{row.holdout_interval_points[1]:+.2f}], negative flips {100 * row.holdout_negative_flip_rate:.2f}%, "
            + ("" if row.home_change_points is None else f"home test set {row.home_change_points:+.2f} pts "
               f"(negative flips {100 * row.home_negative_flip_rate:.2f}%), ")
            + f"kept {row.kept}; ")
        say(f"seed {row.seed} {row.method}: {held}{100 * row.fix_rate:.1f}% of D_fail fixed, the paper's figure "
            f"{row.change_points:+.2f} pts, {row.seconds:.1f} s" + "".join(f"; note: {note}" for note in row.notes))

    def failed(error: dict, so_far: Comparison) -> None:
        write_text_atomically(saved, so_far.to_json())
        say(f"seed {error['seed']} {error['method']}: failed ({error['error']}); the other runs go on")

    comparison = compare_methods(prepared, methods, list(range(args.seeds)), on_row=finished, on_error=failed,
                                 previous=previous)
    if not comparison.rows:
        write_text_atomically(saved, comparison.to_json())
        raise ArchRepairError(f"every run failed (first: {comparison.errors[0]['error']}); see {str(saved)!r}")
    paths = write_comparison(comparison, saved.parent)
    return {"summary": summarise(comparison), "errors": comparison.errors,
            "files": {kind: str(path) for kind, path in paths.items()}}


def _dry_run(args: argparse.Namespace, prepared: Prepared) -> dict:
    """Each method's estimated seconds on the first seed's task, times the seeds (capped by the time budget)."""
    task, budget = prepared.task(), prepared.plan.budget
    methods = {}
    for name in args.methods:
        seconds = sum(prepared.for_method(name).repairer.estimate(task).values())
        methods[name] = round(min(seconds, budget.seconds or seconds), 3)
    return {"dry_run": True, "seconds_per_run": methods, "seeds": args.seeds,
            "total_seconds": round(args.seeds * sum(methods.values()), 1)}


def _read_previous(path: Path) -> Comparison:
    try:
        return Comparison.from_json(path.read_text(encoding="utf-8"))
    except (ValueError, TypeError, KeyError) as error:
        raise ArchRepairError(f"{str(path)!r} is not a comparison file ({error}); choose another --out") from error


def show(result: dict) -> None:
    if result.get("dry_run"):
        runs = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in result["seconds_per_run"].items())
        console.print(f"about {result['total_seconds']:.0f} s for {result['seeds']} seeds (per run: {runs})")
        return
    summary = result["summary"]
    home = bool(summary) and all("home_change_points" in e for e in summary)
    if summary and all("holdout_change_points" in e for e in summary):
        where = "the field hold-out and the home test set" if home else "the test hold-out"
        table = Table(title=f"repair methods on {where}, which no repair saw (the returned model; mean ± sd "
                            "over seeds); the paper's figure (test set without D_fail) last")
        columns = ("method", "hold-out change (pts)", "negative flips", "unseen failures fixed",
                   *(("home change (pts)", "home negative flips") if home else ()), "candidate change",
                   "D_fail fixed", "seconds", "p vs archrepair", "paper's figure (pts)")
    else:
        table = Table(title="repair methods, accuracy on the test set without D_fail (the paper's figure; mean ± sd "
                            "over seeds)")
        columns = ("method", "before", "after", "change (pts)", "D_fail fixed", "broken", "seconds", "p vs archrepair")
    for column in columns:
        table.add_column(column, justify="left" if column == "method" else "right")
    for e in summary:
        p = "-" if e["p_vs_reference"] is None else f"{e['p_vs_reference']:.3f}"
        paper = f"{e['change_points']:+.2f} ± {e['change_points_sd']:.2f}"
        if "hold-out change (pts)" in columns:
            at_home = (f"{e['home_change_points']:+.2f} ± {e['home_change_points_sd']:.2f}",
                       f"{100 * e['home_negative_flip_rate']:.2f}%") if home else ()
            table.add_row(e["method"], f"{e['holdout_change_points']:+.2f} ± {e['holdout_change_points_sd']:.2f}",
                          f"{100 * e['holdout_negative_flip_rate']:.2f}%", f"{100 * e['holdout_unseen_fix_rate']:.1f}%",
                          *at_home, f"{e['candidate_holdout_change_points']:+.2f}", f"{100 * e['fix_rate']:.1f}%",
                          f"{e['seconds']:.1f}", p, paper)
        else:
            table.add_row(e["method"], f"{100 * e['accuracy_before']:.2f}%",
                          f"{100 * e['accuracy_after']:.2f} ± {100 * e['accuracy_after_sd']:.2f}%", paper,
                          f"{100 * e['fix_rate']:.1f}%", f"{e['broken']:.0f}", f"{e['seconds']:.1f}", p)
    console.print(table)
    for error in result["errors"]:
        console.print(f"[red]failed[/]: {error['method']} on seed {error['seed']}: {error['error']}")
    console.print("wrote " + ", ".join(result["files"].values()))


COMMAND = Command(add_arguments, run, show)
