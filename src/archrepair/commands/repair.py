"""``archrepair repair``: localise (or take ``--block``), search, discretise, fine-tune, evaluate, save."""

from __future__ import annotations

import argparse
import contextlib
import sys
from dataclasses import replace
from pathlib import Path

from rich.table import Table

from .._checks import (
    add_dependent,
    byte_size,
    finite_float,
    level_fraction,
    non_empty_name,
    non_negative_float,
    non_negative_int,
    open_fraction,
    output_lock,
    positive_float,
    positive_int,
)
from .. import distributed
from ..device import resolve_device
from .._localize import FORMULAS, LOCALIZE_ROWS, LocalizeConfig, list_localizers
from ..errors import ArchRepairError
from ..budget import Budget
from .._repair import DEFAULT_METHOD, RepairSettings, TaskConfig, list_repairers
from .._repair.registry import method_entry, searching_repairers
from .._repair.keep import KEEP_LEVEL
from ..plan import RepairPlan, dry_run, prepare, run_plan
from .._repair.document import latency_change, tested_set
from .._repair.retain import RETAIN_KINDS, RetainConfig
from .._search import RULES, SearchConfig, SearchSpace
from ..train import TrainConfig
from .base import add_failure_choice, Command, add_corruption, add_data, add_device, add_overwrite
from .base import add_quiet, checked_out, console, data_path, failure_note, list_methods_in_help, percent, progress
from .common_model import corruption_of


SEARCH_OPTIONS = ("--search-epochs", "--warmup-epochs", "--search-lr", "--arch-lr", "--beta-decay", "--partial-channels",
                  "--no-edge-normalisation", "--original-logit", "--rule", "--failures-weight-half-only")
"""The options of the architecture search: they mean something only to a method that searches."""


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def add_repair_options(parser: argparse.ArgumentParser) -> None:
    """The settings every repair method shares (:class:`RepairSettings`) and how its task is built
    (:class:`TaskConfig`), for ``repair``, ``compare`` and ``demo``."""
    group = parser.add_argument_group("repair settings (every method)")
    group.add_argument("--block", type=non_empty_name, help="repair this block instead of the localised one")
    group.add_argument("--layer", type=non_empty_name,
                       help="the linear layer a layer-patching method changes (arachne; default: the model's last "
                            "nn.Linear)")
    group.add_argument("--formula", choices=FORMULAS, default="tarantula", help="localisation suspiciousness")
    group.add_argument("--level", type=positive_int, default=50, help="localisation top-k level (default: 50)")
    group.add_argument("--localize-method", choices=list_localizers(), default="spectrum",
                       help="what picks the block: spectrum (the paper's) or shift (damaged weights) (default: spectrum)")
    group.add_argument("--localize-rows", type=non_negative_int, default=LOCALIZE_ROWS,
                       help="localise on D_fail plus at most this many other training rows of D_repair (default: "
                            f"{LOCALIZE_ROWS}; 0: all)")
    group.add_argument("--train-examples", type=non_negative_int, default=5000,
                       help="training examples joined to D_fail in D_repair (default: 5000; 0: all)")
    group.add_argument("--val-fraction", type=open_fraction, default=0.2,
                       help="share of D_repair's training examples held out for validation; never failures (default: 0.2)")
    add_dependent(parser, "--plain-validation", action="store_true", default=False, needs=("--protocol=paper",),
                  group=group, help="under --protocol paper, validate on all held-out examples instead of dropping the "
                                    "share of the model's failures that D_fail took from the deployment data (which is "
                                    "how the paper's evaluation split is built)")
    group.add_argument("--fail-weight", type=non_negative_float, default=1.0,
                       help="how many times each failure counts per training epoch, for every method; below 1 trades "
                            "fixed failures for accuracy on the rest (default: 1)")
    group.add_argument("--search-epochs", type=positive_int, default=6)
    group.add_argument("--warmup-epochs", type=non_negative_int, default=1, help="search epochs before architecture steps")
    group.add_argument("--search-lr", type=positive_float, default=0.02, help="SGD rate of the block weights in the search")
    group.add_argument("--arch-lr", type=positive_float, default=0.03, help="Adam rate of the architecture parameters (default: 0.03)")
    group.add_argument("--beta-decay", type=non_negative_float, default=SearchConfig.beta_decay,
                       help=f"Beta-DARTS regularisation weight (default: {SearchConfig.beta_decay}; 0: off)")
    group.add_argument("--partial-channels", type=positive_int, default=4, help="PC-DARTS k (1: all channels)")
    group.add_argument("--no-edge-normalisation", action="store_true")
    group.add_argument("--original-logit", type=finite_float, default=SearchSpace.original_logit,
                       help=f"initial logit of the original operation (and of none elsewhere; default: "
                            f"{SearchSpace.original_logit})")
    group.add_argument("--rule", choices=RULES, default="edge", help="discretisation: edge (paper) or top2 (PC-DARTS)")
    group.add_argument("--failures-weight-half-only", action="store_true",
                       help="search: every D_fail row in the weight steps' half, none in the architecture steps' half")
    group.add_argument("--finetune-epochs", type=positive_int, default=8)
    group.add_argument("--finetune-lr", type=positive_float, default=0.01)
    group.add_argument("--search-batch-size", type=positive_int, default=64)
    group.add_argument("--retain", choices=RETAIN_KINDS, default="none",
                       help="regression-aware training of every gradient-trained method: distill = focal distillation "
                            "towards the original model on the examples it gets right (default: none)")
    add_dependent(parser, "--retain-weight", type=non_negative_float, default=1.0, needs=("--retain=distill",),
                  group=group, help="weight of the --retain distill term (default: 1)")
    group.add_argument("--no-prefix-cache", action="store_true",
                       help="run the whole network on every step instead of caching the inputs of the block a "
                            "method trains (the cache is exact; this is for checking it and for timing)")
    add_dependent(parser, "--keep-level", type=level_fraction, default=KEEP_LEVEL, refused_with=("--protocol=paper",),
                  group=group, help="under the heldout protocol the repaired model is kept only when it beats the "
                                    "original at this level on rows no training or choice saw (one-sided exact McNemar "
                                    f"test); 1 keeps every candidate (default: {KEEP_LEVEL}; --protocol paper keeps the "
                                    "validation rule)")
    group.add_argument("--cache-memory", type=byte_size, default="4G",
                       help="memory the cached block inputs may take before they spill to a memory-mapped file in "
                            "the work folder (default: 4G)")
    parser.set_defaults(_search_defaults={flag: parser.get_default(_dest(flag)) for flag in SEARCH_OPTIONS})


