"""Train a zoo model (default ResNet-18, width 0.25) on the shared CIFAR-10 and report test accuracy and wall time.

    python benchmarks/train_base.py                      # converged: one-cycle, 15 epochs
    python benchmarks/train_base.py --schedule constant --target-accuracy 0.80 --name deployed80
                                                         # under-trained "deployed" model
    python benchmarks/train_base.py --model densenet121 --schedule constant --lr 0.03 --epochs 20 \
        --target-accuracy 0.80 --name densenet121-w0.25-undertrained --into models

The checkpoint is kept under benchmarks/cache/<name> (later benchmarks start from it; ``--into models``
for the committed ones, see models/README.md); an existing one is reported without retraining unless
--force. A killed run resumes where it stopped: the state is saved after every epoch and every
``--checkpoint-every`` batches within one (with the same random draws, so the model is the same).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from common import CACHE, ROOT, cifar10_spec, print_headline, relative_data_spec

from archrepair._checks import non_negative_int
from archrepair.base_model import TrainJob, describe_epoch, train_base_model
from archrepair.checkpoint import load_record
from archrepair.data import load_data
from archrepair.device import resolve_device
from archrepair.train import TrainConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--schedule", default="onecycle")
    parser.add_argument("--target-accuracy", type=float, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default="resnet18-w0.25-converged")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--into", default=str(CACHE), help="the folder the checkpoint folder goes into "
                                                           "(default benchmarks/cache; models/ for committed ones)")
    parser.add_argument("--checkpoint-every", type=non_negative_int, default=100,
                        help="also save the training state every this many batches (0: at epoch ends only)")
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args()

    out = Path(args.into) / args.name
    if out.exists() and not args.force:
        record = load_record(out)
        print(f"reusing {out} (use --force to retrain)", file=sys.stderr)
    else:
        started = time.perf_counter()
        data = load_data(cifar10_spec())
        print(f"data loaded in {time.perf_counter() - started:.1f}s: {data.summary()['train']} train", file=sys.stderr)
        config = TrainConfig(epochs=args.epochs, lr=args.lr, schedule=args.schedule,
                             target_accuracy=args.target_accuracy, patience=None if args.target_accuracy else 10)
        job = TrainJob(args.model, args.width, args.seed, channels_last=True)
        _, record, _ = train_base_model(data, job, config, out, resolve_device(args.device), resume=not args.force,
                                        on_epoch=lambda e: print(describe_epoch(e), flush=True),
                                        checkpoint_every=args.checkpoint_every or None)
    if out.resolve().is_relative_to(ROOT):
        relative_data_spec(out)
    print_headline({
        "model": record.architecture, "width": record.arguments["width"],
        "test_accuracy": round(record.metrics["test_accuracy"], 4),
        "epochs": record.training["epochs_run"], "train_seconds": record.training["seconds"],
        "stop_reason": record.training["stop_reason"], "torch_threads": torch.get_num_threads(),
    })


if __name__ == "__main__":
    main()
