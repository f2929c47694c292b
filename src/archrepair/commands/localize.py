"""``archrepair localize``: find the block most to blame for the failures (paper Algorithm 1)."""

from __future__ import annotations

import argparse

from rich.table import Table

from .._checks import add_dependent, name_list, non_negative_int, open_fraction, output_lock, positive_int
from .._localize import FORMULAS, LocalizeConfig, list_localizers
from .base import add_failure_choice, Command, add_corruption, add_data, add_device, add_overwrite, checked_out, console, data_path
from .base import failures_of
from .common_model import load_model_and_data


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="checkpoint folder written by `archrepair train`")
    add_data(parser, default=None)
    add_failure_choice(parser)
    parser.add_argument("--train-examples", type=non_negative_int, default=1000,
                        help="training examples added to D_fail to form D_repair (default: 1000)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seed of the training sample (default: 0)")
    parser.add_argument("--blocks", type=name_list, help="comma-separated block names (default: the model's automatic blocks)")
    parser.add_argument("--formula", choices=FORMULAS, default="tarantula", help="suspiciousness (default: tarantula)")
    parser.add_argument("--threshold", type=float, default=0.0,
                        help="activation threshold on the normalised, spatially averaged output (default: 0)")
    add_dependent(parser, "--level", type=positive_int, default=50, refused_with=("--absolute",),
                  help="pick the block at the top-k level epsilon_k (default: 50)")
    parser.add_argument("--absolute", type=float, help="absolute threshold on the reweighted score (overrides --level)")
    parser.add_argument("--method", choices=list_localizers(), default="spectrum",
                        help="what picks the block: spectrum (the paper's Algorithm 1) or shift (normalisation-statistics "
                             "shift; finds blocks with damaged weights) (default: spectrum)")
    add_dependent(parser, "--shift-ratio", type=open_fraction, default=0.5, needs=("--method=shift",),
                  help="shift: the earliest block adding at least this fraction of the largest shift (default: 0.5)")
    parser.add_argument("--out", help="write the JSON report here (for `archrepair repair` and campaigns)")
    add_overwrite(parser)
    add_corruption(parser)
    add_device(parser)


def run(args: argparse.Namespace) -> dict:
    if not args.out:
        return _localize(args)
    out = checked_out(args, args.checkpoint, args.failures, data_path(args.data), args.corruption_dir, kind="file")
    with output_lock(out):
        return _localize(args)


def _localize(args: argparse.Namespace) -> dict:
    loaded = load_model_and_data(args)
    config = LocalizeConfig(threshold=args.threshold, formula=args.formula, level=args.level, absolute=args.absolute,
                            method=args.method, shift_ratio=args.shift_ratio)
    split = failures_of(loaded, args, args.seed)
    report = loaded.localize(split, args.train_examples, args.seed,
                             args.blocks, config, args.failures)
    if args.out:
        report.save(args.out)
    return report.to_json()


def show(result: dict) -> None:
    levels = list(result["blocks"][0]["vulnerable"])
    table = Table(title=f"vulnerable neurons per block ({result['config']['formula']}, reweighted; "
                        f"{result['misclassified']} misclassified / {result['correct']} correct examples)")
    table.add_column("block")
    table.add_column("neurons", justify="right")
    for level in levels:
        table.add_column(level.replace("top", "ε") if level != "abs" else "abs", justify="right")
    table.add_column("mean score", justify="right")
    table.add_column("shift added", justify="right")
    for row in result["blocks"]:
        style = "bold green" if row["block"] == result["chosen"] else None
        table.add_row(row["block"], str(row["neurons"]), *[str(row["vulnerable"][level]) for level in levels],
                      f"{row['mean_score']:.4f}", "-" if row.get("shift") is None else f"{row['shift']:.3f}", style=style)
    console.print(table)
    console.print(f"chosen block: [bold]{result['chosen']}[/] ({result['criterion']})")
    for name in ("reweighted", "spectrum", "gradient", "shift"):
        if result.get("ranking_" + name):
            console.print(f"  ranking by {name:<10}: {' > '.join(result['ranking_' + name])}")


COMMAND = Command(add_arguments, run, show)