def repair_settings(args: argparse.Namespace, methods: list[str]) -> RepairSettings:
    """The settings of ``methods``; a search option changed from its default is refused when none of
    them searches a block's architecture (it would change nothing)."""
    if not set(methods) & set(searching_repairers()):
        which = f"{methods[0]} does not" if len(methods) == 1 else f"none of {', '.join(methods)}"
        for flag, default in args._search_defaults.items():
            if getattr(args, _dest(flag)) != default:
                raise ArchRepairError(f"{flag} has no effect: {which} search a block's architecture; leave {flag} "
                                      f"out, or choose a method that searches ({', '.join(searching_repairers())})")
    return RepairSettings(
        block=args.block,
        localize=LocalizeConfig(formula=args.formula, level=args.level, method=args.localize_method),
        space=SearchSpace(partial_channels=args.partial_channels, edge_normalisation=not args.no_edge_normalisation,
                          original_logit=args.original_logit),
        search=SearchConfig(epochs=args.search_epochs, warmup_epochs=args.warmup_epochs, lr=args.search_lr,
                            arch_lr=args.arch_lr, beta_decay=args.beta_decay, batch_size=args.search_batch_size,
                            failures_in_architecture_split=not args.failures_weight_half_only),
        rule=args.rule,
        localize_rows=args.localize_rows or None,
        retain=RetainConfig(args.retain, args.retain_weight),
        layer=args.layer,
        train=TrainConfig(epochs=args.finetune_epochs, batch_size=args.search_batch_size, lr=args.finetune_lr,
                          weight_decay=5e-4, schedule="cosine", patience=3),
    )


