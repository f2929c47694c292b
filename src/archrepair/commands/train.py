"""``archrepair train``: train a zoo model and write a checkpoint folder."""

from __future__ import annotations

import argparse
import sys

from .._checks import (
    accuracy_fraction,
    fraction_below_one,
    non_negative_float,
    non_negative_int,
    output_lock,
    positive_float,
    positive_int,
)
from ..base_model import TrainJob, describe_epoch, train_base_model
from ..data import load_data
from ..data.loader import AUGMENTATIONS
from ..device import resolve_device
from ..models import list_models
from ..train import SCHEDULES, TrainConfig
from .base import Command, add_data, add_overwrite, add_quiet, checked_out, console, data_path, percent, progress


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="small_cnn", help=f"zoo model: {', '.join(list_models())} (default: small_cnn)")
    parser.add_argument("--width", type=positive_float, default=1.0, help="channel width multiplier (default: 1.0)")
    add_data(parser)
    parser.add_argument("--out", required=True, help="checkpoint folder to write (atomically, at the end)")
    parser.add_argument("--epochs", type=positive_int, default=30, help="maximum epochs (default: 30)")
    parser.add_argument("--lr", type=positive_float, default=0.1, help="peak learning rate of SGD (default: 0.1)")
    parser.add_argument("--momentum", type=fraction_below_one, default=0.9)
    parser.add_argument("--weight-decay", type=non_negative_float, default=5e-4)
    parser.add_argument("--train-batch-size", type=positive_int, default=128, help="training batch size (default: 128)")
    parser.add_argument("--schedule", choices=SCHEDULES, default="cosine", help="learning-rate schedule (default: cosine)")
    parser.add_argument("--label-smoothing", type=fraction_below_one, default=0.0)
    parser.add_argument("--val-fraction", type=fraction_below_one, default=0.1,
                        help="share of the training set held out for early stopping (default: 0.1)")
    parser.add_argument("--patience", type=non_negative_int, default=10,
                        help="stop after this many epochs without a better validation accuracy (default: 10; 0: never)")
    parser.add_argument("--target-accuracy", type=accuracy_fraction, default=None,
                        help="stop as soon as test accuracy reaches this (0-1), e.g. 0.80 for an under-trained "
                             "'deployed' model; pair with --schedule constant so the rate is not annealed")
    parser.add_argument("--augment", choices=("auto",) + AUGMENTATIONS, default="auto",
                        help="auto: crop-flip for colour images of 32 px and more, none otherwise")
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument("--device", default="auto", help="auto (CUDA when present, else CPU), cpu, cuda or cuda:N")
    parser.add_argument("--amp", action="store_true", help="mixed precision (float16 on CUDA, bfloat16 on CPU)")
    parser.add_argument("--channels-last", action="store_true", help="channels-last memory format")
    parser.add_argument("--resume", action="store_true", help="continue a killed run from <out>.state.pt (same settings)")
    parser.add_argument("--checkpoint-every", type=non_negative_int, default=100, metavar="BATCHES",
                        help="also save <out>.state.pt every this many batches within an epoch, so that --resume "
                             "loses at most that much of a long epoch (default: 100; 0: at epoch ends only)")
    add_overwrite(parser)
    add_quiet(parser)


def run(args: argparse.Namespace) -> dict:
    out = checked_out(args, data_path(args.data))
    with output_lock(out):
        return _train(args)


def _train(args: argparse.Namespace) -> dict:
    data = load_data(args.data)
    config = TrainConfig(
        epochs=args.epochs, batch_size=args.train_batch_size, lr=args.lr, momentum=args.momentum,
        weight_decay=args.weight_decay, schedule=args.schedule, label_smoothing=args.label_smoothing,
        patience=args.patience or None, target_accuracy=args.target_accuracy, amp=args.amp,
    )
    job = TrainJob(args.model, args.width, args.seed, args.val_fraction, args.augment, args.channels_last)
    say = progress(args)
    _, record, result = train_base_model(
        data, job, config, args.out, resolve_device(args.device), resume=args.resume,
        on_epoch=lambda e: say(describe_epoch(e)), say=lambda message: print(message, file=sys.stderr, flush=True),
        checkpoint_every=args.checkpoint_every or None,
    )
    return {
        "checkpoint": str(args.out),
        "model": record.architecture,
        "arguments": record.arguments,
        "data": record.data,
        "test_accuracy": record.metrics["test_accuracy"],
        "val_accuracy": record.metrics["val_accuracy"],
        "epochs_run": result.epochs_run,
        "stop_reason": result.stop_reason,
        "seconds": round(result.seconds, 2),
        "seed": args.seed,
    }


def show(result: dict) -> None:
    console.print(
        f"wrote [bold]{result['checkpoint']}[/]: {result['model']} {result['arguments']}, "
        f"test accuracy {percent(result['test_accuracy'])}, val {percent(result['val_accuracy'])}, "
        f"{result['epochs_run']} epochs ({result['stop_reason']}), {result['seconds']:.1f}s"
    )


COMMAND = Command(add_arguments, run, show)
