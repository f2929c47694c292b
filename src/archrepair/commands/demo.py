"""``archrepair demo``: the whole job offline on the embedded digits, in under a minute on a CPU.

Trains a small block-structured CNN on the digits to a deliberately imperfect accuracy, then repairs it
with the default method. ``--scenario field`` (the default): the digits as a new camera sees them
(:func:`camera_field`: moved a pixel, noisy) are a field set the model fails on; the repair learns
from part of it and is judged on its own hold-out and on the home test set (what it broke).
``--scenario test``: the base model's own test failures, half of them as ``D_fail`` and the other
half in the held-out test set (a small gain there seldom passes the keep rule: the original comes
back). Either way the last line says what was repaired, by how much, and what it broke.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from .._checks import accuracy_fraction, non_negative_int, output_lock
from ..base_model import TrainJob, make_loader, train_base_model
from ..checkpoint import model_fingerprint
from ..data import load_data, select_failures
from ..device import resolve_device
from ..evaluate import predict_logits
from ..fileio import npz_bytes, write_bytes_atomically
from .._repair import DEFAULT_METHOD
from ..budget import Budget
from ..plan import RepairPlan, prepare, run_plan
from ..train import TrainConfig
from .base import Command, add_overwrite, add_quiet, checked_out, console, percent, progress
from .repair import add_repair_options, repair_settings, task_config
from .repair import show as show_repair


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="archrepair-demo", help="folder for the demo's models (default: archrepair-demo)")
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument("--scenario", choices=("field", "test"), default="field",
                        help="field (default): the model's failures on the digits as a new camera sees them; "
                             "test: its own test failures")
    parser.add_argument("--target-accuracy", type=accuracy_fraction, default=0.85,
                        help="stop base training at this test accuracy (default: 0.85)")
    add_overwrite(parser)
    add_quiet(parser)
    parser.add_argument("--device", default="auto")
    add_repair_options(parser)
    parser.set_defaults(train_examples=0, search_epochs=6, finetune_epochs=10, level=20)


DEMO_ENTRIES = {"base", "base.state.pt", "failures.json", "field.npz", "repaired", "repaired.work"}

CAMERA_SHIFT = 1
"""Pixels the new camera moves every digit right and down (zero fill)."""

CAMERA_NOISE = 32.0
"""Standard deviation of the new camera's Gaussian noise, in pixel units (0-255)."""


def camera_field(images: np.ndarray, seed: int) -> np.ndarray:
    """``images`` ``(N, H, W, C)`` uint8 as a new camera sees them: moved :data:`CAMERA_SHIFT` pixels
    right and down (zero fill), plus Gaussian noise of sd :data:`CAMERA_NOISE` (seeded), rounded and
    clipped to 0-255."""
    moved = np.zeros_like(images, dtype=np.float64)
    moved[:, CAMERA_SHIFT:, CAMERA_SHIFT:] = images[:, :-CAMERA_SHIFT, :-CAMERA_SHIFT]
    noisy = moved + np.random.default_rng(seed).normal(0.0, CAMERA_NOISE, size=moved.shape)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


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
    failures = field = None
    if args.scenario == "field":
        field = out / "field.npz"
        write_bytes_atomically(field, npz_bytes({"x": camera_field(data.x_train, args.seed), "y": data.y_train}))
        say(f"2/4 the field set: the {len(data.y_train)} training digits as a new camera sees them (moved "
            f"{CAMERA_SHIFT} pixel, noise sd {CAMERA_NOISE:g}); the repair learns from part of it and is judged on "
            "the other half, never seen by it, and on the home test set")
    else:
        predictions = predict_logits(model, make_loader(data, "test", record, device=device)).argmax(1).numpy()
        wrong = int((predictions != data.y_test).sum())
        split = select_failures(predictions, data.y_test, wrong, args.seed)  # every failure of the pool
        split.data_spec, split.data_fingerprint = data.spec, data.fingerprint
        split.model_fingerprint = model_fingerprint(out / "base")
        failures = out / "failures.json"
        split.save(failures)
        say(f"2/4 {wrong} test failures; the {len(split.fail_indices)} in the failure pool form D_fail, the repair "
            f"is judged on the other half of the test set ({len(split.holdout_indices)} examples, never seen by it)")
    say("3/4 localising the vulnerable block and repairing it")
    plan = RepairPlan(str(out / "base"), DEFAULT_METHOD, repair_settings(args, [DEFAULT_METHOD]), Budget(),
                      task_config(args, device), failures=None if failures is None else str(failures),
                      field=None if field is None else str(field), out=str(out / "repaired"))
    _, report = run_plan(prepare(plan, log=say))
    say("4/4 done")
    return report


def closing_line(report: dict) -> str:
    """One sentence: what was repaired, by how much on the hold-out (95% interval), what it broke."""
    judged = report.get("judged", {}).get("returned", {})
    held, home = judged.get("holdout"), judged.get("home")
    where = "the field set (the digits through a new camera)" if report.get("field") else "the test failures"
    if held is None:
        return f"{report['method']} returned the {report['kept']} model for {where}."
    low, high = held["change_interval_points"]
    if report["kept"] != "repaired":
        return (f"Nothing repaired: on {where} the candidate's gain did not pass the keep rule, so the original "
                f"model came back (hold-out {held['change_points']:+.2f} points).")
    broke = f"{100 * held['negative_flip_rate']:.2f}% of the hold-out examples the original got right"
    if home:
        broke = (f"{100 * home['negative_flip_rate']:.2f}% of the home test set the original got right (home accuracy "
                 f"{percent(home['accuracy_before'])} -> {percent(home['accuracy_after'])})")
    return (f"Repaired {where}: hold-out accuracy {percent(held['accuracy_before'])} -> {percent(held['accuracy_after'])} "
            f"({held['change_points']:+.2f} points, 95% interval [{low:+.2f}, {high:+.2f}], on "
            f"{held['examples']} examples the repair never saw); it broke {broke}.")


def show(report: dict) -> None:
    show_repair(report)
    console.print(closing_line(report))


COMMAND = Command(add_arguments, run, show)