def task_config(args: argparse.Namespace, device) -> TaskConfig:
    return TaskConfig(
        train_examples=args.train_examples or None, val_fraction=args.val_fraction, seed=getattr(args, "seed", 0),
        thin_validation=not args.plain_validation, fail_weight=args.fail_weight,
        corruption=corruption_of(args), device=str(device), channels_last=getattr(args, "channels_last", False),
        amp=getattr(args, "amp", False), prefix_cache=not args.no_prefix_cache, cache_memory=args.cache_memory,
        keep_level=args.keep_level,
    )


def add_budget(parser: argparse.ArgumentParser, per: str) -> None:
    """``--budget-epochs`` and ``--budget-seconds`` (:class:`~archrepair.budget.Budget`), ``per`` what."""
    parser.add_argument("--budget-epochs", type=positive_int,
                        help=f"passes over the fit data {per}, split over a method's phases (ArchRepair: half search, "
                             "half fine-tuning; auto: dealt out over its candidates)")
    parser.add_argument("--budget-seconds", type=positive_float,
                        help=f"wall-clock limit {per}, checked after every step (default: none; auto then trains "
                             "every candidate to its own schedule, the architecture search included)")


def budget_of(args: argparse.Namespace) -> Budget:
    return Budget(args.budget_epochs, args.budget_seconds)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="checkpoint folder written by `archrepair train` (never modified)")
    add_data(parser, default=None)
    parser.add_argument("--method", default=DEFAULT_METHOD, choices=list_repairers(), metavar="METHOD",
                        help=f"the repair method (default: {DEFAULT_METHOD}; the list is below)")
    add_budget(parser, "of the repair")
    list_methods_in_help(parser)
    add_failure_choice(parser)
    add_dependent(parser, "--localization", refused_with=("--block",),
                  help="repair the block a `localize --out` report chose (it must have been made for this model and "
                       "these failures)")
    parser.add_argument("--out", required=True, help="repaired-model folder to write")
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument("--resume", action="store_true",
                        help="continue an interrupted repair from <out>.work (refused if any setting differs)")
    add_overwrite(parser)
    add_quiet(parser)
    parser.add_argument("--dry-run", action="store_true",
                        help="time a few steps of each phase and print the estimated seconds and peak memory; repair nothing")
    add_repair_options(parser)
    add_corruption(parser)
    add_device(parser)


def run(args: argparse.Namespace) -> dict:
    settings = repair_settings(args, [args.method])  # an option that means nothing is refused before any work
    if args.dry_run:
        if distributed.launched():
            raise ArchRepairError("--dry-run times one process; run it without torchrun")
        return dry_run(prepare(plan_of(args, settings), note=failure_note))
    distributed.batch_share(args.search_batch_size)  # every refusal comes before the processes wait on each other
    out = checked_out(args, args.checkpoint, args.failures, args.localization, data_path(args.data), args.corruption_dir)
    args.device = str(distributed.local_device(resolve_device(args.device)))
    log = progress(args) if distributed.launch_rank() == 0 else (lambda message: None)  # process 0 speaks
    prepared = prepare(plan_of(args, settings, out), log=log, note=failure_note)  # checked before the work folder is written
    with distributed.process_group(prepared.problem.device) as world:
        if world.spread and not method_entry(args.method).spreads:
            if world.main:
                print(f"note: {args.method} cannot be spread over processes; it runs in process 0 alone",
                      file=sys.stderr, flush=True)
            distributed.leave()
            if not world.main:
                return {"process": world.rank, "ran": False}
        with output_lock(out) if world.main else contextlib.nullcontext():
            return run_plan(prepared, args.resume)[1]


def plan_of(args: argparse.Namespace, settings: RepairSettings, out: Path | None = None,
            method: str | None = None, seed: int | None = None) -> RepairPlan:
    """The plan of the command line's options (``settings``: :func:`repair_settings`; ``method`` and
    ``seed``, when given, in place of ``--method`` and ``--seed``)."""
    task = task_config(args, args.device)
    return RepairPlan(args.checkpoint, method or args.method, settings, budget_of(args),
                      task if seed is None else replace(task, seed=seed), args.data, args.failures, args.field,
                      args.corruption_dir, args.count, args.protocol, args.holdout, args.test_validation,
                      args.batch_size, getattr(args, "localization", None), out)


