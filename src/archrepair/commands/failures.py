"""``archrepair failures``: choose ``D_fail`` among the misclassified test examples (or a field set's,
``--field``) and save the split."""

from __future__ import annotations

import argparse
from pathlib import Path

from .._checks import non_negative_int, output_lock
from .base import add_failure_choice, Command, add_corruption, add_data, add_device, add_overwrite, checked_out, console, data_path, percent
from .base import failures_of
from .common_model import load_model_and_data


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="checkpoint folder written by `archrepair train`")
    add_data(parser, default=None)
    add_failure_choice(parser, from_file=False)
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seed of the random choice (default: 0)")
    parser.add_argument("--out", required=True, help="JSON file to write the split to")
    add_overwrite(parser)
    add_corruption(parser)
    add_device(parser)


def run(args: argparse.Namespace) -> dict:
    out = checked_out(args, args.checkpoint, data_path(args.data), args.corruption_dir, kind="file")
    with output_lock(out):
        return _choose(args)


def _choose(args: argparse.Namespace) -> dict:
    loaded = load_model_and_data(args)
    predictions = loaded.test_predictions("finding failures")
    labels = loaded.data.y_test
    split = failures_of(loaded, args, args.seed)
    split.save(Path(args.out))
    keep = split.eval_indices
    return {
        "out": args.out, "failures": len(split.fail_indices), "requested": args.count, "seed": args.seed,
        "misclassified": split.misclassified, "test_examples": len(labels),
        "test_accuracy": float((predictions == labels).mean()),
        "eval_examples": len(keep), "eval_accuracy": float((predictions[keep] == labels[keep]).mean()),
        "validation_examples": len(split.validation_indices),
        "field": split.extra.get("field"), "holdout_examples": len(split.holdout_indices),
    }


def show(result: dict) -> None:
    if result.get("field"):
        console.print(
            f"wrote [bold]{result['out']}[/]: the field set's {result['test_examples']} images (the model gets "
            f"{percent(result['test_accuracy'])} right): {result['failures']} failures of its fit part form D_fail, "
            f"{result['validation_examples']} images validate (with the home validation rows), {result['holdout_examples']} "
            f"are the field hold-out no repair sees; the repair is also judged on the home test set.")
        return
    console.print(
        f"wrote [bold]{result['out']}[/]: {result['failures']} failures (of {result['misclassified']} misclassified, "
        f"seed {result['seed']}). Test accuracy {percent(result['test_accuracy'])} on all {result['test_examples']}; "
        f"{percent(result['eval_accuracy'])} on the {result['eval_examples']} without D_fail (the figure repairs report)."
    )
    if result.get("validation_examples"):
        console.print(f"{result['validation_examples']} test examples held out for validation (the model's own training "
                      "hold-out is unknown); never in D_fail or any evaluation")


COMMAND = Command(add_arguments, run, show)
