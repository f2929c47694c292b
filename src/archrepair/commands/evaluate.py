"""``archrepair evaluate``: accuracy overall and per class, optionally without ``D_fail``, and under
the 15 corruptions."""

from __future__ import annotations

import argparse

import numpy as np
from rich.table import Table

from .._checks import add_dependent, int_list
from .._repair.outcome import holdout_figures
from ..data.corrupted import corrupted_test, parse_corruptions
from ..evaluate import accuracy_report
from .base import (
    Command,
    add_corruption,
    add_data,
    add_device,
    console,
    per_class_table,
    percent,
)
from .common_model import load_model_and_data


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="checkpoint folder written by `archrepair train`")
    add_data(parser, default=None)
    parser.add_argument("--failures", help="failure split (from `archrepair failures`): report the test set "
                                           "without D_fail, and D_fail on its own")
    parser.add_argument("--corruptions", help="also report accuracy under these corruptions (all, or names), "
                                              "averaged over --severities")
    add_dependent(parser, "--severities", type=int_list(1, 5), default=[1, 2, 3, 4, 5], needs=("--corruptions",),
                  help="comma-separated severities for --corruptions (default: 1,2,3,4,5)")
    add_dependent(parser, "--per-severity", action="store_true", default=False, needs=("--corruptions",),
                  help="show each severity of --corruptions, not only the mean")
    add_corruption(parser, also=("--corruptions",))
    add_device(parser)


def run(args: argparse.Namespace) -> dict:
    loaded = load_model_and_data(args)
    predictions = loaded.test_predictions("evaluating")
    labels, names = loaded.data.y_test, loaded.data.class_names
    result = {"checkpoint": args.checkpoint, "data": loaded.data.spec, "data_fingerprint": loaded.data.fingerprint,
              "test": accuracy_report(predictions, labels, names)}
    keep = None
    if args.failures:
        split = loaded.load_split(args.failures, own=False)  # any model may be evaluated on a split
        own = split.model_fingerprint in {loaded.fingerprint, *loaded.record.lineage}
        result["split_of_this_model"] = own
        keep = split.eval_indices
        result["eval"] = accuracy_report(predictions[split.eval_indices], labels[split.eval_indices], names)
        result["fail"] = accuracy_report(predictions[split.fail_indices], labels[split.fail_indices], names)
        if not own:  # another model's failures: no "fixed", no change against "the original"
            result["split_note"] = (f"the failure split was made for another model ({split.model_fingerprint}), not for "
                                    "this one or a model it was repaired from: D_fail holds that model's failures, so "
                                    "nothing here is a fix rate or a change against this model's original")
            if split.holdout_indices:
                held = np.asarray(split.holdout_indices)
                result["holdout_accuracy"] = accuracy_report(predictions[held], labels[held], names)
        elif split.holdout_indices:  # against the original model's recorded predictions on the hold-out
            original = np.zeros_like(predictions)
            original[split.holdout_indices] = split.holdout_predictions
            result["holdout"] = holdout_figures(original, predictions, labels, np.asarray(split.holdout_indices), split.seed)
            if split.source == "field":  # and on the home test set, against the original's recorded predictions
                home = loaded.data.home
                result["home"] = holdout_figures(np.asarray(split.extra["home_predictions"]),
                                                 loaded.test_predictions("evaluating at home", home), home.y_test,
                                                 np.arange(len(home.y_test)), split.seed)
    if args.corruptions:
        result["corruptions"] = _corruption_table(loaded, args, keep)
    return result


def _corruption_table(loaded, args, keep) -> dict:
    """``{name: {"mean": acc, "severities": {s: acc}}}`` on the test split (without D_fail if given)."""
    clean = loaded.data
    table = {}
    for name in parse_corruptions(args.corruptions):
        accuracies = {}
        for severity in args.severities:
            loaded.data = corrupted_test(clean, name, severity, args.corruption_seed, args.corruption_dir)
            predictions = loaded.test_predictions(f"{name} {severity}")
            right = predictions == clean.y_test
            accuracies[severity] = float(right[keep].mean() if keep is not None else right.mean())
        table[name] = {"mean": sum(accuracies.values()) / len(accuracies), "severities": accuracies}
    loaded.data = clean
    return table


def show(result: dict) -> None:
    reports, own = {"test": result["test"]}, result.get("split_of_this_model", True)
    if "eval" in result:
        fail = "D_fail" if own else "D_fail of another model"
        reports = {"test (all)": result["test"], "test without D_fail": result["eval"], fail: result["fail"]}
    if "holdout_accuracy" in result:
        reports["test hold-out"] = result["holdout_accuracy"]
    title = f"accuracy of {result['checkpoint']} on {result['data']}"
    console.print(per_class_table(title if own else f"{title} (failure split of ANOTHER model)", reports))
    if not own:
        console.print(f"note: {result['split_note']}")
    elif "eval" in result:
        console.print(f"test without D_fail (the paper's figure): {percent(result['eval']['accuracy'])} on "
                      f"{result['eval']['examples']} examples; D_fail fixed: {percent(result['fail']['accuracy'])} of "
                      f"{result['fail']['examples']}")
    if "holdout" in result:
        held = result["holdout"]
        low, high = held["change_interval_points"]
        where = "field hold-out" if "home" in result else "test hold-out"
        console.print(f"{where} ({held['examples']}): {percent(held['accuracy_after'])} against the original's "
                      f"{percent(held['accuracy_before'])}, {held['change_points']:+.2f} points (95% interval "
                      f"{low:+.2f} to {high:+.2f}, McNemar p {held['mcnemar_p']:.3f}); negative flips "
                      f"{100 * held['negative_flip_rate']:.2f}%, positive {100 * held['positive_flip_rate']:.2f}%, "
                      f"unseen failures fixed {100 * held['unseen_fix_rate']:.1f}%")
    if "home" in result:
        home = result["home"]
        console.print(f"home test set ({home['examples']}): {percent(home['accuracy_after'])} against the original's "
                      f"{percent(home['accuracy_before'])}, {home['change_points']:+.2f} points; negative flips "
                      f"{100 * home['negative_flip_rate']:.2f}%")
    if "corruptions" in result:
        severities = list(next(iter(result["corruptions"].values()))["severities"])
        table = Table(title="accuracy under corruptions" + (" (test without D_fail)" if "eval" in result else ""))
        table.add_column("corruption")
        table.add_column("mean", justify="right")
        for severity in severities:
            table.add_column(f"s{severity}", justify="right")
        for name, row in result["corruptions"].items():
            table.add_row(name, percent(row["mean"]), *[percent(row["severities"][s]) for s in severities])
        console.print(table)


COMMAND = Command(add_arguments, run, show)
