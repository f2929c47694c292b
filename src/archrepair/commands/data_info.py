"""``archrepair data``: load a data spec (decoding and caching it) and describe it."""

from __future__ import annotations

import argparse

import numpy as np

from ..data import load_data
from .base import DATA_HELP, Command, console


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", nargs="?", default="digits", help=DATA_HELP)


def run(args: argparse.Namespace) -> dict:
    data = load_data(args.spec)
    summary = data.summary()
    summary["train_counts"] = np.bincount(data.y_train, minlength=data.num_classes).tolist()
    summary["test_counts"] = np.bincount(data.y_test, minlength=data.num_classes).tolist()
    return summary


def show(result: dict) -> None:
    console.print(
        f"[bold]{result['spec']}[/]: {result['train']} train / {result['test']} test images of shape "
        f"{tuple(result['image_shape'])} (H, W, C), {result['num_classes']} classes "
        f"({', '.join(result['class_names'][:10])}{'...' if result['num_classes'] > 10 else ''}), "
        f"fingerprint {result['fingerprint']}"
    )


COMMAND = Command(add_arguments, run, show)