def show(report: dict) -> None:
    if report.get("dry_run"):
        phases = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in report["estimate_seconds"].items())
        console.print(f"{report['method']} would take about {report['total_seconds']:.1f} s ({phases}) on "
                      f"{report['fit_rows']} fit and {report['val_rows']} validation rows, early stopping off; "
                      f"peak memory so far {report['peak_memory_mb']} MB; block-input cache {report['prefix_cache']}")
        if report["prefix_cache"] == "on":
            console.print(f"without the cache: about {report['total_seconds_without_cache']:.1f} s")
        return
    where = f"on block {report['block']}" if report["block"] else "on the whole network"
    table = Table(title=f"{report['method']} {where} (kept: {report['kept']})")
    for column in ("", "before", "after", "change"):
        table.add_column(column, justify="right" if column else "left")
    held_out = "field hold-out" if report.get("field") else "test hold-out"
    for whose in ("returned", "candidate"):
        judged = report.get("judged", {}).get(whose, {})
        held = judged.get("holdout")
        if held and (whose == "returned" or report["kept"] != "repaired"):
            low, high = held["change_interval_points"]
            table.add_row(f"{held_out} ({held['examples']}), {whose} model", percent(held["accuracy_before"]),
                          percent(held["accuracy_after"]), f"{held['change_points']:+.2f} pts [{low:+.2f}, {high:+.2f}]")
            table.add_row("  flips -/+ (McNemar p), unseen failures fixed", "", "",
                          f"{100 * held['negative_flip_rate']:.2f}% / {100 * held['positive_flip_rate']:.2f}% "
                          f"(p {held['mcnemar_p']:.3f}), {100 * held['unseen_fix_rate']:.1f}%")
            home = judged.get("home")
            if home:
                low, high = home["change_interval_points"]
                table.add_row(f"home test set ({home['examples']}), {whose} model", percent(home["accuracy_before"]),
                              percent(home["accuracy_after"]), f"{home['change_points']:+.2f} pts [{low:+.2f}, {high:+.2f}]")
                table.add_row("  negative flips at home", "", "", f"{100 * home['negative_flip_rate']:.2f}%")
    table.add_row(f"paper's figure: {tested_set(report)} without D_fail ({report['eval_examples']})",
                  percent(report["eval_accuracy_before"]),
                  percent(report["eval_accuracy_after"]), f"{report['eval_change_points']:+.2f} pts")
    table.add_row(f"D_fail ({report['fail_examples']}, seen by the repair)", percent(report["fail_accuracy_before"]),
                  percent(report["fail_fixed_rate"]), "fix rate")
    table.add_row(f"fixed / broken ({tested_set(report)} without D_fail)", "", "", f"{report['eval_fixed']} / {report['eval_broken']}")
    table.add_row("parameters", f"{report['parameters_before']:,}", f"{report['parameters_after']:,}", "")
    table.add_row(f"latency (ms per {report['latency_batch']})", f"{report['latency_ms_before']:.1f}",
                  f"{report['latency_ms_after']:.1f}", latency_change(report))
    console.print(table)
    for note in (report.get("details") or {}).get("notes", []):
        console.print(f"note: {note}")
    tests = (report.get("keep") or {}).get("tests") or []
    if len(tests) > 1:
        console.print(f"keep tests (Holm, family-wise level {report['keep']['level']:g}), best validated first: " + "; ".join(
            f"{test['option']} p {test['p_value']:.3g} {'passed' if test['passed'] else 'not passed'}"
            + (" (returned)" if test["chosen"] else "") for test in tests))
    if report.get("genotype"):
        edges = ", ".join(f"{e['source']}->{e['target']}:{e['op']}" for e in report["genotype"]["edges"])
        whose = "" if report["kept"] == "repaired" else " (the discarded candidate's; the saved model is the input model)"
        console.print(f"architecture of {report['block']}{whose}: {edges}")
    console.print("time: " + ", ".join(f"{k} {v:.1f}s" for k, v in report["phase_seconds"].items())
                  + " (estimated: " + ", ".join(f"{k} {v:.1f}s" for k, v in report.get("estimate_seconds", {}).items())
                  + f"); block-input cache {report.get('prefix_cache', 'off')}")
    out = (report.get("plan") or {}).get("out")
    if out:
        console.print(f"wrote [bold]{out}[/] (load with archrepair.load)")


COMMAND = Command(add_arguments, run, show)
