"""``archrepair evaluate``: accuracy overall and per class, optionally without ``D_fail``."""

from __future__ import annotations

import argparse

from ..data import FailureSplit
from ..errors import ArchRepairError
from ..evaluate import accuracy_report
from .base import Command, add_data, add_device, console, per_class_table, percent
from .common_model import load_model_and_data


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="checkpoint folder written by `archrepair train`")
    add_data(parser, default=None)
    parser.add_argument("--failures", help="failure split (from `archrepair failures`): report the test set "
                                           "without D_fail, and D_fail on its own")
    add_device(parser)


def run(args: argparse.Namespace) -> dict:
    loaded = load_model_and_data(args)
    predictions = loaded.test_predictions("evaluating")
    labels, names = loaded.data.y_test, loaded.data.class_names
    result = {"checkpoint": args.checkpoint, "data": loaded.data.spec, "data_fingerprint": loaded.data.fingerprint,
              "test": accuracy_report(predictions, labels, names)}
    if args.failures:
        split = FailureSplit.load(args.failures)
        if split.data_fingerprint and split.data_fingerprint != loaded.data.fingerprint:
            raise ArchRepairError(
                f"failure split {args.failures!r} was made on other data (fingerprint {split.data_fingerprint}, "
                f"this data {loaded.data.fingerprint}); use the data it was made from"
            )
        result["eval"] = accuracy_report(predictions[split.eval_indices], labels[split.eval_indices], names)
        result["fail"] = accuracy_report(predictions[split.fail_indices], labels[split.fail_indices], names)
    return result


def show(result: dict) -> None:
    reports = {"test": result["test"]}
    if "eval" in result:
        reports = {"test (all)": result["test"], "test without D_fail": result["eval"], "D_fail": result["fail"]}
    console.print(per_class_table(f"accuracy of {result['checkpoint']} on {result['data']}", reports))
    if "eval" in result:
        console.print(f"test without D_fail: {percent(result['eval']['accuracy'])} on {result['eval']['examples']} "
                      f"examples; D_fail fixed: {percent(result['fail']['accuracy'])} of {result['fail']['examples']}")


COMMAND = Command("evaluate", "accuracy of a checkpoint, overall and per class", add_arguments, run, show)
