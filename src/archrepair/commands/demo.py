"""``archrepair demo``: the whole job offline on the embedded digits, in a few minutes on a CPU.

Trains a small block-structured CNN to a deliberately imperfect accuracy, takes half of its test
failures as ``D_fail`` (the other half stays in the held-out test set, so a repair has room to
show), localises the vulnerable block, repairs it and prints before and after on the held-out
examples.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .._checks import accuracy_fraction, non_negative_int, output_lock
from ..base_model import TrainJob, make_loader, train_base_model
from ..checkpoint import model_fingerprint
from ..data import load_data, select_failures
from ..device import resolve_device
from ..evaluate import predict_logits
from .._repair import DEFAULT_METHOD
from ..budget import Budget
from ..plan import RepairPlan, prepare, run_plan
from ..train import TrainConfig
from .base import Command, add_overwrite, add_quiet, checked_out, percent, progress
from .repair import add_repair_options, repair_settings, task_config
from .repair import show as show_repair


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="archrepair-demo", help="folder for the demo's models (default: archrepair-demo)")
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument("--target-accuracy", type=accuracy_fraction, default=0.85,
                        help="stop base training at this test accuracy (default: 0.85)")
    add_overwrite(parser)
    add_quiet(parser)
    parser.add_argument("--device", default="auto")
    add_repair_options(parser)
    parser.set_defaults(train_examples=0, search_epochs=6, finetune_epochs=10, level=20)


DEMO_ENTRIES = {"base", "base.state.pt", "failures.json", "repaired", "repaired.work"}


def run(args: argparse.Namespace) -> dict:
    folder = Path(args.out)
    if folder.is_dir() and {entry.name for entry in folder.iterdir()} <= DEMO_ENTRIES:
        args.overwrite = True  # a folder holding only an earlier demo's output is the demo's to rewrite
    out = checked_out(args)
    with output_lock(out):
        return _demo(args, out)


def _demo(args: argparse.Namespace, out: Path) -> dict:
    device = resolve_device(args.device)
    say = progress(args)
    data = load_data("digits")
    say(f"1/4 training a small CNN on the digits until test accuracy reaches {percent(args.target_accuracy)}")
    config = TrainConfig(epochs=30, lr=0.02, schedule="constant", target_accuracy=args.target_accuracy, patience=None)
    model, record, _ = train_base_model(data, TrainJob("small_cnn", 0.5, args.seed), config, out / "base", device,
                                        say=say, resumable=False)
    predictions = predict_logits(model, make_loader(data, "test", record, device=device)).argmax(1).numpy()
    wrong = int((predictions != data.y_test).sum())
    split = select_failures(predictions, data.y_test, wrong, args.seed)  # every failure of the pool
    split.data_spec, split.data_fingerprint = data.spec, data.fingerprint
    split.model_fingerprint = model_fingerprint(out / "base")
    split.save(out / "failures.json")
    say(f"2/4 {wrong} test failures; the {len(split.fail_indices)} in the failure pool form D_fail, the repair is "
        f"judged on the other half of the test set ({len(split.holdout_indices)} examples, never seen by it)")
    say("3/4 localising the vulnerable block and repairing it")
    plan = RepairPlan(str(out / "base"), DEFAULT_METHOD, repair_settings(args, [DEFAULT_METHOD]), Budget(),
                      task_config(args, device), failures=str(out / "failures.json"), out=str(out / "repaired"))
    _, report = run_plan(prepare(plan, log=say))
    say("4/4 done")
    return report


COMMAND = Command(add_arguments, run, show_repair)
